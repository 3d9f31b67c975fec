//! Stored lines in their usual shape, read in one pass over the bytes with
//! nothing built but the values: a JSON object of the record's own members,
//! strings without escapes, numbers as plain JSON numbers, datetimes as
//! strings. That is nearly every line a store holds, and reading it this
//! way is several times faster than a JSON parser. Whatever else a line
//! holds (an escape, an unknown or repeated member, a number in a string, a
//! syntax error) makes `scan` give up, and the validating parser — which
//! also explains what is wrong — reads the line instead; `scan` accepts
//! nothing it would read differently.

use std::borrow::Cow;

use super::keys::KeyStamp;
use super::legacy::infer_pipeline_name;
use super::store::{Moment, RunFields};
use crate::domain::FlexDateTime;

/// The member names, in the record's field order.
const FIELDS: [&[u8]; 16] = [
    b"start_local",
    b"end_local",
    b"start_utc",
    b"end_utc",
    b"elapsed_seconds",
    b"elapsed_human",
    b"output_file",
    b"log_file",
    b"rowcount",
    b"pid",
    b"date_code",
    b"pipeline_name",
    b"script_name",
    b"pipeline_type",
    b"environment",
    b"archived_file",
];

/// The members that usually follow each member, tried before its name is
/// looked up: the model's order (`output_file`, `rowcount`, `log_file`),
/// which the service writes, first, then the order older writers used
/// (`output_file`, `log_file`, `rowcount`). The last member has none.
const FOLLOWS: [[usize; 2]; 16] = [
    [1, 1],
    [2, 2],
    [3, 3],
    [4, 4],
    [5, 5],
    [6, 6],
    [8, 7],
    [9, 8],
    [7, 9],
    [10, 10],
    [11, 11],
    [12, 12],
    [13, 13],
    [14, 14],
    [15, 15],
    [NO_MEMBER, NO_MEMBER],
];

/// Matches no member's name.
const NO_MEMBER: usize = usize::MAX;

/// The reserved member of a keyed line (see `keys`).
const KEY_MEMBER: usize = FIELDS.len();

/// The members a record cannot do without: all but the five optional ones.
const REQUIRED: u32 = (1 << 11) - 1;

/// A line read by `scan`.
#[derive(Debug)]
pub struct Scanned<'a> {
    times: [Moment; 4],
    elapsed_seconds: f64,
    rowcount: i64,
    pid: i64,
    texts: [&'a str; 4],
    /// Inferred when the line has no `pipeline_name` member.
    pipeline_name: Option<Cow<'a, str>>,
    /// script_name, pipeline_type, environment.
    others: [Option<&'a str>; 3],
    archived_file: Option<&'a str>,
    pub key: Option<KeyStamp>,
}

impl Scanned<'_> {
    pub fn fields(&self) -> RunFields<'_> {
        RunFields {
            times: self.times,
            elapsed_seconds: self.elapsed_seconds,
            rowcount: self.rowcount,
            pid: self.pid,
            texts: self.texts,
            archived_file: self.archived_file,
            classes: [
                self.pipeline_name.as_deref(),
                self.others[0],
                self.others[1],
                self.others[2],
            ],
        }
    }
}

/// A cursor over one line, which `scan` has checked to be UTF-8 without a
/// backslash or a control character: every string ends at the next quote.
struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    last_day: Option<DayNumber>,
}

impl<'a> Reader<'a> {
    fn skip_space(&mut self) {
        while self.bytes.get(self.at) == Some(&b' ') {
            self.at += 1;
        }
    }

