//! The records of a JSON Lines file, by column: fixed-size values in flat
//! vectors indexed by the record's position in the file, the free text of
//! every record back to back in large segments, classification values and
//! time zones interned. A record costs about 220 bytes here against over
//! 380 as its own `PipelineInfo` allocation (with a second one for its
//! text); queries read only the columns they test, and pages build
//! `PipelineInfo` values just for the records they return.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::parallel;
use crate::domain::record::RecordParts;
use crate::domain::{FlexDateTime, PipelineInfo};

/// Maps keyed by classification strings are hashed on every record at
/// load; foldhash is several times faster than the default SipHash and,
/// seeded per process, still resists crafted collisions.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// A datetime as the store keeps it: its instant (microseconds since the
/// epoch, a naive value read as UTC) and its zone (the offset in seconds;
/// `None` for a naive value). The wall clock is the instant moved by the
/// offset, so nothing of the written value is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    pub instant: i64,
    pub zone: Option<i32>,
}

impl From<FlexDateTime> for Moment {
    fn from(value: FlexDateTime) -> Self {
        Self {
            instant: value.instant_micros(),
            zone: value.offset_seconds(),
        }
    }
}

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i64 = 719_163;

impl Moment {
    pub fn to_datetime(self) -> FlexDateTime {
        self.to_datetime_near(&mut None)
    }

    /// As `to_datetime`, reusing the date of the last call with the same
    /// `day` (a record's four times mostly fall on one or two days, and
    /// finding a date from a day number is the costly part).
    fn to_datetime_near(self, day: &mut Option<(i64, chrono::NaiveDate)>) -> FlexDateTime {
        let wall = self.instant + i64::from(self.zone.unwrap_or(0)) * 1_000_000;
        let days = wall.div_euclid(DAY_MICROS);
        let date = match *day {
            Some((known, date)) if known == days => date,
            _ => {
                let date = i32::try_from(days + EPOCH_DAYS_FROM_CE)
                    .ok()
                    .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
                    .unwrap_or_default();
                *day = Some((days, date));
                date
            }
        };
        let of_day = wall.rem_euclid(DAY_MICROS);
        let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
            (of_day / 1_000_000) as u32,
            (of_day % 1_000_000) as u32 * 1000,
        )
        .unwrap_or_default();
        let naive = date.and_time(time);
        match self.zone {
            Some(offset) => {
                FlexDateTime::aware(naive, offset).unwrap_or(FlexDateTime::naive(naive))
            }
            None => FlexDateTime::naive(naive),
        }
    }
}

/// A record's values as the store takes them, borrowed from a parsed line
/// or from a record.
#[derive(Debug, Clone, Copy)]
pub struct RunFields<'a> {
    /// start_local, end_local, start_utc, end_utc.
    pub times: [Moment; 4],
    pub elapsed_seconds: f64,
    pub rowcount: i64,
    pub pid: i64,
    /// elapsed_human, output_file, log_file, date_code.
    pub texts: [&'a str; 4],
    pub archived_file: Option<&'a str>,
    /// pipeline_name, script_name, pipeline_type, environment.
    pub classes: [Option<&'a str>; 4],
}

impl<'a> From<&'a PipelineInfo> for RunFields<'a> {
    fn from(record: &'a PipelineInfo) -> Self {
        Self {
            times: [
                record.start_local(),
                record.end_local(),
                record.start_utc(),
                record.end_utc(),
            ]
            .map(Moment::from),
            elapsed_seconds: record.elapsed_seconds(),
            rowcount: record.rowcount(),
            pid: record.pid(),
            texts: [
                record.elapsed_human(),
                record.output_file(),
                record.log_file(),
                record.date_code(),
            ],
            archived_file: record.archived_file(),
            classes: [
                record.pipeline_name(),
                record.script_name(),
                record.pipeline_type(),
                record.environment(),
            ],
        }
    }
}

