-- 0003: per-pattern counts of flagged executions (docs/roi-methodology.md#flags), kept like every
-- other summary column: incremented by the rows a batch inserts, recomputable from executions.
--   negative_savings_executions: successful runs that took longer or cost more than estimated
--   cost_anomaly_executions:     runs whose actual cost exceeds 10 times the estimate
-- Existing rows are filled from the stored executions. Workers of an older version that keep
-- running after this migration do not count flags: once every worker runs the new version,
-- `roi-worker verify` shows any difference and `roi-worker rebuild-summaries` repairs it.

ALTER TABLE pattern_roi_summary
    ADD COLUMN negative_savings_executions bigint NOT NULL DEFAULT 0
        CHECK (negative_savings_executions BETWEEN 0 AND successful_executions),
    ADD COLUMN cost_anomaly_executions bigint NOT NULL DEFAULT 0
        CHECK (cost_anomaly_executions BETWEEN 0 AND total_executions);

ALTER TABLE pattern_roi_daily
    ADD COLUMN negative_savings_executions bigint NOT NULL DEFAULT 0
        CHECK (negative_savings_executions BETWEEN 0 AND successful_executions),
    ADD COLUMN cost_anomaly_executions bigint NOT NULL DEFAULT 0
        CHECK (cost_anomaly_executions BETWEEN 0 AND total_executions);

-- The ALTER TABLEs hold ACCESS EXCLUSIVE locks until this transaction commits: batches that
-- stored executions have committed before them, later ones wait, so the counts below are exact.
WITH flagged AS (
    SELECT pattern_id, (executed_at AT TIME ZONE 'UTC')::date AS day,
           success AND (estimated_time_seconds < execution_time_seconds
                        OR estimated_cost < actual_cost) AS negative_savings,
           actual_cost > 10 * estimated_cost AS cost_anomaly
    FROM pattern_executions
), per_day AS (
    SELECT pattern_id, day,
           count(*) FILTER (WHERE negative_savings) AS negative_savings,
           count(*) FILTER (WHERE cost_anomaly) AS cost_anomalies
    FROM flagged GROUP BY pattern_id, day
), summary AS (
    UPDATE pattern_roi_summary s
    SET negative_savings_executions = f.negative_savings, cost_anomaly_executions = f.cost_anomalies
    FROM (SELECT pattern_id, sum(negative_savings) AS negative_savings,
                 sum(cost_anomalies) AS cost_anomalies
          FROM per_day GROUP BY pattern_id) f
    WHERE s.pattern_id = f.pattern_id
)
UPDATE pattern_roi_daily d
SET negative_savings_executions = f.negative_savings, cost_anomaly_executions = f.cost_anomalies
FROM per_day f
WHERE d.pattern_id = f.pattern_id AND d.day = f.day;

CREATE OR REPLACE VIEW pattern_roi AS
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
    last_updated,
    negative_savings_executions,
    cost_anomaly_executions
FROM pattern_roi_summary;
