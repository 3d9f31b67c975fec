//! Compaction of a JSON Lines store: drop (or archive) runs older than a
//! cutoff, and bad lines.
//!
//! The file is rewritten atomically while holding the writers' lock: kept
//! lines are copied byte for byte into a temporary file in the same folder,
//! which is synced and renamed over the original. A running service notices
//! the new file (another inode) and reloads it; its writer, which checks
//! after locking that it holds the file the path names, appends to the new
//! file. Nothing acknowledged is lost.
//!
//! The temporary file is created exclusively under a random name, so a
//! symlink planted in the folder is never followed, and it gets the old
//! file's owner and mode before any line is copied: a service running as
//! the file's owner must still be able to write to it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use tempfile::NamedTempFile;

use super::writer::open_locked;
use super::{folder_of, parse_line};
use crate::repository::CompactReport;

/// Compacts the JSON Lines file at `path`, dropping runs whose `start_utc`
/// is before `cutoff_micros` and every bad line; with `archive` they are
/// appended there (synced before the store is replaced) instead of lost.
pub(super) fn compact_file(
    path: &Path,
    cutoff_micros: i64,
    archive: Option<&Path>,
    dry_run: bool,
) -> std::io::Result<CompactReport> {
    if !path.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} does not exist", path.display()),
        ));
    }
    let locked = open_locked(path)?;
    let bytes_before = locked.metadata()?.len();
    let mut bytes_after = 0;
    let mut report = CompactReport {
        archive: archive.map(Path::to_path_buf),
        dry_run,
        ..CompactReport::default()
    };
    let folder = folder_of(path);
    let mut kept_out = match dry_run {
        true => None,
        false => Some(BufWriter::new(replacement_for(path, &locked)?)),
    };
    let mut archive_out = match (archive, dry_run) {
        (Some(archive), false) => Some(BufWriter::new(
            OpenOptions::new().create(true).append(true).open(archive)?,
        )),
        _ => None,
    };
    let result = (|| {
        let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            let keep = match parse_line(body) {
                Ok(None) => continue,
                Ok(Some(run)) if run.start_utc().instant_micros() >= cutoff_micros => true,
                Ok(Some(_)) => {
                    report.old += 1;
                    false
                }
                Err(_) => {
                    report.bad += 1;
                    false
                }
            };
            let out: Option<&mut dyn Write> = if keep {
                report.kept += 1;
                bytes_after += body.len() as u64 + 1;
                kept_out.as_mut().map(|out| out as &mut dyn Write)
            } else {
                archive_out.as_mut().map(|out| out as &mut dyn Write)
            };
            if let Some(out) = out {
                out.write_all(body)?;
                out.write_all(b"\n")?;
            }
        }
        if let Some(out) = archive_out.take() {
            out.into_inner()?.sync_all()?;
        }
        if let Some(out) = kept_out.take() {
            let replacement = out.into_inner()?;
            replacement.as_file().sync_all()?;
            replacement.persist(path).map_err(|e| e.error)?;
            File::open(folder)?.sync_all()?;
        }
        Ok(())
    })();
    // On failure the temporary file, dropped unrenamed, is removed.
    locked.unlock()?;
    report.bytes = Some((bytes_before, bytes_after));
    result.map(|()| report)
}

