//! Request bodies read the way FastAPI reads them with Python's `json`
//! module: the same text encodings, and for a body that is not JSON the
//! same error position and message, so clients that parse FastAPI's
//! `json_invalid` errors see what they always saw.
//!
//! serde_json parses every body first; this module only looks at the ones
//! it refused. Python's decoder also accepts a few things serde_json does
//! not (`NaN`, `Infinity`, numbers beyond the float range, unpaired
//! surrogate escapes, deep nesting); those are refused here with an error
//! at their location instead of a syntax error, because the service keeps
//! no non-finite numbers and Rust strings hold no unpaired surrogates.

use std::borrow::Cow;

use serde_json::{json, Value};

use crate::domain::{FieldError, LocItem, ValidationErrors};

/// The deepest nesting serde_json parses (it refuses the 128th level).
const MAX_DEPTH: usize = 127;
/// Where Python itself gives up (its default recursion limit).
const PYTHON_MAX_DEPTH: usize = 1000;

/// The body as text, decoded as Python's `json.loads` decodes bytes: UTF-8
/// (a leading byte-order mark dropped), or UTF-16/UTF-32 when the first
/// bytes say so. `None` when the bytes are not text in that encoding —
/// FastAPI answers such a body 400.
pub fn body_text(bytes: &[u8]) -> Option<Cow<'_, str>> {
    const BOM_UTF8: &[u8] = b"\xEF\xBB\xBF";
    let utf32 = |big_endian: bool, bytes: &[u8]| -> Option<Cow<'_, str>> {
        if !bytes.len().is_multiple_of(4) {
            return None;
        }
        bytes
            .chunks_exact(4)
            .map(|c| {
                let unit = [c[0], c[1], c[2], c[3]];
                let code = match big_endian {
                    true => u32::from_be_bytes(unit),
                    false => u32::from_le_bytes(unit),
                };
                char::from_u32(code)
            })
            .collect::<Option<String>>()
            .map(Cow::Owned)
    };
    let utf16 = |big_endian: bool, bytes: &[u8]| -> Option<Cow<'_, str>> {
        if !bytes.len().is_multiple_of(2) {
            return None;
        }
        let units = bytes.chunks_exact(2).map(|c| match big_endian {
            true => u16::from_be_bytes([c[0], c[1]]),
            false => u16::from_le_bytes([c[0], c[1]]),
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .ok()
            .map(Cow::Owned)
    };
    // Python's json.detect_encoding, in its order.
    match bytes {
        [0, 0, 0xFE, 0xFF, rest @ ..] => utf32(true, rest),
        [0xFF, 0xFE, 0, 0, rest @ ..] => utf32(false, rest),
        [0xFE, 0xFF, rest @ ..] => utf16(true, rest),
        [0xFF, 0xFE, rest @ ..] => utf16(false, rest),
        _ if bytes.starts_with(BOM_UTF8) => std::str::from_utf8(&bytes[3..]).ok().map(Cow::from),
        [0, 0, _, _, ..] => utf32(true, bytes),
        [0, _, _, _, ..] | [0, _] => utf16(true, bytes),
        [_, 0, 0, 0, ..] => utf32(false, bytes),
        [_, 0, _, _, ..] | [_, 0] => utf16(false, bytes),
        _ => std::str::from_utf8(bytes).ok().map(Cow::from),
    }
}

/// Why a body that serde_json refused is refused, as 422 entries located
/// at `body`: Python's `json_invalid` position and message, or the value
/// this service does not take although Python's decoder would.
pub fn refusal(bytes: &[u8]) -> ValidationErrors {
    let text = String::from_utf8_lossy(bytes);
    let entry = match scan(&text) {
        Err(Syntax { at, message }) => invalid(char_count(&text, at), message),
        Ok(Some(Finding::NonFinite { loc, literal })) => {
            FieldError::new("finite_number", "Input should be a finite number")
                .at(body_loc(loc), Value::String(literal))
        }
        Ok(Some(Finding::LoneSurrogate { loc, literal })) => FieldError::new(
            "string_unicode",
            "Input should be a valid string, unable to parse raw data as a unicode string",
        )
        .at(body_loc(loc), Value::String(literal)),
        Ok(Some(Finding::TooDeep { at })) => {
            invalid(char_count(&text, at), "Nesting deeper than 127 levels")
        }
        // serde_json refused what this reading accepts: never seen, but
        // the client still gets an answer rather than a server fault.
        Ok(None) => invalid(0, "Expecting value"),
    };
    ValidationErrors::single(entry)
}