impl RunFields<'_> {
    /// The record these values make; `None` when they break a rule the
    /// types do not carry (see `PipelineInfo::from_parts`).
    pub fn to_record(self) -> Option<PipelineInfo> {
        let [start_local, end_local, start_utc, end_utc] = self.times.map(Moment::to_datetime);
        PipelineInfo::from_parts(RecordParts {
            start_local,
            end_local,
            start_utc,
            end_utc,
            elapsed_seconds: self.elapsed_seconds,
            elapsed_human: self.texts[0],
            output_file: self.texts[1],
            log_file: self.texts[2],
            rowcount: self.rowcount,
            pid: self.pid,
            date_code: self.texts[3],
            classes: self.classes.map(|value| value.map(Arc::from)),
            archived_file: self.archived_file,
        })
    }
}

/// The columns ordered lists and filters read, by position.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    /// `start_utc` instants (microseconds, naive values as UTC).
    pub starts: &'a [i64],
    /// `end_utc` instants.
    pub ends: &'a [i64],
    pub rowcounts: &'a [i64],
    pub durations: &'a [f64],
    /// Each record's group (see `RunStore::group`).
    pub groups: &'a [u32],
}

/// What the parts of the store occupy, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoreBytes {
    /// The fixed-size columns.
    pub columns: usize,
    /// The records' free text, and the interned classification values.
    pub strings: usize,
}

/// Largest text segment the store fills; a load keeps the segments its
/// parsing threads filled. (Small in unit tests, so that appends both
/// take segments over and copy them.)
#[cfg(not(test))]
const SEGMENT_BYTES: usize = 4 << 20;
#[cfg(test)]
const SEGMENT_BYTES: usize = 16 << 10;

/// Every record's free text, back to back: per record the lengths of
/// elapsed_human, output_file, log_file and date_code, then the archived
/// file's length plus one (0 for none), as LEB128 numbers, then the text.
/// A record never spans two segments.
#[derive(Debug, Default)]
struct TextArena {
    segments: Vec<Vec<u8>>,
    /// Where each segment starts in the arena.
    starts: Vec<u64>,
    len: u64,
}

