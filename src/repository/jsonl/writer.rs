//! Group commit: one thread owns appends. It takes the exclusive advisory
//! lock shared with other processes, then every insert waiting, and writes
//! them with one `write` made durable with one `fdatasync`. Only then are
//! the waiting inserts acknowledged, so a 201 always means "on disk" and
//! many concurrent inserts cost one sync, not one each.
//!
//! Under the lock the writer also settles what only the file can decide:
//! inserts whose callers gave up are dropped unwritten, keyed inserts are
//! checked again against the keys other processes appended, and a write or
//! sync that fails is cut off again, so the file never keeps part of a
//! batch its callers were told failed.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::keys::{Loaded, Reservation};
use super::{folder_of, Inner};
use crate::metrics::METRICS;
use crate::repository::insert::{self, InsertOutcome};
use crate::repository::RepositoryError;

/// Batches at least this large are adopted into the index without being
/// read back from the file.
const ADOPT_FROM: usize = 512;

/// Most records one commit takes, so a flood cannot starve acknowledgements.
const MAX_BATCH_RECORDS: usize = 8192;

/// Inserts that may wait for the writer. Beyond this an insert waits to be
/// queued, where its request timeout can still drop it, so inserts that
/// timed out while the file was locked never pile up.
pub const WRITER_QUEUE_REQUESTS: usize = 1024;

/// The lines of one insert request that were not stored, by position, and
/// why (a key another process stored meanwhile).
pub type Refused = Vec<(usize, InsertOutcome)>;

/// Complete lines (each ending in `\n`) to append, the records they hold
/// (in the same order), and who waits for them.
pub struct AppendRequest {
    pub payload: Vec<u8>,
    pub lines: Vec<Loaded>,
    /// A key refused under the lock stores none of `lines`.
    pub atomic: bool,
    /// The keys of `lines`, held in flight until this request is done with.
    pub reservation: Reservation,
    /// Filled under the lock: lines left out because their key was taken.
    pub refused: Refused,
    pub reply: oneshot::Sender<Result<Refused, Failure>>,
}

impl AppendRequest {
    fn is_keyed(&self) -> bool {
        self.lines.iter().any(|line| line.key.is_some())
    }

    /// Releases the keys (by then stored and visible, or not stored at
    /// all) and answers the caller.
    fn finish(self, result: Result<(), Failure>) {
        let AppendRequest {
            reservation,
            refused,
            reply,
            ..
        } = self;
        drop(reservation);
        let _ = reply.send(result.map(|()| refused));
    }
}

/// Why a commit failed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Nothing of the request is in the file.
    NotStored { cause: String, out_of_space: bool },
    /// Cutting a failed write back failed too: part of it may be stored.
    Unknown(String),
}

impl Failure {
    fn not_stored(stage: &str, error: &std::io::Error) -> Self {
        Failure::NotStored {
            cause: format!("{stage} failed: {error}"),
            out_of_space: is_out_of_space(error),
        }
    }
}

impl From<Failure> for RepositoryError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::NotStored {
                cause,
                out_of_space,
            } => RepositoryError::WriteFailed {
                cause,
                out_of_space,
            },
            Failure::Unknown(cause) => RepositoryError::Io(std::io::Error::other(cause)),
        }
    }
}

/// A full disk, an exhausted quota or a file size limit (`RLIMIT_FSIZE`).
fn is_out_of_space(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge
    )
}

/// What one durable append wrote.
pub struct Appended {
    /// The file's length before the write: where the payload starts.
    pub start: u64,
    /// A newline had to be written first to end a torn last line.
    pub torn: bool,
    pub payload: Vec<u8>,
}

/// Starts the writer thread; it ends when every sender is dropped.
pub fn spawn(inner: Arc<Inner>) -> std::io::Result<mpsc::Sender<AppendRequest>> {
    let (sender, receiver) = mpsc::channel(WRITER_QUEUE_REQUESTS);
    std::thread::Builder::new()
        .name("jsonl-writer".into())
        .spawn(move || run(&inner, receiver))?;
    Ok(sender)
}

