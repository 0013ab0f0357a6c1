-- 0001: executions, ROI summaries (counts and sums only), the pattern_roi view, consumer offsets.
-- Money and durations are unconstrained NUMERIC: stored exactly as the producer wrote them, and
-- summed exactly, so incremental summaries always equal a recompute.

CREATE TABLE pattern_executions (
    event_id               uuid        PRIMARY KEY,
    schema_version         smallint    NOT NULL,
    pattern_id             text        NOT NULL
        CONSTRAINT pattern_executions_pattern_id_format
        CHECK (pattern_id ~ '^[A-Za-z0-9._:/-]{1,200}$'),
    executed_at            timestamptz NOT NULL,
    success                boolean     NOT NULL,
    execution_time_seconds numeric     NOT NULL CHECK (execution_time_seconds >= 0),
    estimated_time_seconds numeric     NOT NULL CHECK (estimated_time_seconds >= 0),
    actual_cost            numeric     NOT NULL CHECK (actual_cost >= 0),
    estimated_cost         numeric     NOT NULL CHECK (estimated_cost >= 0),
    workflow_id            text,
    error_message          text,
    correlation_id         text,
    quality_score          numeric     CHECK (quality_score BETWEEN 0 AND 1),
    actual_tokens          bigint      CHECK (actual_tokens >= 0),
    baseline_tokens        bigint      CHECK (baseline_tokens >= 0),
    source                 text,
    attributes             jsonb,
    unknown_fields         jsonb,
    source_topic           text        NOT NULL,
    source_partition       integer     NOT NULL CHECK (source_partition >= 0),
    source_offset          bigint      NOT NULL CHECK (source_offset >= 0),
    ingested_at            timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE pattern_executions IS
    'One row per execution event (contract v1); event_id is the idempotency key.';

CREATE INDEX pattern_executions_pattern_time_idx ON pattern_executions (pattern_id, executed_at);
CREATE INDEX pattern_executions_executed_at_idx ON pattern_executions (executed_at);

-- Sums and counts only; rates, averages and ROI are derived (view pattern_roi, worker.roi).
-- time_saved and cost_saved follow the methodology: estimate minus actual on success,
-- minus the actual on failure (docs/roi-methodology.md).
CREATE TABLE pattern_roi_summary (
    pattern_id                   text        PRIMARY KEY,
    total_executions             bigint      NOT NULL DEFAULT 0 CHECK (total_executions >= 0),
    successful_executions        bigint      NOT NULL DEFAULT 0
        CHECK (successful_executions BETWEEN 0 AND total_executions),
    total_time_saved_seconds     numeric     NOT NULL DEFAULT 0,
    total_cost_saved_usd         numeric     NOT NULL DEFAULT 0,
    total_actual_cost_usd        numeric     NOT NULL DEFAULT 0 CHECK (total_actual_cost_usd >= 0),
    total_estimated_cost_usd     numeric     NOT NULL DEFAULT 0,
    total_execution_time_seconds numeric     NOT NULL DEFAULT 0,
    total_estimated_time_seconds numeric     NOT NULL DEFAULT 0,
    first_executed_at            timestamptz,
    last_executed_at             timestamptz,
    last_updated                 timestamptz NOT NULL DEFAULT now()
);

-- The same sums per pattern and UTC calendar day of executed_at.
CREATE TABLE pattern_roi_daily (
    pattern_id                   text        NOT NULL,
    day                          date        NOT NULL,
    total_executions             bigint      NOT NULL DEFAULT 0 CHECK (total_executions >= 0),
    successful_executions        bigint      NOT NULL DEFAULT 0
        CHECK (successful_executions BETWEEN 0 AND total_executions),
    total_time_saved_seconds     numeric     NOT NULL DEFAULT 0,
    total_cost_saved_usd         numeric     NOT NULL DEFAULT 0,
    total_actual_cost_usd        numeric     NOT NULL DEFAULT 0 CHECK (total_actual_cost_usd >= 0),
    total_estimated_cost_usd     numeric     NOT NULL DEFAULT 0,
    total_execution_time_seconds numeric     NOT NULL DEFAULT 0,
    total_estimated_time_seconds numeric     NOT NULL DEFAULT 0,
    last_updated                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pattern_id, day)
);

CREATE INDEX pattern_roi_daily_day_idx ON pattern_roi_daily (day);

-- The derived figures, with the column names existing dashboards and queries use.
-- success_rate is a fraction (0..1); roi_percentage is NULL when nothing was invested.
CREATE VIEW pattern_roi AS
SELECT
    pattern_id,
    total_executions,
    successful_executions,
    successful_executions::numeric / NULLIF(total_executions, 0)  AS success_rate,
    total_time_saved_seconds,
    total_cost_saved_usd,
    total_time_saved_seconds / NULLIF(total_executions, 0)        AS average_time_saved_seconds,
    total_cost_saved_usd / NULLIF(total_executions, 0)            AS average_cost_saved_usd,
    100 * total_cost_saved_usd / NULLIF(total_actual_cost_usd, 0) AS roi_percentage,
    last_updated
FROM pattern_roi_summary;

-- Where each partition resumes: written in the same transaction as the events it covers, so
-- the database, not Kafka, decides what has been stored.
CREATE TABLE consumer_offsets (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL CHECK (partition >= 0),
    next_offset    bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
