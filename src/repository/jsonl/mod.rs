//! JSON Lines storage. The file is the source of truth: other processes may
//! append to it, replace it or truncate it, and the next query reflects that.
//! Records live in memory with their indexes; only new bytes are ever read.

mod compact;
mod index;
mod keys;
pub mod legacy;
mod load;
mod ordered;
mod parallel;
mod scan;
mod statistics;
mod store;
mod writer;

pub use self::writer::WRITER_QUEUE_REQUESTS;

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use tokio::sync::{mpsc, oneshot};

use self::index::RunIndex;
use self::keys::{Batch, KeyStamp, KeyTable, Loaded, Reservation};
use self::writer::{AppendRequest, Refused};
use super::insert::{self, InsertOutcome, NewRun, DEFAULT_KEY_RETENTION};
use super::{
    CompactReport, PipelineInfoRepository, Position, QueryPage, RepositoryError, RunFilter,
    RunStream,
};
use crate::domain::digest::GroupDigest;
use crate::domain::{FlexDateTime, PipelineActivity, PipelineInfo, PipelineSummary};
use crate::metrics::METRICS;

/// What identifies one state of the file: which file (device and inode),
/// how long, last modified when. Equal stamps mean nothing to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    device: u64,
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<Option<Self>> {
        match fs::metadata(path) {
            Ok(meta) => Ok(Some(Self {
                device: meta.dev(),
                inode: meta.ino(),
                len: meta.len(),
                modified: meta.modified().ok(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn same_file(&self, other: &Self) -> bool {
        self.device == other.device && self.inode == other.inode
    }
}

/// How far into the file we have read.
#[derive(Debug, Default)]
struct ReadCursor {
    stamp: Option<FileStamp>,
    /// Bytes taken into the index; what follows is unread or an unfinished line.
    consumed: u64,
    lines_read: u64,
    /// The last line taken had no newline yet (a complete record written
    /// without one); its newline, when it comes, is not a new line.
    owes_newline: bool,
    /// The last bytes taken, to notice a file rewritten in place (same
    /// inode, not shorter) instead of appended to.
    tail: Vec<u8>,
}

/// How many of the last consumed bytes are compared on each catch-up.
const TAIL_BYTES: usize = 64;

impl ReadCursor {
    /// Whether the bytes before `consumed` are still the ones we read.
    fn still_matches(&self, path: &Path) -> std::io::Result<bool> {
        use std::os::unix::fs::FileExt;
        if self.tail.is_empty() {
            return Ok(true);
        }
        let mut current = vec![0u8; self.tail.len()];
        let file = File::open(path)?;
        match file.read_exact_at(&mut current, self.consumed - self.tail.len() as u64) {
            Ok(()) => Ok(current == self.tail),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }
}

struct Inner {
    path: PathBuf,
    /// Sync before acknowledging (off only for throwaway setups).
    fsync: bool,
    /// The stamp the index reflects; read on every query, so kept apart from
    /// the cursor that a long reload holds.
    current: RwLock<Option<FileStamp>>,
    cursor: Mutex<ReadCursor>,
    index: RwLock<RunIndex>,
    /// Idempotency keys; always locked after `index` when both are needed,
    /// so positions in it match the index. Shared with the reservations
    /// that release keys in flight.
    keys: Arc<Mutex<KeyTable>>,
    /// How long a key protects against repeats.
    key_retention: std::time::Duration,
    /// Group commits written by this process (each one write and one sync).
    commits: std::sync::atomic::AtomicU64,
}

/// How a JSON Lines store behaves.
#[derive(Debug, Clone, Copy)]
pub struct JsonlOptions {
    /// Sync before acknowledging an insert.
    pub fsync: bool,
    /// How long an idempotency key protects against repeats.
    pub key_retention: std::time::Duration,
    /// Read the file when opening; otherwise on first use (for commands
    /// that only rewrite the file, which need none of it in memory).
    pub load_on_open: bool,
}

impl Default for JsonlOptions {
    fn default() -> Self {
        Self {
            fsync: true,
            key_retention: DEFAULT_KEY_RETENTION,
            load_on_open: true,
        }
    }
}

/// The embedded JSON Lines backend.
#[derive(Clone)]
pub struct JsonlRepository {
    inner: Arc<Inner>,
    /// The group-commit writer's bounded queue; dropping the last clone
    /// stops its thread.
    writer: mpsc::Sender<AppendRequest>,
}

impl JsonlRepository {
    /// Opens `path` (which need not exist yet) and loads what it holds;
    /// inserts are synced to disk before they are acknowledged.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, RepositoryError> {
        Self::open_with(path, JsonlOptions::default()).await
    }

    /// As `open`, with options.
    pub async fn open_with(
        path: impl Into<PathBuf>,
        options: JsonlOptions,
    ) -> Result<Self, RepositoryError> {
        let inner = Arc::new(Inner {
            path: path.into(),
            fsync: options.fsync,
            current: RwLock::new(None),
            cursor: Mutex::new(ReadCursor::default()),
            index: RwLock::new(RunIndex::default()),
            keys: Arc::default(),
            key_retention: options.key_retention,
            commits: std::sync::atomic::AtomicU64::new(0),
        });
        let repository = Self {
            writer: writer::spawn(inner.clone())?,
            inner,
        };
        if !options.load_on_open {
            return Ok(repository);
        }
        let inner = repository.inner.clone();
        run_blocking(move || inner.catch_up()).await?;
        let index = repository.inner.index.read();
        let bytes = index.bytes();
        let mib = |bytes: usize| bytes >> 20;
        tracing::info!(
            path = %repository.inner.path.display(),
            records = index.len(),
            record_columns_mib = mib(bytes.store.columns),
            strings_mib = mib(bytes.store.strings),
            orderings_mib = mib(bytes.orderings),
            statistics_mib = mib(bytes.statistics),
            "JSON Lines store loaded"
        );
        drop(index);
        Ok(repository)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Appends `lines` as one group-commit request and waits until they
    /// are durable and visible; the lines the writer left out because
    /// another process stored their key meanwhile, and why. Whatever
    /// happens to the request — even its caller giving up while it waits —
    /// `reservation` is released only once the request is done with.
    async fn append(
        &self,
        lines: Vec<Loaded>,
        atomic: bool,
        reservation: Reservation,
    ) -> Result<Refused, RepositoryError> {
        let payload = encode_lines(&lines)?;
        let records = lines.len();
        let (reply, stored) = oneshot::channel();
        let request = AppendRequest {
            payload,
            lines,
            atomic,
            reservation,
            refused: Vec::new(),
            reply,
        };
        let writer_gone = || RepositoryError::Task("the writer thread stopped".into());
        self.writer.send(request).await.map_err(|_| writer_gone())?;
        let refused = stored.await.map_err(|_| writer_gone())??;
        METRICS.inserts.inc_by((records - refused.len()) as u64);
        Ok(refused)
    }

    /// Decides each run's outcome and reserves the keys of those to store,
    /// in one step so two requests cannot both claim a key.
    fn plan_and_reserve(&self, runs: &[NewRun], atomic: bool) -> (insert::InsertPlan, Reservation) {
        let cutoff = insert::key_cutoff_micros(self.inner.key_retention);
        let index = self.inner.index.read();
        let mut table = self.inner.keys.lock();
        table.prune(cutoff);
        // Looking keys up in memory cannot fail.
        let Ok(plan) = insert::plan::<std::convert::Infallible>(runs, atomic, |key| {
            Ok(table.known(key, cutoff, |position| index.record(position)))
        });
        let keys = plan
            .to_store()
            .filter_map(|i| runs[i].key.as_ref().map(|k| k.key().to_owned()))
            .collect();
        let reservation = Reservation::take(&self.inner.keys, &mut table, keys);
        (plan, reservation)
    }

    /// Inserts waiting in the writer's queue (not yet taken into a commit).
    pub fn queued_requests(&self) -> usize {
        self.writer.max_capacity() - self.writer.capacity()
    }

    /// How many group commits this repository has written.
    pub fn commits(&self) -> u64 {
        self.inner
            .commits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Brings the index up to date with the file. Costs one `stat` when
    /// nothing changed; reading happens on the blocking pool.
    async fn sync(&self) -> Result<(), RepositoryError> {
        let stamp = FileStamp::of(&self.inner.path)?;
        if *self.inner.current.read() == stamp {
            return Ok(());
        }
        let inner = self.inner.clone();
        run_blocking(move || inner.catch_up()).await
    }
}

/// The folder `path` is in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RepositoryError> + Send + 'static,
) -> Result<T, RepositoryError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RepositoryError::Task(e.to_string()))?
}

impl Inner {
    /// Readable file (when it exists) and a folder we can create files in.
    fn check_ready(&self) -> Result<(), RepositoryError> {
        if self.path.exists() {
            File::open(&self.path)?;
        }
        // Inserts create missing folders; what matters is the nearest existing one.
        let folder = folder_of(&self.path)
            .ancestors()
            .find(|a| a.exists())
            .unwrap_or(Path::new("."));
        // An unnamed file (`O_TMPFILE`, or else a random name created with
        // `O_EXCL` and removed at once): no name another user could plant
        // a symlink at, and nothing left behind.
        tempfile::tempfile_in(folder)?;
        Ok(())
    }

    /// After a failed append was cut back to `start` under the lock: the
    /// file holds what it held before, so the index needs nothing — unless
    /// a query here read lines past `start` before the cut, or others
    /// appended before it; then the file is read as usual. (Left to
    /// `catch_up` alone, the new modification time of an unchanged length
    /// would make it read the whole file again, on every failed write.)
    fn after_cut(&self, start: u64) -> Result<(), RepositoryError> {
        let mut cursor = self.cursor.lock();
        let now = FileStamp::of(&self.path)?;
        match (cursor.stamp, now) {
            (Some(before), Some(now))
                if before.same_file(&now)
                    && before.len == now.len
                    && now.len == start
                    && cursor.consumed <= start =>
            {
                cursor.stamp = Some(now);
                *self.current.write() = Some(now);
                Ok(())
            }
            _ => {
                drop(cursor);
                self.catch_up()
            }
        }
    }

    /// Takes lines this process just appended straight into the index when
    /// the file holds exactly what was read plus them, saving a re-read and
    /// re-parse; `false` (nothing done) sends the caller to `catch_up`.
    fn adopt(
        &self,
        appended: &writer::Appended,
        lines: Vec<Loaded>,
    ) -> Result<bool, RepositoryError> {
        let mut cursor = self.cursor.lock();
        let Some(now) = FileStamp::of(&self.path)? else {
            return Ok(false);
        };
        let unchanged_before = match cursor.stamp {
            Some(before) => before.same_file(&now),
            // Nothing read yet: only a file we just created qualifies.
            None => cursor.consumed == 0 && appended.start == 0,
        };
        if !unchanged_before
            || appended.torn
            || cursor.owes_newline
            || cursor.consumed != appended.start
            || now.len != appended.start + appended.payload.len() as u64
            || !cursor.still_matches(&self.path)?
        {
            return Ok(false);
        }
        let mut index = self.index.write();
        self.extend_index(&mut index, lines.into_iter().collect());
        METRICS.records_in_memory.set(index.len() as i64);
        drop(index);
        cursor.lines_read += memchr::memchr_iter(b'\n', &appended.payload).count() as u64;
        remember_taken(&mut cursor, &appended.payload);
        cursor.stamp = Some(now);
        *self.current.write() = Some(now);
        Ok(true)
    }

    /// Appends `batch` (and its keys) to `index`, which the caller holds
    /// for writing so that key positions and records always agree.
    fn extend_index(&self, index: &mut RunIndex, mut batch: Batch) {
        let first = index.len();
        let keys = std::mem::take(&mut batch.keys);
        index.extend(batch.records);
        self.keys.lock().add_all(keys, first);
    }

    fn catch_up(&self) -> Result<(), RepositoryError> {
        let mut cursor = self.cursor.lock();
        let stamp = FileStamp::of(&self.path)?;
        if cursor.stamp == stamp {
            return Ok(());
        }
        let Some(now) = stamp else {
            if cursor.stamp.is_some() {
                tracing::warn!(path = %self.path.display(), "data file disappeared; serving no records");
            }
            let mut index = self.index.write();
            *index = RunIndex::default();
            self.keys.lock().clear_stored();
            drop(index);
            *cursor = ReadCursor::default();
            *self.current.write() = None;
            return Ok(());
        };
        let rewritten = match cursor.stamp {
            None => cursor.consumed > 0,
            Some(before) => {
                !before.same_file(&now)
                    || now.len < cursor.consumed
                    || (now.len == before.len && now.modified != before.modified)
                    || !cursor.still_matches(&self.path)?
            }
        };
        if rewritten {
            tracing::info!(path = %self.path.display(), "data file replaced or truncated; reading it again");
            METRICS.file_reloads.inc();
            *cursor = ReadCursor::default();
        }
        let started = std::time::Instant::now();
        let mut batch = read_new_lines(&self.path, &mut cursor)?;
        let parsed = started.elapsed();
        METRICS.records_loaded.inc_by(batch.len() as u64);
        let records = if rewritten || cursor.stamp.is_none() {
            // Built aside, so queries keep the old answer during a reload.
            let keys = std::mem::take(&mut batch.keys);
            let mut fresh = RunIndex::default();
            fresh.extend(batch.records);
            let records = fresh.len();
            let mut index = self.index.write();
            *index = fresh;
            let mut table = self.keys.lock();
            table.clear_stored();
            table.add_all(keys, 0);
            drop(table);
            drop(index);
            release_freed_memory();
            records
        } else {
            let mut index = self.index.write();
            self.extend_index(&mut index, batch);
            index.len()
        };
        METRICS.records_in_memory.set(records as i64);
        tracing::debug!(
            records,
            parse_ms = parsed.as_millis() as u64,
            index_ms = (started.elapsed() - parsed).as_millis() as u64,
            "data file read"
        );
        cursor.stamp = Some(now);
        *self.current.write() = Some(now);
        Ok(())
    }
}

/// Reads from the cursor to the end of the file and parses every complete
/// line: a large stretch on every core at once, the rest (and any small
/// catch-up) a bounded block at a time. A final line without a newline is
/// taken only when it is already a valid record; otherwise it is an
/// unfinished write and waits.
fn read_new_lines(path: &Path, cursor: &mut ReadCursor) -> Result<Batch, RepositoryError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Batch::default()),
        Err(e) => return Err(e.into()),
    };
    if cursor.owes_newline {
        // The last line was taken without its newline: when the newline
        // comes, it ends that line rather than making a blank one.
        let mut first = [0u8; 1];
        if load::read_at_most(&file, &mut first, cursor.consumed)? == 1 {
            if first[0] == b'\n' {
                remember_taken(cursor, &first);
            }
            cursor.owes_newline = false;
        }
    }
    let length = file.metadata()?.len();
    let mut records = Batch::default();
    if length.saturating_sub(cursor.consumed) >= load::PARALLEL_FROM {
        let taken = load::read_in_parallel(&file, cursor.consumed, length, cursor.lines_read + 1)?;
        load::warn_invalid(path, taken.invalid);
        cursor.lines_read += taken.lines;
        let mut tail = vec![0u8; (taken.end - cursor.consumed).min(TAIL_BYTES as u64) as usize];
        let tail_from = taken.end - tail.len() as u64;
        let read = load::read_at_most(&file, &mut tail, tail_from)?;
        tail.truncate(read);
        cursor.consumed = taken.end;
        cursor.tail = tail;
        records = taken.batch;
    }
    file.seek(SeekFrom::Start(cursor.consumed))?;
    // One buffer, read into directly: the bytes not yet taken (at most one
    // unfinished line) move to its front before the next read. Sized to
    // what there is to read, so a small catch-up stays small.
    let unread = length.saturating_sub(cursor.consumed);
    let mut buffer = vec![0u8; (unread as usize).clamp(4096, load::BLOCK_BYTES)];
    let mut filled = 0;
    loop {
        if filled == buffer.len() {
            // A single line longer than the buffer.
            buffer.resize(buffer.len() * 2, 0);
        }
        let read = read_block(&mut file, &mut buffer[filled..])?;
        if read == 0 {
            break;
        }
        filled += read;
        let pending = &buffer[..filled];
        let (taken, lines) =
            load::take_complete_lines(pending, cursor.lines_read + 1, path, &mut records);
        cursor.lines_read += lines;
        remember_taken(cursor, &pending[..taken]);
        buffer.copy_within(taken..filled, 0);
        filled -= taken;
    }
    let pending = &buffer[..filled];
    if !pending.is_empty() {
        if let Ok(Some(loaded)) = load::parse_keyed(pending) {
            records.push(loaded);
            cursor.lines_read += 1;
            cursor.owes_newline = true;
            remember_taken(cursor, pending);
        }
    }
    Ok(records)
}

/// The file lines of `lines`, keyed ones with their reserved member.
fn encode_lines(lines: &[Loaded]) -> Result<Vec<u8>, RepositoryError> {
    let mut payload = Vec::with_capacity(lines.len() * 600);
    for line in lines {
        line.record.write_json(&mut payload);
        if let Some(stamp) = &line.key {
            // The record is a JSON object: reopen it for one more member.
            payload.pop();
            payload.extend_from_slice(b",\"");
            payload.extend_from_slice(keys::RESERVED_FIELD.as_bytes());
            payload.extend_from_slice(b"\":");
            serde_json::to_writer(&mut payload, &stamp.to_value())?;
            payload.push(b'}');
        }
        payload.push(b'\n');
    }
    Ok(payload)
}

/// A full load frees a great deal (parse buffers, per-thread temporaries);
/// hand it back to the operating system instead of keeping it resident.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it
    // touches no memory the program still uses.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Fills `block` as far as the file allows; 0 at the end of the file.
fn read_block(file: &mut File, block: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < block.len() {
        match file.read(&mut block[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Advances the cursor over `taken` and keeps its last bytes.
fn remember_taken(cursor: &mut ReadCursor, taken: &[u8]) {
    cursor.consumed += taken.len() as u64;
    let mut tail = std::mem::take(&mut cursor.tail);
    tail.extend_from_slice(&taken[taken.len().saturating_sub(TAIL_BYTES)..]);
    let keep = tail.len().min(TAIL_BYTES);
    cursor.tail = tail.split_off(tail.len() - keep);
}

/// One line of a JSON Lines file, read as the store reads it (the fast
/// path, else the validating parser): `Ok(None)` when blank, the reason
/// when invalid.
pub fn parse_line(line: &[u8]) -> Result<Option<PipelineInfo>, String> {
    load::parse_keyed(line).map(|loaded| loaded.map(|l| l.record))
}

/// The validating parser of one line, keeping its idempotency key; it also
/// explains why a line is invalid.
fn parse_line_keyed(line: &[u8]) -> Result<Option<Loaded>, String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let mut value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(fields) = &mut value else {
        return Err(format!(
            "expected a JSON object, found {}",
            json_kind(&value)
        ));
    };
    let key = KeyStamp::take_from(fields);
    legacy::fill_missing_pipeline_name(fields);
    PipelineInfo::parse_stored(&value)
        .map(|record| Some(Loaded { record, key }))
        .map_err(|e| e.to_string())
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[async_trait]
impl PipelineInfoRepository for JsonlRepository {
    fn backend_name(&self) -> &'static str {
        "jsonl"
    }

    async fn query(
        &self,
        filter: &RunFilter,
        position: Position,
        limit: usize,
        counting: bool,
    ) -> Result<QueryPage, RepositoryError> {
        self.sync().await?;
        Ok(self
            .inner
            .index
            .read()
            .query(filter, position, limit, counting))
    }

    async fn archived_files(
        &self,
        date_code: &str,
        limit: usize,
    ) -> Result<Option<Vec<String>>, RepositoryError> {
        self.sync().await?;
        Ok(self.inner.index.read().archived_files(date_code, limit))
    }

    async fn summaries(&self) -> Result<Arc<[PipelineSummary]>, RepositoryError> {
        self.sync().await?;
        Ok(self.inner.index.read().summaries())
    }

    async fn activity(&self) -> Result<Vec<PipelineActivity>, RepositoryError> {
        self.sync().await?;
        Ok(self.inner.index.read().activity())
    }

    async fn insert(
        &self,
        runs: Vec<NewRun>,
        atomic: bool,
    ) -> Result<Vec<InsertOutcome>, RepositoryError> {
        if runs.iter().any(|run| run.key.is_some()) {
            // Keys written by other processes are known here as far as the
            // file has been read; the writer checks again under the file
            // lock. Runs without keys have nothing to look up.
            self.sync().await?;
        }
        let (plan, reservation) = self.plan_and_reserve(&runs, atomic);
        let stored: Vec<usize> = plan.to_store().collect();
        let now = chrono::Utc::now().timestamp_micros();
        let lines: Vec<Loaded> = stored
            .iter()
            .map(|&i| Loaded {
                record: runs[i].record.clone(),
                key: runs[i].key.clone().map(|key| KeyStamp {
                    key,
                    at_micros: now,
                }),
            })
            .collect();
        if lines.is_empty() {
            return Ok(plan.finish(runs));
        }
        let refused = self.append(lines, atomic, reservation).await?;
        let mut plan = plan;
        for (line, outcome) in refused {
            plan.outcomes[stored[line]] = Some(outcome);
        }
        Ok(plan.finish(runs))
    }

    async fn ready(&self) -> Result<(), RepositoryError> {
        let inner = self.inner.clone();
        run_blocking(move || inner.check_ready()).await
    }

    async fn compact(
        &self,
        cutoff: FlexDateTime,
        archive: Option<&Path>,
        dry_run: bool,
    ) -> Result<CompactReport, RepositoryError> {
        let path = self.inner.path.clone();
        let archive = archive.map(Path::to_path_buf);
        run_blocking(move || {
            compact::compact_file(&path, cutoff.instant_micros(), archive.as_deref(), dry_run)
                .map_err(|e| {
                    let located = std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
                    RepositoryError::Io(located)
                })
        })
        .await
    }

    /// The matches' positions are taken at once; their records are built
    /// a chunk at a time as the answer is written. Records are never
    /// moved or changed in an index, so the positions stay valid — unless
    /// the file is read again meanwhile, which ends the stream in an error.
    async fn query_all(&self, filter: &RunFilter) -> Result<RunStream, RepositoryError> {
        self.sync().await?;
        let index = self.inner.index.read();
        let positions = index.positions(filter);
        let generation = index.generation();
        drop(index);
        let inner = self.inner.clone();
        let total = positions.len() as u64;
        let chunks = (0..positions.len()).step_by(STREAM_CHUNK).map(move |from| {
            let index = inner.index.read();
            if index.generation() != generation {
                return Err(RepositoryError::Unavailable(
                    "the data file was read again while the answer was being written".into(),
                ));
            }
            let to = (from + STREAM_CHUNK).min(positions.len());
            Ok(index.records_passing_through(&positions[from..to]))
        });
        Ok(RunStream::new(total, chunks))
    }

    /// Whole groups (text filters only) are answered from the per-group
    /// order statistics kept up to date as runs arrive; other filters from
    /// the matching runs' columns, without building records.
    async fn stats(
        &self,
        filter: &RunFilter,
        latest: usize,
    ) -> Result<Vec<GroupDigest>, RepositoryError> {
        self.sync().await?;
        let inner = self.inner.clone();
        let filter = filter.clone();
        run_blocking(move || {
            let inputs = inner.index.read().stats(&filter, latest);
            Ok(inputs.digests(latest))
        })
        .await
    }
}

/// Records built per step of a streamed answer.
const STREAM_CHUNK: usize = 1024;