impl TextArena {
    /// The segment to write `size` more bytes into, started anew (sized
    /// to the arena, so a small store stays small) when the last is full.
    fn room(&mut self, size: usize) -> &mut Vec<u8> {
        let fits = self
            .segments
            .last()
            .is_some_and(|s| s.capacity() - s.len() >= size);
        if !fits {
            if let Some(full) = self.segments.last_mut() {
                full.shrink_to_fit();
            }
            let capacity = size.max((self.len as usize).clamp(4096, SEGMENT_BYTES));
            self.starts.push(self.len);
            self.segments.push(Vec::with_capacity(capacity));
        }
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    fn push(&mut self, texts: &[&str; 4], archived: Option<&str>) -> u64 {
        let size =
            texts.iter().map(|t| t.len() + 5).sum::<usize>() + archived.map_or(1, |a| a.len() + 5);
        let at = self.len;
        let segment = self.room(size);
        let before = segment.len();
        for text in texts {
            put_length(segment, text.len() as u64);
        }
        put_length(segment, archived.map_or(0, |a| a.len() as u64 + 1));
        for text in texts {
            segment.extend_from_slice(text.as_bytes());
        }
        if let Some(archived) = archived {
            segment.extend_from_slice(archived.as_bytes());
        }
        let written = segment.len() - before;
        self.len += written as u64;
        at
    }

    /// The bytes from `at` to the end of its segment.
    fn from(&self, at: u64) -> &[u8] {
        let segment = self.starts.partition_point(|&s| s <= at).saturating_sub(1);
        match (self.segments.get(segment), self.starts.get(segment)) {
            (Some(bytes), Some(&start)) => bytes.get((at - start) as usize..).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The texts of the record at `at`: the four, and the archived file.
    fn texts(&self, at: u64) -> ([&str; 4], Option<&str>) {
        let mut bytes = self.from(at);
        let mut lengths = [0usize; 5];
        for length in &mut lengths {
            *length = take_length(&mut bytes) as usize;
        }
        let mut take = |len: usize| {
            let (text, rest) = bytes.split_at(len.min(bytes.len()));
            bytes = rest;
            // Only whole `str`s were ever written here.
            std::str::from_utf8(text).unwrap_or_default()
        };
        let texts = [
            take(lengths[0]),
            take(lengths[1]),
            take(lengths[2]),
            take(lengths[3]),
        ];
        let archived = match lengths[4] {
            0 => None,
            n => Some(take(n - 1)),
        };
        (texts, archived)
    }

    /// Appends `other`'s text: large segments are taken over as they are,
    /// small ones copied (a catch-up of a few lines must not leave a
    /// segment of its own). Returns where `other`'s segments now start.
    fn append(&mut self, other: TextArena) -> TextMoves {
        let mut moved: Vec<(u64, u64)> = Vec::with_capacity(other.segments.len());
        for (segment, old_start) in other.segments.into_iter().zip(other.starts) {
            let new_start = self.len;
            let len = segment.len();
            if len >= SEGMENT_BYTES / 2 {
                if let Some(full) = self.segments.last_mut() {
                    full.shrink_to_fit();
                }
                self.starts.push(new_start);
                self.segments.push(segment);
            } else {
                self.room(len).extend_from_slice(&segment);
            }
            self.len += len as u64;
            moved.push((old_start, new_start));
        }
        TextMoves(moved)
    }

    fn shrink(&mut self) {
        if let Some(last) = self.segments.last_mut() {
            last.shrink_to_fit();
        }
    }

    fn bytes(&self) -> usize {
        self.segments.iter().map(Vec::capacity).sum::<usize>() + self.starts.capacity() * 8
    }
}

/// The hash `RunStore` keeps of a `date_code` (fixed, so that stores
/// built apart agree).
fn date_code_hash(code: &str) -> u32 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(code) as u32
}

/// Where the segments of an appended arena went: (old start, new start).
#[derive(Debug)]
struct TextMoves(Vec<(u64, u64)>);

impl TextMoves {
    /// Where a record's text that was at `at` is now.
    fn at(&self, at: u64) -> u64 {
        let i = self
            .0
            .partition_point(|&(old, _)| old <= at)
            .saturating_sub(1);
        match self.0.get(i) {
            Some(&(old, new)) => new + (at - old),
            None => at,
        }
    }
}

/// How the records of a store appended to another are renumbered.
#[derive(Debug)]
struct Renumbering {
    groups: Vec<u32>,
    zones: Vec<u32>,
    text: TextMoves,
}

fn put_length(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_length(bytes: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    let mut shift = 0;
    while let Some((&byte, rest)) = bytes.split_first() {
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 || shift > 56 {
            break;
        }
        shift += 7;
    }
    value
}

/// A group's classification values, as the table holds them (`Group`) or
/// as a line holds them (`[Option<&str>; 4]`): the table is searched with
/// the borrowed values, so a known group costs one hash and no allocation.
trait GroupValues {
    fn values(&self) -> [Option<&str>; 4];
}

#[derive(Debug, Clone)]
struct Group([Option<Arc<str>>; 4]);

impl GroupValues for Group {
    fn values(&self) -> [Option<&str>; 4] {
        [0, 1, 2, 3].map(|i| self.0[i].as_deref())
    }
}

impl GroupValues for [Option<&str>; 4] {
    fn values(&self) -> [Option<&str>; 4] {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn GroupValues + 'a> for Group {
    fn borrow(&self) -> &(dyn GroupValues + 'a) {
        self
    }
}

impl std::hash::Hash for dyn GroupValues + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.values().hash(state);
    }
}

impl PartialEq for dyn GroupValues + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.values() == other.values()
    }
}

impl Eq for dyn GroupValues + '_ {}

impl std::hash::Hash for Group {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.values().hash(state);
    }
}

impl PartialEq for Group {
    fn eq(&self, other: &Self) -> bool {
        self.values() == other.values()
    }
}

impl Eq for Group {}

/// The distinct (pipeline_name, script_name, pipeline_type, environment)
/// combinations, numbered in order of first appearance; each distinct
/// value is held once.
#[derive(Debug, Default)]
struct GroupTable {
    values: FastSet<Arc<str>>,
    groups: Vec<[Option<Arc<str>>; 4]>,
    ids: FastMap<Group, u32>,
}

impl GroupTable {
    fn intern(&mut self, value: &str) -> Arc<str> {
        if let Some(shared) = self.values.get(value) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(value);
        self.values.insert(shared.clone());
        shared
    }

    fn id(&mut self, classes: [Option<&str>; 4]) -> u32 {
        if let Some(&id) = self.ids.get(&classes as &dyn GroupValues) {
            return id;
        }
        let owned = classes.map(|value| value.map(|v| self.intern(v)));
        let id = self.groups.len() as u32;
        self.groups.push(owned.clone());
        self.ids.insert(Group(owned), id);
        id
    }