    /// The next byte after any space, consumed.
    fn next(&mut self) -> Option<u8> {
        let mut byte = *self.bytes.get(self.at)?;
        while byte == b' ' {
            self.at += 1;
            byte = *self.bytes.get(self.at)?;
        }
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next()? == wanted).then_some(())
    }

    /// A string's content after its opening quote.
    fn string_body(&mut self) -> Option<&'a str> {
        let start = self.at;
        let end = start + find_quote(self.bytes.get(start..)?)?;
        self.at = end + 1;
        // Quotes are ASCII, so both ends are character boundaries.
        self.text.get(start..end)
    }

    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        self.string_body()
    }

    /// A member name and its colon; the `expected` ones are tried first,
    /// as members nearly always come in one of two orders (`FOLLOWS`).
    fn member(&mut self, expected: [usize; 2]) -> Option<usize> {
        self.expect(b'"')?;
        let rest = &self.bytes[self.at..];
        let guessed = expected.into_iter().find(|&member| names(rest, member));
        let member = match guessed {
            Some(member) => {
                self.at += FIELDS[member].len() + 1;
                // The usual `": "`, in one step.
                if self.bytes.get(self.at..self.at + 2) == Some(b": ") {
                    self.at += 2;
                    return Some(member);
                }
                member
            }
            _ => {
                let name = self.string_body()?.as_bytes();
                match FIELDS.iter().position(|f| *f == name) {
                    Some(member) => member,
                    None if name == super::keys::RESERVED_FIELD.as_bytes() => KEY_MEMBER,
                    None => return None,
                }
            }
        };
        self.expect(b':')?;
        Some(member)
    }

    /// A string or `null`.
    fn optional_string(&mut self) -> Option<Option<&'a str>> {
        match self.next()? {
            b'"' => self.string_body().map(Some),
            b'n' => {
                let rest = &self.bytes[self.at..];
                rest.starts_with(b"ull").then(|| {
                    self.at += 3;
                    None
                })
            }
            _ => None,
        }
    }

    /// The text of a JSON number, checked against JSON's grammar.
    fn number(&mut self) -> Option<&'a str> {
        self.skip_space();
        let start = self.at;
        let digits = |r: &mut Self| {
            let from = r.at;
            while r.bytes.get(r.at).is_some_and(u8::is_ascii_digit) {
                r.at += 1;
            }
            r.at - from
        };
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let whole_start = self.at;
        let whole = digits(self);
        if whole == 0 || (whole > 1 && self.bytes[whole_start] == b'0') {
            return None;
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        self.text.get(start..self.at)
    }

    /// A JSON integer that fits an `i64` (no fraction, no exponent, and
    /// not `-0`, which JSON parsers read as a float).
    fn integer(&mut self) -> Option<i64> {
        let text = self.number()?.as_bytes();
        let (negative, digits) = match text.split_first()? {
            (b'-', rest) => (true, rest),
            _ => (false, text),
        };
        if negative && digits.first() == Some(&b'0') {
            return None;
        }
        // Accumulated negatively, so that `i64::MIN` fits too.
        let mut value: i64 = 0;
        for &byte in digits {
            if !byte.is_ascii_digit() {
                return None;
            }
            value = value.checked_mul(10)?.checked_sub(i64::from(byte - b'0'))?;
        }
        match negative {
            true => Some(value),
            false => value.checked_neg(),
        }
    }

    /// A JSON number as the nearest finite `f64` (negative zero, which
    /// parsers disagree on, is left to the validating one).
    fn float(&mut self) -> Option<f64> {
        let text = self.number()?;
        let value = exact_decimal(text.as_bytes()).or_else(|| text.parse().ok())?;
        (value.is_finite() && !(value == 0.0 && value.is_sign_negative())).then_some(value)
    }

    fn datetime(&mut self) -> Option<Moment> {
        let text = self.string()?;
        usual_moment(text.as_bytes(), &mut self.last_day)
            .or_else(|| FlexDateTime::parse(text).ok().map(Moment::from))
    }

    /// The reserved member's object: `key`, `fingerprint` and `at`, each a
    /// string, each once.
    fn key_stamp(&mut self) -> Option<Option<KeyStamp>> {
        self.expect(b'{')?;
        let mut parts: [Option<&str>; 3] = [None; 3];
        loop {
            let name = self.string()?;
            self.expect(b':')?;
            let slot = match name {
                "key" => 0,
                "fingerprint" => 1,
                "at" => 2,
                _ => return None,
            };
            if parts[slot].is_some() {
                return None;
            }
            parts[slot] = Some(self.string()?);
            match self.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        let [Some(key), Some(fingerprint), Some(at)] = parts else {
            return None;
        };
        // A malformed stamp is ignored, the record kept (as `keys` does).
        Some(KeyStamp::new(key, fingerprint, at))
    }
}

/// Where the first quote in `bytes` is: eight bytes at a time (a word
/// with a quote byte has a zero byte once XORed with quotes).
fn find_quote(bytes: &[u8]) -> Option<usize> {
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let x = u64::from_le_bytes(eight) ^ QUOTES;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'"')
        .map(|i| at + i)
}

