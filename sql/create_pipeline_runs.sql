-- Reference Oracle schema for pipeline-service (PIPELINE_BACKEND=oracle).
-- Column names are the record's field names; ORACLE_COLUMN_MAP adapts the
-- service to a table whose columns are named differently.
--
-- All four times are TIMESTAMP WITH TIME ZONE: aware values keep their
-- offset, naive values (usually start_local/end_local) are stored at the
-- session time zone and read back without one.

CREATE TABLE PIPELINE_RUNS (
    ID               NUMBER GENERATED ALWAYS AS IDENTITY,
    START_LOCAL      TIMESTAMP(6) WITH TIME ZONE NOT NULL,
    END_LOCAL        TIMESTAMP(6) WITH TIME ZONE NOT NULL,
    START_UTC        TIMESTAMP(6) WITH TIME ZONE NOT NULL,
    END_UTC          TIMESTAMP(6) WITH TIME ZONE NOT NULL,
    ELAPSED_SECONDS  BINARY_DOUBLE NOT NULL,
    ELAPSED_HUMAN    VARCHAR2(4000 CHAR) NOT NULL,
    OUTPUT_FILE      VARCHAR2(4000 CHAR) NOT NULL,
    LOG_FILE         VARCHAR2(4000 CHAR) NOT NULL,
    ROWCOUNT         NUMBER(19) NOT NULL,
    PID              NUMBER(19) NOT NULL,
    DATE_CODE        VARCHAR2(4000 CHAR) NOT NULL,
    PIPELINE_NAME    VARCHAR2(4000 CHAR),
    SCRIPT_NAME      VARCHAR2(4000 CHAR),
    PIPELINE_TYPE    VARCHAR2(4000 CHAR),
    ENVIRONMENT      VARCHAR2(4000 CHAR),
    ARCHIVED_FILE    VARCHAR2(4000 CHAR),
    CONSTRAINT PIPELINE_RUNS_PK PRIMARY KEY (ID)
);

-- The dashboards' usual question: one pipeline's runs in a time window.
CREATE INDEX PIPELINE_RUNS_NAME_START_IX ON PIPELINE_RUNS (PIPELINE_NAME, START_UTC);
-- Unfiltered pages ordered by start time, and time-window filters.
CREATE INDEX PIPELINE_RUNS_START_IX ON PIPELINE_RUNS (START_UTC);
-- Looking a run up by its date code.
CREATE INDEX PIPELINE_RUNS_DATE_CODE_IX ON PIPELINE_RUNS (DATE_CODE);
