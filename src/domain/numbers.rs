//! Lenient number and boolean parsing with pydantic's lax-mode rules: a
//! pipeline that sends `"rowcount": "8543"` or `8543.0` keeps working.

use serde_json::Value;

use super::validation::FieldError;

/// Integer texts `int_from_str` accepts, as a regular expression that
/// reads the same in ECMAScript (OpenAPI), Python and Rust: up to 18
/// significant digits (every such value fits), digit underscores, a zero
/// fraction, surrounding ASCII white space.
pub const INT_TEXT_PATTERN: &str = concat!(
    "^[\\t\\n\\v\\f\\r ]*[+-]?",
    "(?:0(?:_?0)*(?:_?[1-9](?:_?[0-9]){0,17})?|[1-9](?:_?[0-9]){0,17})",
    "(?:\\.0(?:_?0)*)?[\\t\\n\\v\\f\\r ]*$"
);

/// Number texts `float_from_str` accepts, as such a regular expression:
/// decimal or exponent notation, with at most 15 integer digits and a
/// two-digit exponent so that every value is finite.
pub const FLOAT_TEXT_PATTERN: &str = concat!(
    "^[\\t\\n\\v\\f\\r ]*[+-]?",
    "(?:0*[0-9]{1,15}(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][+-]?[0-9]{1,2})?",
    "[\\t\\n\\v\\f\\r ]*$"
);

/// The OpenAPI schemas of lenient numbers in a JSON body.
pub mod schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
    use utoipa::openapi::RefOr;

    use super::{FLOAT_TEXT_PATTERN, INT_TEXT_PATTERN};
    use crate::domain::text_schema;

    /// A number of type `kind` between `minimum` and `maximum`, `true` or
    /// `false` (1 or 0), or a text matching `pattern`: pydantic's lax mode.
    fn lax<N: Into<utoipa::Number>>(
        kind: Type,
        (minimum, maximum): (N, N),
        pattern: &str,
        description: &str,
    ) -> RefOr<utoipa::openapi::schema::Schema> {
        let typed = ObjectBuilder::new()
            .schema_type(kind)
            .minimum(Some(minimum))
            .maximum(Some(maximum));
        AnyOfBuilder::new()
            .item(typed)
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .item(text_schema(pattern))
            .description(Some(description))
            .into()
    }

    documentation_type!(
        IntegerInput,
        "IntegerInput",
        lax(
            Type::Integer,
            (i64::MIN, i64::MAX),
            INT_TEXT_PATTERN,
            "A 64-bit integer; also accepted, as pydantic does: a whole float (`8543.0`), \
`true`/`false` (1/0), and text holding an integer (`\"8543\"`, `\" 12 \"`, `\"1_000\"`, \
`\"12.0\"`).",
        )
    );

    documentation_type!(
        NumberInput,
        "NumberInput",
        lax(
            Type::Number,
            (f64::MIN, f64::MAX),
            FLOAT_TEXT_PATTERN,
            "A finite number; also accepted: `true`/`false` (1/0) and numeric text \
(`\"12.5\"`, `\"1e3\"`). NaN and infinities are refused.",
        )
    );
}

fn int_parsing() -> FieldError {
    FieldError::new(
        "int_parsing",
        "Input should be a valid integer, unable to parse string as an integer",
    )
}

fn int_from_float() -> FieldError {
    FieldError::new(
        "int_from_float",
        "Input should be a valid integer, got a number with a fractional part",
    )
}

fn int_too_large() -> FieldError {
    FieldError::new(
        "int_parsing_size",
        "Unable to parse input string as an integer, exceeded maximum size",
    )
}

fn finite_number() -> FieldError {
    FieldError::new("finite_number", "Input should be a finite number")
}

/// Removes the underscores Python allows between digits (`1_000`); any other
/// underscore makes the text invalid.
fn strip_digit_underscores(text: &str) -> Option<String> {
    if !text.contains('_') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            let before = i.checked_sub(1).map(|j| bytes[j]);
            let after = bytes.get(i + 1).copied();
            let digit_around = matches!(before, Some(c) if c.is_ascii_digit())
                && matches!(after, Some(c) if c.is_ascii_digit());
            if !digit_around {
                return None;
            }
        } else {
            out.push(b as char);
        }
    }
    Some(out)
}

