//! Opaque keyset cursors for `/get_pipeline_info?cursor=`.
//!
//! A cursor carries the last position served (start instant and insertion
//! tiebreak) and a fingerprint of the filters it was issued for, encoded as
//! URL-safe base64 so clients treat it as a token, not a format to build.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::domain::FieldError;
use crate::repository::{RunFilter, RunKey};

/// Bumped if the layout ever changes, so old cursors are refused cleanly.
const VERSION: &str = "1";

/// What a cursor looks like: empty, or the URL-safe base64 (no padding)
/// of `1.<start>.<seq>.<16 hex digits>` — which always starts `MS4`, then a
/// digit or minus sign's last six bits, 30 to 80 characters in all.
pub const PATTERN: &str = "^(?:MS4[w-z0-5t][A-Za-z0-9_-]{26,76})?$";

crate::domain::documentation_type!(
    CursorToken,
    "CursorToken",
    crate::domain::text_schema(PATTERN)
        .description(Some(
            "Empty to start, then the `next_cursor` of the previous answer. Only cursors this \
service issued for the same filters are accepted; any other is refused (422).",
        ))
        .into()
);

/// Encodes the position after which the next page starts.
pub fn encode(key: RunKey, filter: &RunFilter) -> String {
    let text = format!(
        "{VERSION}.{}.{}.{:016x}",
        key.start_micros,
        key.seq,
        fingerprint(filter)
    );
    URL_SAFE_NO_PAD.encode(text)
}

/// Reads a cursor sent back with `filter`: `None` for the empty cursor that
/// starts from the newest record.
pub fn decode(text: &str, filter: &RunFilter) -> Result<Option<RunKey>, FieldError> {
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        FieldError::new(
            "value_error",
            "Value error, not a cursor issued by this service; start again with cursor=",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split('.');
    let (Some(VERSION), Some(start), Some(seq), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(invalid());
    };
    let key = RunKey {
        start_micros: start.parse().map_err(|_| invalid())?,
        seq: seq.parse().map_err(|_| invalid())?,
    };
    let hash = u64::from_str_radix(hash, 16).map_err(|_| invalid())?;
    if hash != fingerprint(filter) {
        return Err(FieldError::new(
            "value_error",
            "Value error, this cursor was issued for other filters; send the same filters or start again with cursor=",
        ));
    }
    Ok(Some(key))
}

/// A stable 64-bit FNV-1a hash of the filters' meaning: datetimes by their
/// instant, so `2025-01-01` and `2025-01-01T00:00:00Z` are the same filter.
/// (Rust's own hasher is not guaranteed stable between releases, and a
/// cursor may outlive one.)
pub fn fingerprint(filter: &RunFilter) -> u64 {
    let mut canonical = String::new();
    let mut put = |name: &str, value: Option<String>| {
        canonical.push_str(name);
        canonical.push('=');
        match value {
            Some(v) => {
                canonical.push_str(&v.len().to_string());
                canonical.push(':');
                canonical.push_str(&v);
            }
            None => canonical.push('-'),
        }
        canonical.push(';');
    };
    put(
        "start_utc",
        filter.start_utc.map(|t| t.instant_micros().to_string()),
    );
    put(
        "end_utc",
        filter.end_utc.map(|t| t.instant_micros().to_string()),
    );
    put("min_rowcount", filter.min_rowcount.map(|n| n.to_string()));
    put("max_rowcount", filter.max_rowcount.map(|n| n.to_string()));
    put("pipeline_name", filter.pipeline_name.clone());
    put("script_name", filter.script_name.clone());
    put("pipeline_type", filter.pipeline_type.clone());
    put("environment", filter.environment.clone());
    canonical.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FlexDateTime;

    fn key() -> RunKey {
        RunKey {
            start_micros: 1_754_000_000_123_456,
            seq: 42,
        }
    }

    #[test]
    fn round_trips_with_the_same_filters() {
        let filter = RunFilter {
            pipeline_name: Some("sales".into()),
            ..RunFilter::default()
        };
        let cursor = encode(key(), &filter);
        let documented = regex::Regex::new(PATTERN).unwrap();
        assert!(documented.is_match(&cursor) && documented.is_match(""));
        assert_eq!(decode(&cursor, &filter).unwrap(), Some(key()));
        assert_eq!(decode("", &filter).unwrap(), None);
    }

    #[test]
    fn every_cursor_matches_the_documented_pattern() {
        let documented = regex::Regex::new(PATTERN).unwrap();
        let filter = RunFilter::default();
        for (start_micros, seq) in [(0, 0), (-1, 7), (i64::MIN, i64::MIN), (i64::MAX, i64::MAX)] {
            let cursor = encode(RunKey { start_micros, seq }, &filter);
            assert!(documented.is_match(&cursor), "{cursor}");
        }
        assert!(!documented.is_match("MS4x"));
    }

    #[test]
    fn other_filters_or_garbage_are_refused() {
        let filter = RunFilter::default();
        let cursor = encode(key(), &filter);
        let other = RunFilter {
            environment: Some("prod".into()),
            ..RunFilter::default()
        };
        let error = decode(&cursor, &other).unwrap_err();
        assert!(error.msg.contains("other filters"), "{}", error.msg);
        for garbage in ["x", "!!!", "MQ", &URL_SAFE_NO_PAD.encode("2.1.2.0")] {
            let error = decode(garbage, &filter).unwrap_err();
            assert!(
                error.msg.contains("not a cursor"),
                "{garbage}: {}",
                error.msg
            );
        }
    }

    #[test]
    fn equal_instants_are_the_same_filter() {
        let a = RunFilter {
            start_utc: Some(FlexDateTime::parse("2025-01-01").unwrap()),
            ..RunFilter::default()
        };
        let b = RunFilter {
            start_utc: Some(FlexDateTime::parse("2025-01-01T01:00:00+01:00").unwrap()),
            ..RunFilter::default()
        };
        assert_eq!(fingerprint(&a), fingerprint(&b));
        // A value moved from one field to another is a different filter.
        let c = RunFilter {
            script_name: Some("x".into()),
            ..RunFilter::default()
        };
        let d = RunFilter {
            environment: Some("x".into()),
            ..RunFilter::default()
        };
        assert_ne!(fingerprint(&c), fingerprint(&d));
    }
}
