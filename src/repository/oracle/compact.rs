//! Retention on Oracle: count, optionally archive, then delete the runs
//! older than a cutoff in committed batches. With an archive, exactly the
//! archived runs are deleted (by identity): a run with a lower identity
//! whose insert committed after the archive was read is neither archived
//! nor deleted.

use std::io::Write;
use std::path::Path;

use oracle::sql_type::OracleType;
use oracle::Connection;

use super::rows::{bind_values, named, record_from_row};
use super::session::{rolled_back_on_failure, Failure};
use super::sql::Layout;
use super::{sql, OraclePipelineRepository};
use crate::domain::FlexDateTime;
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
        let layout = self.layout_blocking()?;
        self.with_session("compact", false, |conn| {
            rolled_back_on_failure(conn, || {
                // Compared with the start's column, so bound as it holds instants.
                let cutoff_param = layout.time_column("start_utc").instant(cutoff);
                let cutoff_bind = bind_values(&[("cutoff".to_owned(), cutoff_param)])?;
                let row = conn.query_row_named(&sql::count_older(&layout), &named(&cutoff_bind))?;
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
                    let archived = archive_older(conn, &layout, &cutoff_bind, max_id, path)?;
                    delete_archived(conn, &layout, &archived)?;
                    return Ok(report);
                }
                let (cutoff_bind, batch) = (&cutoff_bind[0].1, &DELETE_BATCH);
                let delete = sql::delete_older_batch(&layout);
                loop {
                    let statement = conn.execute_named(
                        &delete,
                        &[
                            ("cutoff", cutoff_bind),
                            ("max_id", &max_id),
                            ("batch", batch),
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

/// Appends the runs older than the cutoff (up to `max_id`) to the
/// archive as JSON Lines, synced; returns their identities.
fn archive_older(
    conn: &Connection,
    layout: &Layout,
    cutoff_bind: &[(String, super::rows::Typed)],
    max_id: i64,
    path: &Path,
) -> Result<Vec<i64>, Failure> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(RepositoryError::from)?;
    let mut out = std::io::BufWriter::new(file);
    let mut binds = named(cutoff_bind);
    binds.push(("max_id", &max_id));
    let mut archived = Vec::new();
    for row in conn.query_named(&sql::select_older(layout), &binds)? {
        let row = row?;
        archived.push(row.get::<usize, i64>(layout.select_width())?);
        serde_json::to_writer(&mut out, &record_from_row(&row, layout)?)
            .map_err(RepositoryError::from)?;
        out.write_all(b"\n").map_err(RepositoryError::from)?;
    }
    out.into_inner()
        .map_err(|e| RepositoryError::Io(e.into_error()))?
        .sync_all()
        .map_err(RepositoryError::from)?;
    Ok(archived)
}

/// Deletes the runs with identities `ids`, committed in batches.
fn delete_archived(conn: &Connection, layout: &Layout, ids: &[i64]) -> Result<(), Failure> {
    let batch_rows = DELETE_BATCH as usize;
    for chunk in ids.chunks(batch_rows) {
        let mut batch = conn
            .batch(&sql::delete_by_id(layout), chunk.len())
            .build()?;
        batch.set_type("id", &OracleType::Int64)?;
        for id in chunk {
            batch.append_row_named(&[("id", id)])?;
        }
        batch.execute()?;
        conn.commit()?;
    }
    Ok(())
}
