//! A datetime that remembers how it was written: naive or aware, and which
//! offset. The Python service echoed values back in the zone they came in,
//! and files in the field mix naive local times with UTC ones, so converting
//! on input would change what clients read back.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::validation::FieldError;

/// Unix timestamps above this (in absolute value) are milliseconds.
const MILLISECOND_WATERSHED: f64 = 2e10;

/// The texts `FlexDateTime::parse` accepts, as a regular expression that
/// reads the same in ECMAScript (OpenAPI), Python and Rust: a valid date
/// from 1600 on (leap days included), optionally a time and a zone; or a
/// Unix timestamp, limited to the digit counts whose every value is in
/// range (14 digits, negative 10).
pub const TEXT_PATTERN: &str = concat!(
    "^(?:",
    // A date, or 29 February of a leap year.
    "(?:(?:1[6-9]|[2-9][0-9])[0-9]{2}-",
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])",
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)",
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))",
    "|(?:(?:1[6-9]|[2-9][0-9])(?:0[48]|[2468][048]|[13579][26])",
    "|(?:16|[2468][048]|[3579][26])00)-02-29)",
    // The time and zone.
    "(?:[Tt _](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{1,9})?)?",
    "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])?)?",
    // A timestamp.
    "|(?:0*[0-9]{1,14}|-0*[0-9]{1,10})(?:\\.[0-9]+)?",
    ")$"
);

/// The numbers `FlexDateTime::from_timestamp` accepts, as (minimum,
/// exclusive maximum): seconds from 1600 to 9999, read as milliseconds
/// beyond ±2e10 — which leaves a gap just below -2e10.
pub const TIMESTAMP_RANGES: [(f64, f64); 2] = [
    (-11_676_096_000_000.0, -MILLISECOND_WATERSHED),
    (-11_676_096_000.0, 253_402_300_800_000.0),
];

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

    use super::{RENDERED_PATTERN, TEXT_PATTERN, TIMESTAMP_RANGES};
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
with an optional `Z` or `±HH:MM`/`±HHMM` (without one the value is naive); or a Unix \
timestamp in seconds, in milliseconds above 2e10 (`1754654821`). Years 1600 to 9999.",
            ))
            .into()
    );

    documentation_type!(DateTimeInput, "DateTimeInput", {
        let mut choices =
            AnyOfBuilder::new().item(RefOr::Ref(Ref::from_schema_name("DateTimeText")));
        for (minimum, below) in TIMESTAMP_RANGES {
            choices = choices.item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .minimum(Some(minimum))
                    .exclusive_maximum(Some(below)),
            );
        }
        choices
            .description(Some(
                "A datetime text (see `DateTimeText`), or a number: a Unix timestamp in \
seconds, in milliseconds above 2e10 in absolute value.",
            ))
            .into()
    });
}

/// Why a text is not a datetime, worded as pydantic words it.
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

const TOO_SHORT: DateTimeParseError = DateTimeParseError("input is too short");
const EXTRA_CHARACTERS: DateTimeParseError =
    DateTimeParseError("unexpected extra characters at the end of the input");
const BAD_YEAR: DateTimeParseError = DateTimeParseError("invalid character in year");
const BAD_DATE_SEP: DateTimeParseError = DateTimeParseError("invalid date separator, expected `-`");
const BAD_MONTH: DateTimeParseError = DateTimeParseError("invalid character in month");
const BAD_DAY: DateTimeParseError = DateTimeParseError("invalid character in day");
const MONTH_RANGE: DateTimeParseError =
    DateTimeParseError("month value is outside expected range of 1-12");
const DAY_RANGE: DateTimeParseError = DateTimeParseError("day value is outside expected range");
const YEAR_TOO_SMALL: DateTimeParseError =
    DateTimeParseError("years before 1600 are not supported");
const DATE_TOO_SMALL: DateTimeParseError =
    DateTimeParseError("dates before 1600 are not supported as unix timestamps");
const DATE_TOO_LARGE: DateTimeParseError =
    DateTimeParseError("dates after 9999 are not supported as unix timestamps");
