use super::*;
use crate::repository::RunKey;

fn postgres() -> Table {
    Table::new(
        "pipeline_runs".into(),
        FIELD_NAMES.iter().map(|f| (*f).to_owned()).collect(),
        "seq".into(),
        true,
    )
}

const COLUMNS: &str = "start_local, start_local_offset, end_local, end_local_offset, \
start_utc, start_utc_offset, end_utc, end_utc_offset, elapsed_seconds, elapsed_human, \
output_file, rowcount, log_file, pid, date_code, pipeline_name, script_name, pipeline_type, \
environment, archived_file";

fn names(statement: &Statement) -> Vec<&str> {
    statement.binds.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn postgres_numbers_its_placeholders_and_limits_rows() {
    let t = postgres();
    assert_eq!(t.select_list(), COLUMNS);
    assert_eq!(t.select_width(), 20);
    let filter = RunFilter {
        environment: Some("prod".into()),
        min_rowcount: Some(3),
        ..Default::default()
    };
    let page = select_runs(
        Dialect::Postgres,
        &t,
        &filter,
        Position::Offset(20),
        Some(10),
    );
    assert_eq!(
        page.sql,
        format!(
            "SELECT {COLUMNS}, seq FROM pipeline_runs WHERE rowcount >= $1 AND environment = $2 \
ORDER BY start_utc DESC, seq ASC OFFSET $3 ROWS FETCH NEXT $4 ROWS ONLY"
        )
    );
    assert_eq!(
        names(&page),
        ["min_rowcount", "environment", "page_offset", "page_limit"]
    );
    assert_eq!(
        count(Dialect::Postgres, &t, &filter).sql,
        "SELECT COUNT(*) FROM pipeline_runs WHERE rowcount >= $1 AND environment = $2"
    );
    let all = select_runs(Dialect::Postgres, &t, &filter, Position::Offset(0), None);
    assert!(
        all.sql.ends_with("ORDER BY start_utc DESC, seq ASC"),
        "{}",
        all.sql
    );
}

#[test]
fn postgres_keyset_pages_bound_the_index_scan() {
    let key = RunKey {
        start_micros: 1_754_006_400_000_000,
        seq: 17,
    };
    let filter = RunFilter {
        pipeline_name: Some("p".into()),
        ..Default::default()
    };
    let s = select_runs(
        Dialect::Postgres,
        &postgres(),
        &filter,
        Position::After(key),
        Some(101),
    );
    assert_eq!(
        s.sql,
        format!(
            "SELECT {COLUMNS}, seq FROM pipeline_runs WHERE pipeline_name = $1 AND start_utc <= $2 \
AND (start_utc < $2 OR (start_utc = $2 AND seq > $3)) ORDER BY start_utc DESC, seq ASC \
FETCH FIRST $4 ROWS ONLY"
        )
    );
    assert_eq!(
        names(&s),
        ["pipeline_name", "after_start", "after_id", "page_limit"]
    );
}

#[test]
fn postgres_aggregates_keep_the_latest_offset_and_read_as_floats() {
    let t = postgres();
    let groups = "pipeline_name, script_name, pipeline_type, environment";
    assert_eq!(
        summary(Dialect::Postgres, &t).sql,
        format!(
            "SELECT {groups}, COUNT(*), MAX(start_utc), \
CAST(AVG(CASE WHEN elapsed_seconds > 0 THEN elapsed_seconds END) AS double precision), \
CAST(AVG(CASE WHEN rowcount > 0 THEN rowcount END) AS double precision), \
(array_agg(start_utc_offset ORDER BY start_utc DESC, seq ASC))[1] \
FROM pipeline_runs GROUP BY {groups} ORDER BY MAX(start_utc) DESC, MIN(seq) ASC"
        )
    );
    assert!(activity(Dialect::Postgres, &t).sql.starts_with(&format!(
        "SELECT {groups}, total_runs, start_utc, elapsed_seconds, rowcount, start_utc_offset FROM ("
    )));
    assert!(activity(Dialect::Postgres, &t)
        .sql
        .ends_with("FROM pipeline_runs t) latest_runs WHERE latest = 1"));
    assert_eq!(
        archived_files(Dialect::Postgres, &t, "d", 3).sql,
        "SELECT DISTINCT archived_file FROM pipeline_runs WHERE date_code = $1 FETCH FIRST $2 ROWS ONLY"
    );
}

#[test]
fn percentiles_are_one_grouped_statement_in_both_dialects() {
    let filter = RunFilter {
        pipeline_name: Some("p".into()),
        ..Default::default()
    };
    let oracle_table = Table::new(
        "RUNS".into(),
        FIELD_NAMES.iter().map(|f| f.to_ascii_uppercase()).collect(),
        "ID".into(),
        false,
    );
    let groups = "PIPELINE_NAME, SCRIPT_NAME, PIPELINE_TYPE, ENVIRONMENT";
    assert_eq!(
        percentiles(Dialect::Oracle, &oracle_table, &filter).sql,
        format!(
            "SELECT {groups}, COUNT(*), PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY ELAPSED_SECONDS), \
PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY ELAPSED_SECONDS), \
PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY ELAPSED_SECONDS), MAX(ELAPSED_SECONDS), \
PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY ROWCOUNT), COUNT(CASE WHEN ROWCOUNT = 0 THEN 1 END) \
FROM RUNS WHERE PIPELINE_NAME = :pipeline_name GROUP BY {groups}"
        )
    );
    let pg = percentiles(Dialect::Postgres, &postgres(), &filter);
    assert!(pg.sql.contains(
        "CAST(PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY elapsed_seconds) AS double precision)"
    ));
    assert!(pg.sql.ends_with(
        "WHERE pipeline_name = $1 GROUP BY pipeline_name, script_name, pipeline_type, environment"
    ));
}
