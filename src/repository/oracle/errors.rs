//! What the driver's errors mean: the database out of reach (503), a
//! session that died (retry a read), a value too long for its column (422),
//! or a fault in our SQL (500).

use crate::domain::{FieldError, LocItem, PipelineInfo, ValidationErrors, FIELD_NAMES};
use crate::repository::RepositoryError;

use super::sql::OracleSchema;

/// Why a keyed insert cannot work on a table made before idempotency keys.
pub const KEYS_NEED_COLUMNS: &str = "Idempotency-Key needs the idempotency columns; add them with the statements of `pipeline-service ddl --add-idempotency`";

/// ODPI-C reports a missing client library as DPI-1047.
pub(super) fn is_client_missing(error: &oracle::Error) -> bool {
    error.to_string().contains("DPI-1047")
}

/// The database error code, if the error came from the database.
fn code(error: &oracle::Error) -> Option<i32> {
    error.db_error().map(|e| e.code())
}

/// Errors that mean the session is gone, so a read may be retried on a
/// fresh one: end-of-file on channel, not connected, session killed, and
/// ODPI-C's closed-connection errors.
pub(super) fn is_dead_session(error: &oracle::Error) -> bool {
    const DEAD: &[i32] = &[28, 1012, 2396, 3113, 3114, 3135, 12537, 12547, 12570, 12583];
    if code(error).is_some_and(|c| DEAD.contains(&c)) {
        return true;
    }
    let text = error.to_string();
    text.contains("DPI-1010") || text.contains("DPI-1080")
}

/// Errors that mean the database cannot be reached or answered too slowly,
/// as opposed to a fault in our SQL: network, listener, pool and timeouts.
fn is_unavailable(error: &oracle::Error) -> bool {
    const UNREACHABLE: &[i32] = &[
        1033, 1034, 1089, 12154, 12170, 12514, 12516, 12518, 12520, 12521, 12526, 12528, 12541,
        12543, 24418, 24457, 24459, 24496,
    ];
    if is_dead_session(error) || code(error).is_some_and(|c| UNREACHABLE.contains(&c)) {
        return true;
    }
    let text = error.to_string();
    // DPI-1067: call timeout exceeded.
    text.contains("DPI-1067") || text.contains("DPI-1047")
}

pub(super) fn classify(error: &oracle::Error) -> RepositoryError {
    if is_unavailable(error) {
        RepositoryError::Unavailable(error.to_string())
    } else {
        RepositoryError::Database(error.to_string())
    }
}

/// Errors peculiar to keyed inserts, else the usual classification.
pub(super) fn classify_keyed(error: &oracle::Error) -> RepositoryError {
    match code(error) {
        // Unique key violated: another session stored the same key between
        // our lookup and our insert.
        Some(1) => RepositoryError::KeyInFlight,
        // Invalid identifier: the table predates the idempotency columns.
        Some(904) => RepositoryError::Unsupported(KEYS_NEED_COLUMNS.into()),
        _ => classify(error),
    }
}

/// ORA-12899 ("value too large for column "S"."T"."C" (actual: a,
/// maximum: m)") as a 422 on the field stored in column C.
pub(super) fn too_large_for_column(
    error: &oracle::Error,
    schema: &OracleSchema,
    record: &PipelineInfo,
) -> Option<RepositoryError> {
    if code(error)? != 12899 {
        return None;
    }
    let message = error.to_string();
    let (column, maximum) = column_limit(&message)?;
    let field = FIELD_NAMES
        .iter()
        .find(|f| schema.column(f).eq_ignore_ascii_case(column))?;
    let value = serde_json::to_value(record)
        .ok()
        .and_then(|v| v.get(*field).cloned())
        .unwrap_or(serde_json::Value::Null);
    let error = FieldError::new(
        "string_too_long",
        format!("String should have at most {maximum} bytes to fit the database column"),
    )
    .with_ctx("max_length", maximum)
    .at(vec![LocItem::from("body"), LocItem::from(*field)], value);
    Some(RepositoryError::Invalid(ValidationErrors::single(error)))
}

/// The column and its limit from ORA-12899's message.
fn column_limit(message: &str) -> Option<(&str, u64)> {
    let column = message.split('"').nth(5)?;
    let maximum = message
        .split("maximum: ")
        .nth(1)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some((column, maximum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_too_large_names_the_column_and_its_limit() {
        let message = r#"ORA-12899: value too large for column "APP"."PIPELINE_RUNS"."OUTPUT_FILE" (actual: 4100, maximum: 4000)"#;
        assert_eq!(column_limit(message), Some(("OUTPUT_FILE", 4000)));
        assert_eq!(
            column_limit("ORA-00942: table or view does not exist"),
            None
        );
    }
}
