//! What the driver's errors mean: the database out of reach (503), a
//! session that died (retry a read), a value too long for its column (422),
//! or a fault in our SQL (500).

use crate::repository::{NewRun, RepositoryError};

use super::rows::{refused, too_long_error, TEXT_MAX_BYTES};
use super::sql::{stored_text, OracleSchema};

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

/// ORA-00001: a unique index refused a row. The only unique index a run
/// can collide with is the idempotency key's.
pub(super) fn is_key_taken(error: &oracle::Error) -> bool {
    code(error) == Some(1)
}

/// ORA-00904 (invalid identifier) naming an idempotency column, from a
/// keyed statement: the table predates those columns. Another missing
/// column (a table of an older layout, a wrong column map) stays a fault.
pub(super) fn keys_unsupported(error: &oracle::Error) -> Option<RepositoryError> {
    (code(error) == Some(904) && error.to_string().contains("IDEMPOTENCY_"))
        .then(|| RepositoryError::Unsupported(KEYS_NEED_COLUMNS.into()))
}

/// A value too long for its column, as a 422 at the field: ORA-12899
/// ("value too large for column "S"."T"."C" (actual: a, maximum: m)")
/// names the column and its limit, and the first of `runs` (those
/// `stored`) whose value there is longer is refused; ORA-01461 (a bind
/// over 4000 bytes meant for a VARCHAR2) names nothing, and the first
/// text over `TEXT_MAX_BYTES` is refused. `check_storable` refuses such
/// texts before they are bound; these answer for tables whose columns are
/// smaller than the DDL's.
pub(super) fn too_large_for_column(
    error: &oracle::Error,
    schema: &OracleSchema,
    runs: &[NewRun],
    stored: impl Iterator<Item = usize>,
) -> Option<RepositoryError> {
    let message = error.to_string();
    let (column, maximum) = match code(error)? {
        12899 => {
            let (column, maximum) = column_limit(&message)?;
            (Some(column.to_owned()), maximum)
        }
        1461 => (None, TEXT_MAX_BYTES as u64),
        _ => return None,
    };
    let fits = |field: &str| {
        column
            .as_deref()
            .is_none_or(|c| schema.column(field).eq_ignore_ascii_case(c))
    };
    let stored: Vec<usize> = stored.collect();
    let (run, field, value) = stored.iter().find_map(|&run| {
        runs.get(run)?
            .record
            .text_fields()
            .into_iter()
            .filter(|(field, _)| fits(field))
            .find_map(|(field, value)| {
                let value = value?;
                (stored_text(value).len() as u64 > maximum).then_some((run, field, value))
            })
    })?;
    Some(refused(
        run,
        field,
        serde_json::Value::String(value.to_owned()),
        too_long_error(maximum),
    ))
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
    use crate::domain::{LocItem, PipelineInfo};

    #[test]
    fn value_too_large_names_the_column_and_its_limit() {
        let message = r#"ORA-12899: value too large for column "APP"."PIPELINE_RUNS"."OUTPUT_FILE" (actual: 4100, maximum: 4000)"#;
        assert_eq!(column_limit(message), Some(("OUTPUT_FILE", 4000)));
        assert_eq!(
            column_limit("ORA-00942: table or view does not exist"),
            None
        );
    }

    #[allow(deprecated)] // the variant is how a database error is made outside the driver
    fn database_error(code: i32, message: &str) -> oracle::Error {
        oracle::Error::OciError(oracle::DbError::new(code, 0, message, "", ""))
    }

    fn run(output_file: &str) -> NewRun {
        let mut body = crate::domain::record::tests::sample();
        body["output_file"] = output_file.into();
        PipelineInfo::parse_stored(&body).unwrap().into()
    }

    /// Every insert path (one run, a keyed one, a bulk, an import) refuses
    /// a value too long for its column the same way: at the run holding it.
    #[test]
    fn a_value_too_long_for_its_column_is_refused_at_its_run() {
        let schema = OracleSchema::new("RUNS", None).unwrap();
        let long = "x".repeat(4100);
        let runs = [run("/short"), run("/also-short"), run(&long), run(&long)];
        let error = database_error(
            12899,
            r#"ORA-12899: value too large for column "APP"."RUNS"."OUTPUT_FILE" (actual: 4100, maximum: 4000)"#,
        );
        let Some(RepositoryError::Invalid { run, errors }) =
            too_large_for_column(&error, &schema, &runs, 0..runs.len())
        else {
            panic!("not refused")
        };
        assert_eq!(run, 2);
        let refused = &errors.detail[0];
        assert_eq!(refused.kind, "string_too_long");
        assert_eq!(
            refused.loc,
            [LocItem::from("body"), LocItem::from("output_file")]
        );
        assert_eq!(refused.input, serde_json::Value::from(long.as_str()));
        let only_third_onwards = too_large_for_column(&error, &schema, &runs, 3..4);
        assert!(matches!(
            only_third_onwards,
            Some(RepositoryError::Invalid { run: 3, .. })
        ));
        // ORA-01461 names no column: the first text over 4000 bytes is refused.
        let long_bind = database_error(
            1461,
            "ORA-01461: can bind a LONG value only for insert into a LONG column",
        );
        let runs = [
            self::run("/short"),
            self::run(&"é".repeat(2001)),
            self::run(&long),
        ];
        let Some(RepositoryError::Invalid { run: at, errors }) =
            too_large_for_column(&long_bind, &schema, &runs, 0..runs.len())
        else {
            panic!("not refused")
        };
        assert_eq!((at, errors.detail[0].kind), (1, "string_too_long"));
        assert_eq!(
            errors.detail[0].loc,
            [LocItem::from("body"), LocItem::from("output_file")]
        );
        let other = database_error(942, "ORA-00942: table or view does not exist");
        assert!(too_large_for_column(&other, &schema, &runs, 0..4).is_none());
    }

    #[test]
    fn a_taken_key_and_a_table_without_key_columns_are_told_apart() {
        let taken = database_error(
            1,
            "ORA-00001: unique constraint (APP.RUNS_IDEMPOTENCY_UX) violated",
        );
        assert!(is_key_taken(&taken));
        assert!(keys_unsupported(&taken).is_none());
        let old_table = database_error(904, r#"ORA-00904: "IDEMPOTENCY_KEY": invalid identifier"#);
        assert!(!is_key_taken(&old_table));
        assert!(matches!(
            keys_unsupported(&old_table),
            Some(RepositoryError::Unsupported(_))
        ));
        let old_layout = database_error(
            904,
            r#"ORA-00904: "START_LOCAL_OFFSET": invalid identifier"#,
        );
        assert!(keys_unsupported(&old_layout).is_none());
    }
}
