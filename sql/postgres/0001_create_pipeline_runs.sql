-- One row per pipeline run.
--
-- Each of the four times is two columns: the instant (timestamptz; a naive
-- value is stored as if it were UTC, which is how every filter reads it)
-- and the offset it was written with, in seconds east of UTC (NULL for a
-- naive value). Together they give back exactly what was written:
-- 12:00+05:30 stays 12:00+05:30, Z stays Z, a naive time stays naive, and
-- microseconds are kept. Ordering and filters use the instant columns
-- alone, so indexes on them serve every query.
--
-- Texts are `text`: PostgreSQL keeps '' apart from NULL, and any length
-- the API accepts fits.
CREATE TABLE pipeline_runs (
    -- Insertion order: the tiebreak between runs that start together.
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    start_local timestamptz NOT NULL,
    start_local_offset integer CHECK (start_local_offset BETWEEN -86399 AND 86399),
    end_local timestamptz NOT NULL,
    end_local_offset integer CHECK (end_local_offset BETWEEN -86399 AND 86399),
    start_utc timestamptz NOT NULL,
    start_utc_offset integer CHECK (start_utc_offset BETWEEN -86399 AND 86399),
    end_utc timestamptz NOT NULL,
    end_utc_offset integer CHECK (end_utc_offset BETWEEN -86399 AND 86399),
    elapsed_seconds double precision NOT NULL,
    elapsed_human text NOT NULL,
    output_file text NOT NULL,
    log_file text NOT NULL,
    rowcount bigint NOT NULL,
    pid bigint NOT NULL,
    date_code text NOT NULL,
    pipeline_name text,
    script_name text,
    pipeline_type text,
    environment text,
    archived_file text,
    -- Idempotency: the client's key (unique while kept), the fingerprint of
    -- the record it came with, and when it was stored. NULL for runs
    -- stored without a key, and for keys past their retention.
    idempotency_key text,
    idempotency_fingerprint text,
    idempotency_at timestamptz
);

-- Answer order (start descending, insertion ascending), in index order:
-- the default page, keyset pages and retention read it from the front.
CREATE INDEX pipeline_runs_start_ix ON pipeline_runs (start_utc DESC, seq);

-- A page of one pipeline, alone or within a time window.
CREATE INDEX pipeline_runs_name_start_ix ON pipeline_runs (pipeline_name, start_utc DESC, seq);

-- A page or count of one environment: few distinct values, but a rare or
-- absent one would otherwise scan the table.
CREATE INDEX pipeline_runs_environment_start_ix ON pipeline_runs (environment, start_utc DESC, seq);

-- Archived files are addressed by date_code.
CREATE INDEX pipeline_runs_date_code_ix ON pipeline_runs (date_code);

CREATE UNIQUE INDEX pipeline_runs_idempotency_ux ON pipeline_runs (idempotency_key);
