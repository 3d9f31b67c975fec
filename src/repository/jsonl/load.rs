//! Turning file bytes into records quickly: a borrowing fast path for lines
//! in the usual shape, the validating parser for everything else, lines
//! split across threads, and the file read in bounded blocks.

use std::path::Path;
use std::sync::Arc;

use super::keys::{Batch, KeyStamp, Loaded};
use super::legacy::infer_pipeline_name;
use super::parse_line_keyed;
use crate::domain::usual::UsualRecord;
use crate::metrics::METRICS;

/// Bytes read from the file at a time, so memory stays bounded however big
/// the file is.
pub const BLOCK_BYTES: usize = 32 << 20;

/// Fewer lines than this are parsed on the calling thread.
const PARALLEL_ABOVE: usize = 4096;

thread_local! {
    /// Classification values seen by this parsing thread. Sharing them from
    /// the start means a large load never allocates (and later frees) one
    /// copy per record, which would leave the heap full of holes.
    static NAMES: std::cell::RefCell<std::collections::HashSet<Arc<str>, foldhash::fast::RandomState>> =
        std::cell::RefCell::default();
}

/// Distinct values a thread remembers before starting afresh.
const MAX_SHARED_NAMES: usize = 4096;

fn shared(value: &str) -> Arc<str> {
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(existing) = names.get(value) {
            return existing.clone();
        }
        // Long-lived threads must not keep every value ever seen.
        if names.len() >= MAX_SHARED_NAMES {
            names.clear();
        }
        let created: Arc<str> = Arc::from(value);
        names.insert(created.clone());
        created
    })
}

/// The fast path; `None` sends the line to the validating parser.
fn parse_usual(line: &[u8]) -> Option<Loaded> {
    let raw = UsualRecord::read(line)?;
    let key = match &raw.stored_key {
        Some(k) => Some(KeyStamp::new(k.key, k.fingerprint, k.at)?),
        None => None,
    };
    let inferred;
    let name = match raw.pipeline_name {
        Some(name) => name,
        None => {
            let (output, log) = raw.paths();
            inferred = infer_pipeline_name(output, log);
            Some(inferred.as_str())
        }
    };
    let record = raw.into_record(name, shared)?;
    Some(Loaded { record, key })
}

/// One line, with its idempotency key: the fast path, else the full parser
/// (which also explains why a line is invalid).
pub fn parse_keyed(line: &[u8]) -> Result<Option<Loaded>, String> {
    match parse_usual(line) {
        Some(loaded) => Ok(Some(loaded)),
        None => parse_line_keyed(line),
    }
}

/// Parses complete lines, in order, on all cores when there are many.
fn parse_all(lines: &[&[u8]]) -> Vec<Result<Option<Loaded>, String>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if lines.len() < PARALLEL_ABOVE || threads < 2 {
        return lines.iter().map(|l| parse_keyed(l)).collect();
    }
    let per_thread = lines.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = lines
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || chunk.iter().map(|l| parse_keyed(l)).collect::<Vec<_>>())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|_| vec![Err("parser thread failed".to_owned()); per_thread])
            })
            .collect()
    })
}

/// Parses every complete line of `bytes` (each ending in `\n`); returns
/// the records and how many bytes those lines took. Invalid lines are
/// skipped with a warning naming their line number.
pub fn take_complete_lines(
    bytes: &[u8],
    first_line_number: u64,
    path: &Path,
    batch: &mut Batch,
) -> (usize, u64) {
    let mut lines = Vec::new();
    let mut start = 0;
    while let Some(end) = memchr::memchr(b'\n', &bytes[start..]) {
        lines.push(&bytes[start..start + end]);
        start += end + 1;
    }
    let parsed = parse_all(&lines);
    for (offset, result) in parsed.into_iter().enumerate() {
        match result {
            Ok(Some(loaded)) => batch.push(loaded),
            Ok(None) => {}
            Err(reason) => {
                METRICS.bad_lines.inc();
                let line = first_line_number + offset as u64;
                tracing::warn!(path = %path.display(), line, %reason, "skipping invalid line");
            }
        }
    }
    (start, lines.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::jsonl::parse_line;

    #[test]
    fn the_fast_path_agrees_with_the_validating_parser() {
        let mut buffer = Vec::new();
        crate::generate::generate(&mut buffer, 3000, 11).unwrap();
        let text = String::from_utf8(buffer).unwrap();
        let mut fast = 0;
        for line in text.lines() {
            let slow = parse_line_keyed(line.as_bytes())
                .ok()
                .flatten()
                .map(|l| l.record);
            if let Some(quick) = parse_usual(line.as_bytes()) {
                fast += 1;
                assert_eq!(Some(quick.record), slow, "{line}");
            }
            assert_eq!(parse_line(line.as_bytes()).ok().flatten(), slow);
        }
        assert!(
            fast > 2900,
            "most generated lines take the fast path ({fast})"
        );
    }

    #[test]
    fn unusual_lines_fall_back_and_keep_their_meaning() {
        let lenient = br#"{"start_local": "2025-08-08 05:07:01", "end_local": "2025-08-08T05:29:06", "start_utc": 1754654821, "end_utc": "2025-08-08T12:29:06Z", "elapsed_seconds": "1325", "elapsed_human": "22m 5s", "output_file": "/o", "log_file": "/l", "rowcount": 8543.0, "pid": "7", "date_code": "d", "pipeline_name": null}"#;
        assert!(parse_usual(lenient).is_none());
        let record = parse_line(lenient).unwrap().unwrap();
        assert_eq!(record.rowcount(), 8543);
        assert_eq!(record.pipeline_name(), None, "a present null stays null");
        let escaped = br#"{"start_local": "2025-08-08T05:07:01", "end_local": "2025-08-08T05:29:06", "start_utc": "2025-08-08T12:07:01Z", "end_utc": "2025-08-08T12:29:06Z", "elapsed_seconds": 1, "elapsed_human": "x", "output_file": "/data/caf\u00e9/out", "log_file": "/l", "rowcount": 1, "pid": 7, "date_code": "d"}"#;
        let record = parse_line(escaped).unwrap().unwrap();
        assert_eq!(record.output_file(), "/data/café/out");
        assert_eq!(record.pipeline_name(), Some("unknown"));
        let nan = br#"{"start_local": "2025-08-08T05:07:01", "end_local": "2025-08-08T05:29:06", "start_utc": "2025-08-08T12:07:01Z", "end_utc": "2025-08-08T12:29:06Z", "elapsed_seconds": 1e999, "elapsed_human": "x", "output_file": "/o", "log_file": "/l", "rowcount": 1, "pid": 7, "date_code": "d"}"#;
        assert!(parse_line(nan).is_err());
    }
}
