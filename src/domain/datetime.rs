//! A datetime that remembers how it was written: naive or aware, and which
//! offset. The Python service echoed values back in the zone they came in,
//! and files in the field mix naive local times with UTC ones, so converting
//! on input would change what clients read back.

use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde::{Serialize, Serializer};
use serde_json::Value;
use speedate::{
    Date, DateTime, DateTimeConfig, MicrosecondsPrecisionOverflowBehavior, ParseError, Time,
    TimeConfig, TimestampUnit,
};
use strum::EnumMessage;

use super::validation::FieldError;

/// The texts `FlexDateTime::parse` accepts, as a regular expression that
/// reads the same in ECMAScript (OpenAPI), Python and Rust: a valid date
/// from 0001 to 9999 (leap days included), optionally a time and a zone; or
/// a Unix timestamp. Timestamps are described only where every value of
/// that shape is in range: up to 14 whole digits (negative 13), an exponent
/// only after a point and never positive. Longer digit texts and positive
/// exponents are accepted when their value is in range (`TIMESTAMP_RANGE`)
/// but not described: a regular expression cannot follow a numeric bound
/// through rounding and exponents.
pub const TEXT_PATTERN: &str = concat!(
    "^(?:",
    // A date in a year other than 0000, or 29 February of a leap year.
    "(?:(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)-",
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])",
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)",
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))",
    "|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])",
    "|(?:0[48]|[2468][048]|[13579][26])00)-02-29)",
    // The time and zone; U+2212 is a minus too.
    "(?:[Tt _](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:[.,][0-9]+)?)?",
    "(?:[Zz]|[+\u{2212}-](?:[01][0-9]|2[0-3]):?[0-5][0-9])?)?",
    // A timestamp: an integer, or a decimal with an optional exponent.
    "|\\+?0*(?:[0-9]{1,14}|(?:[0-9]{1,14}\\.[0-9]*|\\.[0-9]+)(?:[eE](?:-[0-9]+|\\+?0+))?)",
    "|-0*(?:[0-9]{1,13}|(?:[0-9]{1,13}\\.[0-9]*|\\.[0-9]+)(?:[eE](?:-[0-9]+|\\+?0+))?)",
    ")$"
);

/// The numbers `FlexDateTime::from_json` accepts, as (minimum, exclusive
/// maximum): 0001-01-01 to the end of 9999, in milliseconds, since only
/// values above 2e10 in absolute value are read as milliseconds and every
/// value up to that is a date in range as seconds.
pub const TIMESTAMP_RANGE: (f64, f64) = (-62_135_596_800_000.0, 253_402_300_800_000.0);

/// What a datetime is written as in answers (`render`).
pub const RENDERED_PATTERN: &str = concat!(
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}",
    "(?:\\.[0-9]{6})?(?:Z|[+-][0-9]{2}:[0-9]{2})?$"
);

