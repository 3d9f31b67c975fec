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

use super::keys::Loaded;
use super::Inner;
use crate::metrics::METRICS;

/// Batches at least this large are adopted into the index without being
/// read back from the file.
const ADOPT_FROM: usize = 512;

/// Most records one commit takes, so a flood cannot starve acknowledgements.
const MAX_BATCH_RECORDS: usize = 8192;

/// Complete lines (each ending in `\n`) to append, the records they hold
/// (in the same order), and who waits for them.
pub struct AppendRequest {
    pub payload: Vec<u8>,
    pub lines: Vec<Loaded>,
    pub reply: oneshot::Sender<Result<(), String>>,
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
        let lines: Vec<Loaded> = batch
            .iter_mut()
            .flat_map(|r| std::mem::take(&mut r.lines))
            .collect();
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
        let result = append_durably(&inner.path, payload, inner.fsync).map_err(|e| {
            tracing::error!(path = %inner.path.display(), error = %e, "append failed");
            e.to_string()
        });
        if let Ok(appended) = &result {
            inner
                .commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            METRICS.commit_batch_size.observe(records as f64);
            // Make the new lines visible before anyone is told they are
            // stored: a large batch directly, when the file holds just what
            // we know plus it; otherwise by reading the file. (Small batches
            // are cheaper to re-read: records parsed here stay in this
            // thread's heap, while adopting many small ones made on request
            // threads contends on the allocator — measured with
            // bench/post.lua.)
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
            let _ = request.reply.send(result.clone());
        }
    }
}

/// Opens `path` for appending and takes its exclusive lock, making sure the
/// locked file is still the one the path names: a compaction replaces the
/// file while holding the lock, and appending to the replaced one would
/// lose the lines.
pub fn open_locked(path: &Path) -> std::io::Result<File> {
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

/// Appends `payload` under an exclusive `flock`, starting on a fresh line if
/// the file ends in the middle of one, then syncs when `fsync` is set.
pub fn append_durably(path: &Path, payload: Vec<u8>, fsync: bool) -> std::io::Result<Appended> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        fs::create_dir_all(parent)?;
    }
    let created = !path.exists();
    let mut file = open_locked(path)?;
    let len = file.metadata()?.len();
    let mut last = [0u8; 1];
    let torn_tail = len > 0 && {
        file.read_exact_at(&mut last, len - 1)?;
        last[0] != b'\n'
    };
    if torn_tail {
        let mut fresh = Vec::with_capacity(payload.len() + 1);
        fresh.push(b'\n');
        fresh.extend_from_slice(&payload);
        file.write_all(&fresh)?;
    } else {
        file.write_all(&payload)?;
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
    file.unlock()?;
    Ok(Appended {
        start: len,
        torn: torn_tail,
        payload,
    })
}