/// Parses an integer written as text: surrounding white space, a sign,
/// digit underscores and a zero fraction (`"12.0"`) are accepted.
pub fn int_from_str(text: &str) -> Result<i64, FieldError> {
    let trimmed = text.trim();
    let cleaned = strip_digit_underscores(trimmed).ok_or_else(int_parsing)?;
    let (sign, digits) = match cleaned.as_bytes().first() {
        Some(b'-') => ("-", &cleaned[1..]),
        Some(b'+') => ("", &cleaned[1..]),
        _ => ("", cleaned.as_str()),
    };
    let integral = match digits.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() && fraction.bytes().all(|b| b == b'0') => {
            whole
        }
        Some(_) => return Err(int_parsing()),
        None => digits,
    };
    if integral.is_empty() || !integral.bytes().all(|b| b.is_ascii_digit()) {
        return Err(int_parsing());
    }
    format!("{sign}{integral}")
        .parse::<i64>()
        .map_err(|_| int_too_large())
}

/// Integer field: JSON integers, whole floats, booleans and integer text.
pub fn lenient_int(value: &Value) -> Result<i64, FieldError> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.is_u64() {
                Err(int_too_large())
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() != 0.0 {
                    Err(int_from_float())
                } else if f <= i64::MIN as f64 || f >= i64::MAX as f64 {
                    // A JSON integer beyond i64 arrives here rounded to a
                    // float; -2^63 may be such a rounding, so it is refused
                    // rather than stored as a different number.
                    Err(int_too_large())
                } else {
                    Ok(f as i64)
                }
            }
        }
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::String(s) => int_from_str(s),
        _ => Err(FieldError::new(
            "int_type",
            "Input should be a valid integer",
        )),
    }
}

/// Parses a float written as text; NaN and infinities are refused.
pub fn float_from_str(text: &str) -> Result<f64, FieldError> {
    let parsing = || {
        FieldError::new(
            "float_parsing",
            "Input should be a valid number, unable to parse string as a number",
        )
    };
    let cleaned = strip_digit_underscores(text.trim()).ok_or_else(parsing)?;
    let parsed = cleaned.parse::<f64>().map_err(|_| parsing())?;
    finite(parsed)
}

fn finite(value: f64) -> Result<f64, FieldError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(finite_number())
    }
}

/// Float field: numbers, booleans and numeric text, finite only.
pub fn lenient_float(value: &Value) -> Result<f64, FieldError> {
    match value {
        Value::Number(n) => finite(n.as_f64().unwrap_or(f64::NAN)),
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => float_from_str(s),
        _ => Err(FieldError::new(
            "float_type",
            "Input should be a valid number",
        )),
    }
}

