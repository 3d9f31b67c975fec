-- Reference Oracle schema for pipeline-service (PIPELINE_BACKEND=oracle).
-- `pipeline-service ddl` prints the same statements for the configured
-- ORACLE_TABLE and ORACLE_COLUMN_MAP (a test keeps this file in step).
--
-- Column names are the record's field names; ORACLE_COLUMN_MAP adapts the
-- service to a table whose columns are named differently (its key "id"
-- names the identity column used to keep pages stable).
--
-- start_local/end_local are wall-clock readings without a zone, so they are
-- plain TIMESTAMP; start_utc/end_utc keep their offset in TIMESTAMP WITH
-- TIME ZONE. Existing tables with other timestamp types work too: values
-- from a TIMESTAMP column read back naive, values from a WITH TIME ZONE
-- column read back with their stored offset.
--
-- Indexes: (PIPELINE_NAME, START_UTC) for one pipeline's runs in a window,
-- START_UTC for unfiltered pages and time windows, DATE_CODE for look-ups.

CREATE TABLE PIPELINE_RUNS (
    ID NUMBER GENERATED ALWAYS AS IDENTITY,
    START_LOCAL TIMESTAMP(6) NOT NULL,
    END_LOCAL TIMESTAMP(6) NOT NULL,
    START_UTC TIMESTAMP(6) WITH TIME ZONE NOT NULL,
    END_UTC TIMESTAMP(6) WITH TIME ZONE NOT NULL,
    ELAPSED_SECONDS BINARY_DOUBLE NOT NULL,
    ELAPSED_HUMAN VARCHAR2(4000 CHAR) NOT NULL,
    OUTPUT_FILE VARCHAR2(4000 CHAR) NOT NULL,
    LOG_FILE VARCHAR2(4000 CHAR) NOT NULL,
    ROWCOUNT NUMBER(19) NOT NULL,
    PID NUMBER(19) NOT NULL,
    DATE_CODE VARCHAR2(4000 CHAR) NOT NULL,
    PIPELINE_NAME VARCHAR2(4000 CHAR),
    SCRIPT_NAME VARCHAR2(4000 CHAR),
    PIPELINE_TYPE VARCHAR2(4000 CHAR),
    ENVIRONMENT VARCHAR2(4000 CHAR),
    ARCHIVED_FILE VARCHAR2(4000 CHAR),
    CONSTRAINT PIPELINE_RUNS_PK PRIMARY KEY (ID)
);
CREATE INDEX PIPELINE_RUNS_NAME_START_IX ON PIPELINE_RUNS (PIPELINE_NAME, START_UTC);
CREATE INDEX PIPELINE_RUNS_START_IX ON PIPELINE_RUNS (START_UTC);
CREATE INDEX PIPELINE_RUNS_DATE_CODE_IX ON PIPELINE_RUNS (DATE_CODE);