/// Only reported internally: a time part that fails makes the whole value
/// fall back to date parsing, whose message is what the client sees.
const BAD_TIME: DateTimeParseError = DateTimeParseError("invalid time");

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

    /// Parses every text form the contract accepts.
    pub fn parse(text: &str) -> Result<Self, DateTimeParseError> {
        let bytes = text.as_bytes();
        if let Ok(value) = parse_date_time(bytes) {
            return Ok(value);
        }
        if let Some(number) = timestamp_text(text) {
            return Self::from_timestamp(number);
        }
        // Like pydantic, a value that is not a datetime is tried as a plain
        // date, and the date parser's complaint is the one reported.
        let date = parse_date_prefix(bytes)?;
        if bytes.len() > 10 {
            return Err(EXTRA_CHARACTERS);
        }
        Ok(Self::naive(date.and_time(NaiveTime::MIN)))
    }

    /// A Unix timestamp in seconds (milliseconds above 2e10), aware UTC.
    pub fn from_timestamp(value: f64) -> Result<Self, DateTimeParseError> {
        let seconds_value = if value.abs() > MILLISECOND_WATERSHED {
            value / 1000.0
        } else {
            value
        };
        if !seconds_value.is_finite() {
            return Err(DATE_TOO_LARGE);
        }
        let mut seconds = seconds_value.floor();
        let mut micros = ((seconds_value - seconds) * 1_000_000.0).round();
        if micros >= 1_000_000.0 {
            seconds += 1.0;
            micros -= 1_000_000.0;
        }
        // 1600-01-01 and 9999-12-31T23:59:59, the range pydantic supports.
        if seconds < -11_676_096_000.0 {
            return Err(DATE_TOO_SMALL);
        }
        if seconds > 253_402_300_799.0 {
            return Err(DATE_TOO_LARGE);
        }
        let moment =
            DateTime::from_timestamp(seconds as i64, micros as u32 * 1000).ok_or(DATE_TOO_LARGE)?;
        Ok(Self {
            naive: moment.naive_utc(),
            offset_seconds: Some(0),
        })
    }

    /// Reads a JSON value: a string in any accepted form or a number.
    pub fn from_json(value: &Value) -> Result<Self, FieldError> {
        match value {
            Value::String(text) => Self::parse(text).map_err(DateTimeParseError::into_field_error),
            Value::Number(number) => number
                .as_f64()
                .ok_or(DATE_TOO_LARGE)
                .and_then(Self::from_timestamp)
                .map_err(DateTimeParseError::into_field_error),
            _ => Err(FieldError::new(
                "datetime_type",
                "Input should be a valid datetime",
            )),
        }
    }
}

/// `-?digits[.digits]`: the texts read as Unix timestamps.
fn timestamp_text(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return None;
    }
    text.parse().ok()
}

fn digit(bytes: &[u8], index: usize, error: DateTimeParseError) -> Result<u32, DateTimeParseError> {
    match bytes.get(index) {
        Some(b) if b.is_ascii_digit() => Ok(u32::from(b - b'0')),
        _ => Err(error),
    }
}

fn two_digits(
    bytes: &[u8],
    index: usize,
    error: DateTimeParseError,
) -> Result<u32, DateTimeParseError> {
    Ok(digit(bytes, index, error)? * 10 + digit(bytes, index + 1, error)?)
}

/// `YYYY-MM-DD` at the start of `bytes`, ignoring what follows.
fn parse_date_prefix(bytes: &[u8]) -> Result<NaiveDate, DateTimeParseError> {
    if bytes.len() < 10 {
        return Err(TOO_SHORT);
    }
    let year = two_digits(bytes, 0, BAD_YEAR)? * 100 + two_digits(bytes, 2, BAD_YEAR)?;
    if year < 1600 {
        return Err(YEAR_TOO_SMALL);
    }
    if bytes[4] != b'-' {
        return Err(BAD_DATE_SEP);
    }
    let month = two_digits(bytes, 5, BAD_MONTH)?;
    if bytes[7] != b'-' {
        return Err(BAD_DATE_SEP);
    }
    let day = two_digits(bytes, 8, BAD_DAY)?;
    if !(1..=12).contains(&month) {
        return Err(MONTH_RANGE);
    }
    NaiveDate::from_ymd_opt(year as i32, month, day).ok_or(DAY_RANGE)
}

