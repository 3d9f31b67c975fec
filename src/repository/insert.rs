//! Inserts with idempotency keys: which runs to store and what to answer
//! for the others, decided the same way on every backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{IdempotencyKey, PipelineInfo};

/// How long a key protects against repeats unless configured.
pub const DEFAULT_KEY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The instant (microseconds since the epoch) before which stored keys are
/// forgotten.
pub fn key_cutoff_micros(retention: Duration) -> i64 {
    let now = chrono::Utc::now().timestamp_micros();
    now.saturating_sub(i64::try_from(retention.as_micros()).unwrap_or(i64::MAX))
}

/// A validated run to store, with its optional idempotency key.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub record: PipelineInfo,
    pub key: Option<IdempotencyKey>,
}

impl From<PipelineInfo> for NewRun {
    fn from(record: PipelineInfo) -> Self {
        Self { record, key: None }
    }
}

/// What `plan` needs of a run: its record and its key, if any.
pub trait Keyed {
    fn record(&self) -> &PipelineInfo;
    fn key(&self) -> Option<&IdempotencyKey>;
}

impl Keyed for NewRun {
    fn record(&self) -> &PipelineInfo {
        &self.record
    }

    fn key(&self) -> Option<&IdempotencyKey> {
        self.key.as_ref()
    }
}

/// What happened to one run of an insert.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    /// Stored now.
    Created(Arc<PipelineInfo>),
    /// Its key was already used with the same record: nothing stored, the
    /// original record returned.
    Replayed(Arc<PipelineInfo>),
    /// Its key was already used with a different record.
    KeyReused,
    /// Another request with its key is being stored right now.
    KeyInFlight,
    /// Valid, but not stored because another run of an atomic batch failed.
    NotStored,
}

impl InsertOutcome {
    /// Whether this outcome makes an atomic batch fail.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            InsertOutcome::KeyReused | InsertOutcome::KeyInFlight | InsertOutcome::NotStored
        )
    }
}

/// What a backend knows about a key (expired keys count as absent).
#[derive(Debug, Clone)]
pub enum KnownKey {
    Absent,
    Stored {
        fingerprint: String,
        record: Arc<PipelineInfo>,
    },
    InFlight,
}

/// The decision for a batch: the outcome of every run that is not stored
/// (`None` for those to store), in order.
#[derive(Debug)]
pub struct InsertPlan {
    pub outcomes: Vec<Option<InsertOutcome>>,
}

impl InsertPlan {
    /// Positions of the runs to store.
    pub fn to_store(&self) -> impl Iterator<Item = usize> + '_ {
        self.outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| o.is_none())
            .map(|(i, _)| i)
    }

    /// Fills in `Created` for the stored runs.
    pub fn finish(self, runs: Vec<NewRun>) -> Vec<InsertOutcome> {
        self.outcomes
            .into_iter()
            .zip(runs)
            .map(|(outcome, run)| {
                outcome.unwrap_or_else(|| InsertOutcome::Created(Arc::new(run.record)))
            })
            .collect()
    }
}

/// Decides what to store. `known` looks a key up in the store. A key used
/// twice within the batch behaves as if the second run were a retry of the
/// first. With `atomic`, any failure means nothing is stored.
pub fn plan<E>(
    runs: &[impl Keyed],
    atomic: bool,
    mut known: impl FnMut(&str) -> Result<KnownKey, E>,
) -> Result<InsertPlan, E> {
    let mut outcomes = Vec::with_capacity(runs.len());
    let mut in_batch: HashMap<&str, usize> = HashMap::new();
    for (position, run) in runs.iter().enumerate() {
        let Some(key) = run.key() else {
            outcomes.push(None);
            continue;
        };
        let outcome = if let Some(&first) = in_batch.get(key.key()) {
            let earlier = &runs[first];
            match earlier.key().map(IdempotencyKey::fingerprint) {
                Some(f) if f == key.fingerprint() => {
                    Some(InsertOutcome::Replayed(Arc::new(earlier.record().clone())))
                }
                _ => Some(InsertOutcome::KeyReused),
            }
        } else {
            match known(key.key())? {
                KnownKey::Absent => {
                    in_batch.insert(key.key(), position);
                    None
                }
                KnownKey::Stored {
                    fingerprint,
                    record,
                } if fingerprint == key.fingerprint() => Some(InsertOutcome::Replayed(record)),
                KnownKey::Stored { .. } => Some(InsertOutcome::KeyReused),
                KnownKey::InFlight => Some(InsertOutcome::KeyInFlight),
            }
        };
        outcomes.push(outcome);
    }
    if atomic && outcomes.iter().flatten().any(InsertOutcome::is_failure) {
        for outcome in &mut outcomes {
            if outcome.is_none() {
                *outcome = Some(InsertOutcome::NotStored);
            }
        }
    }
    Ok(InsertPlan { outcomes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::tests::sample;

    fn run(key: Option<&str>, rowcount: i64) -> NewRun {
        let mut body = sample();
        body["rowcount"] = rowcount.into();
        let record = PipelineInfo::parse(&body, "body").unwrap();
        let key = key.map(|k| IdempotencyKey::parse(k, &record).unwrap());
        NewRun { record, key }
    }

    fn decide(runs: &[NewRun], atomic: bool, store: &HashMap<&str, KnownKey>) -> Vec<String> {
        let plan = plan::<()>(runs, atomic, |k| {
            Ok(store.get(k).cloned().unwrap_or(KnownKey::Absent))
        })
        .unwrap();
        plan.outcomes
            .iter()
            .map(|o| match o {
                None => "store".to_owned(),
                Some(InsertOutcome::Replayed(r)) => format!("replay {}", r.rowcount()),
                Some(other) => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn keys_replay_conflict_or_store() {
        let stored = run(Some("a"), 1);
        let store = HashMap::from([
            (
                "a",
                KnownKey::Stored {
                    fingerprint: stored.key.as_ref().unwrap().fingerprint().to_owned(),
                    record: Arc::new(stored.record.clone()),
                },
            ),
            ("busy", KnownKey::InFlight),
        ]);
        let runs = [
            run(None, 5),
            run(Some("a"), 1),
            run(Some("a"), 2),
            run(Some("busy"), 3),
            run(Some("new"), 4),
            run(Some("new"), 4),
            run(Some("new"), 9),
        ];
        assert_eq!(
            decide(&runs, false, &store),
            [
                "store",
                "replay 1",
                "KeyReused",
                "KeyInFlight",
                "store",
                "replay 4",
                "KeyReused"
            ]
        );
        assert_eq!(
            decide(&runs, true, &store),
            [
                "NotStored",
                "replay 1",
                "KeyReused",
                "KeyInFlight",
                "NotStored",
                "replay 4",
                "KeyReused"
            ]
        );
        let clean = [run(None, 1), run(Some("a"), 1), run(Some("b"), 2)];
        assert_eq!(decide(&clean, true, &store), ["store", "replay 1", "store"]);
    }
}