/// Powers of ten that are exact in an `f64`.
const EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A plain decimal (`-?digits[.digits]`, checked JSON) of at most 15
/// significant digits, as the nearest `f64`: its digits and its power of
/// ten are both exact, so one division rounds correctly (Clinger's fast
/// path, which `str::parse` takes too). `None` for anything else.
fn exact_decimal(text: &[u8]) -> Option<f64> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text),
    };
    let mut mantissa: u64 = 0;
    let mut fraction_digits = None;
    let mut count = 0;
    for &byte in digits {
        match byte {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(byte - b'0');
                count += 1;
                if count > 15 {
                    return None;
                }
                if let Some(fraction) = &mut fraction_digits {
                    *fraction += 1;
                }
            }
            b'.' if fraction_digits.is_none() => fraction_digits = Some(0),
            _ => return None,
        }
    }
    let value = mantissa as f64 / EXACT_POWERS[fraction_digits.unwrap_or(0)];
    Some(if negative { -value } else { value })
}

/// Whether `rest` starts with member `member`'s name and closing quote.
/// Written out so that each comparison has a constant length, which the
/// compiler turns into a few word comparisons.
fn names(rest: &[u8], member: usize) -> bool {
    match member {
        0 => rest.starts_with(b"start_local\""),
        1 => rest.starts_with(b"end_local\""),
        2 => rest.starts_with(b"start_utc\""),
        3 => rest.starts_with(b"end_utc\""),
        4 => rest.starts_with(b"elapsed_seconds\""),
        5 => rest.starts_with(b"elapsed_human\""),
        6 => rest.starts_with(b"output_file\""),
        7 => rest.starts_with(b"log_file\""),
        8 => rest.starts_with(b"rowcount\""),
        9 => rest.starts_with(b"pid\""),
        10 => rest.starts_with(b"date_code\""),
        11 => rest.starts_with(b"pipeline_name\""),
        12 => rest.starts_with(b"script_name\""),
        13 => rest.starts_with(b"pipeline_type\""),
        14 => rest.starts_with(b"environment\""),
        15 => rest.starts_with(b"archived_file\""),
        _ => false,
    }
}

/// The datetimes stored lines nearly always hold —
/// `YYYY-MM-DD[T ]HH:MM:SS`, an optional fraction of one digit or more, then
/// nothing, `Z` or `±HH:MM` — read straight into their instant and zone,
/// by the rules of `FlexDateTime::parse`; `None` for anything else, which
/// `FlexDateTime::parse` then reads.
fn usual_moment(text: &[u8], last_day: &mut Option<DayNumber>) -> Option<Moment> {
    let head: &[u8; 19] = text.get(..19)?.try_into().ok()?;
    // Digits as numbers; anything else turns out 10 or more.
    let d = |at: usize| i64::from(head[at].wrapping_sub(b'0'));
    let two = |at: usize| (d(at) < 10 && d(at + 1) < 10).then(|| d(at) * 10 + d(at + 1));
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    let punctuated = head[4] == b'-'
        && head[7] == b'-'
        && matches!(head[10], b'T' | b' ')
        && head[13] == b':'
        && head[16] == b':';
    if !punctuated
        || year == 0
        || !(1..=12).contains(&month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut rest = &text[19..];
    let mut micros = 0;
    if let Some((b'.', fraction)) = rest.split_first() {
        let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        // Kept to microseconds, truncated.
        for i in 0..6 {
            micros = micros * 10
                + fraction
                    .get(i)
                    .filter(|_| i < digits)
                    .map_or(0, |b| i64::from(b - b'0'));
        }
        rest = &fraction[digits..];
    }
    let zone = match rest {
        [] => None,
        [b'Z'] => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |b: &u8| i64::from(b.wrapping_sub(b'0'));
            if [h1, h2, m1, m2].iter().any(|b| digit(b) > 9) {
                return None;
            }
            let (hours, minutes) = (digit(h1) * 10 + digit(h2), digit(m1) * 10 + digit(m2));
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = (hours * 3600 + minutes * 60) as i32;
            Some(if *sign == b'-' { -offset } else { offset })
        }
        _ => return None,
    };
    let days = match *last_day {
        Some((date, days)) if date == (year, month, day) => days,
        _ => {
            let days = days_from_civil(year, month, day);
            *last_day = Some(((year, month, day), days));
            days
        }
    };
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    let wall = seconds * 1_000_000 + micros;
    Some(Moment {
        instant: wall - i64::from(zone.unwrap_or(0)) * 1_000_000,
        zone,
    })
}