/// FastAPI's entry for a body its decoder refused.
fn invalid(position: usize, message: &str) -> crate::domain::ValidationError {
    FieldError::new("json_invalid", "JSON decode error")
        .with_ctx("error", message)
        .at(
            vec![LocItem::from("body"), LocItem::from(position)],
            json!({}),
        )
}

/// Python counts positions in characters: the characters before byte `at`.
fn char_count(text: &str, at: usize) -> usize {
    let before = text.as_bytes().get(..at).unwrap_or(text.as_bytes());
    before.iter().filter(|&&b| b & 0xC0 != 0x80).count()
}

fn body_loc(path: Vec<LocItem>) -> Vec<LocItem> {
    std::iter::once(LocItem::from("body")).chain(path).collect()
}

/// A `json.JSONDecodeError`: byte offset (turned into characters by the
/// caller) and Python's message.
#[derive(Debug, PartialEq)]
struct Syntax {
    at: usize,
    message: &'static str,
}

fn fail<T>(at: usize, message: &'static str) -> Result<T, Syntax> {
    Err(Syntax { at, message })
}

/// Something Python decodes that this service refuses; the first one found
/// is reported when the text has no syntax error.
#[derive(Debug, PartialEq)]
enum Finding {
    NonFinite { loc: Vec<LocItem>, literal: String },
    LoneSurrogate { loc: Vec<LocItem>, literal: String },
    TooDeep { at: usize },
}

/// An open container: the member or element being read.
enum Frame {
    Object(String),
    Array(usize),
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    stack: Vec<Frame>,
    finding: Option<Finding>,
    /// Set where Python would stop decoding without a syntax error.
    stopped: bool,
}

/// Reads `text` with the rules of CPython's C scanner (`_json.c`). Every
/// character that matters to the syntax is ASCII, so the bytes are walked
/// and only the final position is counted in characters.
fn scan(text: &str) -> Result<Option<Finding>, Syntax> {
    let mut scanner = Scanner {
        text,
        bytes: text.as_bytes(),
        stack: Vec::new(),
        finding: None,
        stopped: false,
    };
    scanner.document()?;
    Ok(scanner.finding)
}

fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |code, &digit| {
        Some(code * 16 + char::from(digit).to_digit(16)?)
    })
}

