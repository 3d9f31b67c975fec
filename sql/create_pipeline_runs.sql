-- Reference Oracle schema for pipeline-service (PIPELINE_BACKEND=oracle).
-- `pipeline-service ddl` prints the same statements for the configured
-- ORACLE_TABLE and ORACLE_COLUMN_MAP (a test keeps this file in step).
--
-- Column names are the record's field names; ORACLE_COLUMN_MAP adapts the
-- service to a table whose columns are named differently (its key "id"
-- names the identity column used to keep pages stable).
--
-- Each of the four times is two columns: its reading and the offset it
-- was written with, in seconds east of UTC (NULL for a naive time). A
-- local time's column holds its wall-clock time as written, a UTC time's
-- column its UTC instant (a naive UTC time is stored as if it were UTC,
-- which is how every filter reads it). Together they give back exactly
-- what was written, any offset up to +/-23:59 included, and no session
-- time zone takes part in storing, comparing or reading them.
--
-- The offset columns are optional: the service also serves a table of the
-- original layout (the Python service's: local times TIMESTAMP(6), UTC
-- times TIMESTAMP(6) WITH TIME ZONE, no offset columns), with what that
-- layout cannot keep documented in the README, and finds which layout a
-- table has when it first reaches it.
--
-- Texts are VARCHAR2, which holds at most 4000 bytes whatever the declared
-- length (MAX_STRING_SIZE=STANDARD): the service refuses longer values
-- with a 422 at the field. Oracle stores '' as NULL, so the service
-- stores "" (and any text starting with U+0000) behind one U+0000 and
-- takes it off when reading. The database character set must be AL32UTF8.
--
-- The indexes keep runs in answer order (start descending, identity
-- ascending): the default page, keyset pages, a pipeline's or an
-- environment's pages and retention read them in index order.
--
CREATE TABLE PIPELINE_RUNS (
    ID NUMBER GENERATED ALWAYS AS IDENTITY,
    START_LOCAL TIMESTAMP(6) NOT NULL,
    START_LOCAL_OFFSET NUMBER(5) CHECK (START_LOCAL_OFFSET BETWEEN -86399 AND 86399),
    END_LOCAL TIMESTAMP(6) NOT NULL,
    END_LOCAL_OFFSET NUMBER(5) CHECK (END_LOCAL_OFFSET BETWEEN -86399 AND 86399),
    START_UTC TIMESTAMP(6) NOT NULL,
    START_UTC_OFFSET NUMBER(5) CHECK (START_UTC_OFFSET BETWEEN -86399 AND 86399),
    END_UTC TIMESTAMP(6) NOT NULL,
    END_UTC_OFFSET NUMBER(5) CHECK (END_UTC_OFFSET BETWEEN -86399 AND 86399),
    ELAPSED_SECONDS BINARY_DOUBLE NOT NULL,
    ELAPSED_HUMAN VARCHAR2(4000 CHAR) NOT NULL,
    OUTPUT_FILE VARCHAR2(4000 CHAR) NOT NULL,
    ROWCOUNT NUMBER(19) NOT NULL,
    LOG_FILE VARCHAR2(4000 CHAR) NOT NULL,
    PID NUMBER(19) NOT NULL,
    DATE_CODE VARCHAR2(4000 CHAR) NOT NULL,
    PIPELINE_NAME VARCHAR2(4000 CHAR),
    SCRIPT_NAME VARCHAR2(4000 CHAR),
    PIPELINE_TYPE VARCHAR2(4000 CHAR),
    ENVIRONMENT VARCHAR2(4000 CHAR),
    ARCHIVED_FILE VARCHAR2(4000 CHAR),
    IDEMPOTENCY_KEY VARCHAR2(255 CHAR),
    IDEMPOTENCY_FINGERPRINT VARCHAR2(64),
    IDEMPOTENCY_AT TIMESTAMP(6),
    CONSTRAINT PIPELINE_RUNS_PK PRIMARY KEY (ID)
);
CREATE INDEX PIPELINE_RUNS_START_IX ON PIPELINE_RUNS (START_UTC DESC, ID);
CREATE INDEX PIPELINE_RUNS_NAME_START_IX ON PIPELINE_RUNS (PIPELINE_NAME, START_UTC DESC, ID);
CREATE INDEX PIPELINE_RUNS_ENV_START_IX ON PIPELINE_RUNS (ENVIRONMENT, START_UTC DESC, ID);
CREATE INDEX PIPELINE_RUNS_DATE_CODE_IX ON PIPELINE_RUNS (DATE_CODE);
CREATE UNIQUE INDEX PIPELINE_RUNS_IDEMPOTENCY_UX ON PIPELINE_RUNS (IDEMPOTENCY_KEY);
--
-- A table created before the idempotency columns existed gets them with
-- `pipeline-service ddl --add-idempotency`:
-- ALTER TABLE PIPELINE_RUNS ADD (IDEMPOTENCY_KEY VARCHAR2(255 CHAR), IDEMPOTENCY_FINGERPRINT VARCHAR2(64), IDEMPOTENCY_AT TIMESTAMP(6));
-- CREATE UNIQUE INDEX PIPELINE_RUNS_IDEMPOTENCY_UX ON PIPELINE_RUNS (IDEMPOTENCY_KEY);
--
-- A table of the original layout gets the offset columns with
-- `pipeline-service ddl --add-offsets` (its columns keep their types; the
-- rows it holds get NULL offsets and read back exactly as before):
-- ALTER TABLE PIPELINE_RUNS ADD (START_LOCAL_OFFSET NUMBER(5) CHECK (START_LOCAL_OFFSET BETWEEN -86399 AND 86399), END_LOCAL_OFFSET NUMBER(5) CHECK (END_LOCAL_OFFSET BETWEEN -86399 AND 86399), START_UTC_OFFSET NUMBER(5) CHECK (START_UTC_OFFSET BETWEEN -86399 AND 86399), END_UTC_OFFSET NUMBER(5) CHECK (END_UTC_OFFSET BETWEEN -86399 AND 86399));
