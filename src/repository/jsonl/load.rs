//! Turning file bytes into records quickly: lines in the usual shape read
//! by `scan` straight into the store's columns, the validating parser for
//! everything else, and a large file split into blocks that every core
//! reads and parses at once.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::keys::{Batch, Loaded};
use super::parallel;
use super::parse_line_keyed;
use super::scan::{plain, scan, scan_plain};
use super::store::RunStore;
use crate::metrics::METRICS;

/// Bytes read from the file at a time by a sequential read, so memory
/// stays bounded however big the file is.
pub const BLOCK_BYTES: usize = 32 << 20;

/// Unread bytes from which a read is split across every core (tiny in
/// unit tests, so that their files are read this way, in blocks shorter
/// than some lines).
#[cfg(not(test))]
pub const PARALLEL_FROM: u64 = 16 << 20;
#[cfg(test)]
pub const PARALLEL_FROM: u64 = 4096;

/// Bytes one parsing thread takes at a time in a parallel read.
#[cfg(not(test))]
const PARALLEL_BLOCK: u64 = 16 << 20;
#[cfg(test)]
const PARALLEL_BLOCK: u64 = 700;

/// One line, with its idempotency key: the scanner, else the full parser
/// (which also explains why a line is invalid).
pub fn parse_keyed(line: &[u8]) -> Result<Option<Loaded>, String> {
    if let Some(scanned) = scan(line) {
        if let Some(record) = scanned.fields().to_record() {
            return Ok(Some(Loaded {
                record,
                key: scanned.key,
            }));
        }
    }
    parse_line_keyed(line)
}

/// Adds one line's record to `batch`; `Ok(())` also for a blank line.
fn parse_into(line: &[u8], checked: Option<&str>, batch: &mut Batch) -> Result<(), String> {
    let scanned = match checked {
        Some(text) => scan_plain(text),
        None => scan(line),
    };
    if let Some(mut scanned) = scanned {
        let key = scanned.key.take();
        batch.push_fields(&scanned.fields(), key);
        return Ok(());
    }
    if let Some(loaded) = parse_line_keyed(line)? {
        batch.push(loaded);
    }
    Ok(())
}

/// A line skipped as invalid: its number and why.
type Invalid = (u64, String);

pub fn warn_invalid(path: &Path, invalid: Vec<Invalid>) {
    for (line, reason) in invalid {
        METRICS.bad_lines.inc();
        tracing::warn!(path = %path.display(), line, %reason, "skipping invalid line");
    }
}

/// Parses the complete lines at the start of `bytes` (each ending in
/// `\n`) into `batch`; returns how many bytes and lines they took and the
/// invalid ones, numbered from `first_line_number`.
fn parse_lines(
    bytes: &[u8],
    first_line_number: u64,
    batch: &mut Batch,
) -> (usize, u64, Vec<Invalid>) {
    let mut start = 0;
    let mut lines = 0;
    let mut invalid = Vec::new();
    // Nearly always every line is plain UTF-8: checked here once for all,
    // instead of line by line. (A line ending in a CR or a tab makes the
    // block fail the check; its lines are then checked one by one.)
    let checked = plain(bytes)
        .then(|| std::str::from_utf8(bytes).ok())
        .flatten();
    while let Some(end) = memchr::memchr(b'\n', &bytes[start..]) {
        let line = &bytes[start..start + end];
        let text = checked.and_then(|text| text.get(start..start + end));
        if let Err(reason) = parse_into(line, text, batch) {
            invalid.push((first_line_number + lines, reason));
        }
        lines += 1;
        start += end + 1;
    }
    (start, lines, invalid)
}

/// Parses every complete line of `bytes` (each ending in `\n`); returns
/// how many bytes and lines those took. Invalid lines are skipped with a
/// warning naming their line number.
pub fn take_complete_lines(
    bytes: &[u8],
    first_line_number: u64,
    path: &Path,
    batch: &mut Batch,
) -> (usize, u64) {
    let (taken, lines, invalid) = parse_lines(bytes, first_line_number, batch);
    warn_invalid(path, invalid);
    (taken, lines)
}

/// The complete lines read in a parallel read.
pub struct Taken {
    pub batch: Batch,
    /// Where the last complete line ended.
    pub end: u64,
    pub lines: u64,
    /// The lines skipped as invalid, numbered, and why.
    pub invalid: Vec<(u64, String)>,
}

/// What one block of a parallel read produced.
struct Block {
    batch: Batch,
    /// Lines, numbered from the block's first.
    lines: u64,
    invalid: Vec<Invalid>,
    /// Where the block's last complete line ends (its start if none).
    end: u64,
}

