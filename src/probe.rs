//! A dependency-free liveness probe for container health checks.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::config::Settings;

/// Whether the server configured by `settings` answers `GET /health` with 200.
pub fn health_ok(settings: &Settings) -> Result<(), String> {
    // A server listening on every interface is reached through loopback.
    let host = match settings.host.as_str() {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        other => other,
    };
    let address = format!("{host}:{}", settings.port);
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect(&address).map_err(|e| format!("{address}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|e| e.to_string())?;
    if head.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!(
            "unexpected answer: {}",
            String::from_utf8_lossy(&head)
        ))
    }
}
