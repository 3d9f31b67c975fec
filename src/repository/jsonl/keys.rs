//! Idempotency keys in a JSON Lines file. A keyed run's line carries a
//! reserved `_idempotency` member (`key`, `fingerprint`, `at`) that the
//! Python service ignores like any unknown field; the table of live keys is
//! rebuilt from the file on every load, so keys survive restarts and are
//! seen by every process sharing the file.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use super::store::{RunFields, RunStore};
use crate::domain::{FlexDateTime, IdempotencyKey, PipelineInfo};
use crate::repository::insert::{Keyed, KnownKey};

/// The member name; the leading underscore keeps it clear of record fields.
pub const RESERVED_FIELD: &str = "_idempotency";

/// A key as stored: which key, for which record, since when.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyStamp {
    pub key: IdempotencyKey,
    pub at_micros: i64,
}

impl KeyStamp {
    /// From the stored texts; `None` when `at` is not a datetime.
    pub fn new(key: &str, fingerprint: &str, at: &str) -> Option<Self> {
        Some(Self {
            key: IdempotencyKey::stored(key.to_owned(), fingerprint.to_owned()),
            at_micros: FlexDateTime::parse(at).ok()?.instant_micros(),
        })
    }

    /// From a line's `_idempotency` member; a malformed one is ignored (the
    /// record itself is still valid).
    pub fn from_value(value: &Value) -> Option<Self> {
        let text = |name: &str| value.get(name).and_then(Value::as_str);
        Self::new(text("key")?, text("fingerprint")?, text("at")?)
    }

    /// The member written into the line.
    pub fn to_value(&self) -> Value {
        json!({
            "key": self.key.key(),
            "fingerprint": self.key.fingerprint(),
            "at": FlexDateTime::from_instant_micros(self.at_micros).to_string(),
        })
    }

    /// Takes the reserved member out of a line's fields.
    pub fn take_from(fields: &mut Map<String, Value>) -> Option<Self> {
        fields
            .remove(RESERVED_FIELD)
            .and_then(|v| Self::from_value(&v))
    }
}

/// One parsed line.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub record: PipelineInfo,
    pub key: Option<KeyStamp>,
}

impl Keyed for Loaded {
    fn record(&self) -> &PipelineInfo {
        &self.record
    }

    fn key(&self) -> Option<&IdempotencyKey> {
        self.key.as_ref().map(|stamp| &stamp.key)
    }
}

/// Records parsed in file order, and the keys some of them carry.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: RunStore,
    /// (index into `records`, key).
    pub keys: Vec<(usize, KeyStamp)>,
}

impl FromIterator<Loaded> for Batch {
    fn from_iter<I: IntoIterator<Item = Loaded>>(lines: I) -> Self {
        let mut batch = Batch::default();
        for line in lines {
            batch.push(line);
        }
        batch
    }
}

impl Batch {
    /// Room for `records` records with `text_bytes` of text.
    pub fn with_capacity(records: usize, text_bytes: usize) -> Self {
        Self {
            records: RunStore::with_capacity(records, text_bytes),
            keys: Vec::new(),
        }
    }

    pub fn push(&mut self, loaded: Loaded) {
        self.push_fields(&RunFields::from(&loaded.record), loaded.key);
    }

    pub fn push_fields(&mut self, fields: &RunFields<'_>, key: Option<KeyStamp>) {
        if let Some(key) = key {
            self.keys.push((self.records.len(), key));
        }
        self.records.push(fields);
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }
}

/// A stored key and the position of its record.
#[derive(Debug)]
struct Entry {
    fingerprint: Box<str>,
    at_micros: i64,
    position: u32,
}

/// Keys found in the file (the latest use of each wins) and keys of
/// inserts this process is writing now.
#[derive(Debug, Default)]
pub struct KeyTable {
    stored: HashMap<Box<str>, Entry>,
    in_flight: HashSet<String>,
    /// Size after the last pruning, so pruning costs O(1) amortised.
    pruned_at: usize,
}

impl KeyTable {
    pub fn clear_stored(&mut self) {
        self.stored.clear();
        self.pruned_at = 0;
    }

    pub fn add(&mut self, stamp: KeyStamp, position: u32) {
        let entry = Entry {
            fingerprint: stamp.key.fingerprint().into(),
            at_micros: stamp.at_micros,
            position,
        };
        self.stored.insert(stamp.key.key().into(), entry);
    }

