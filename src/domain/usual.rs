//! The usual shape of a run record, read without building a JSON tree:
//! every string without escapes, numbers as JSON numbers, datetimes as
//! strings. Stored lines and bulk items nearly always look like this, so
//! reading them this way first makes loading and bulk ingest several times
//! faster; anything else (lenient values, escapes, duplicate keys, errors)
//! falls back to the validating parser, which also explains problems.

use std::sync::Arc;

use serde::Deserialize;

use super::datetime::FlexDateTime;
use super::record::{check_length, PipelineInfo, RecordParts, MAX_STRING_CHARS};

#[derive(Deserialize)]
pub struct UsualRecord<'a> {
    start_local: &'a str,
    end_local: &'a str,
    start_utc: &'a str,
    end_utc: &'a str,
    elapsed_seconds: f64,
    elapsed_human: &'a str,
    output_file: &'a str,
    log_file: &'a str,
    rowcount: i64,
    pid: i64,
    date_code: &'a str,
    /// Outer `None`: the key is absent (on a stored line, a legacy record
    /// whose name is inferred).
    #[serde(default, deserialize_with = "present")]
    pub pipeline_name: Option<Option<&'a str>>,
    #[serde(default)]
    script_name: Option<&'a str>,
    #[serde(default)]
    pipeline_type: Option<&'a str>,
    #[serde(default)]
    environment: Option<&'a str>,
    #[serde(default)]
    archived_file: Option<&'a str>,
    /// The reserved member of a stored line that carries its idempotency key.
    #[serde(default, rename = "_idempotency")]
    pub stored_key: Option<UsualStoredKey<'a>>,
    /// The member of a bulk item that carries its idempotency key.
    #[serde(default, rename = "_idempotency_key")]
    pub item_key: Option<&'a str>,
}

/// A stored line's `_idempotency` member.
#[derive(Deserialize)]
pub struct UsualStoredKey<'a> {
    pub key: &'a str,
    pub fingerprint: &'a str,
    pub at: &'a str,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<&'de str>>, D::Error> {
    Option::<&'de str>::deserialize(d).map(Some)
}

impl<'a> UsualRecord<'a> {
    /// Reads `bytes`; `None` when they are not in the usual shape.
    pub fn read(bytes: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// The output, log and archive paths: what legacy name inference reads.
    pub fn paths(&self) -> (&'a str, &'a str) {
        (self.output_file, self.log_file)
    }

    /// Whether every string respects the client length limit.
    pub fn within_client_limits(&self) -> bool {
        let short = |text: &str| check_length(text, MAX_STRING_CHARS).is_ok();
        [
            self.start_local,
            self.end_local,
            self.start_utc,
            self.end_utc,
            self.elapsed_human,
            self.output_file,
            self.log_file,
            self.date_code,
        ]
        .into_iter()
        .chain(self.pipeline_name.flatten())
        .chain(self.script_name)
        .chain(self.pipeline_type)
        .chain(self.environment)
        .chain(self.archived_file)
        .all(short)
    }

    /// The record, with `pipeline_name` as given (`name`) and the
    /// classification strings made by `share`; `None` when a value breaks a
    /// rule (an unparsable datetime, a non-finite duration).
    pub fn into_record(
        self,
        name: Option<&str>,
        share: impl Fn(&str) -> Arc<str>,
    ) -> Option<PipelineInfo> {
        let time = |text: &str| FlexDateTime::parse(text).ok();
        PipelineInfo::from_parts(RecordParts {
            start_local: time(self.start_local)?,
            end_local: time(self.end_local)?,
            start_utc: time(self.start_utc)?,
            end_utc: time(self.end_utc)?,
            elapsed_seconds: self.elapsed_seconds,
            elapsed_human: self.elapsed_human,
            output_file: self.output_file,
            log_file: self.log_file,
            rowcount: self.rowcount,
            pid: self.pid,
            date_code: self.date_code,
            classes: [name, self.script_name, self.pipeline_type, self.environment]
                .map(|value| value.map(&share)),
            archived_file: self.archived_file,
        })
    }
}
