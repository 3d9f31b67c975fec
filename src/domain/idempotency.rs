//! Idempotency keys: a client-chosen name for one insert, so a retried
//! request stores nothing twice.

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

/// SHA-256 of the record's JSON, in hex.
pub fn fingerprint(record: &PipelineInfo) -> String {
    let json = serde_json::to_vec(record).unwrap_or_default();
    Sha256::digest(&json)
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