    /// Adds the keys of a batch whose first record took position `first`.
    pub fn add_all(&mut self, keys: Vec<(usize, KeyStamp)>, first: usize) {
        for (at, stamp) in keys {
            self.add(stamp, (first + at) as u32);
        }
    }

    /// What is known about `key`, treating keys stored before `cutoff` as
    /// forgotten; `record` turns a position into its record.
    pub fn known(
        &self,
        key: &str,
        cutoff_micros: i64,
        record: impl Fn(u32) -> Option<Arc<PipelineInfo>>,
    ) -> KnownKey {
        if self.in_flight.contains(key) {
            return KnownKey::InFlight;
        }
        self.stored(key, cutoff_micros, record)
    }

    /// As `known`, from the file alone: what the writer asks, under the
    /// file lock, about the keys of the very inserts it is writing.
    pub fn stored(
        &self,
        key: &str,
        cutoff_micros: i64,
        record: impl Fn(u32) -> Option<Arc<PipelineInfo>>,
    ) -> KnownKey {
        match self.stored.get(key) {
            Some(entry) if entry.at_micros >= cutoff_micros => match record(entry.position) {
                Some(record) => KnownKey::Stored {
                    fingerprint: entry.fingerprint.to_string(),
                    record,
                },
                None => KnownKey::Absent,
            },
            _ => KnownKey::Absent,
        }
    }

    /// Forgets expired keys once the table has doubled since last time.
    pub fn prune(&mut self, cutoff_micros: i64) {
        if self.stored.len() > 1024 && self.stored.len() > 2 * self.pruned_at {
            self.stored.retain(|_, e| e.at_micros >= cutoff_micros);
            self.pruned_at = self.stored.len();
        }
    }
}

/// Keys one insert holds in flight: they answer `InFlight` to others until
/// this is dropped. The insert's request owns it, so the keys are released
/// however the insert ends — written, refused, failed, or given up by a
/// caller that timed out — and never before the written keys are visible.
pub struct Reservation {
    table: Arc<Mutex<KeyTable>>,
    keys: Vec<String>,
}

impl Reservation {
    /// Reserves `keys` in `table`, which the caller has locked as `locked`
    /// (checking and reserving under one lock, so two inserts cannot both
    /// claim a key).
    pub fn take(table: &Arc<Mutex<KeyTable>>, locked: &mut KeyTable, keys: Vec<String>) -> Self {
        locked.in_flight.extend(keys.iter().cloned());
        Self {
            table: table.clone(),
            keys,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let mut table = self.table.lock();
        for key in &self.keys {
            table.in_flight.remove(key.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_through_their_member() {
        let stamp = KeyStamp::new("k-1", "ab", "2026-11-22T06:00:00.5Z").unwrap();
        let mut fields = Map::new();
        fields.insert(RESERVED_FIELD.into(), stamp.to_value());
        assert_eq!(KeyStamp::take_from(&mut fields), Some(stamp));
        assert!(fields.is_empty());
        assert_eq!(KeyStamp::from_value(&json!({"key": "k"})), None);
    }

    #[test]
    fn expired_and_in_flight_keys() {
        let mut table = KeyTable::default();
        table.add(
            KeyStamp::new("old", "f", "2020-01-01T00:00:00Z").unwrap(),
            0,
        );
        table.add(
            KeyStamp::new("new", "f", "2030-01-01T00:00:00Z").unwrap(),
            1,
        );
        let cutoff = FlexDateTime::parse("2025-01-01T00:00:00Z")
            .unwrap()
            .instant_micros();
        let none = |_| None;
        assert!(matches!(table.known("old", cutoff, none), KnownKey::Absent));
        let record =
            crate::domain::PipelineInfo::parse(&crate::domain::record::tests::sample(), "body")
                .map(Arc::new)
                .ok();
        assert!(matches!(
            table.known("new", cutoff, |_| record.clone()),
            KnownKey::Stored { .. }
        ));
        let table = Arc::new(Mutex::new(table));
        let reservation = Reservation::take(&table, &mut table.lock(), vec!["x".into()]);
        assert!(matches!(
            table.lock().known("x", cutoff, none),
            KnownKey::InFlight
        ));
        assert!(matches!(
            table.lock().stored("x", cutoff, none),
            KnownKey::Absent
        ));
        drop(reservation);
        assert!(matches!(
            table.lock().known("x", cutoff, none),
            KnownKey::Absent
        ));
    }
}