/// The OpenAPI schemas of datetimes: how they are answered (`DateTime`),
/// and what is accepted as text (`DateTimeText`, query parameters) or in a
/// JSON body (`DateTimeInput`: such a text or a number).
pub mod schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
    use utoipa::openapi::{Ref, RefOr};

    use super::{RENDERED_PATTERN, TEXT_PATTERN, TIMESTAMP_RANGE};
    use crate::domain::text_schema;

    documentation_type!(
        DateTime,
        "DateTime",
        text_schema(RENDERED_PATTERN)
            .description(Some(
                "A datetime in the zone it was given: naive `2025-08-14T22:49:07`, UTC \
`2025-08-14T22:49:07Z` or another offset `2025-08-14T22:49:07+05:30`, with `.ffffff` when \
there are microseconds. Naive values are usually local wall-clock times, so this is not \
RFC 3339 `date-time`.",
            ))
            .examples(["2025-08-08T05:07:01", "2025-08-08T12:07:01Z"])
            .into()
    );

    documentation_type!(
        DateTimeText,
        "DateTimeText",
        text_schema(TEXT_PATTERN)
            .description(Some(
                "`YYYY-MM-DD`, or `YYYY-MM-DD` + `T`/`t`/space/`_` + `HH:MM[:SS[.fraction]]` \
(`.` or `,` before the fraction, digits past the sixth dropped) with an optional `Z` or \
`±HH:MM`/`±HHMM` (`−` U+2212 also a minus; without a zone the value is naive); or a Unix \
timestamp in seconds, in milliseconds above 2e10 in absolute value, optionally signed, \
with a fraction and an exponent after the point (`1754654821`, `-0.5`, `1754654821.5e0`). \
Years 0001 to 9999. The pattern leaves out the timestamps that are in range or not \
depending on their value (more than 14 whole digits, negative 13, or a positive \
exponent); those are accepted when the value is in range, as numbers are.",
            ))
            .into()
    );

    documentation_type!(DateTimeInput, "DateTimeInput", {
        let (minimum, below) = TIMESTAMP_RANGE;
        AnyOfBuilder::new()
            .item(RefOr::Ref(Ref::from_schema_name("DateTimeText")))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .minimum(Some(minimum))
                    .exclusive_maximum(Some(below)),
            )
            .description(Some(
                "A datetime text (see `DateTimeText`), or a number: a Unix timestamp in \
seconds, in milliseconds above 2e10 in absolute value.",
            ))
            .into()
    });
}

/// Why a text is not a datetime, worded as pydantic words it (speedate's
/// own descriptions of its errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTimeParseError(&'static str);

impl DateTimeParseError {
    pub fn reason(&self) -> &'static str {
        self.0
    }

    pub fn into_field_error(self) -> FieldError {
        FieldError::new(
            "datetime_from_date_parsing",
            format!("Input should be a valid datetime or date, {}", self.0),
        )
        .with_ctx("error", self.0)
    }
}

impl From<ParseError> for DateTimeParseError {
    fn from(error: ParseError) -> Self {
        Self(error.get_documentation().unwrap_or("invalid datetime"))
    }
}

/// Python's `datetime` starts at year 1; speedate reads `0000` too.
const YEAR_ZERO: DateTimeParseError = DateTimeParseError("year 0 is out of range");

/// speedate as pydantic configures it: Unix timestamps (seconds, or
/// milliseconds above 2e10) are UTC, and fraction digits beyond the sixth
/// are dropped.
const PYDANTIC: DateTimeConfig = DateTimeConfig {
    timestamp_unit: TimestampUnit::Infer,
    time_config: TimeConfig {
        microseconds_precision_overflow_behavior: MicrosecondsPrecisionOverflowBehavior::Truncate,
        unix_timestamp_offset: Some(0),
    },
};

/// A run timestamp: naive wall-clock time, or aware with a fixed UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlexDateTime {
    naive: NaiveDateTime,
    /// Offset east of UTC in seconds; `None` for a naive value.
    offset_seconds: Option<i32>,
}

impl FlexDateTime {
    pub fn naive(naive: NaiveDateTime) -> Self {
        Self {
            naive,
            offset_seconds: None,
        }
    }

    /// An aware value; `None` when the offset is a day or more.
    pub fn aware(naive: NaiveDateTime, offset_seconds: i32) -> Option<Self> {
        (offset_seconds.abs() < 86_400).then_some(Self {
            naive,
            offset_seconds: Some(offset_seconds),
        })
    }

    /// The wall-clock reading, as written.
    pub fn wall_clock(&self) -> NaiveDateTime {
        self.naive
    }

    pub fn offset_seconds(&self) -> Option<i32> {
        self.offset_seconds
    }

    pub fn is_aware(&self) -> bool {
        self.offset_seconds.is_some()
    }

    /// Microseconds since the Unix epoch, treating a naive value as UTC, so
    /// that naive and aware values compare instead of failing.
    pub fn instant_micros(&self) -> i64 {
        let local = self.naive.and_utc().timestamp_micros();
        local - i64::from(self.offset_seconds.unwrap_or(0)) * 1_000_000
    }