    fn bytes(&self) -> usize {
        let text: usize = self.values.iter().map(|v| v.len() + 16).sum();
        text + self.groups.capacity() * 64 + self.ids.capacity() * 72 + self.values.capacity() * 16
    }
}

/// The distinct combinations of the four times' zones (offsets in seconds;
/// `None` for a naive value). Files hold very few.
#[derive(Debug, Default)]
struct ZoneTable {
    zones: Vec<[Option<i32>; 4]>,
    ids: FastMap<[Option<i32>; 4], u32>,
}

impl ZoneTable {
    fn id(&mut self, zones: [Option<i32>; 4]) -> u32 {
        if let Some(&id) = self.ids.get(&zones) {
            return id;
        }
        let id = self.zones.len() as u32;
        self.zones.push(zones);
        self.ids.insert(zones, id);
        id
    }
}

/// Records in file order, by column.
#[derive(Debug, Default)]
pub struct RunStore {
    starts: Vec<i64>,
    ends: Vec<i64>,
    rowcounts: Vec<i64>,
    durations: Vec<f64>,
    groups: Vec<u32>,
    /// start_local and end_local instants.
    locals: Vec<[i64; 2]>,
    pids: Vec<i64>,
    zones: Vec<u32>,
    /// Where each record's text starts in `text`.
    text_at: Vec<u64>,
    /// A hash of each record's `date_code`, so that finding a run's archived
    /// file scans four bytes a record instead of every record's text.
    date_codes: Vec<u32>,
    text: TextArena,
    group_table: GroupTable,
    zone_table: ZoneTable,
    /// The zone combination of the last record pushed, and its id: nearly
    /// every record of a file shares it.
    last_zones: Option<([Option<i32>; 4], u32)>,
}

impl RunStore {
    /// Room for `records` records with `text_bytes` of text.
    pub fn with_capacity(records: usize, text_bytes: usize) -> Self {
        let mut store = Self {
            starts: Vec::with_capacity(records),
            ends: Vec::with_capacity(records),
            rowcounts: Vec::with_capacity(records),
            durations: Vec::with_capacity(records),
            groups: Vec::with_capacity(records),
            locals: Vec::with_capacity(records),
            pids: Vec::with_capacity(records),
            zones: Vec::with_capacity(records),
            text_at: Vec::with_capacity(records),
            date_codes: Vec::with_capacity(records),
            ..Self::default()
        };
        if text_bytes > 0 {
            store.text.room(text_bytes);
        }
        store
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn columns(&self) -> Columns<'_> {
        Columns {
            starts: &self.starts,
            ends: &self.ends,
            rowcounts: &self.rowcounts,
            durations: &self.durations,
            groups: &self.groups,
        }
    }

    /// Adds a record at the next position.
    pub fn push(&mut self, fields: &RunFields<'_>) {
        let [start_local, end_local, start_utc, end_utc] = fields.times;
        self.starts.push(start_utc.instant);
        self.ends.push(end_utc.instant);
        self.rowcounts.push(fields.rowcount);
        self.durations.push(fields.elapsed_seconds);
        let group = self.group_table.id(fields.classes);
        self.groups.push(group);
        self.locals.push([start_local.instant, end_local.instant]);
        self.pids.push(fields.pid);
        let zones = fields.times.map(|t| t.zone);
        let zone = match self.last_zones {
            Some((last, id)) if last == zones => id,
            _ => {
                let id = self.zone_table.id(zones);
                self.last_zones = Some((zones, id));
                id
            }
        };
        self.zones.push(zone);
        let at = self.text.push(&fields.texts, fields.archived_file);
        self.text_at.push(at);
        self.date_codes.push(date_code_hash(fields.texts[3]));
    }

    /// Appends every record of `other`, in order.
    pub fn append(&mut self, mut other: RunStore) {
        let renumbering = self.take_over(&mut other);
        self.extend_columns(&[(other, renumbering)], false);
    }

