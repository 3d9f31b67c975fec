//! `pipeline-service import FILE.jsonl`: loads a JSON Lines file into the
//! configured backend, with the same parsing and name inference as the JSON
//! Lines store. The migration path from a file that has grown too big.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::domain::PipelineInfo;
use crate::repository::jsonl::parse_line;
use crate::repository::{PipelineInfoRepository, RepositoryError};

/// Records sent to the backend at once (one transaction on a database):
/// large enough that what each store does once per batch — a commit, a
/// sync, the per-group upserts on PostgreSQL — is spread over many runs.
pub const BATCH_RECORDS: usize = 20_000;

/// Batches read ahead while the backend stores one: the file is parsed on
/// another thread meanwhile, so reading and storing overlap.
const BATCHES_AHEAD: usize = 2;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub lines_read: u64,
    /// Bytes of the file read so far, for the progress bar.
    pub bytes_read: u64,
    pub imported: u64,
    /// Line numbers (1-based) skipped as invalid, with the reason.
    pub skipped: Vec<(u64, String)>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {} lines, imported {} records, skipped {} lines",
            self.lines_read,
            self.imported,
            self.skipped.len()
        )?;
        if !self.skipped.is_empty() {
            let shown: Vec<String> = self
                .skipped
                .iter()
                .take(20)
                .map(|(n, _)| n.to_string())
                .collect();
            let more = if self.skipped.len() > 20 { ", …" } else { "" };
            write!(f, " (lines {}{more})", shown.join(", "))?;
        }
        Ok(())
    }
}

/// Why a file cannot be imported, found before anything is opened.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0} does not exist")]
    Missing(String),
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not a file")]
    NotAFile(String),
    #[error("{0} is the store itself")]
    IsTheStore(String),
}

/// Checks `file` before the store is opened (which would create it): it
/// must exist, be a file, and not be the JSON Lines store `store`, which
/// it would be read into while it grows. Returns its length in bytes.
pub fn check_input(file: &Path, store: Option<&Path>) -> Result<u64, InputError> {
    let shown = || file.display().to_string();
    let input = std::fs::metadata(file).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => InputError::Missing(shown()),
        _ => InputError::Unreadable {
            path: shown(),
            source,
        },
    })?;
    if !input.is_file() {
        return Err(InputError::NotAFile(shown()));
    }
    // Compared as files, not names: a store not created yet is another
    // file, and a link to the store is the store.
    let is_store = store
        .and_then(|store| std::fs::metadata(store).ok())
        .is_some_and(|store| (store.dev(), store.ino()) == (input.dev(), input.ino()));
    if is_store {
        return Err(InputError::IsTheStore(shown()));
    }
    Ok(input.len())
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("storing failed after {imported} records: {source}")]
    Store {
        imported: u64,
        source: RepositoryError,
    },
}

/// One batch as the reading thread hands it over, with what reading it
/// found.
struct ReadBatch {
    records: Vec<PipelineInfo>,
    lines_read: u64,
    bytes_read: u64,
    skipped: Vec<(u64, String)>,
}

/// Imports `path` into `repository`; `progress` is told the lines read so far.
pub async fn import_file(
    repository: &dyn PipelineInfoRepository,
    path: &Path,
    mut progress: impl FnMut(&ImportReport),
) -> Result<ImportReport, ImportError> {
    let read_error = |source| ImportError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let (batches, mut ready) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
    let reader = tokio::task::spawn_blocking(move || read_batches(file, batches));
    let mut report = ImportReport::default();
    while let Some(batch) = ready.recv().await {
        let ReadBatch {
            records,
            lines_read,
            bytes_read,
            skipped,
        } = batch.map_err(read_error)?;
        report.lines_read += lines_read;
        report.bytes_read += bytes_read;
        report.skipped.extend(skipped);
        store(repository, records, &mut report).await?;
        progress(&report);
    }
    // Every batch arrived, so the thread has ended; it cannot panic.
    let _ = reader.await;
    Ok(report)
}

/// Reads and parses `file` into batches of `BATCH_RECORDS` runs, sent to
/// `batches` (a read error is sent instead, and ends the reading). Stops
/// when the receiver is gone.
fn read_batches(file: File, batches: tokio::sync::mpsc::Sender<Result<ReadBatch, std::io::Error>>) {
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut line_number = 0u64;
    let fresh = || ReadBatch {
        records: Vec::with_capacity(BATCH_RECORDS),
        lines_read: 0,
        bytes_read: 0,
        skipped: Vec::new(),
    };
    let mut batch = fresh();
    loop {
        line.clear();
        let read = match reader.read_until(b'\n', &mut line) {
            Ok(read) => read,
            Err(error) => {
                let _ = batches.blocking_send(Err(error));
                return;
            }
        };
        if read == 0 {
            break;
        }
        line_number += 1;
        batch.lines_read += 1;
        batch.bytes_read += read as u64;
        match parse_line(&line) {
            Ok(Some(record)) => batch.records.push(record),
            Ok(None) => {}
            Err(reason) => batch.skipped.push((line_number, reason)),
        }
        if batch.records.len() >= BATCH_RECORDS
            && batches
                .blocking_send(Ok(std::mem::replace(&mut batch, fresh())))
                .is_err()
        {
            return;
        }
    }
    let _ = batches.blocking_send(Ok(batch));
}

async fn store(
    repository: &dyn PipelineInfoRepository,
    batch: Vec<PipelineInfo>,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let stored = repository
        .load(batch)
        .await
        .map_err(|source| ImportError::Store {
            imported: report.imported,
            source,
        })?;
    report.imported += stored;
    Ok(())
}

/// How the progress bar looks: the share of the file read, the time
/// left, and what became of the lines so far with the rate. It fits a
/// terminal of 80 columns, the bar taking what the rest leaves.
const PROGRESS_TEMPLATE: &str = "{wide_bar} {percent:>3}% {eta:>4} left  {msg}";

/// A progress bar on standard error for importing `total_bytes`; it draws
/// only when standard error is a terminal.
pub fn progress_bar(total_bytes: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(PROGRESS_TEMPLATE) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Shows `report` on `bar`, with the records imported per second.
pub fn show_progress(bar: &ProgressBar, report: &ImportReport) {
    let seconds = bar.elapsed().max(Duration::from_millis(1)).as_secs_f64();
    bar.set_message(format!(
        "{} records ({:.0}/s), {} skipped",
        report.imported,
        report.imported as f64 / seconds,
        report.skipped.len()
    ));
    bar.set_position(report.bytes_read);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_template_parses() {
        assert!(ProgressStyle::with_template(PROGRESS_TEMPLATE).is_ok());
    }

    #[test]
    fn an_input_must_exist_be_a_file_and_not_be_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.jsonl");
        let not_yet_created = dir.path().join("store.jsonl");
        assert!(matches!(
            check_input(&missing, Some(&not_yet_created)),
            Err(InputError::Missing(_))
        ));
        assert!(matches!(
            check_input(dir.path(), None),
            Err(InputError::NotAFile(_))
        ));
        let input = dir.path().join("input.jsonl");
        std::fs::write(&input, "{}\n").unwrap();
        assert_eq!(check_input(&input, Some(&not_yet_created)).unwrap(), 3);
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        assert!(matches!(
            check_input(&link, Some(&input)),
            Err(InputError::IsTheStore(_))
        ));
    }
}
