//! Group commit for PostgreSQL: one task takes every insert waiting when it
//! wakes and stores them in one transaction, so concurrent single inserts
//! cost one commit (and one fsync on the server), not one each. Keys are
//! looked up for the whole group in one statement and decided per request
//! with `insert::plan`; rows go in with one multi-row `INSERT … SELECT FROM
//! unnest(…)`. `ON CONFLICT (idempotency_key) … DO NOTHING` settles a race
//! with another replica: a keyed row it skipped means another transaction
//! stored that key first, so the group is rolled back and decided again,
//! now seeing the winner (replay or 409 against what it stored).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::rows::{self, column, instant};
use super::{Shared, TABLE};
use crate::domain::{PipelineInfo, FIELD_NAMES};
use crate::metrics::METRICS;
use crate::repository::insert::{self, InsertOutcome, KnownKey, NewRun};
use crate::repository::sql::TIME_FIELDS;
use crate::repository::RepositoryError;

/// Most runs one transaction takes, so a flood cannot starve replies.
const MAX_GROUP_RUNS: usize = 8192;

/// A group that met another replica's insert of the same key is decided
/// again at most this many times.
const MAX_ATTEMPTS: usize = 5;

pub struct WriteRequest {
    pub runs: Vec<NewRun>,
    pub atomic: bool,
    pub reply: oneshot::Sender<Result<Vec<InsertOutcome>, RepositoryError>>,
}

