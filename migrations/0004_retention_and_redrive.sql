-- 0004: retention of raw executions, and the dead letters already redriven.
--
-- `roi-worker retention` deletes raw executions older than a horizon, in chunks. The summaries
-- keep counting them: each chunk moves the deleted rows' aggregate, per pattern and UTC day,
-- into pattern_roi_archive in the same transaction, so "summaries = recompute" still holds with
-- recompute = aggregate(pattern_executions) + pattern_roi_archive. The horizon is recorded in
-- retention_horizon and only moves forward; the worker counts an event older than it as
-- expired and does not store it, so a replay after retention cannot count anything twice.

CREATE TABLE retention_horizon (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    horizon    timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE retention_horizon IS
    'Executions before this instant are deleted (archived as aggregates); later arrivals expire.';

CREATE TABLE pattern_roi_archive (
    pattern_id                   text        NOT NULL,
    day                          date        NOT NULL,
    total_executions             bigint      NOT NULL CHECK (total_executions >= 0),
    successful_executions        bigint      NOT NULL
        CHECK (successful_executions BETWEEN 0 AND total_executions),
    total_time_saved_seconds     numeric     NOT NULL,
    total_cost_saved_usd         numeric     NOT NULL,
    total_actual_cost_usd        numeric     NOT NULL CHECK (total_actual_cost_usd >= 0),
    total_estimated_cost_usd     numeric     NOT NULL,
    total_execution_time_seconds numeric     NOT NULL,
    total_estimated_time_seconds numeric     NOT NULL,
    negative_savings_executions  bigint      NOT NULL CHECK (negative_savings_executions >= 0),
    cost_anomaly_executions      bigint      NOT NULL CHECK (cost_anomaly_executions >= 0),
    first_executed_at            timestamptz NOT NULL,
    last_executed_at             timestamptz NOT NULL,
    last_updated                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pattern_id, day)
);

COMMENT ON TABLE pattern_roi_archive IS
    'Aggregates of executions deleted by retention, per pattern and UTC day (summaries count them).';

-- Each dead letter `roi-worker dlq redrive` has re-published, so that it is re-published once.
CREATE TABLE redriven_dead_letters (
    topic         text        NOT NULL,
    partition     integer     NOT NULL CHECK (partition >= 0),
    "offset"      bigint      NOT NULL CHECK ("offset" >= 0),
    redrive_count integer     NOT NULL CHECK (redrive_count >= 1),
    redriven_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