fn run(inner: &Inner, mut receiver: mpsc::Receiver<AppendRequest>) {
    while let Some(first) = receiver.blocking_recv() {
        // Lock first, then gather: inserts that arrive while another
        // process holds the lock join this commit.
        let opened = open_for_append(&inner.path, inner.fsync);
        let mut batch = vec![first];
        let mut records = batch[0].lines.len();
        while records < MAX_BATCH_RECORDS {
            match receiver.try_recv() {
                Ok(next) => {
                    records += next.lines.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        match opened {
            Ok((file, created)) => commit(inner, &file, created, batch),
            Err(error) => {
                tracing::error!(path = %inner.path.display(), %error, "opening the data file failed");
                let failure = Failure::not_stored("opening the data file", &error);
                for request in batch {
                    request.finish(Err(failure.clone()));
                }
            }
        }
    }
}

/// Writes `batch` to `file`, which this thread holds locked; the lock is
/// released when the file is closed, after the commit.
fn commit(inner: &Inner, file: &File, created: bool, mut batch: Vec<AppendRequest>) {
    // A caller that gave up (its request timed out or its client left) was
    // told nothing was stored: make it true while that is still possible.
    batch.retain(|request| !request.reply.is_closed());
    if batch.is_empty() {
        return;
    }
    if batch.iter().any(AppendRequest::is_keyed) {
        batch = settle_keys(inner, batch);
    }
    let payload = join_payloads(&mut batch);
    if payload.is_empty() {
        for request in batch {
            request.finish(Ok(()));
        }
        return;
    }
    let records: usize = batch.iter().map(|r| r.lines.len()).sum();
    let new_in = created.then(|| folder_of(&inner.path));
    let result = append_durably(file, payload, inner.fsync, new_in);
    let result = match result {
        Ok(appended) => {
            inner
                .commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            METRICS.commit_batch_size.observe(records as f64);
            Ok(appended)
        }
        Err((start, failure)) => {
            // The file is back to what it was; the index must not keep
            // lines a query here may have read before the cut.
            if let Err(error) = inner.after_cut(start) {
                tracing::warn!(%error, "re-reading the data file after a failed write failed; the next query retries");
            }
            Err(failure)
        }
    };
    if let Ok(appended) = &result {
        // Make the new lines visible before anyone is told they are
        // stored: a large batch directly, when the file holds just what
        // we know plus it; otherwise by reading the file. (Small batches
        // are cheaper to re-read: records parsed here stay in this
        // thread's heap, while adopting many small ones made on request
        // threads contends on the allocator — measured with
        // bench/post.lua.)
        let lines: Vec<Loaded> = batch
            .iter_mut()
            .flat_map(|r| std::mem::take(&mut r.lines))
            .collect();
        let adopted = match lines.len() >= ADOPT_FROM {
            true => inner.adopt(appended, lines),
            false => Ok(false),
        };
        let visible = match adopted {
            Ok(true) => Ok(()),
            Ok(false) => inner.catch_up(),
            Err(error) => Err(error),
        };
        if let Err(error) = visible {
            tracing::warn!(%error, "stored records are not yet visible; the next query retries");
        }
    }
    let result = result.map(|_| ());
    for request in batch {
        request.finish(result.clone());
    }
}

/// Decides keyed inserts again from the file, under its lock: another
/// process may have stored one of their keys since they were planned. Reads
/// what others appended, then plans each keyed request with `insert::plan`
/// against the stored keys alone (its own keys are in flight — its own
/// reservation). Lines whose key is now taken leave the request, their
/// outcome recorded in its `refused`. Returns the requests still to write.
///
/// No two requests of one commit share a key: a key is reserved by one
/// request at a time in this process.
fn settle_keys(inner: &Inner, batch: Vec<AppendRequest>) -> Vec<AppendRequest> {
    if let Err(error) = inner.catch_up() {
        tracing::error!(%error, "reading the data file to check idempotency keys failed");
        // Without the file's keys no keyed insert can be decided; the rest
        // need no decision.
        let failure = Failure::NotStored {
            cause: format!("reading the file to check idempotency keys failed: {error}"),
            out_of_space: false,
        };
        let mut kept = Vec::with_capacity(batch.len());
        for request in batch {
            match request.is_keyed() {
                true => request.finish(Err(failure.clone())),
                false => kept.push(request),
            }
        }
        return kept;
    }
    let cutoff = insert::key_cutoff_micros(inner.key_retention);
    let index = inner.index.read();
    let table = inner.keys.lock();
    let mut batch = batch;
    for request in &mut batch {
        if !request.is_keyed() {
            continue;
        }
        // Looking keys up in memory cannot fail.
        let Ok(plan) =
            insert::plan::<std::convert::Infallible>(&request.lines, request.atomic, |key| {
                Ok(table.stored(key, cutoff, |position| index.record(position)))
            });
        if plan.to_store().count() == request.lines.len() {
            continue;
        }
        let keep: Vec<bool> = plan.outcomes.iter().map(Option::is_none).collect();
        request.refused = plan
            .outcomes
            .into_iter()
            .enumerate()
            .filter_map(|(line, outcome)| outcome.map(|outcome| (line, outcome)))
            .collect();
        request.payload = keep_lines(&request.payload, &keep);
        let mut wanted = keep.iter();
        request
            .lines
            .retain(|_| wanted.next().copied().unwrap_or(false));
    }
    batch
}

/// The lines of `payload` (one record per `\n`-terminated line) whose
/// `keep` is true.
fn keep_lines(payload: &[u8], keep: &[bool]) -> Vec<u8> {
    payload
        .split_inclusive(|&b| b == b'\n')
        .zip(keep)
        .filter(|(_, &keep)| keep)
        .flat_map(|(line, _)| line.iter().copied())
        .collect()
}

/// The payloads of `batch`, in order, as one buffer.
fn join_payloads(batch: &mut [AppendRequest]) -> Vec<u8> {
    match batch {
        [only] => std::mem::take(&mut only.payload),
        all => {
            let mut joined = Vec::with_capacity(all.iter().map(|r| r.payload.len()).sum());
            for request in all.iter() {
                joined.extend_from_slice(&request.payload);
            }
            joined
        }
    }
}

/// Opens `path` for appending and takes its exclusive lock, making sure the
/// locked file is still the one the path names: a compaction replaces the
/// file while holding the lock, and appending to the replaced one would
/// lose the lines.
pub(super) fn open_locked(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        file.lock()?;
        let locked = file.metadata()?;
        match fs::metadata(path) {
            Ok(now) if now.ino() == locked.ino() && now.dev() == locked.dev() => return Ok(file),
            // Replaced (or removed) while we waited: take the new file.
            _ => file.unlock()?,
        }
    }
}

/// Creates the data file's missing folders, then opens and locks it;
/// whether it had to be created (its folder entry then needs a sync).
fn open_for_append(path: &Path, sync: bool) -> std::io::Result<(File, bool)> {
    create_folders(folder_of(path), sync)?;
    let created = !path.exists();
    Ok((open_locked(path)?, created))
}

/// Creates `folder` and its missing parents, syncing each new one into its
/// parent when `sync` is set, so that a new store survives a crash with
/// its folders (`create_dir_all` syncs nothing).
fn create_folders(folder: &Path, sync: bool) -> std::io::Result<()> {
    let missing: Vec<&Path> = folder
        .ancestors()
        .take_while(|level| !level.as_os_str().is_empty() && !level.is_dir())
        .collect();
    for level in missing.into_iter().rev() {
        match fs::create_dir(level) {
            Ok(()) if sync => File::open(folder_of(level))?.sync_all()?,
            Ok(()) => {}
            // Another process made it meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && level.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends `payload` to the locked `file`, starting on a fresh line if the
/// file ends in the middle of one, then syncs when `fsync` is set (and the
/// folder `new_in` when the file was just created there). On failure the
/// file is cut back to its length before the write; the error says where
/// that was and whether the cut succeeded.
fn append_durably(
    file: &File,
    payload: Vec<u8>,
    fsync: bool,
    new_in: Option<&Path>,
) -> Result<Appended, (u64, Failure)> {
    let len = file
        .metadata()
        .map_err(|e| (0, Failure::not_stored("reading the file's length", &e)))?
        .len();
    let mut last = [0u8; 1];
    let torn_tail = match len {
        0 => false,
        _ => match file.read_exact_at(&mut last, len - 1) {
            Ok(()) => last[0] != b'\n',
            Err(e) => return Err((len, Failure::not_stored("reading the file's end", &e))),
        },
    };
    let written = write_and_sync(file, &payload, torn_tail, fsync, new_in);
    match written {
        Ok(()) => Ok(Appended {
            start: len,
            torn: torn_tail,
            payload,
        }),
        Err((stage, error)) => Err((len, cut_back(file, len, fsync, stage, &error))),
    }
}

/// The write and the syncs of one append; on failure, which one failed.
fn write_and_sync(
    mut file: &File,
    payload: &[u8],
    torn_tail: bool,
    fsync: bool,
    new_in: Option<&Path>,
) -> Result<(), (&'static str, std::io::Error)> {
    let write = |result: std::io::Result<()>| result.map_err(|e| ("write", e));
    if torn_tail {
        let mut fresh = Vec::with_capacity(payload.len() + 1);
        fresh.push(b'\n');
        fresh.extend_from_slice(payload);
        write(file.write_all(&fresh))?;
    } else {
        write(file.write_all(payload))?;
    }
    if fsync {
        let started = Instant::now();
        file.sync_data().map_err(|e| ("sync", e))?;
        if let Some(folder) = new_in {
            // A new file's directory entry must be durable too.
            File::open(folder)
                .and_then(|folder| folder.sync_all())
                .map_err(|e| ("folder sync", e))?;
        }
        METRICS
            .sync_duration
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// After a failed write or sync, cuts `file` back to `len`, its length
/// before the batch, while the lock is still held: nothing the callers are
/// told failed stays in the file. When even the cut fails, part of the
/// batch may remain, and the answer says so.
fn cut_back(file: &File, len: u64, fsync: bool, stage: &str, error: &std::io::Error) -> Failure {
    if let Err(cut) = file.set_len(len) {
        tracing::error!(%error, stage, %cut, len, "append failed and cutting the file back failed too; the file may hold part of the batch");
        return Failure::Unknown(format!(
            "{stage} failed: {error}; cutting the file back to {len} bytes failed too: {cut}"
        ));
    }
    tracing::error!(%error, stage, len, "append failed; the file was cut back, nothing of the batch is stored");
    if fsync {
        if let Err(sync) = file.sync_data() {
            // Every reader already sees the cut; the next sync that
            // succeeds makes it durable.
            tracing::warn!(%sync, "syncing the cut-back file failed");
        }
    }
    Failure::not_stored(stage, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one failure no test provokes from outside: the cut itself
    /// failing. A descriptor opened read-only makes `set_len` fail for real.
    #[test]
    fn a_cut_that_fails_leaves_the_outcome_unknown_and_one_that_works_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.jsonl");
        fs::write(&path, b"kept\npart of a failed bat").unwrap();
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let read_only = File::open(&path).unwrap();
        match cut_back(&read_only, 5, true, "write", &full) {
            Failure::Unknown(cause) => assert!(cause.contains("cutting"), "{cause}"),
            other => panic!("{other:?}"),
        }
        let error = RepositoryError::from(cut_back(&read_only, 5, true, "write", &full));
        assert!(matches!(error, RepositoryError::Io(_)), "answered 500");
        let writable = OpenOptions::new().append(true).open(&path).unwrap();
        match cut_back(&writable, 5, true, "sync", &full) {
            Failure::NotStored {
                cause,
                out_of_space: true,
            } => assert!(cause.starts_with("sync failed"), "{cause}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read(&path).unwrap(), b"kept\n");
    }

    #[test]
    fn out_of_space_is_a_full_disk_a_quota_or_a_size_limit() {
        for (code, full) in [
            (libc::ENOSPC, true),
            (libc::EDQUOT, true),
            (libc::EFBIG, true),
            (libc::EIO, false),
            (libc::EACCES, false),
        ] {
            let error = std::io::Error::from_raw_os_error(code);
            assert_eq!(is_out_of_space(&error), full, "{error}");
        }
    }

    #[test]
    fn lines_left_out_leave_the_payload_with_them() {
        let payload = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n";
        assert_eq!(
            keep_lines(payload, &[true, false, true]),
            b"{\"a\":1}\n{\"c\":3}\n"
        );
        assert!(keep_lines(payload, &[false, false, false]).is_empty());
    }
}