/// Reads the complete lines of `file` from `from` (where a line starts)
/// up to `to` on every core, numbering them from `first_line_number`. Each
/// thread takes a block of bytes and the lines that start in it, reading
/// past its end to finish the last one; what follows the last newline
/// before `to` is left for the caller.
pub fn read_in_parallel(
    file: &File,
    from: u64,
    to: u64,
    first_line_number: u64,
) -> std::io::Result<Taken> {
    let blocks: Vec<u64> = (from..to).step_by(PARALLEL_BLOCK as usize).collect();
    let started = std::time::Instant::now();
    let parsed = parallel::map(blocks, |start| {
        parse_block(file, from, start, (start + PARALLEL_BLOCK).min(to), to)
    });
    let parsed: Vec<Block> = parsed.into_iter().collect::<std::io::Result<_>>()?;
    let scanned = started.elapsed();
    let mut taken = Taken {
        batch: Batch::default(),
        end: from,
        lines: 0,
        invalid: Vec::new(),
    };
    let mut stores = Vec::with_capacity(parsed.len());
    let mut records = 0;
    for block in parsed {
        let numbered = first_line_number + taken.lines;
        taken.invalid.extend(
            block
                .invalid
                .into_iter()
                .map(|(line, reason)| (numbered + line, reason)),
        );
        taken.lines += block.lines;
        taken.end = taken.end.max(block.end);
        let first = records;
        taken.batch.keys.extend(
            block
                .batch
                .keys
                .into_iter()
                .map(|(at, key)| (first + at, key)),
        );
        records += block.batch.records.len();
        stores.push(block.batch.records);
    }
    taken.batch.records = RunStore::concat(stores);
    tracing::debug!(
        scan_ms = scanned.as_millis() as u64,
        merge_ms = (started.elapsed() - scanned).as_millis() as u64,
        "blocks read"
    );
    Ok(taken)
}