    /// The stores' records, in order, as one store: the columns are joined
    /// on as many threads (a load joins the blocks its threads parsed).
    pub fn concat(mut parts: Vec<RunStore>) -> RunStore {
        let mut store = RunStore::default();
        let renumberings: Vec<Renumbering> =
            parts.iter_mut().map(|part| store.take_over(part)).collect();
        let parts: Vec<(RunStore, Renumbering)> = parts.into_iter().zip(renumberings).collect();
        store.extend_columns(&parts, true);
        store
    }

    /// Numbers `other`'s groups and zones in this store and moves its text
    /// here: what its columns need to be appended.
    fn take_over(&mut self, other: &mut RunStore) -> Renumbering {
        self.last_zones = None;
        Renumbering {
            groups: other
                .group_table
                .groups
                .iter()
                .map(|classes| {
                    let borrowed = [0, 1, 2, 3].map(|i| classes[i].as_deref());
                    self.group_table.id(borrowed)
                })
                .collect(),
            zones: other
                .zone_table
                .zones
                .iter()
                .map(|&zones| self.zone_table.id(zones))
                .collect(),
            text: self.text.append(std::mem::take(&mut other.text)),
        }
    }

    /// Appends the columns of `parts`, renumbered; with `parallel`, each
    /// column on its own thread.
    fn extend_columns(&mut self, parts: &[(RunStore, Renumbering)], parallel: bool) {
        fn join<T: Copy + Send>(
            column: &mut Vec<T>,
            parts: &[(RunStore, Renumbering)],
            of: impl Fn(&RunStore, &Renumbering, &mut Vec<T>),
        ) {
            column.reserve(parts.iter().map(|(part, _)| part.len()).sum());
            for (part, renumbering) in parts {
                of(part, renumbering, column);
            }
        }
        let RunStore {
            starts,
            ends,
            rowcounts,
            durations,
            groups,
            locals,
            pids,
            zones,
            text_at,
            date_codes,
            ..
        } = self;
        let jobs: Vec<Box<dyn FnOnce() + Send + '_>> = vec![
            Box::new(|| join(starts, parts, |p, _, c| c.extend_from_slice(&p.starts))),
            Box::new(|| join(ends, parts, |p, _, c| c.extend_from_slice(&p.ends))),
            Box::new(|| {
                join(rowcounts, parts, |p, _, c| {
                    c.extend_from_slice(&p.rowcounts)
                })
            }),
            Box::new(|| {
                join(durations, parts, |p, _, c| {
                    c.extend_from_slice(&p.durations)
                })
            }),
            Box::new(|| {
                join(groups, parts, |p, r, c| {
                    c.extend(p.groups.iter().map(|&g| r.groups[g as usize]))
                })
            }),
            Box::new(|| join(locals, parts, |p, _, c| c.extend_from_slice(&p.locals))),
            Box::new(|| join(pids, parts, |p, _, c| c.extend_from_slice(&p.pids))),
            Box::new(|| {
                join(zones, parts, |p, r, c| {
                    c.extend(p.zones.iter().map(|&z| r.zones[z as usize]))
                })
            }),
            Box::new(|| {
                join(text_at, parts, |p, r, c| {
                    c.extend(p.text_at.iter().map(|&at| r.text.at(at)))
                })
            }),
            Box::new(|| {
                join(date_codes, parts, |p, _, c| {
                    c.extend_from_slice(&p.date_codes)
                })
            }),
        ];
        match parallel {
            true => {
                parallel::map(jobs, |job| job());
            }
            false => jobs.into_iter().for_each(|job| job()),
        }
    }

    /// Gives back the spare room of a store that is done growing for now.
    pub fn shrink(&mut self) {
        self.text.shrink();
    }

    /// The record at `position`, built anew.
    pub fn record(&self, position: u32) -> Option<PipelineInfo> {
        let i = position as usize;
        let zones = self.zone_table.zones.get(*self.zones.get(i)? as usize)?;
        let [start_local, end_local] = self.locals[i];
        let (texts, archived_file) = self.text.texts(self.text_at[i]);
        let classes = self.group_table.groups.get(self.groups[i] as usize)?;
        let mut day = None;
        let mut time =
            |instant: i64, zone: Option<i32>| Moment { instant, zone }.to_datetime_near(&mut day);
        PipelineInfo::from_parts(RecordParts {
            start_local: time(start_local, zones[0]),
            end_local: time(end_local, zones[1]),
            start_utc: time(self.starts[i], zones[2]),
            end_utc: time(self.ends[i], zones[3]),
            elapsed_seconds: self.durations[i],
            elapsed_human: texts[0],
            output_file: texts[1],
            log_file: texts[2],
            rowcount: self.rowcounts[i],
            pid: self.pids[i],
            date_code: texts[3],
            classes: classes.clone(),
            archived_file,
        })
    }

    /// `start_utc` of the record at `position`, as stored.
    pub fn start_utc(&self, position: u32) -> FlexDateTime {
        let i = position as usize;
        let zone = self
            .zone_table
            .zones
            .get(self.zones[i] as usize)
            .and_then(|zones| zones[2]);
        Moment {
            instant: self.starts[i],
            zone,
        }
        .to_datetime()
    }

    /// The positions whose `date_code` is `code`, in file order, each with
    /// its `archived_file`.
    pub fn archived_files<'a>(
        &'a self,
        code: &'a str,
    ) -> impl Iterator<Item = Option<&'a str>> + 'a {
        let wanted = date_code_hash(code);
        self.date_codes
            .iter()
            .enumerate()
            .filter(move |&(_, &hash)| hash == wanted)
            .filter_map(move |(position, _)| {
                let (texts, archived) = self.text.texts(self.text_at[position]);
                (texts[3] == code).then_some(archived)
            })
    }

    /// How many groups there are; group ids are `0..group_count()`.
    pub fn group_count(&self) -> usize {
        self.group_table.groups.len()
    }

    /// The classification values of a group.
    pub fn group(&self, id: u32) -> &[Option<Arc<str>>; 4] {
        static NONE: [Option<Arc<str>>; 4] = [None, None, None, None];
        self.group_table.groups.get(id as usize).unwrap_or(&NONE)
    }

    pub fn bytes(&self) -> StoreBytes {
        let columns = self.date_codes.capacity() * 4
            + self.starts.capacity() * 8
            + self.ends.capacity() * 8
            + self.rowcounts.capacity() * 8
            + self.durations.capacity() * 8
            + self.groups.capacity() * 4
            + self.locals.capacity() * 16
            + self.pids.capacity() * 8
            + self.zones.capacity() * 4
            + self.text_at.capacity() * 8;
        StoreBytes {
            columns,
            strings: self.text.bytes() + self.group_table.bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_come_back_exactly_as_they_went_in() {
        let mut records = crate::generate::parsed(3000, 5);
        let mut odd = crate::domain::record::tests::sample();
        odd["output_file"] = json!("C:\\data\\\"quoted\"\n\u{1}é😀".repeat(40));
        odd["pipeline_name"] = json!(null);
        odd["environment"] = json!("");
        odd["archived_file"] = json!("");
        odd["start_local"] = json!("1600-01-01T00:00:00.000001+23:59");
        odd["end_utc"] = json!("9999-12-31T23:59:59.999999-05:30");
        odd["start_utc"] = json!(-11_676_096_000i64);
        records.push(PipelineInfo::parse(&odd, "body").unwrap());
        let mut store = RunStore::default();
        for record in &records[..1000] {
            store.push(&RunFields::from(record));
        }
        // Another store appended, as a load's blocks are.
        let mut rest = RunStore::default();
        for record in &records[1000..] {
            rest.push(&RunFields::from(record));
        }
        store.append(rest);
        assert_eq!(store.len(), records.len());
        // And joined from parts at once, as a load joins its blocks.
        let parts = records
            .chunks(700)
            .map(|chunk| {
                let mut part = RunStore::default();
                for record in chunk {
                    part.push(&RunFields::from(record));
                }
                part
            })
            .collect();
        let joined = RunStore::concat(parts);
        assert_eq!(joined.len(), records.len());
        for (i, record) in records.iter().enumerate() {
            assert_eq!(joined.record(i as u32).as_ref(), Some(record), "{i}");
        }
        for (i, record) in records.iter().enumerate() {
            assert_eq!(store.record(i as u32).as_ref(), Some(record), "{i}");
            assert_eq!(store.start_utc(i as u32), record.start_utc());
            let files: Vec<_> = store.archived_files(record.date_code()).collect();
            assert!(files.contains(&record.archived_file()), "{i}");
        }
        assert!(store.group_count() < 300);
    }
}
