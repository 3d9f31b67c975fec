//! Group commit: one thread owns appends. Every insert waiting when it wakes
//! is written with one `write` and made durable with one `fdatasync`, under
//! an exclusive advisory lock shared with other processes. Only then are the
//! waiting inserts acknowledged, so a 201 always means "on disk" and many
//! concurrent inserts cost one sync, not one each.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::Inner;
use crate::metrics::METRICS;

/// Most records one commit takes, so a flood cannot starve acknowledgements.
const MAX_BATCH_RECORDS: usize = 8192;

/// Complete lines (each ending in `\n`) to append, and who waits for them.
pub struct AppendRequest {
    pub payload: Vec<u8>,
    pub records: usize,
    pub reply: oneshot::Sender<Result<(), String>>,
}

/// Starts the writer thread; it ends when every sender is dropped.
pub fn spawn(inner: Arc<Inner>) -> std::io::Result<mpsc::UnboundedSender<AppendRequest>> {
    let (sender, receiver) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("jsonl-writer".into())
        .spawn(move || run(&inner, receiver))?;
    Ok(sender)
}

fn run(inner: &Inner, mut receiver: mpsc::UnboundedReceiver<AppendRequest>) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        let mut records = batch[0].records;
        while records < MAX_BATCH_RECORDS {
            match receiver.try_recv() {
                Ok(next) => {
                    records += next.records;
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let payload = match batch.as_mut_slice() {
            [only] => std::mem::take(&mut only.payload),
            all => {
                let mut joined = Vec::with_capacity(all.iter().map(|r| r.payload.len()).sum());
                for request in all.iter() {
                    joined.extend_from_slice(&request.payload);
                }
                joined
            }
        };
        let result = append_durably(&inner.path, &payload, inner.fsync).map_err(|e| {
            tracing::error!(path = %inner.path.display(), error = %e, "append failed");
            e.to_string()
        });
        if result.is_ok() {
            inner
                .commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            METRICS.commit_batch_size.observe(records as f64);
            // Make the new lines visible before anyone is told they are stored.
            if let Err(error) = inner.catch_up() {
                tracing::warn!(%error, "stored records are not yet visible; the next query retries");
            }
        }
        for request in batch {
            let _ = request.reply.send(result.clone());
        }
    }
}

/// Appends `payload` under an exclusive `flock`, starting on a fresh line if
/// the file ends in the middle of one, then syncs when `fsync` is set.
pub fn append_durably(path: &Path, payload: &[u8], fsync: bool) -> std::io::Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        fs::create_dir_all(parent)?;
    }
    let created = !path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    file.lock()?;
    let len = file.metadata()?.len();
    let mut last = [0u8; 1];
    let torn_tail = len > 0 && {
        file.read_exact_at(&mut last, len - 1)?;
        last[0] != b'\n'
    };
    if torn_tail {
        let mut fresh = Vec::with_capacity(payload.len() + 1);
        fresh.push(b'\n');
        fresh.extend_from_slice(payload);
        file.write_all(&fresh)?;
    } else {
        file.write_all(payload)?;
    }
    if fsync {
        let started = Instant::now();
        file.sync_data()?;
        if created {
            // A new file's directory entry must be durable too.
            if let Some(parent) = parent {
                File::open(parent)?.sync_all()?;
            }
        }
        METRICS
            .sync_duration
            .observe(started.elapsed().as_secs_f64());
    }
    file.unlock()
}