/// A date (year, month, day) and its day number: a line's datetimes
/// mostly share a date, which is then numbered once.
type DayNumber = ((i64, i64, i64), i64);

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Reads a stored line in the usual shape; `None` sends it to the
/// validating parser.
pub fn scan(line: &[u8]) -> Option<Scanned<'_>> {
    // JSON spacing other than spaces (tabs, a CRLF line's CR) is rare
    // enough to leave to the validating parser, except at the line's end.
    let end = line
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        .map_or(0, |last| last + 1);
    let line = &line[..end];
    if !plain(line) {
        return None;
    }
    scan_plain(std::str::from_utf8(line).ok()?)
}

/// Whether `bytes` hold neither a backslash nor a control character but
/// newlines: text in which every JSON string ends at its next quote. One
/// pass without early exit, so that it vectorises.
pub fn plain(bytes: &[u8]) -> bool {
    !bytes.iter().fold(false, |unusual, &b| {
        unusual | ((b < 0x20) & (b != b'\n')) | (b == b'\\')
    })
}

/// `scan` of a line already known to be `plain` text without a newline
/// (a whole block of lines is checked at once when it is loaded).
pub fn scan_plain(text: &str) -> Option<Scanned<'_>> {
    let line = text.as_bytes();
    let mut r = Reader {
        text,
        bytes: line,
        at: 0,
        last_day: None,
    };
    r.expect(b'{')?;
    let mut seen = 0u32;
    let mut times = [None; 4];
    let mut elapsed_seconds = None;
    let mut rowcount = None;
    let mut pid = None;
    let mut texts = [""; 4];
    let mut pipeline_name: Option<Option<&str>> = None;
    let mut others = [None; 3];
    let mut archived_file = None;
    let mut key = None;
    let mut expected = [0, 0];
    loop {
        let member = r.member(expected)?;
        if seen & (1 << member) != 0 {
            return None;
        }
        seen |= 1 << member;
        expected = FOLLOWS
            .get(member)
            .copied()
            .unwrap_or([NO_MEMBER, NO_MEMBER]);
        match member {
            0..=3 => times[member] = Some(r.datetime()?),
            4 => elapsed_seconds = Some(r.float()?),
            5 => texts[0] = r.string()?,
            6 => texts[1] = r.string()?,
            7 => texts[2] = r.string()?,
            8 => rowcount = Some(r.integer()?),
            9 => pid = Some(r.integer()?),
            10 => texts[3] = r.string()?,
            11 => pipeline_name = Some(r.optional_string()?),
            12..=14 => others[member - 12] = r.optional_string()?,
            15 => archived_file = r.optional_string()?,
            _ => key = r.key_stamp()?,
        }
        match r.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    r.skip_space();
    if r.at != line.len() || seen & REQUIRED != REQUIRED {
        return None;
    }
    let pipeline_name = match pipeline_name {
        Some(given) => given.map(Cow::Borrowed),
        None => Some(Cow::Owned(infer_pipeline_name(texts[1], texts[2]))),
    };
    Some(Scanned {
        times: [times[0]?, times[1]?, times[2]?, times[3]?],
        elapsed_seconds: elapsed_seconds?,
        rowcount: rowcount?,
        pid: pid?,
        texts,
        pipeline_name,
        others,
        archived_file,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Texts near the usual datetime form: each part valid or not.
    fn datetime_text() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["0000", "0001", "0400", "1599", "1600", "1970", "2000", "2024", "2100", "9999", "20a5"]),
            0u32..14,
            0u32..33,
            prop::sample::select(vec!['T', ' ', 't', '_', 'x']),
            (0u32..26, 0u32..61, 0u32..62),
            prop::sample::select(vec!["", ".5", ".123456", ".1234567891", ".", ".1234567890", ".12345678901234567890123"]),
            prop::sample::select(vec!["", "Z", "z", "+05:30", "-11:45", "+0530", "+24:00", "-00:60", "+5:30", "Zx"]),
        )
            .prop_map(|(year, month, day, separator, (hour, minute, second), fraction, zone)| {
                format!("{year}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}{fraction}{zone}")
            })
    }

    /// A stored line's members, each written in one of the ways lines
    /// are found written, some of them outside the usual shape.
    fn member_text() -> impl Strategy<Value = Vec<(String, String)>> {
        // The first choice is the usual one, taken most of the time, so
        // that many lines stay in the usual shape.
        let text = |choices: Vec<&'static str>| {
            let usual = choices[0];
            prop_oneof![
                6 => Just(usual.to_owned()),
                1 => prop::sample::select(choices).prop_map(str::to_owned),
            ]
        };
        (
            (
                text(vec![
                    "\"2025-08-08T05:07:01\"",
                    "\"2025-08-08 05:07:01.5\"",
                    "1754654821",
                    "\"2025-02-30T00:00:00\"",
                ]),
                text(vec![
                    "\"2025-08-08T05:29:06+02:00\"",
                    "\"2025-08-08T05:29:06.123456789Z\"",
                    "\"2025-08-08\"",
                ]),
                text(vec![
                    "\"2025-08-08T12:07:01+00:00\"",
                    "\"2025-08-08T12:07:01-05:30\"",
                    "\"2025-08-08T12:07:01+0000\"",
                ]),
                text(vec![
                    "\"2025-08-08T12:29:06Z\"",
                    "\"1600-01-01T00:00:00\"",
                    "\"2025-08-08T12:29:06z\"",
                ]),
            ),
            (
                text(vec![
                    "1325",
                    "1325.5",
                    "-0",
                    "-0.0",
                    "1e3",
                    "1E+2",
                    "0.1e-2",
                    "1e400",
                    "\"12\"",
                    "true",
                    "01",
                    "1.",
                    "12345678901234567890123",
                ]),
                text(vec![
                    "\"22m 5s\"",
                    "\"caf\u{e9}\"",
                    "\"a\\\"b\"",
                    "\"\\u00e9\"",
                    "null",
                ]),
                text(vec![
                    "\"/srv/data/pipeline/sales/out.csv\"",
                    "\"C:\\\\x\"",
                    "\"/o\tx\"",
                ]),
                text(vec!["\"/srv/logs/sales-1.log\"", "\"\""]),
            ),
            (
                text(vec![
                    "8543",
                    "8543.0",
                    "-0",
                    "-12",
                    "1e3",
                    "9223372036854775807",
                    "9223372036854775808",
                    "\"7\"",
                    "true",
                ]),
                text(vec!["48213", "0", "-1"]),
                text(vec!["\"20250808_050701\"", "\"\""]),
                prop::option::of(text(vec!["\"sales\"", "null", "\"\"", "5"])),
            ),
            (
                prop::option::of(text(vec!["\"sales.py\"", "null"])),
                prop::option::of(text(vec!["\"batch\"", "null"])),
                prop::option::of(text(vec!["\"prod\"", "null", "[]"])),
                prop::option::of(text(vec!["\"/a/b.gz\"", "null", "\"\""])),
            ),
            prop::option::of(text(vec![
                r#"{"key": "k1", "fingerprint": "ab", "at": "2026-01-01T00:00:00Z"}"#,
                r#"{"at": "2026-01-01T00:00:00Z", "key": "k2", "fingerprint": "cd"}"#,
                r#"{"key": "k3", "fingerprint": "ab", "at": "never"}"#,
                r#"{"key": "k4", "fingerprint": "ab"}"#,
                r#"{"key": "k5", "fingerprint": "ab", "at": "2026-01-01T00:00:00Z", "x": 1}"#,
                "null",
            ])),
        )
            .prop_map(
                |((a, b, c, d), (e, f, g, h), (i, j, k, l), (m, n, o, p), key)| {
                    let mut members: Vec<(String, String)> = FIELDS
                        .iter()
                        .zip([
                            Some(a),
                            Some(b),
                            Some(c),
                            Some(d),
                            Some(e),
                            Some(f),
                            Some(g),
                            Some(h),
                            Some(i),
                            Some(j),
                            Some(k),
                            l,
                            m,
                            n,
                            o,
                            p,
                        ])
                        .filter_map(|(name, value)| {
                            Some((String::from_utf8_lossy(name).into_owned(), value?))
                        })
                        .collect();
                    if let Some(key) = key {
                        members.push(("_idempotency".to_owned(), key));
                    }
                    members
                },
            )
    }

    /// Ways of writing a line's members out.
    fn line_text() -> impl Strategy<Value = String> {
        (
            member_text(),
            any::<prop::sample::Index>(),
            prop::sample::select(vec![": ", ": ", ":", " : ", ":\t"]),
            prop::sample::select(vec![", ", ", ", ",", " ,  "]),
            prop::sample::select(vec!["", "", "", " ", "\r", " \t", "x", "}"]),
            prop::sample::select(vec!["", "", " ", "\t"]),
            0u8..12,
            any::<prop::sample::Index>(),
        )
            .prop_map(
                |(mut members, at, colon, comma, after, before, change, cut)| {
                    match change {
                        // Out of order, repeated, unknown, or cut short.
                        0 => {
                            let i = at.index(members.len());
                            members.swap(0, i);
                        }
                        1 => {
                            let i = at.index(members.len());
                            members.push(members[i].clone());
                        }
                        2 => members.push(("extra".to_owned(), "1".to_owned())),
                        3 => {
                            members.remove(at.index(members.len()));
                        }
                        _ => {}
                    }
                    let body: Vec<String> = members
                        .iter()
                        .map(|(name, value)| format!("\"{name}\"{colon}{value}"))
                        .collect();
                    let mut line = format!("{before}{{{}}}{after}", body.join(comma));
                    if change == 4 {
                        let mut keep = cut.index(line.len());
                        while !line.is_char_boundary(keep) {
                            keep -= 1;
                        }
                        line.truncate(keep);
                    }
                    line
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Plain decimals read exactly as `str::parse` reads them.
        #[test]
        fn plain_decimals_read_as_the_standard_parser_reads_them(
            negative in any::<bool>(),
            whole in "(0|[1-9][0-9]{0,17})",
            fraction in prop::option::of("[0-9]{1,17}"),
        ) {
            let text = format!("{}{whole}{}", if negative { "-" } else { "" }, fraction.map(|f| format!(".{f}")).unwrap_or_default());
            if let Some(value) = exact_decimal(text.as_bytes()) {
                prop_assert_eq!(value.to_bits(), text.parse::<f64>().unwrap().to_bits(), "{}", text);
            }
        }

        /// Whatever `scan` accepts, the validating parser reads the same
        /// way: the same record and the same key.
        #[test]
        fn scanned_lines_read_as_the_validating_parser_reads_them(line in line_text()) {
            if let Some(mut scanned) = scan(line.as_bytes()) {
                let key = scanned.key.take();
                let record = scanned.fields().to_record();
                let validated = super::super::parse_line_keyed(line.as_bytes());
                match validated {
                    Ok(Some(loaded)) => {
                        // Compared as written too: `==` takes -0.0 for 0.0.
                        let written = |r: &crate::domain::PipelineInfo| serde_json::to_string(r).ok();
                        prop_assert_eq!(record.as_ref().and_then(written), written(&loaded.record), "{}", line);
                        prop_assert_eq!(record, Some(loaded.record), "{}", line);
                        prop_assert_eq!(key, loaded.key, "{}", line);
                    }
                    other => prop_assert!(false, "{line}: scanned, but the parser says {other:?}"),
                }
            }
        }

        /// Whatever the fast path reads, it reads as `FlexDateTime::parse`
        /// does; and it reads every valid text in its form.
        #[test]
        fn usual_datetimes_read_as_the_full_parser_reads_them(text in datetime_text()) {
            let fast = usual_moment(text.as_bytes(), &mut None);
            let full = FlexDateTime::parse(&text).ok();
            if let Some(moment) = fast {
                prop_assert_eq!(Some(moment), full.map(Moment::from), "{}", text);
                prop_assert_eq!(Some(moment.to_datetime()), full, "{}", text);
            }
            let usual_form = !text.contains(['t', '_', 'z']) && !text.ends_with("+0530") && !text.ends_with("Zx");
            if full.is_some() && usual_form {
                prop_assert!(fast.is_some(), "{} was left to the full parser", text);
            }
        }
    }
}
