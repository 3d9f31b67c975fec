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