/// `YYYY-MM-DD?HH:MM[:SS[.fraction]][zone]`.
fn parse_date_time(bytes: &[u8]) -> Result<FlexDateTime, DateTimeParseError> {
    let date = parse_date_prefix(bytes)?;
    if !matches!(bytes.get(10), Some(b'T' | b't' | b' ' | b'_')) {
        return Err(BAD_TIME);
    }
    let hour = two_digits(bytes, 11, BAD_TIME)?;
    if bytes.get(13) != Some(&b':') {
        return Err(BAD_TIME);
    }
    let minute = two_digits(bytes, 14, BAD_TIME)?;
    let mut pos = 16;
    let mut second = 0;
    let mut micros = 0;
    if bytes.get(pos) == Some(&b':') {
        second = two_digits(bytes, pos + 1, BAD_TIME)?;
        pos += 3;
        if bytes.get(pos) == Some(&b'.') {
            pos += 1;
            let start = pos;
            while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
                pos += 1;
            }
            let count = pos - start;
            if count == 0 || count > 9 {
                return Err(BAD_TIME);
            }
            // Kept to microseconds, truncated.
            for i in 0..6 {
                let d = if i < count {
                    u32::from(bytes[start + i] - b'0')
                } else {
                    0
                };
                micros = micros * 10 + d;
            }
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(BAD_TIME);
    }
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros).ok_or(BAD_TIME)?;
    let naive = date.and_time(time);
    let offset = parse_zone(&bytes[pos..])?;
    match offset {
        None => Ok(FlexDateTime::naive(naive)),
        Some(seconds) => FlexDateTime::aware(naive, seconds).ok_or(BAD_TIME),
    }
}

/// Nothing, `Z`, `±HH:MM` or `±HHMM`.
fn parse_zone(rest: &[u8]) -> Result<Option<i32>, DateTimeParseError> {
    let sign = match rest.first() {
        None => return Ok(None),
        Some(b'Z' | b'z') if rest.len() == 1 => return Ok(Some(0)),
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(_) => return Err(BAD_TIME),
    };
    let hours = two_digits(rest, 1, BAD_TIME)?;
    let minutes_at = if rest.get(3) == Some(&b':') { 4 } else { 3 };
    let minutes = two_digits(rest, minutes_at, BAD_TIME)?;
    if rest.len() != minutes_at + 2 || hours > 23 || minutes > 59 {
        return Err(BAD_TIME);
    }
    Ok(Some(sign * (hours * 3600 + minutes * 60) as i32))
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

    /// Digit texts the pattern leaves out although most are in range.
    fn long_timestamp(text: &str) -> bool {
        timestamp_text(text).is_some()
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
            with in proptest::sample::select(&['0', '1', '2', '9', '-', ':', '.', 'T', ' ', 'Z', '+', '_', 'x'][..]),
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
            proptest::prop_assert!(
                described == accepted || (accepted && long_timestamp(&edited)),
                "{:?}: described {}, accepted {}", edited, described, accepted
            );
        }
    }

    #[test]
    fn timestamp_ranges_are_exactly_what_is_accepted() {
        let accepted = |value: f64| FlexDateTime::from_timestamp(value).is_ok();
        for (minimum, below) in TIMESTAMP_RANGES {
            assert!(accepted(minimum), "{minimum}");
            assert!(!accepted(minimum - 1.0), "{minimum}");
            let last = below - 1.0;
            assert!(
                accepted(last) && accepted((minimum + below) / 2.0),
                "{below}"
            );
            assert!(!accepted(below), "{below}");
        }
        // The millisecond reading starts just above 2e10 on both sides.
        assert!(accepted(MILLISECOND_WATERSHED) && accepted(MILLISECOND_WATERSHED + 1.0));
        assert!(accepted(-MILLISECOND_WATERSHED - 1.0));
        assert!(!accepted(-MILLISECOND_WATERSHED));
        // The long digit texts the pattern leaves out are numbers too.
        assert!(FlexDateTime::parse("253402300799999").is_ok());
        assert!(FlexDateTime::parse("253402300800000").is_err());
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
