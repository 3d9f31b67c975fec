//! Idempotency keys: a client-chosen name for one insert, so a retried
//! request stores nothing twice.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::record::PipelineInfo;
use super::validation::FieldError;

/// Longest key accepted (and the width of the Oracle column).
pub const MAX_KEY_CHARS: usize = 255;

/// A key with the fingerprint of the record it was sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    key: String,
    fingerprint: String,
}

impl IdempotencyKey {
    /// Checks `key` (1–255 visible ASCII characters, as HTTP header values
    /// reliably carry) and fingerprints the validated `record`. The
    /// fingerprint is of the normalised record, so the same run sent with
    /// different spacing or key order is still the same request.
    pub fn parse(key: &str, record: &PipelineInfo) -> Result<Self, FieldError> {
        if key.is_empty() || key.len() > MAX_KEY_CHARS {
            return Err(FieldError::new(
                "string_too_long",
                format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters"),
            )
            .with_ctx("max_length", MAX_KEY_CHARS));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FieldError::new(
                "value_error",
                "Value error, Idempotency-Key must be visible ASCII characters without spaces",
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            fingerprint: fingerprint(record),
        })
    }

    /// A key read back from storage.
    pub fn stored(key: String, fingerprint: String) -> Self {
        Self { key, fingerprint }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// The member order the fingerprinted JSON uses: the order records were
/// written in when fingerprints were first stored. Fingerprints are kept
/// with their keys (stored lines, Oracle rows), so they must not follow
/// later changes of the written order, or a retry sent across an upgrade
/// would be refused as a different record.
const FINGERPRINT_ORDER: [&str; 16] = [
    "start_local",
    "end_local",
    "start_utc",
    "end_utc",
    "elapsed_seconds",
    "elapsed_human",
    "output_file",
    "log_file",
    "rowcount",
    "pid",
    "date_code",
    "pipeline_name",
    "script_name",
    "pipeline_type",
    "environment",
    "archived_file",
];

/// SHA-256, in hex, of the record's compact JSON with its members in
/// `FINGERPRINT_ORDER`.
pub fn fingerprint(record: &PipelineInfo) -> String {
    let members = match serde_json::to_value(record) {
        Ok(Value::Object(members)) => members,
        _ => Map::new(),
    };
    let mut json = String::with_capacity(512);
    json.push('{');
    for (index, name) in FINGERPRINT_ORDER.iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        let value = members.get(*name).unwrap_or(&Value::Null);
        json.push_str(&format!("{}:{value}", Value::from(*name)));
    }
    json.push('}');
    Sha256::digest(json.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::tests::sample;

    #[test]
    fn keys_are_checked_and_fingerprints_follow_the_record() {
        let record = PipelineInfo::parse(&sample(), "body").unwrap();
        let key = IdempotencyKey::parse("run-2025-08-08/sales", &record).unwrap();
        assert_eq!(key.fingerprint().len(), 64);
        let mut changed = sample();
        changed["rowcount"] = 1.into();
        let other = PipelineInfo::parse(&changed, "body").unwrap();
        assert_ne!(fingerprint(&other), key.fingerprint());
        // The value stored with keys before records were written in the
        // model's order: it must not change.
        assert_eq!(
            key.fingerprint(),
            "cd38704d81ee9e5e790dee91c442fca973a72188636929426340ee57d9116d99"
        );
        // Same values written differently: same fingerprint.
        let mut lenient = sample();
        lenient["rowcount"] = "8543".into();
        let same = PipelineInfo::parse(&lenient, "body").unwrap();
        assert_eq!(fingerprint(&same), key.fingerprint());
        for bad in ["", "with space", "tab\there", "é", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad, &record).is_err(), "{bad:?}");
        }
    }
}