    /// The UTC instant `micros` after the epoch (out-of-range values clamp
    /// to the epoch; a key made by this service is always in range).
    pub fn from_instant_micros(micros: i64) -> Self {
        let naive = chrono::DateTime::from_timestamp_micros(micros)
            .unwrap_or_default()
            .naive_utc();
        Self {
            naive,
            offset_seconds: Some(0),
        }
    }

    /// Parses every text form pydantic accepts, with pydantic's parser
    /// (speedate): a datetime (`YYYY-MM-DD?HH:MM[:SS[.fraction]][zone]`) or
    /// a Unix timestamp; failing that, what pydantic's lax mode adds around
    /// it: the text is tried as a date (`YYYY-MM-DD`, midnight, naive), and
    /// the date parser's complaint is the one reported.
    pub fn parse(text: &str) -> Result<Self, DateTimeParseError> {
        let bytes = text.as_bytes();
        match DateTime::parse_bytes_with_config(bytes, &PYDANTIC) {
            Ok(value) => Self::from_parts(value.date, Some(value.time)),
            Err(_) => Self::from_parts(Date::parse_bytes(bytes)?, None),
        }
    }

    /// A JSON number as a Unix timestamp (seconds, or milliseconds above
    /// 2e10), aware UTC.
    fn from_timestamp(number: &serde_json::Number) -> Result<Self, DateTimeParseError> {
        let value = match number.as_i64() {
            Some(whole) => DateTime::from_timestamp_with_config(whole, 0, &PYDANTIC),
            None => DateTime::from_float_with_config(
                number.as_f64().unwrap_or(f64::INFINITY),
                &PYDANTIC,
            ),
        }?;
        Self::from_parts(value.date, Some(value.time))
    }

    /// The value speedate read: midnight (naive) when only a date was given.
    fn from_parts(date: Date, time: Option<Time>) -> Result<Self, DateTimeParseError> {
        if date.year == 0 {
            return Err(YEAR_ZERO);
        }
        let day = NaiveDate::from_ymd_opt(date.year.into(), date.month.into(), date.day.into())
            .ok_or(DateTimeParseError::from(ParseError::OutOfRangeDay))?;
        let Some(time) = time else {
            return Ok(Self::naive(day.and_time(NaiveTime::MIN)));
        };
        let clock = NaiveTime::from_hms_micro_opt(
            time.hour.into(),
            time.minute.into(),
            time.second.into(),
            time.microsecond,
        )
        .ok_or(DateTimeParseError::from(ParseError::OutOfRangeSecond))?;
        let naive = day.and_time(clock);
        match time.tz_offset {
            None => Ok(Self::naive(naive)),
            Some(offset) => {
                Self::aware(naive, offset).ok_or(DateTimeParseError::from(ParseError::OutOfRangeTz))
            }
        }
    }

    /// Reads a JSON value: a string in any accepted form or a number.
    pub fn from_json(value: &Value) -> Result<Self, FieldError> {
        match value {
            Value::String(text) => Self::parse(text).map_err(DateTimeParseError::into_field_error),
            Value::Number(number) => {
                Self::from_timestamp(number).map_err(DateTimeParseError::into_field_error)
            }
            _ => Err(FieldError::new(
                "datetime_type",
                "Input should be a valid datetime",
            )),
        }
    }
}

/// Longest rendering: `YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM`.
const RENDERED_MAX: usize = 32;