pub fn spawn(shared: Arc<Shared>) -> mpsc::UnboundedSender<WriteRequest> {
    let (sender, mut receiver) = mpsc::unbounded_channel::<WriteRequest>();
    tokio::spawn(async move {
        while let Some(first) = receiver.recv().await {
            let mut group = vec![first];
            let mut runs = group[0].runs.len();
            while runs < MAX_GROUP_RUNS {
                match receiver.try_recv() {
                    Ok(next) => {
                        runs += next.runs.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            store_group(&shared, group).await;
        }
    });
    sender
}

/// Stores a group together; if that fails, each request alone, so one
/// request's fault is not every waiting request's.
async fn store_group(shared: &Shared, group: Vec<WriteRequest>) {
    let parts: Vec<(&[NewRun], bool)> = group.iter().map(|r| (&r.runs[..], r.atomic)).collect();
    let together = shared
        .bounded(async |client| store_with_retry(client, shared, &parts).await)
        .await;
    match together {
        Ok(plans) => {
            for (request, plan) in group.into_iter().zip(plans) {
                let _ = request.reply.send(Ok(plan.finish(request.runs)));
            }
        }
        Err(error) if group.len() == 1 => {
            if let Some(request) = group.into_iter().next() {
                let _ = request.reply.send(Err(error));
            }
        }
        Err(_) => {
            for request in group {
                let alone = [(&request.runs[..], request.atomic)];
                let result = shared
                    .bounded(async |client| store_with_retry(client, shared, &alone).await)
                    .await
                    .map(|plans| plans.into_iter().next());
                let _ = request.reply.send(match result {
                    Ok(Some(plan)) => Ok(plan.finish(request.runs)),
                    Ok(None) => Err(RepositoryError::Task("no plan for a request".into())),
                    Err(error) => Err(error),
                });
            }
        }
    }
}

async fn store_with_retry(
    client: &mut deadpool_postgres::Client,
    shared: &Shared,
    parts: &[(&[NewRun], bool)],
) -> Result<Vec<insert::InsertPlan>, RepositoryError> {
    for _ in 0..MAX_ATTEMPTS {
        if let Some(plans) = store_once(client, shared, parts).await? {
            let stored: usize = plans.iter().map(|p| p.to_store().count()).sum();
            METRICS.inserts.inc_by(stored as u64);
            METRICS.postgres_commit_group.observe(stored as f64);
            return Ok(plans);
        }
    }
    Err(RepositoryError::Unavailable(
        "idempotency keys kept being taken by other replicas".into(),
    ))
}

/// One attempt; `None` when another transaction stored one of the keys
/// first (everything rolled back).
async fn store_once(
    client: &mut deadpool_postgres::Client,
    shared: &Shared,
    parts: &[(&[NewRun], bool)],
) -> Result<Option<Vec<insert::InsertPlan>>, RepositoryError> {
    let transaction = client.transaction().await?;
    let keys: Vec<&str> = parts
        .iter()
        .flat_map(|(runs, _)| runs.iter())
        .filter_map(|run| run.key.as_ref().map(|k| k.key()))
        .collect();
    let mut known = if keys.is_empty() {
        HashMap::new()
    } else {
        lookup_keys(&transaction, shared, &keys).await?
    };
    let mut plans = Vec::with_capacity(parts.len());
    let mut rows: Vec<&NewRun> = Vec::new();
    for (runs, atomic) in parts {
        let plan = insert::plan::<std::convert::Infallible>(runs, *atomic, |key| {
            Ok(known.get(key).cloned().unwrap_or(KnownKey::Absent))
        })
        .unwrap_or_else(|never| match never {});
        for position in plan.to_store() {
            let run = &runs[position];
            // A later request of this group with the same key sees this one.
            if let Some(key) = &run.key {
                known.insert(
                    key.key().to_owned(),
                    KnownKey::Stored {
                        fingerprint: key.fingerprint().to_owned(),
                        record: Arc::new(run.record.clone()),
                    },
                );
            }
            rows.push(run);
        }
        plans.push(plan);
    }
    let keyed = rows.iter().filter(|r| r.key.is_some()).count();
    let stored_keys = insert_rows(&transaction, &rows).await?;
    if stored_keys < keyed {
        transaction.rollback().await?;
        return Ok(None);
    }
    transaction.commit().await?;
    Ok(Some(plans))
}

/// The stored run of each key still within its retention; expired keys are
/// freed (set to NULL, the run stays) so they can be used again.
async fn lookup_keys(
    transaction: &deadpool_postgres::Transaction<'_>,
    shared: &Shared,
    keys: &[&str],
) -> Result<HashMap<String, KnownKey>, RepositoryError> {
    let cutoff =
        DateTime::from_timestamp_micros(insert::key_cutoff_micros(shared.settings.key_retention))
            .unwrap_or_default();
    let lookup = format!(
        "SELECT {}, idempotency_key, idempotency_fingerprint, idempotency_at FROM {TABLE} \
WHERE idempotency_key = ANY($1)",
        shared.table.select_list()
    );
    let found = transaction.query(&lookup, &[&keys]).await?;
    let mut known = HashMap::new();
    let mut expired: Vec<String> = Vec::new();
    for row in &found {
        let key: String = row.try_get(column::AFTER)?;
        let at: Option<DateTime<Utc>> = row.try_get(column::AFTER + 2)?;
        if at.is_none_or(|at| at < cutoff) {
            expired.push(key);
            continue;
        }
        let fingerprint: String = row.try_get(column::AFTER + 1)?;
        let record = Arc::new(rows::record(row)?);
        known.insert(
            key,
            KnownKey::Stored {
                fingerprint,
                record,
            },
        );
    }
    if !expired.is_empty() {
        transaction
            .execute(
                &format!(
                    "UPDATE {TABLE} SET idempotency_key = NULL WHERE idempotency_key = ANY($1)"
                ),
                &[&expired],
            )
            .await?;
    }
    Ok(known)
}

/// The insert's column list: the select list, then the key columns.
fn insert_columns(shared_list: &str) -> String {
    format!("{shared_list}, idempotency_key, idempotency_fingerprint, idempotency_at")
}

/// Column types in `insert_columns` order.
fn column_types() -> Vec<Type> {
    let mut types = Vec::with_capacity(23);
    for field in FIELD_NAMES {
        if TIME_FIELDS.contains(&field) {
            types.extend([Type::TIMESTAMPTZ, Type::INT4]);
        } else {
            types.push(match field {
                "elapsed_seconds" => Type::FLOAT8,
                "rowcount" | "pid" => Type::INT8,
                _ => Type::TEXT,
            });
        }
    }
    types.extend([Type::TEXT, Type::TEXT, Type::TIMESTAMPTZ]);
    types
}

/// One time field's column pair: instants and offsets.
type TimeColumns = (Vec<DateTime<Utc>>, Vec<Option<i32>>);

/// The column values of runs, one array per column, for `unnest`.
struct Columns {
    times: [TimeColumns; 4],
    elapsed: Vec<f64>,
    texts: [Vec<Option<String>>; 9],
    integers: [Vec<i64>; 2],
    keys: [Vec<Option<String>>; 2],
    key_at: Vec<Option<DateTime<Utc>>>,
}

impl Columns {
    fn of(runs: &[&NewRun], now: DateTime<Utc>) -> Self {
        let mut c = Columns {
            times: Default::default(),
            elapsed: Vec::with_capacity(runs.len()),
            texts: Default::default(),
            integers: Default::default(),
            keys: Default::default(),
            key_at: Vec::with_capacity(runs.len()),
        };
        for run in runs {
            let r = &run.record;
            for (slot, time) in
                c.times
                    .iter_mut()
                    .zip([r.start_local(), r.end_local(), r.start_utc(), r.end_utc()])
            {
                slot.0.push(instant(&time));
                slot.1.push(time.offset_seconds());
            }
            c.elapsed.push(r.elapsed_seconds());
            let texts = [
                Some(r.elapsed_human()),
                Some(r.output_file()),
                Some(r.log_file()),
                Some(r.date_code()),
                r.pipeline_name(),
                r.script_name(),
                r.pipeline_type(),
                r.environment(),
                r.archived_file(),
            ];
            for (slot, text) in c.texts.iter_mut().zip(texts) {
                slot.push(text.map(str::to_owned));
            }
            c.integers[0].push(r.rowcount());
            c.integers[1].push(r.pid());
            c.keys[0].push(run.key.as_ref().map(|k| k.key().to_owned()));
            c.keys[1].push(run.key.as_ref().map(|k| k.fingerprint().to_owned()));
            c.key_at.push(run.key.as_ref().map(|_| now));
        }
        c
    }

    /// In `insert_columns` order.
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let [human, output, log, date_code, name, script, kind, environment, archived] =
            &self.texts;
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(23);
        for (instants, offsets) in &self.times {
            params.push(instants);
            params.push(offsets);
        }
        params.extend([
            &self.elapsed as &(dyn ToSql + Sync),
            human,
            output,
            &self.integers[0],
            log,
            &self.integers[1],
            date_code,
            name,
            script,
            kind,
            environment,
            archived,
            &self.keys[0],
            &self.keys[1],
            &self.key_at,
        ]);
        params
    }
}

/// Inserts `runs` in order with one statement; returns how many keyed
/// rows were stored (fewer than given when another transaction holds a
/// key).
async fn insert_rows(
    transaction: &deadpool_postgres::Transaction<'_>,
    runs: &[&NewRun],
) -> Result<usize, RepositoryError> {
    if runs.is_empty() {
        return Ok(0);
    }
    let list = super::table().select_list();
    let types = column_types();
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{}[]", i + 1, t.name()))
        .collect();
    let names: Vec<String> = (1..=types.len()).map(|i| format!("c{i}")).collect();
    let sql = format!(
        "INSERT INTO {TABLE} ({}) SELECT {} FROM unnest({}) WITH ORDINALITY AS r({}, ord) \
ORDER BY ord ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
RETURNING idempotency_key",
        insert_columns(&list),
        names.join(", "),
        arrays.join(", "),
        names.join(", "),
    );
    let columns = Columns::of(runs, Utc::now());
    let prepared = transaction.prepare_cached(&sql).await?;
    let returned = transaction.query(&prepared, &columns.params()).await?;
    let mut keyed = 0;
    for row in &returned {
        if row.try_get::<_, Option<&str>>(0)?.is_some() {
            keyed += 1;
        }
    }
    Ok(keyed)
}

/// `COPY … FROM STDIN (FORMAT binary)` of records, in one transaction.
pub async fn copy_in(
    client: &mut deadpool_postgres::Client,
    records: &[PipelineInfo],
) -> Result<(), RepositoryError> {
    let transaction = client.transaction().await?;
    let list = super::table().select_list();
    let sink = transaction
        .copy_in(&format!("COPY {TABLE} ({list}) FROM STDIN (FORMAT binary)"))
        .await?;
    let mut types = column_types();
    types.truncate(types.len() - 3);
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures_util::pin_mut!(writer);
    for r in records {
        let times = [r.start_local(), r.end_local(), r.start_utc(), r.end_utc()];
        let instants = times.map(|t| instant(&t));
        let offsets = times.map(|t| t.offset_seconds());
        let elapsed = r.elapsed_seconds();
        let (rowcount, pid) = (r.rowcount(), r.pid());
        let (human, output, log, code) = (
            r.elapsed_human(),
            r.output_file(),
            r.log_file(),
            r.date_code(),
        );
        let (name, script, kind, environment, archived) = (
            r.pipeline_name(),
            r.script_name(),
            r.pipeline_type(),
            r.environment(),
            r.archived_file(),
        );
        let row: [&(dyn ToSql + Sync); 20] = [
            &instants[0],
            &offsets[0],
            &instants[1],
            &offsets[1],
            &instants[2],
            &offsets[2],
            &instants[3],
            &offsets[3],
            &elapsed,
            &human,
            &output,
            &rowcount,
            &log,
            &pid,
            &code,
            &name,
            &script,
            &kind,
            &environment,
            &archived,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    transaction.commit().await?;
    METRICS.inserts.inc_by(records.len() as u64);
    Ok(())
}
