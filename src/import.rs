//! `pipeline-service import FILE.jsonl`: loads a JSON Lines file into the
//! configured backend, with the same parsing and name inference as the JSON
//! Lines store. The migration path from a file that has grown too big.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::domain::PipelineInfo;
use crate::repository::jsonl::parse_line;
use crate::repository::{PipelineInfoRepository, RepositoryError};

/// Records sent to the backend at once.
pub const BATCH_RECORDS: usize = 1000;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub lines_read: u64,
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
    let mut report = ImportReport::default();
    let mut batch: Vec<PipelineInfo> = Vec::with_capacity(BATCH_RECORDS);
    let mut line = Vec::new();
    let mut reader = BufReader::new(file);
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(read_error)?;
        if read == 0 {
            break;
        }
        report.lines_read += 1;
        match parse_line(&line) {
            Ok(Some(record)) => batch.push(record),
            Ok(None) => {}
            Err(reason) => report.skipped.push((report.lines_read, reason)),
        }
        if batch.len() >= BATCH_RECORDS {
            store(repository, &mut batch, &mut report).await?;
            progress(&report);
        }
    }
    store(repository, &mut batch, &mut report).await?;
    progress(&report);
    Ok(report)
}

async fn store(
    repository: &dyn PipelineInfoRepository,
    batch: &mut Vec<PipelineInfo>,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let stored = repository
        .load(std::mem::take(batch))
        .await
        .map_err(|source| ImportError::Store {
            imported: report.imported,
            source,
        })?;
    report.imported += stored;
    Ok(())
}