impl FlexDateTime {
    /// Writes `2025-08-14T22:49:07[.500000][Z|±HH:MM]` (pydantic's form)
    /// into `buffer` and returns the length. Done by hand because responses
    /// format four of these per record, and the formatting machinery was a
    /// large share of a page's cost.
    fn render(&self, buffer: &mut [u8; RENDERED_MAX]) -> usize {
        fn put(buffer: &mut [u8], at: usize, value: u32, digits: usize) {
            let mut v = value;
            for i in (0..digits).rev() {
                buffer[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        let n = &self.naive;
        put(buffer, 0, n.year().clamp(0, 9999) as u32, 4);
        buffer[4] = b'-';
        put(buffer, 5, n.month(), 2);
        buffer[7] = b'-';
        put(buffer, 8, n.day(), 2);
        buffer[10] = b'T';
        put(buffer, 11, n.hour(), 2);
        buffer[13] = b':';
        put(buffer, 14, n.minute(), 2);
        buffer[16] = b':';
        put(buffer, 17, n.second(), 2);
        let mut len = 19;
        let micros = n.nanosecond() / 1000;
        if micros != 0 {
            buffer[len] = b'.';
            put(buffer, len + 1, micros, 6);
            len += 7;
        }
        match self.offset_seconds {
            None => {}
            Some(0) => {
                buffer[len] = b'Z';
                len += 1;
            }
            Some(offset) => {
                buffer[len] = if offset < 0 { b'-' } else { b'+' };
                let minutes = offset.unsigned_abs() / 60;
                put(buffer, len + 1, minutes / 60, 2);
                buffer[len + 3] = b':';
                put(buffer, len + 4, minutes % 60, 2);
                len += 6;
            }
        }
        len
    }
}

impl fmt::Display for FlexDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buffer = [0u8; RENDERED_MAX];
        let len = self.render(&mut buffer);
        // Only ASCII digits and punctuation were written.
        f.write_str(std::str::from_utf8(&buffer[..len]).map_err(|_| fmt::Error)?)
    }
}

impl FlexDateTime {
    /// Appends the rendering as a JSON string (it never needs escaping).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut buffer = [0u8; RENDERED_MAX];
        let len = self.render(&mut buffer);
        out.push(b'"');
        out.extend_from_slice(&buffer[..len]);
        out.push(b'"');
    }
}