/// Boolean query parameter, with the spellings pydantic accepts.
pub fn bool_from_str(text: &str) -> Result<bool, FieldError> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" | "on" => Ok(true),
        "0" | "false" | "f" | "no" | "n" | "off" => Ok(false),
        _ => Err(FieldError::new(
            "bool_parsing",
            "Input should be a valid boolean, unable to interpret input",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_accept_the_lax_forms() {
        for (input, expected) in [
            (json!(8543), 8543),
            (json!(8543.0), 8543),
            (json!(true), 1),
            (json!(false), 0),
            (json!("8543"), 8543),
            (json!(" 12 "), 12),
            (json!("1_000"), 1000),
            (json!("12.0"), 12),
            (json!("-7"), -7),
            (json!("+7"), 7),
        ] {
            assert_eq!(lenient_int(&input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn integers_reject_the_rest_with_pydantic_types() {
        for (input, kind) in [
            (json!(8543.5), "int_from_float"),
            (json!("8543.5"), "int_parsing"),
            (json!("1e3"), "int_parsing"),
            (json!("abc"), "int_parsing"),
            (json!(""), "int_parsing"),
            (json!("1__0"), "int_parsing"),
            (json!("_1"), "int_parsing"),
            (json!(null), "int_type"),
            (json!([1]), "int_type"),
            (json!("99999999999999999999"), "int_parsing_size"),
            (json!(18446744073709551615u64), "int_parsing_size"),
            (
                serde_json::from_str("-9223372036854775809").unwrap(),
                "int_parsing_size",
            ),
        ] {
            let err = lenient_int(&input).expect_err(&input.to_string());
            assert_eq!(err.kind, kind, "{input}");
        }
    }

    #[test]
    fn floats_accept_numbers_text_and_booleans() {
        assert_eq!(lenient_float(&json!(3)), Ok(3.0));
        assert_eq!(lenient_float(&json!(12.5)), Ok(12.5));
        assert_eq!(lenient_float(&json!("12.5")), Ok(12.5));
        assert_eq!(lenient_float(&json!("1e3")), Ok(1000.0));
        assert_eq!(lenient_float(&json!(true)), Ok(1.0));
    }

    #[test]
    fn floats_reject_nan_infinity_and_junk() {
        for text in ["nan", "NaN", "inf", "-inf", "Infinity"] {
            assert_eq!(
                lenient_float(&json!(text)).unwrap_err().kind,
                "finite_number"
            );
        }
        assert_eq!(
            lenient_float(&json!("abc")).unwrap_err().kind,
            "float_parsing"
        );
        assert_eq!(lenient_float(&json!(null)).unwrap_err().kind, "float_type");
        assert_eq!(
            lenient_float(&json!("abc")).unwrap_err().msg,
            "Input should be a valid number, unable to parse string as a number"
        );
    }

    fn unanchored(pattern: &str) -> &str {
        &pattern[1..pattern.len() - 1]
    }

    /// Whether `accepted` and the pattern agree on texts near the ones the
    /// pattern generates (an edit away), apart from the known exceptions.
    fn agrees_nearby(
        pattern: &str,
        text: &str,
        edit: (usize, u8, char),
        accepted: impl Fn(&str) -> bool,
        undescribed: impl Fn(&str) -> bool,
    ) -> Result<(), String> {
        let (at, kind, with) = edit;
        let mut chars: Vec<char> = text.chars().collect();
        let at = at.min(chars.len());
        match kind {
            0 => chars.insert(at, with),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => chars[at] = with,
            _ => chars.push(with),
        }
        let edited: String = chars.into_iter().collect();
        let described = regex::Regex::new(pattern).unwrap().is_match(&edited);
        let accepted = accepted(&edited);
        if described == accepted || (accepted && undescribed(&edited)) {
            Ok(())
        } else {
            Err(format!(
                "{edited:?}: described {described}, accepted {accepted}"
            ))
        }
    }

    const EDITS: &[char] = &['0', '1', '9', '_', '.', '-', '+', 'e', ' ', '\t', 'x'];

    /// Significant digits before the point and exponent digits of a
    /// number text (underscores dropped).
    fn digit_counts(text: &str) -> (usize, usize) {
        let cleaned = text.trim().trim_start_matches(['+', '-']).replace('_', "");
        let (mantissa, exponent) = cleaned
            .split_once(['e', 'E'])
            .unwrap_or((cleaned.as_str(), ""));
        let whole = mantissa.split('.').next().unwrap_or("");
        let exponent = exponent.trim_start_matches(['+', '-']);
        (whole.trim_start_matches('0').len(), exponent.len())
    }

    /// Accepted integer texts the pattern leaves out: 19 significant digits.
    fn long_int(text: &str) -> bool {
        digit_counts(text).0 > 18
    }

    proptest::proptest! {
        #[test]
        fn every_documented_integer_text_is_accepted(
            text in proptest::string::string_regex(unanchored(INT_TEXT_PATTERN)).unwrap()
        ) {
            proptest::prop_assert!(int_from_str(&text).is_ok(), "{:?}", text);
        }

        #[test]
        fn every_accepted_integer_text_is_documented(
            text in proptest::string::string_regex(unanchored(INT_TEXT_PATTERN)).unwrap(),
            at in 0usize..30, kind in 0u8..3, with in proptest::sample::select(EDITS),
        ) {
            agrees_nearby(INT_TEXT_PATTERN, &text, (at, kind, with), |t| int_from_str(t).is_ok(), long_int)
                .map_err(proptest::test_runner::TestCaseError::fail)?;
        }

        #[test]
        fn every_documented_number_text_is_accepted(
            text in proptest::string::string_regex(unanchored(FLOAT_TEXT_PATTERN)).unwrap()
        ) {
            proptest::prop_assert!(float_from_str(&text).is_ok(), "{:?}", text);
        }

        #[test]
        fn every_accepted_number_text_is_documented(
            text in proptest::string::string_regex(unanchored(FLOAT_TEXT_PATTERN)).unwrap(),
            at in 0usize..30, kind in 0u8..3, with in proptest::sample::select(EDITS),
        ) {
            // Left out on purpose: digit underscores, and forms long enough
            // that some of their values are not finite.
            let unusual = |t: &str| {
                let (whole, exponent) = digit_counts(t);
                t.contains('_') || whole > 15 || exponent > 2
            };
            agrees_nearby(FLOAT_TEXT_PATTERN, &text, (at, kind, with), |t| float_from_str(t).is_ok(), unusual)
                .map_err(proptest::test_runner::TestCaseError::fail)?;
        }
    }

    #[test]
    fn booleans_accept_every_pydantic_spelling_in_any_case() {
        for t in ["true", "TRUE", "1", "yes", "Y", "on", "t"] {
            assert_eq!(bool_from_str(t), Ok(true), "{t}");
        }
        for f in ["false", "0", "No", "n", "OFF", "F"] {
            assert_eq!(bool_from_str(f), Ok(false), "{f}");
        }
        assert_eq!(bool_from_str("maybe").unwrap_err().kind, "bool_parsing");
        assert_eq!(bool_from_str("").unwrap_err().kind, "bool_parsing");
    }
}