/// An empty file beside the store at `path` (open as `store`), to be
/// renamed over it: created with `O_EXCL` under a random name, with the
/// store's owner and mode. Refuses, before anything is written, when this
/// user cannot give it that owner.
fn replacement_for(path: &Path, store: &File) -> std::io::Result<NamedTempFile> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let replacement = tempfile::Builder::new()
        .prefix(&format!(".{name}.compact-"))
        .tempfile_in(folder_of(path))?;
    let meta = store.metadata()?;
    std::os::unix::fs::fchown(replacement.as_file(), Some(meta.uid()), Some(meta.gid())).map_err(
        |e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "the compacted file could not be given the store's owner (uid {}, gid {}): {e}; \
                     run compact as that user or as root",
                    meta.uid(),
                    meta.gid()
                ),
            )
        },
    )?;
    // After the owner: changing it may clear set-id bits.
    replacement
        .as_file()
        .set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    Ok(replacement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FlexDateTime;

    fn line(start: &str, code: &str) -> String {
        let mut record = crate::domain::record::tests::sample();
        record["start_utc"] = start.into();
        record["date_code"] = code.into();
        record.to_string()
    }

    #[test]
    fn old_runs_and_bad_lines_go_and_the_rest_stays_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.jsonl");
        let archive = dir.path().join("old.jsonl");
        let recent = line("2025-08-10T00:00:00Z", "new");
        let kept_python = r#"{"start_local": "2025-08-11T01:00:00", "end_local": "2025-08-11T01:01:00", "start_utc": "2025-08-11T06:00:00+00:00", "end_utc": "2025-08-11T06:01:00+00:00", "elapsed_seconds": 60.0, "elapsed_human": "1m", "output_file": "/o/x.csv", "log_file": "/l/x.log", "rowcount": 1, "pid": 2, "date_code": "py", "_idempotency": {"key": "k", "fingerprint": "f", "at": "2025-08-11T06:01:00Z"}}"#;
        let contents = format!(
            "{}\n{recent}\nnot json\n\n{kept_python}\n{}\n",
            line("2025-07-01T00:00:00Z", "old1"),
            line("2025-07-31T23:59:59Z", "old2"),
        );
        fs::write(&path, &contents).unwrap();
        let cutoff = FlexDateTime::parse("2025-08-01T00:00:00Z")
            .unwrap()
            .instant_micros();
        let dry = compact_file(&path, cutoff, Some(&archive), true).unwrap();
        assert_eq!((dry.kept, dry.old, dry.bad), (2, 2, 1));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            contents,
            "a dry run changes nothing"
        );
        assert!(!archive.exists());
        let done = compact_file(&path, cutoff, Some(&archive), false).unwrap();
        assert_eq!(
            done,
            CompactReport {
                dry_run: false,
                ..dry
            }
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{recent}\n{kept_python}\n")
        );
        let archived = fs::read_to_string(&archive).unwrap();
        assert_eq!(archived.lines().count(), 3);
        assert!(archived.contains("old1") && archived.contains("not json"));
        assert_eq!(done.bytes.unwrap().1, fs::metadata(&path).unwrap().len());
        assert!(done
            .to_string()
            .starts_with("kept 2 runs; removed 2 older runs and 1 bad lines"));
    }

    /// The temporary file's name used to be predictable; a symlink planted
    /// there made compaction overwrite the link's target and then put the
    /// link in place of the store.
    #[test]
    fn a_symlink_planted_at_a_predictable_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.jsonl");
        let contents = format!("{}\n", line("2025-08-10T00:00:00Z", "new"));
        fs::write(&path, &contents).unwrap();
        let victim = dir.path().join("victim.txt");
        fs::write(&victim, "precious").unwrap();
        let planted = dir
            .path()
            .join(format!(".runs.jsonl.compact-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let report = compact_file(&path, 0, None, false).unwrap();
        assert_eq!(report.kept, 1);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        let kind = fs::symlink_metadata(&path).unwrap().file_type();
        assert!(kind.is_file(), "the store is a regular file: {kind:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), contents);
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let expected = [
            planted.file_name().unwrap().to_str().unwrap(),
            "runs.jsonl",
            "victim.txt",
        ];
        assert_eq!(names, expected, "no temporary file is left behind");
    }

    /// A compaction command opens the store without reading it into
    /// memory; the store still reads it as soon as it is asked for runs.
    #[tokio::test]
    async fn a_store_opened_for_a_rewrite_reads_its_file_only_when_asked() {
        use crate::repository::jsonl::{JsonlOptions, JsonlRepository};
        use crate::repository::{PipelineInfoRepository, Position, RunFilter};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.jsonl");
        let contents = format!(
            "{}\n{}\n",
            line("2025-07-01T00:00:00Z", "old"),
            line("2025-08-10T00:00:00Z", "new")
        );
        fs::write(&path, contents).unwrap();
        let options = JsonlOptions {
            load_on_open: false,
            ..JsonlOptions::default()
        };
        let store = JsonlRepository::open_with(&path, options).await.unwrap();
        let held = || store.inner.index.read().len();
        assert_eq!(held(), 0, "nothing read when opened");
        let cutoff = FlexDateTime::parse("2025-08-01T00:00:00Z").unwrap();
        let report = store.compact(cutoff, None, false).await.unwrap();
        assert_eq!((report.kept, report.old), (1, 1));
        assert_eq!(held(), 0, "compaction reads the file, not into memory");
        let page = store
            .query(&RunFilter::default(), Position::Offset(0), 10, true)
            .await
            .unwrap();
        assert_eq!(page.total, Some(1));
        assert_eq!(page.records[0].date_code(), "new");
    }
}