impl Serialize for FlexDateTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = [0u8; RENDERED_MAX];
        let len = self.render(&mut buffer);
        match std::str::from_utf8(&buffer[..len]) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => serializer.collect_str(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shown(text: &str) -> String {
        FlexDateTime::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {}", e.reason()))
            .to_string()
    }

    fn reason(text: &str) -> &'static str {
        FlexDateTime::parse(text).expect_err(text).reason()
    }

    #[test]
    fn accepted_forms_keep_their_zone() {
        assert_eq!(shown("2025-08-14"), "2025-08-14T00:00:00");
        assert_eq!(shown("2025-08-14T22:49:07"), "2025-08-14T22:49:07");
        assert_eq!(shown("2025-08-14t22:49:07"), "2025-08-14T22:49:07");
        assert_eq!(shown("2025-08-14 22:49:07"), "2025-08-14T22:49:07");
        assert_eq!(shown("2025-08-14_22:49"), "2025-08-14T22:49:00");
        assert_eq!(shown("2025-08-14T22:49:07Z"), "2025-08-14T22:49:07Z");
        assert_eq!(shown("2025-08-14T22:49:07z"), "2025-08-14T22:49:07Z");
        assert_eq!(shown("2025-08-14T22:49:07+00:00"), "2025-08-14T22:49:07Z");
        assert_eq!(
            shown("2025-08-14T22:49:07+0530"),
            "2025-08-14T22:49:07+05:30"
        );
        assert_eq!(
            shown("2025-08-14T22:49:07-03:00"),
            "2025-08-14T22:49:07-03:00"
        );
        assert_eq!(
            shown("2025-08-14T22:49:07.5Z"),
            "2025-08-14T22:49:07.500000Z"
        );
        assert_eq!(
            shown("2025-08-14T22:49:07.123456789"),
            "2025-08-14T22:49:07.123456"
        );
        assert_eq!(shown("2025-08-14T22:49:07.000000"), "2025-08-14T22:49:07");
        assert_eq!(
            shown("2025-08-14T22:49:07.000001-23:59"),
            "2025-08-14T22:49:07.000001-23:59"
        );
        assert_eq!(
            shown("1600-01-01T00:00:00+00:30"),
            "1600-01-01T00:00:00+00:30"
        );
        assert_eq!(
            serde_json::to_string(&FlexDateTime::parse("9999-12-31T23:59:59.999999Z").unwrap())
                .unwrap(),
            "\"9999-12-31T23:59:59.999999Z\""
        );
    }

    #[test]
    fn digits_are_unix_timestamps_in_utc() {
        assert_eq!(shown("1755211747"), "2025-08-14T22:49:07Z");
        assert_eq!(shown("20250814"), "1970-08-23T09:13:34Z");
        assert_eq!(shown("1755211747500"), "2025-08-14T22:49:07.500000Z");
        assert_eq!(shown("1755211747.25"), "2025-08-14T22:49:07.250000Z");
        let from_number = FlexDateTime::from_json(&json!(1755211747)).unwrap();
        assert_eq!(from_number.to_string(), "2025-08-14T22:49:07Z");
    }

    #[test]
    fn rejected_forms_say_why_like_pydantic() {
        assert_eq!(reason("2025/08/14"), "invalid date separator, expected `-`");
        assert_eq!(reason("2025-8-14"), "input is too short");
        assert_eq!(reason(" 2025-08-14"), "invalid character in year");
        assert_eq!(
            reason("2025-08-14T25:00:00"),
            "unexpected extra characters at the end of the input"
        );
        assert_eq!(
            reason("2025-08-14T10:00:00+05"),
            "unexpected extra characters at the end of the input"
        );
        assert_eq!(reason("abc"), "input is too short");
        assert_eq!(reason(""), "input is too short");
        assert_eq!(
            reason("2025-13-01"),
            "month value is outside expected range of 1-12"
        );
        assert_eq!(reason("2025-02-30"), "day value is outside expected range");
        assert_eq!(reason("2025-0a-01"), "invalid character in month");
    }

    #[test]
    fn non_strings_are_type_errors() {
        for value in [json!(null), json!(true), json!([1]), json!({})] {
            assert_eq!(
                FlexDateTime::from_json(&value).unwrap_err().kind,
                "datetime_type"
            );
        }
        let err = FlexDateTime::from_json(&json!("nope")).unwrap_err();
        assert_eq!(err.kind, "datetime_from_date_parsing");
        assert_eq!(
            err.msg,
            "Input should be a valid datetime or date, input is too short"
        );
    }

    /// A pattern without its anchors, to generate texts from.
    fn unanchored(pattern: &str) -> &str {
        &pattern[1..pattern.len() - 1]
    }

    /// Number texts the pattern leaves out because only some of their
    /// values are in range: more whole digits than 14 (negative 13), or a
    /// positive exponent.
    fn long_timestamp(text: &str) -> bool {
        regex::Regex::new(concat!(
            "^(?:\\+?0*[1-9][0-9]{14,}|-0*[1-9][0-9]{13,})(?:\\.[0-9]*(?:[eE][+-]?[0-9]+)?)?$",
            "|^[+-]?(?:[0-9]+\\.[0-9]*|\\.[0-9]+)[eE]\\+?0*[1-9][0-9]*$",
        ))
        .unwrap()
        .is_match(text)
    }

    fn in_timestamp_range(value: f64) -> bool {
        let (minimum, below) = TIMESTAMP_RANGE;
        minimum <= value && value < below
    }

    proptest::proptest! {
        #[test]
        fn every_text_the_pattern_describes_is_accepted_and_rendered_as_documented(
            text in proptest::string::string_regex(unanchored(TEXT_PATTERN)).unwrap()
        ) {
            let parsed = FlexDateTime::parse(&text);
            proptest::prop_assert!(parsed.is_ok(), "{:?}: {:?}", text, parsed);
            let rendered = parsed.unwrap().to_string();
            let documented = regex::Regex::new(RENDERED_PATTERN).unwrap();
            proptest::prop_assert!(documented.is_match(&rendered), "{}", rendered);
        }

        #[test]
        fn every_accepted_text_is_described(
            text in proptest::string::string_regex(unanchored(TEXT_PATTERN)).unwrap(),
            at in 0usize..40,
            edit in 0u8..3,
            with in proptest::sample::select(&[
                '0', '1', '2', '9', '-', '\u{2212}', ':', '.', ',', 'T', ' ', 'Z', '+', '_', 'e', 'x',
            ][..]),
        ) {
            let mut chars: Vec<char> = text.chars().collect();
            let at = at.min(chars.len());
            match edit {
                0 => chars.insert(at, with),
                1 if at < chars.len() => { chars.remove(at); }
                _ if at < chars.len() => chars[at] = with,
                _ => chars.push(with),
            }
            let edited: String = chars.into_iter().collect();
            let described = regex::Regex::new(TEXT_PATTERN).unwrap().is_match(&edited);
            let accepted = FlexDateTime::parse(&edited).is_ok();
            if long_timestamp(&edited) {
                // Left out of the pattern, and accepted just when in range.
                let value: f64 = edited.parse().unwrap();
                proptest::prop_assert!(
                    !described && accepted == in_timestamp_range(value),
                    "{:?}: described {}, accepted {}", edited, described, accepted
                );
            } else {
                proptest::prop_assert!(
                    described == accepted,
                    "{:?}: described {}, accepted {}", edited, described, accepted
                );
            }
        }

        #[test]
        fn numbers_are_accepted_just_in_the_documented_range(
            float in proptest::prop_oneof![
                -7e13..3e14f64,
                proptest::num::f64::NORMAL | proptest::num::f64::ZERO,
            ],
            integer in proptest::prop_oneof![
                -70_000_000_000_000..300_000_000_000_000i64,
                proptest::num::i64::ANY,
            ],
        ) {
            let accepted = |value: Value| FlexDateTime::from_json(&value).is_ok();
            proptest::prop_assert_eq!(accepted(json!(float)), in_timestamp_range(float), "{}", float);
            proptest::prop_assert_eq!(
                accepted(json!(integer)),
                in_timestamp_range(integer as f64),
                "{}", integer
            );
        }
    }

    #[test]
    fn timestamp_range_edges_are_exact() {
        let (minimum, below) = TIMESTAMP_RANGE;
        let float = |value: f64| FlexDateTime::from_json(&json!(value)).is_ok();
        let integer = |value: i64| FlexDateTime::from_json(&json!(value)).is_ok();
        let text = |value: &str| FlexDateTime::parse(value).is_ok();
        assert!(float(minimum) && !float(minimum.next_down()));
        assert!(float(below.next_down()) && !float(below));
        assert!(integer(minimum as i64) && !integer(minimum as i64 - 1));
        assert!(integer(below as i64 - 1) && !integer(below as i64));
        assert!(text("-62135596800000") && !text("-62135596800001"));
        assert!(text("253402300799999.5") && !text("253402300800000"));
        // Past 2e10 in absolute value numbers are milliseconds; with years
        // from 0001 on, both readings are in range on either side of it.
        let utc = |value: i64| FlexDateTime::from_json(&json!(value)).unwrap().to_string();
        assert_eq!(utc(20_000_000_000), "2603-10-11T11:33:20Z");
        assert_eq!(utc(20_000_000_001), "1970-08-20T11:33:20.001000Z");
        assert_eq!(utc(-20_000_000_000), "1336-03-23T12:26:40Z");
        assert_eq!(utc(-20_000_000_001), "1969-05-14T12:26:39.999000Z");
        assert_eq!(shown("0001-01-01"), "0001-01-01T00:00:00");
    }

    /// Random edits seldom land on a rule's edge; these do (each decided
    /// as pydantic 2.14 decides it).
    #[test]
    fn the_pattern_follows_each_rule_of_the_parser_to_its_edge() {
        let pattern = regex::Regex::new(TEXT_PATTERN).unwrap();
        for (text, accepted) in [
            ("0001-01-01", true),
            ("0000-12-31", false),
            ("1599-12-31T23:59:59", true),
            ("0004-02-29", true),
            ("0100-02-29", false),
            ("0400-02-29", true),
            ("2025-08-14_22:49", true),
            ("2025-08-14 22:49:07z", true),
            ("2025-08-14T22:49:07,5", true),
            ("2025-08-14T22:49:07.1234567891", true),
            ("2025-08-14T22:49:07.", false),
            ("2025-08-14T22:49:07,Z", false),
            ("2025-08-14T22:49\u{2212}03:00", true),
            ("2025-08-14T22:49:07\u{2212}0300", true),
            ("2025-08-14T22:49:07+23:59", true),
            ("2025-08-14T22:49:07+24:00", false),
            ("2025-08-14T22:49:07+05:60", false),
            ("+5", true),
            ("-0", true),
            ("+-1", false),
            ("-", false),
            (".5", true),
            ("-.5", true),
            ("5.", true),
            (".", false),
            ("5.e-1", true),
            ("1.5E-0", true),
            ("1.5e-99999999999999999999", true),
            ("1e-5", false),
            ("1.5e", false),
            ("99999999999999", true),
            ("-9999999999999", true),
            ("00000000000000000000000001", true),
        ] {
            assert_eq!(FlexDateTime::parse(text).is_ok(), accepted, "{text}");
            assert_eq!(pattern.is_match(text), accepted, "{text}");
        }
        // The tolerance: left out of the pattern, accepted when in range.
        for (text, accepted) in [
            ("1.5e3", true),
            ("9.9e99", false),
            ("253402300799999", true),
            ("253402300800000", false),
            ("-62135596800000", true),
            ("-62135596800001", false),
        ] {
            assert!(long_timestamp(text) && !pattern.is_match(text), "{text}");
            assert_eq!(FlexDateTime::parse(text).is_ok(), accepted, "{text}");
        }
    }

    #[test]
    fn what_speedate_accepts_beyond_the_usual_forms_is_accepted_too() {
        // pydantic accepts these because its parser does.
        assert_eq!(
            shown("2025-08-14T22:49:07,5Z"),
            "2025-08-14T22:49:07.500000Z"
        );
        assert_eq!(
            shown("2025-08-14T22:49:07.1234567891234"),
            "2025-08-14T22:49:07.123456"
        );
        assert_eq!(
            shown("2025-08-14T22:49:07\u{2212}03:00"),
            "2025-08-14T22:49:07-03:00"
        );
        assert_eq!(shown("1500-01-01"), "1500-01-01T00:00:00");
        assert_eq!(shown("-1"), "1969-12-31T23:59:59Z");
        // What pydantic adds: a Python datetime has no year 0.
        assert_eq!(reason("0000-01-01T00:00:00"), "year 0 is out of range");
        assert_eq!(
            reason("2025-08-14T22:49:07."),
            "unexpected extra characters at the end of the input"
        );
        let far = FlexDateTime::from_json(&json!(1e20)).unwrap_err();
        assert_eq!(
            far.msg,
            "Input should be a valid datetime or date, dates after 9999 are not supported as unix timestamps"
        );
        let fraction = FlexDateTime::from_json(&json!(1755211747500.5)).unwrap();
        assert_eq!(fraction.to_string(), "2025-08-14T22:49:07.500500Z");
    }

    #[test]
    fn naive_values_compare_as_utc() {
        let naive = FlexDateTime::parse("2025-09-02T12:00:00").unwrap();
        let utc = FlexDateTime::parse("2025-09-02T12:00:00Z").unwrap();
        let ahead = FlexDateTime::parse("2025-09-02T14:00:00+02:00").unwrap();
        assert_eq!(naive.instant_micros(), utc.instant_micros());
        assert_eq!(ahead.instant_micros(), utc.instant_micros());
        assert!(!naive.is_aware() && utc.is_aware());
    }
}
