//! Retention on Oracle: count, optionally archive, then delete the runs
//! older than a cutoff in committed batches.

use std::io::Write;
use std::path::Path;

use super::rows::{record_from_row, timestamp};
use super::session::rolled_back_on_failure;
use super::{sql, OraclePipelineRepository};
use crate::domain::{FlexDateTime, FIELD_NAMES};
use crate::repository::{CompactReport, RepositoryError};

/// Rows deleted per committed batch, so undo stays small however many go.
const DELETE_BATCH: i64 = 10_000;

impl OraclePipelineRepository {
    /// Counts, optionally archives (as JSON Lines, synced) and deletes in
    /// committed batches the runs older than `cutoff`. Runs stored while it
    /// works are never touched: it deletes only up to the identity that was
    /// greatest when it counted.
    pub(super) fn compact_blocking(
        &self,
        cutoff: FlexDateTime,
        archive: Option<&Path>,
        dry_run: bool,
    ) -> Result<CompactReport, RepositoryError> {
        self.with_session("compact", false, |conn| {
            rolled_back_on_failure(conn, || {
                let cutoff_bind = timestamp(&cutoff, true)?;
                let row = conn.query_row_named(
                    &sql::count_older(&self.schema),
                    &[("cutoff", &cutoff_bind)],
                )?;
                let old: i64 = row.get(0)?;
                let total: i64 = row.get(1)?;
                let max_id: Option<i64> = row.get(2)?;
                let report = CompactReport {
                    kept: (total - old).max(0) as u64,
                    old: old.max(0) as u64,
                    archive: archive.map(Path::to_path_buf),
                    dry_run,
                    ..Default::default()
                };
                let Some(max_id) = max_id.filter(|_| !dry_run && old > 0) else {
                    return Ok(report);
                };
                if let Some(path) = archive {
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(RepositoryError::from)?;
                    let mut out = std::io::BufWriter::new(file);
                    let rows = conn.query_named(
                        &sql::select_older(&self.schema),
                        &[("cutoff", &cutoff_bind)],
                    )?;
                    for row in rows {
                        let row = row?;
                        let id: i64 = row.get(FIELD_NAMES.len())?;
                        if id > max_id {
                            continue;
                        }
                        serde_json::to_writer(&mut out, &record_from_row(&row)?)
                            .map_err(RepositoryError::from)?;
                        out.write_all(b"\n").map_err(RepositoryError::from)?;
                    }
                    out.into_inner()
                        .map_err(|e| RepositoryError::Io(e.into_error()))?
                        .sync_all()
                        .map_err(RepositoryError::from)?;
                }
                let delete = sql::delete_older_batch(&self.schema);
                loop {
                    let statement = conn.execute_named(
                        &delete,
                        &[
                            ("cutoff", &cutoff_bind),
                            ("max_id", &max_id),
                            ("batch", &DELETE_BATCH),
                        ],
                    )?;
                    let deleted = statement.row_count()?;
                    conn.commit()?;
                    if deleted == 0 {
                        break;
                    }
                }
                Ok(report)
            })
        })
    }
}