impl Scanner<'_> {
    fn skip_whitespace(&self, mut at: usize) -> usize {
        while at < self.bytes.len() && is_whitespace(self.bytes[at]) {
            at += 1;
        }
        at
    }

    fn at_is(&self, at: usize, byte: u8) -> bool {
        self.bytes.get(at) == Some(&byte)
    }

    fn path(&self) -> Vec<LocItem> {
        self.stack
            .iter()
            .map(|frame| match frame {
                Frame::Object(key) => LocItem::Key(key.clone()),
                Frame::Array(index) => LocItem::Index(*index),
            })
            .collect()
    }

    fn note(&mut self, finding: impl FnOnce(&Self) -> Finding) {
        if self.finding.is_none() {
            self.finding = Some(finding(self));
        }
    }

    /// `json.loads`: one value between optional whitespace.
    fn document(&mut self) -> Result<(), Syntax> {
        let mut at = self.skip_whitespace(0);
        loop {
            at = self.value(at)?;
            if self.stopped {
                return Ok(());
            }
            // Close every container the value completes.
            loop {
                at = self.skip_whitespace(at);
                let close = match self.stack.last() {
                    None if at == self.bytes.len() => return Ok(()),
                    None => return fail(at, "Extra data"),
                    Some(Frame::Object(_)) => b'}',
                    Some(Frame::Array(_)) => b']',
                };
                if self.at_is(at, close) {
                    self.stack.pop();
                    at += 1;
                    continue;
                }
                if !self.at_is(at, b',') {
                    return fail(at, "Expecting ',' delimiter");
                }
                at = self.skip_whitespace(at + 1);
                match self.stack.last_mut() {
                    Some(Frame::Array(index)) => *index += 1,
                    _ => at = self.member_name(at)?,
                }
                break;
            }
        }
    }

    /// Reads `"name"`, the `:` and the whitespace after it; the name becomes
    /// the innermost frame's member.
    fn member_name(&mut self, at: usize) -> Result<usize, Syntax> {
        if !self.at_is(at, b'"') {
            return fail(at, "Expecting property name enclosed in double quotes");
        }
        let end = self.string(at)?;
        let raw = &self.text[at..end];
        let name = serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_owned());
        if let Some(Frame::Object(member)) = self.stack.last_mut() {
            *member = name;
        }
        let colon = self.skip_whitespace(end);
        if !self.at_is(colon, b':') {
            return fail(colon, "Expecting ':' delimiter");
        }
        Ok(self.skip_whitespace(colon + 1))
    }

    /// Reads from `at` up to the end of the first value that is not an
    /// open container: a scalar, or an empty container. Containers opened
    /// on the way stay on the stack for `document` to continue and close.
    fn value(&mut self, mut at: usize) -> Result<usize, Syntax> {
        loop {
            let Some(&byte) = self.bytes.get(at) else {
                return fail(at, "Expecting value");
            };
            let rest = &self.bytes[at..];
            let close = match byte {
                b'"' => return self.string(at),
                b'{' => b'}',
                b'[' => b']',
                b'n' if rest.starts_with(b"null") => return Ok(at + 4),
                b't' if rest.starts_with(b"true") => return Ok(at + 4),
                b'f' if rest.starts_with(b"false") => return Ok(at + 5),
                _ => {
                    let constant = [&b"NaN"[..], b"Infinity", b"-Infinity"]
                        .into_iter()
                        .find(|c| rest.starts_with(c));
                    let end = match constant {
                        Some(constant) => at + constant.len(),
                        None => self.number(at)?,
                    };
                    let literal = &self.text[at..end];
                    if constant.is_some() || literal.parse::<f64>().is_ok_and(f64::is_infinite) {
                        let literal = literal.to_owned();
                        self.note(|s| Finding::NonFinite {
                            loc: s.path(),
                            literal,
                        });
                    }
                    return Ok(end);
                }
            };
            if self.stack.len() >= MAX_DEPTH {
                self.note(|_| Finding::TooDeep { at });
                if self.stack.len() >= PYTHON_MAX_DEPTH {
                    // Python stops here too (RecursionError), so nothing
                    // after this point can change the answer.
                    self.stopped = true;
                    return Ok(at);
                }
            }
            let inner = self.skip_whitespace(at + 1);
            if self.at_is(inner, close) {
                return Ok(inner + 1);
            }
            if close == b'}' {
                self.stack.push(Frame::Object(String::new()));
                at = self.member_name(inner)?;
            } else {
                self.stack.push(Frame::Array(0));
                at = inner;
            }
        }
    }

    /// CPython's `_match_number_unicode`: the end of the number at `at`.
    fn number(&self, start: usize) -> Result<usize, Syntax> {
        let digit = |at: usize| self.bytes.get(at).is_some_and(u8::is_ascii_digit);
        let last = self.bytes.len().saturating_sub(1);
        let mut at = start;
        if self.at_is(at, b'-') {
            at += 1;
        }
        match self.bytes.get(at) {
            Some(b'1'..=b'9') => {
                while digit(at) {
                    at += 1;
                }
            }
            Some(b'0') => at += 1,
            _ => return fail(start, "Expecting value"),
        }
        if at < last && self.at_is(at, b'.') && digit(at + 1) {
            at += 2;
            while digit(at) {
                at += 1;
            }
        }
        if at < last && matches!(self.bytes[at], b'e' | b'E') {
            let exponent = at;
            at += 1;
            if at < last && matches!(self.bytes[at], b'-' | b'+') {
                at += 1;
            }
            while digit(at) {
                at += 1;
            }
            if !digit(at - 1) {
                at = exponent;
            }
        }
        Ok(at)
    }

    /// CPython's `scanstring_unicode`: the position after the string that
    /// opens at `begin`.
    fn string(&mut self, begin: usize) -> Result<usize, Syntax> {
        let bytes = self.bytes;
        let len = bytes.len();
        let mut end = begin + 1;
        loop {
            let mut next = end;
            while next < len && bytes[next] != b'"' && bytes[next] != b'\\' {
                if bytes[next] <= 0x1f {
                    return fail(next, "Invalid control character at");
                }
                next += 1;
            }
            if next == len {
                return fail(begin, "Unterminated string starting at");
            }
            next += 1;
            if bytes[next - 1] == b'"' {
                return Ok(next);
            }
            let Some(&escape) = bytes.get(next) else {
                return fail(begin, "Unterminated string starting at");
            };
            if escape != b'u' {
                end = next + 1;
                if !matches!(
                    escape,
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't'
                ) {
                    return fail(end - 2, "Invalid \\escape");
                }
                continue;
            }
            next += 1;
            end = next + 4;
            if end >= len {
                return fail(next - 1, "Invalid \\uXXXX escape");
            }
            let Some(code) = hex4(&bytes[next..end]) else {
                return fail(end - 5, "Invalid \\uXXXX escape");
            };
            let escape_start = next - 2;
            let high = (0xD800..0xDC00).contains(&code);
            let low = (0xDC00..0xE000).contains(&code);
            if high && end + 6 < len && bytes[end] == b'\\' && bytes[end + 1] == b'u' {
                let Some(second) = hex4(&bytes[end + 2..end + 6]) else {
                    return fail(end + 1, "Invalid \\uXXXX escape");
                };
                if (0xDC00..0xE000).contains(&second) {
                    end += 6;
                    continue;
                }
            }
            if high || low {
                let literal = self.text[escape_start..end].to_owned();
                self.note(|s| Finding::LoneSurrogate {
                    loc: s.path(),
                    literal,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Characters, not bytes, and Python's wording; each case checked
    /// against CPython's `json.loads`.
    fn syntax(text: &str) -> (usize, &'static str) {
        let error = scan(text).expect_err(text);
        (char_count(text, error.at), error.message)
    }

    #[test]
    fn container_ends_and_members() {
        assert_eq!(syntax("[1 2]"), (3, "Expecting ',' delimiter"));
        assert_eq!(
            syntax("{1:2}"),
            (1, "Expecting property name enclosed in double quotes")
        );
        assert_eq!(syntax("[-]"), (1, "Expecting value"));
    }

    #[test]
    fn valid_documents_have_no_finding() {
        for text in [
            "{}",
            " [ ] ",
            r#"{"a": [1, -2.5e-3, true, false, null, "\u00e9\ud83d\ude00", {"b": {}}]}"#,
        ] {
            assert_eq!(scan(text), Ok(None), "{text}");
        }
    }

    #[test]
    fn what_python_decodes_but_the_service_refuses_is_located() {
        let found = scan(r#"{"runs": [1, {"elapsed_seconds": NaN}]}"#).unwrap();
        assert_eq!(
            found,
            Some(Finding::NonFinite {
                loc: vec!["runs".into(), 1.into(), "elapsed_seconds".into()],
                literal: "NaN".into()
            })
        );
        let found = scan(r#"{"x": 1e400}"#).unwrap();
        assert!(matches!(found, Some(Finding::NonFinite { literal, .. }) if literal == "1e400"));
        let found = scan(r#"["\ud800x"]"#).unwrap();
        assert_eq!(
            found,
            Some(Finding::LoneSurrogate {
                loc: vec![0.into()],
                literal: r"\ud800".into()
            })
        );
        // A syntax error wins, as Python reports it.
        assert_eq!(syntax("[NaN, 1 2]"), (8, "Expecting ',' delimiter"));
    }

    #[test]
    fn nesting_is_refused_where_serde_json_stops() {
        let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        assert!(serde_json::from_str::<Value>(&deep(MAX_DEPTH)).is_ok());
        assert!(serde_json::from_str::<Value>(&deep(MAX_DEPTH + 1)).is_err());
        assert_eq!(scan(&deep(MAX_DEPTH)), Ok(None));
        assert_eq!(
            scan(&deep(MAX_DEPTH + 1)),
            Ok(Some(Finding::TooDeep { at: MAX_DEPTH }))
        );
        // Past Python's own limit the scan stops (bounded work and memory).
        let endless = "[".repeat(1_000_000);
        assert!(matches!(scan(&endless), Ok(Some(Finding::TooDeep { .. }))));
    }

    #[test]
    fn bodies_are_decoded_as_python_detects_their_encoding() {
        let text = r#"{"a": "é"}"#;
        let utf16le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let utf16be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let utf32le: Vec<u8> = text
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        let with_bom = [&b"\xEF\xBB\xBF"[..], text.as_bytes()].concat();
        let utf16_bom = [&[0xFF, 0xFE][..], &utf16le].concat();
        for bytes in [&utf16le, &utf16be, &utf32le, &with_bom, &utf16_bom] {
            assert_eq!(body_text(bytes).as_deref(), Some(text), "{bytes:?}");
        }
        assert_eq!(body_text(b"{\"a\": \"\xFF\"}"), None);
        assert_eq!(body_text(b"\xED\xA0\x80"), None, "an encoded surrogate");
        assert_eq!(body_text(b"").as_deref(), Some(""));
    }
}
