-- One row per group (pipeline_name, script_name, pipeline_type,
-- environment): its run count, the sums behind its averages, and its
-- latest run. Triggers keep it in the same transaction as every change to
-- pipeline_runs, so `/pipelines`, the per-pipeline metrics and the exact
-- total of a page filtered on group fields only (or not at all) read one
-- row per group instead of every run, and agree with the runs in any
-- snapshot.
CREATE TABLE pipeline_summaries (
    pipeline_name text,
    script_name text,
    pipeline_type text,
    environment text,
    -- The four as one value in which NULLs are equal (arrays compare their
    -- elements that way), so each group has exactly one row.
    group_key text[] GENERATED ALWAYS AS
        (ARRAY[pipeline_name, script_name, pipeline_type, environment]) STORED,
    runs bigint NOT NULL,
    -- Sums and counts of the positive values only (the averages' rule).
    -- numeric, so removing runs subtracts exactly and sums never drift.
    elapsed_sum numeric NOT NULL,
    elapsed_runs bigint NOT NULL,
    rowcount_sum numeric NOT NULL,
    rowcount_runs bigint NOT NULL,
    -- The latest run: greatest start, the first stored among equal ones.
    last_start timestamptz NOT NULL,
    last_start_offset integer,
    last_seq bigint NOT NULL,
    -- The group's first stored run: groups with the same latest start are
    -- listed in the order they first appeared.
    first_seq bigint NOT NULL,
    -- At least how far (microseconds) a run of the group ends before it
    -- starts, zero when none does: with it an `end_utc` bound also bounds
    -- `start_utc`, so a time window reads only its own runs. Only ever
    -- raised, not lowered when such a run goes: larger is still a bound.
    backwards_us bigint NOT NULL DEFAULT 0,
    CONSTRAINT pipeline_summaries_group_key UNIQUE (group_key)
);

-- Runs added by one statement (an insert, a group commit, a COPY) are
-- aggregated once and added to their groups. After a change the other
-- triggers do not follow (an UPDATE of a grouped or summed column by hand,
-- a TRUNCATE), and when the table is created, every group is counted
-- again from all the runs, by the same statement.
CREATE FUNCTION pipeline_summaries_add() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    source text := 'added';
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM pipeline_summaries;
        source := 'pipeline_runs';
    END IF;
    EXECUTE format($sql$
    INSERT INTO pipeline_summaries AS s (
        pipeline_name, script_name, pipeline_type, environment, runs,
        elapsed_sum, elapsed_runs, rowcount_sum, rowcount_runs,
        last_start, last_start_offset, last_seq, first_seq, backwards_us)
    SELECT pipeline_name, script_name, pipeline_type, environment, count(*),
        coalesce(sum(elapsed_seconds::numeric) FILTER (WHERE elapsed_seconds > 0), 0),
        count(*) FILTER (WHERE elapsed_seconds > 0),
        coalesce(sum(rowcount) FILTER (WHERE rowcount > 0), 0),
        count(*) FILTER (WHERE rowcount > 0),
        (array_agg(start_utc ORDER BY start_utc DESC, seq))[1],
        (array_agg(start_utc_offset ORDER BY start_utc DESC, seq))[1],
        (array_agg(seq ORDER BY start_utc DESC, seq))[1],
        min(seq),
        greatest(max(extract(epoch FROM start_utc - end_utc) * 1000000)::bigint, 0)
    FROM %I
    GROUP BY pipeline_name, script_name, pipeline_type, environment
    -- One order for every writer: transactions sharing groups lock them in
    -- the same order, so they wait for one another and never deadlock.
    ORDER BY pipeline_name, script_name, pipeline_type, environment
    ON CONFLICT (group_key) DO UPDATE SET
        runs = s.runs + excluded.runs,
        elapsed_sum = s.elapsed_sum + excluded.elapsed_sum,
        elapsed_runs = s.elapsed_runs + excluded.elapsed_runs,
        rowcount_sum = s.rowcount_sum + excluded.rowcount_sum,
        rowcount_runs = s.rowcount_runs + excluded.rowcount_runs,
        (last_start, last_start_offset, last_seq) = (
            SELECT CASE WHEN newer THEN excluded.last_start ELSE s.last_start END,
                   CASE WHEN newer THEN excluded.last_start_offset ELSE s.last_start_offset END,
                   CASE WHEN newer THEN excluded.last_seq ELSE s.last_seq END
            FROM (SELECT excluded.last_start > s.last_start
                      OR (excluded.last_start = s.last_start AND excluded.last_seq < s.last_seq)
                      AS newer) AS compared),
        first_seq = least(s.first_seq, excluded.first_seq),
        backwards_us = greatest(s.backwards_us, excluded.backwards_us)
    $sql$, source);
    RETURN NULL;
END
$$;

-- Runs removed by one statement (retention) are subtracted from their
-- groups; a group left without runs goes; a group whose latest or first
-- run went finds it again, each by walking an index from its end (the
-- start index for the latest, the primary key for the first) to the
-- group's first row.
CREATE FUNCTION pipeline_summaries_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pipeline_summaries AS s SET
        runs = s.runs - g.runs,
        elapsed_sum = s.elapsed_sum - g.elapsed_sum,
        elapsed_runs = s.elapsed_runs - g.elapsed_runs,
        rowcount_sum = s.rowcount_sum - g.rowcount_sum,
        rowcount_runs = s.rowcount_runs - g.rowcount_runs
    FROM (
        SELECT ARRAY[pipeline_name, script_name, pipeline_type, environment] AS group_key,
            count(*) AS runs,
            coalesce(sum(elapsed_seconds::numeric) FILTER (WHERE elapsed_seconds > 0), 0) AS elapsed_sum,
            count(*) FILTER (WHERE elapsed_seconds > 0) AS elapsed_runs,
            coalesce(sum(rowcount) FILTER (WHERE rowcount > 0), 0) AS rowcount_sum,
            count(*) FILTER (WHERE rowcount > 0) AS rowcount_runs
        FROM removed
        GROUP BY pipeline_name, script_name, pipeline_type, environment
        ORDER BY pipeline_name, script_name, pipeline_type, environment
    ) AS g
    WHERE s.group_key = g.group_key;
    DELETE FROM pipeline_summaries WHERE runs <= 0;
    UPDATE pipeline_summaries AS s SET (last_start, last_start_offset, last_seq) = (
        SELECT r.start_utc, r.start_utc_offset, r.seq FROM pipeline_runs r
        WHERE ARRAY[r.pipeline_name, r.script_name, r.pipeline_type, r.environment] = s.group_key
        ORDER BY r.start_utc DESC, r.seq LIMIT 1)
    WHERE s.last_seq IN (SELECT seq FROM removed);
    UPDATE pipeline_summaries AS s SET first_seq = (
        SELECT r.seq FROM pipeline_runs r
        WHERE ARRAY[r.pipeline_name, r.script_name, r.pipeline_type, r.environment] = s.group_key
        ORDER BY r.seq LIMIT 1)
    WHERE s.first_seq IN (SELECT seq FROM removed);
    RETURN NULL;
END
$$;

CREATE TRIGGER pipeline_summaries_add AFTER INSERT ON pipeline_runs
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION pipeline_summaries_add();
CREATE TRIGGER pipeline_summaries_remove AFTER DELETE ON pipeline_runs
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION pipeline_summaries_remove();
CREATE TRIGGER pipeline_summaries_rebuild_after_update
    AFTER UPDATE OF pipeline_name, script_name, pipeline_type, environment,
        start_utc, start_utc_offset, elapsed_seconds, rowcount ON pipeline_runs
    FOR EACH STATEMENT EXECUTE FUNCTION pipeline_summaries_add();
CREATE TRIGGER pipeline_summaries_rebuild_after_truncate AFTER TRUNCATE ON pipeline_runs
    FOR EACH STATEMENT EXECUTE FUNCTION pipeline_summaries_add();

-- The runs already stored (a database migrated from version 1): a
-- statement-level trigger fires even when the statement changes no row,
-- so this empty UPDATE counts every group once.
UPDATE pipeline_runs SET rowcount = rowcount WHERE false;
