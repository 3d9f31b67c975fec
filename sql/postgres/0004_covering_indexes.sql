-- A time window or a rowcount bound is checked on every run of the index
-- range: with `end_utc` and `rowcount` carried in the page indexes, the
-- exact total of such a filter is counted from the index alone (an
-- index-only scan) instead of visiting every matching row in the table.
-- Rebuilding them locks writes to the runs while it lasts (seconds per
-- million runs).
DROP INDEX pipeline_runs_start_ix;
CREATE INDEX pipeline_runs_start_ix ON pipeline_runs (start_utc DESC, seq)
    INCLUDE (end_utc, rowcount);
DROP INDEX pipeline_runs_name_start_ix;
CREATE INDEX pipeline_runs_name_start_ix ON pipeline_runs (pipeline_name, start_utc DESC, seq)
    INCLUDE (end_utc, rowcount);
DROP INDEX pipeline_runs_environment_start_ix;
CREATE INDEX pipeline_runs_environment_start_ix ON pipeline_runs (environment, start_utc DESC, seq)
    INCLUDE (end_utc, rowcount);
