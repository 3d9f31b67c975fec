//! What a compaction reports, the same on every backend.

use std::path::PathBuf;

/// What a compaction did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub kept: u64,
    /// Valid runs older than the cutoff.
    pub old: u64,
    /// Lines that are not valid runs (blank lines are not counted).
    pub bad: u64,
    /// File size before and after (JSON Lines only).
    pub bytes: Option<(u64, u64)>,
    pub archive: Option<PathBuf>,
    pub dry_run: bool,
}

impl std::fmt::Display for CompactReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        write!(
            f,
            "kept {} runs; {verb} {} older runs and {} bad lines",
            self.kept, self.old, self.bad
        )?;
        if let Some(archive) = &self.archive {
            let verb = if self.dry_run { "would be" } else { "were" };
            write!(f, " (they {verb} appended to {})", archive.display())?;
        }
        if let Some((before, after)) = self.bytes {
            write!(f, "; {before} → {after} bytes")?;
        }
        Ok(())
    }
}