/// Fills `buffer` from `offset` as far as the file allows: fewer bytes at
/// the end of a file that shrank meanwhile (the next catch-up notices).
pub fn read_at_most(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

thread_local! {
    /// A parsing thread's block buffer, reused from block to block: fresh
    /// memory for every block costs more in page faults than the copy.
    static BLOCK_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The lines that start in `start..end` (lines start at `from` and after
/// each newline), read to their newlines, which may lie past `end` but not
/// past `to`.
fn parse_block(file: &File, from: u64, start: u64, end: u64, to: u64) -> std::io::Result<Block> {
    BLOCK_BUFFER.with_borrow_mut(|buffer| {
        // One byte before the block shows whether a line starts at its first.
        let read_from = if start > from { start - 1 } else { start };
        let wanted = (end - read_from) as usize;
        if buffer.len() < wanted {
            buffer.resize(wanted, 0);
        }
        let mut filled = read_at_most(file, &mut buffer[..wanted], read_from)?;
        let first = match start > from {
            false => 0,
            true => memchr::memchr(b'\n', &buffer[..filled]).map_or(filled, |newline| newline + 1),
        };
        // Records for about 400 bytes a line, text for a third of them.
        let mut block = Block {
            batch: Batch::with_capacity(wanted / 400, wanted / 3),
            lines: 0,
            invalid: Vec::new(),
            end: from,
        };
        if read_from + first as u64 >= end {
            // The block lies inside a line that started before it.
            return Ok(block);
        }
        // Finish the line the block ends in.
        while filled > 0 && buffer[filled - 1] != b'\n' && read_from + (filled as u64) < to {
            let more = ((to - read_from) as usize - filled).min(1 << 16);
            if buffer.len() < filled + more {
                buffer.resize(filled + more, 0);
            }
            let read = read_at_most(
                file,
                &mut buffer[filled..filled + more],
                read_from + filled as u64,
            )?;
            if read == 0 {
                break;
            }
            let newline = memchr::memchr(b'\n', &buffer[filled..filled + read]);
            filled += newline.map_or(read, |at| at + 1);
            if newline.is_some() {
                break;
            }
        }
        let (taken, lines, invalid) = parse_lines(&buffer[first..filled], 0, &mut block.batch);
        block.lines = lines;
        block.invalid = invalid;
        block.end = read_from + (first + taken) as u64;
        block.batch.records.shrink();
        Ok(block)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::jsonl::parse_line;

    #[test]
    fn the_scanner_agrees_with_the_validating_parser() {
        let mut buffer = Vec::new();
        crate::generate::generate(&mut buffer, 3000, 11).unwrap();
        let text = String::from_utf8(buffer).unwrap();
        let mut fast = 0;
        for line in text.lines() {
            let slow = parse_line_keyed(line.as_bytes())
                .ok()
                .flatten()
                .map(|l| l.record);
            if let Some(quick) = scan(line.as_bytes()) {
                fast += 1;
                assert_eq!(quick.fields().to_record(), slow, "{line}");
            }
            assert_eq!(parse_line(line.as_bytes()).ok().flatten(), slow);
        }
        assert!(
            fast > 2900,
            "most generated lines take the fast path ({fast})"
        );
    }

    /// A file of every kind of line, some longer than a block, read in
    /// blocks on every core (this module's unit tests use 700-byte
    /// blocks), gives what parsing it line by line gives: the same records
    /// and keys in the same order, invalid lines skipped with their own
    /// numbers, and the unfinished last line left for later.
    #[test]
    fn reading_in_blocks_takes_what_reading_line_by_line_takes() {
        let mut generated = Vec::new();
        crate::generate::generate(&mut generated, 400, 17).unwrap();
        let mut lines: Vec<String> = String::from_utf8(generated)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let record = lines[1].clone();
        let long = record.replace("/srv/data", &format!("/srv/{}", "d".repeat(3000)));
        let keyed = format!(
            r#"{}, "_idempotency": {{"key": "k", "fingerprint": "f", "at": "2026-01-01T00:00:00Z"}}}}"#,
            record.trim_end_matches('}')
        );
        for (at, line) in [
            (3, String::new()),
            (10, "[1, 2, 3]".to_owned()),
            (11, long.clone()),
            (12, long),
            (40, keyed),
            (41, format!("{record}\r")),
            (42, format!("{record}   ")),
            (43, "{\"broken\": ".to_owned()),
        ] {
            lines.insert(at, line);
        }
        let mut text = lines.join("\n");
        text.push('\n');
        let unfinished = &record[..record.len() / 2];
        text.push_str(unfinished);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.jsonl");
        std::fs::write(&path, &text).unwrap();
        let file = File::open(&path).unwrap();
        let taken = read_in_parallel(&file, 0, text.len() as u64, 1).unwrap();
        assert_eq!(taken.lines, lines.len() as u64);
        assert_eq!(taken.end, (text.len() - unfinished.len()) as u64);
        let mut expected = Batch::default();
        let mut invalid = Vec::new();
        for (number, line) in lines.iter().enumerate() {
            match parse_keyed(line.as_bytes()) {
                Ok(Some(loaded)) => expected.push(loaded),
                Ok(None) => {}
                Err(_) => invalid.push(number as u64 + 1),
            }
        }
        let numbers: Vec<u64> = taken.invalid.iter().map(|(line, _)| *line).collect();
        assert_eq!(numbers, invalid);
        assert_eq!(invalid.len(), 2);
        assert_eq!(taken.batch.len(), expected.len());
        for position in 0..expected.len() as u32 {
            assert_eq!(
                taken.batch.records.record(position),
                expected.records.record(position),
                "{position}"
            );
        }
        assert_eq!(taken.batch.keys, expected.keys);
        assert_eq!(taken.batch.keys.len(), 1);
    }

    #[test]
    fn unusual_lines_fall_back_and_keep_their_meaning() {
        let lenient = br#"{"start_local": "2025-08-08 05:07:01", "end_local": "2025-08-08T05:29:06", "start_utc": 1754654821, "end_utc": "2025-08-08T12:29:06Z", "elapsed_seconds": "1325", "elapsed_human": "22m 5s", "output_file": "/o", "log_file": "/l", "rowcount": 8543.0, "pid": "7", "date_code": "d", "pipeline_name": null}"#;
        assert!(scan(lenient).is_none());
        let record = parse_line(lenient).unwrap().unwrap();
        assert_eq!(record.rowcount(), 8543);
        assert_eq!(record.pipeline_name(), None, "a present null stays null");
        let escaped = br#"{"start_local": "2025-08-08T05:07:01", "end_local": "2025-08-08T05:29:06", "start_utc": "2025-08-08T12:07:01Z", "end_utc": "2025-08-08T12:29:06Z", "elapsed_seconds": 1, "elapsed_human": "x", "output_file": "/data/caf\u00e9/out", "log_file": "/l", "rowcount": 1, "pid": 7, "date_code": "d"}"#;
        assert!(scan(escaped).is_none());
        let record = parse_line(escaped).unwrap().unwrap();
        assert_eq!(record.output_file(), "/data/café/out");
        assert_eq!(record.pipeline_name(), Some("unknown"));
        let nan = br#"{"start_local": "2025-08-08T05:07:01", "end_local": "2025-08-08T05:29:06", "start_utc": "2025-08-08T12:07:01Z", "end_utc": "2025-08-08T12:29:06Z", "elapsed_seconds": 1e999, "elapsed_human": "x", "output_file": "/o", "log_file": "/l", "rowcount": 1, "pid": 7, "date_code": "d"}"#;
        assert!(scan(nan).is_none());
        assert!(parse_line(nan).is_err());
    }
}
