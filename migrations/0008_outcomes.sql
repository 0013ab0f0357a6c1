-- 0008: outcomes, quality and tokens (docs/roi-methodology.md#outcomes-quality-and-tokens).
--
-- pattern_executions.outcome: contract v1's optional `outcome`, always resolved (absent, it is
-- `success` or `failure` by `success`). Events stored before this migration kept an `outcome`
-- they sent among their unknown fields: one that is valid and agrees with `success` is honoured
-- (and leaves unknown_fields); any other stays there, and the outcome is derived from `success`.
-- The content fingerprint (content_sha256) of every row stays as it is: the worker fingerprints
-- a re-delivered `outcome` exactly as it did when it was an unknown field.
--
-- Per pattern and UTC day, like every other summary column (incremented by the rows a batch
-- inserts, recomputable from executions plus the archive):
--   outcome_<outcome>_executions   executions per outcome; the four add up to total_executions
--   quality_scored_executions      executions that carry a quality_score
--   total_quality_score            their sum (mean = total / count)
--   token_measured_executions      executions that give both actual_tokens and baseline_tokens
--   total_tokens_saved             sum of baseline_tokens - actual_tokens over those
--
-- pattern_roi_archive holds only the aggregates of executions retention deleted, which cannot
-- be recomputed: its days count their successful executions as `success`, the rest as
-- `failure`, and no quality score or token counts (0 with a count of 0).
--
-- The ALTER TABLEs hold ACCESS EXCLUSIVE locks until this transaction commits: batches that
-- stored executions (and retention chunks) have committed before them, later ones wait, so what
-- is filled below is exact. Workers of the previous release that keep running store executions
-- (their outcome derived by the trigger below) without counting the new summary columns:
-- `roi-worker verify` then shows the drift and `roi-worker rebuild-summaries` repairs it
-- (docs/operations.md, "Upgrading to 0008").

ALTER TABLE pattern_executions
    ADD COLUMN outcome text NOT NULL DEFAULT 'success';

-- Only failures and rows that kept an `outcome` change: the rest keep the default, unwritten.
UPDATE pattern_executions
SET outcome = CASE WHEN honoured THEN unknown_fields ->> 'outcome'
                   WHEN success THEN 'success' ELSE 'failure' END,
    unknown_fields = CASE WHEN honoured THEN nullif(unknown_fields - 'outcome', '{}'::jsonb)
                          ELSE unknown_fields END
FROM (
    SELECT event_id,
           coalesce(jsonb_typeof(unknown_fields -> 'outcome') = 'string'
                    AND CASE WHEN success
                             THEN unknown_fields ->> 'outcome' IN ('success', 'partial_success')
                             ELSE unknown_fields ->> 'outcome' IN ('failure', 'error',
                                                                   'partial_success')
                        END, false) AS honoured
    FROM pattern_executions
    WHERE NOT success OR unknown_fields ? 'outcome'
) AS kept
WHERE pattern_executions.event_id = kept.event_id;

ALTER TABLE pattern_executions
    ALTER COLUMN outcome DROP DEFAULT,
    ADD CONSTRAINT pattern_executions_outcome_agrees_with_success CHECK (
        CASE WHEN success THEN outcome IN ('success', 'partial_success')
             ELSE outcome IN ('failure', 'error', 'partial_success') END
    );

COMMENT ON COLUMN pattern_executions.outcome IS
    'success | failure | partial_success | error, as sent or derived from success (never null).';

-- The worker always writes `outcome`. A writer that does not know the column (a worker of the
-- previous release during a rolling update, a hand-written INSERT) gets it derived from
-- `success`, like an event without one. The WHEN condition keeps the worker's rows away from
-- the function.
CREATE FUNCTION pattern_executions_outcome_from_success() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.outcome := CASE WHEN NEW.success THEN 'success' ELSE 'failure' END;
    RETURN NEW;
END
$$;

CREATE TRIGGER pattern_executions_outcome_from_success
    BEFORE INSERT ON pattern_executions
    FOR EACH ROW WHEN (NEW.outcome IS NULL)
    EXECUTE FUNCTION pattern_executions_outcome_from_success();

ALTER TABLE pattern_roi_summary
    ADD COLUMN outcome_success_executions bigint NOT NULL DEFAULT 0
        CHECK (outcome_success_executions >= 0),
    ADD COLUMN outcome_failure_executions bigint NOT NULL DEFAULT 0
        CHECK (outcome_failure_executions >= 0),
    ADD COLUMN outcome_partial_success_executions bigint NOT NULL DEFAULT 0
        CHECK (outcome_partial_success_executions >= 0),
    ADD COLUMN outcome_error_executions bigint NOT NULL DEFAULT 0
        CHECK (outcome_error_executions >= 0),
    ADD COLUMN quality_scored_executions bigint NOT NULL DEFAULT 0
        CHECK (quality_scored_executions BETWEEN 0 AND total_executions),
    ADD COLUMN total_quality_score numeric NOT NULL DEFAULT 0
        CHECK (total_quality_score BETWEEN 0 AND quality_scored_executions),
    ADD COLUMN token_measured_executions bigint NOT NULL DEFAULT 0
        CHECK (token_measured_executions BETWEEN 0 AND total_executions),
    ADD COLUMN total_tokens_saved numeric NOT NULL DEFAULT 0;

ALTER TABLE pattern_roi_daily
    ADD COLUMN outcome_success_executions bigint NOT NULL DEFAULT 0
        CHECK (outcome_success_executions >= 0),
    ADD COLUMN outcome_failure_executions bigint NOT NULL DEFAULT 0
        CHECK (outcome_failure_executions >= 0),
    ADD COLUMN outcome_partial_success_executions bigint NOT NULL DEFAULT 0
        CHECK (outcome_partial_success_executions >= 0),
    ADD COLUMN outcome_error_executions bigint NOT NULL DEFAULT 0
        CHECK (outcome_error_executions >= 0),
    ADD COLUMN quality_scored_executions bigint NOT NULL DEFAULT 0
        CHECK (quality_scored_executions BETWEEN 0 AND total_executions),
    ADD COLUMN total_quality_score numeric NOT NULL DEFAULT 0
        CHECK (total_quality_score BETWEEN 0 AND quality_scored_executions),
    ADD COLUMN token_measured_executions bigint NOT NULL DEFAULT 0
        CHECK (token_measured_executions BETWEEN 0 AND total_executions),
    ADD COLUMN total_tokens_saved numeric NOT NULL DEFAULT 0;

ALTER TABLE pattern_roi_archive
    ADD COLUMN outcome_success_executions bigint NOT NULL DEFAULT 0
        CHECK (outcome_success_executions >= 0),
    ADD COLUMN outcome_failure_executions bigint NOT NULL DEFAULT 0
        CHECK (outcome_failure_executions >= 0),
    ADD COLUMN outcome_partial_success_executions bigint NOT NULL DEFAULT 0
        CHECK (outcome_partial_success_executions >= 0),
    ADD COLUMN outcome_error_executions bigint NOT NULL DEFAULT 0
        CHECK (outcome_error_executions >= 0),
    ADD COLUMN quality_scored_executions bigint NOT NULL DEFAULT 0
        CHECK (quality_scored_executions BETWEEN 0 AND total_executions),
    ADD COLUMN total_quality_score numeric NOT NULL DEFAULT 0
        CHECK (total_quality_score BETWEEN 0 AND quality_scored_executions),
    ADD COLUMN token_measured_executions bigint NOT NULL DEFAULT 0
        CHECK (token_measured_executions BETWEEN 0 AND total_executions),
    ADD COLUMN total_tokens_saved numeric NOT NULL DEFAULT 0;

-- What can be known of the archived days: successes succeeded, the rest failed.
UPDATE pattern_roi_archive
SET outcome_success_executions = successful_executions,
    outcome_failure_executions = total_executions - successful_executions;

-- The new columns of both summary tables, recomputed like `roi-worker rebuild-summaries` does:
-- the stored executions per pattern and day, plus the archive.
WITH per_day AS (
    SELECT pattern_id, day,
           sum(success_n) AS success_n, sum(failure_n) AS failure_n,
           sum(partial_n) AS partial_n, sum(error_n) AS error_n,
           sum(scored_n) AS scored_n, sum(quality) AS quality,
           sum(measured_n) AS measured_n, sum(tokens) AS tokens
    FROM (
        SELECT pattern_id, (executed_at AT TIME ZONE 'UTC')::date AS day,
               count(*) FILTER (WHERE outcome = 'success') AS success_n,
               count(*) FILTER (WHERE outcome = 'failure') AS failure_n,
               count(*) FILTER (WHERE outcome = 'partial_success') AS partial_n,
               count(*) FILTER (WHERE outcome = 'error') AS error_n,
               count(quality_score) AS scored_n,
               coalesce(sum(quality_score), 0) AS quality,
               count(*) FILTER (WHERE baseline_tokens IS NOT NULL
                                  AND actual_tokens IS NOT NULL) AS measured_n,
               coalesce(sum(baseline_tokens - actual_tokens), 0) AS tokens
        FROM pattern_executions
        GROUP BY 1, 2
        UNION ALL
        SELECT pattern_id, day, outcome_success_executions, outcome_failure_executions,
               outcome_partial_success_executions, outcome_error_executions,
               quality_scored_executions, total_quality_score, token_measured_executions,
               total_tokens_saved
        FROM pattern_roi_archive
    ) AS partials
    GROUP BY pattern_id, day
), summary AS (
    UPDATE pattern_roi_summary s
    SET outcome_success_executions = f.success_n,
        outcome_failure_executions = f.failure_n,
        outcome_partial_success_executions = f.partial_n,
        outcome_error_executions = f.error_n,
        quality_scored_executions = f.scored_n,
        total_quality_score = f.quality,
        token_measured_executions = f.measured_n,
        total_tokens_saved = f.tokens
    FROM (SELECT pattern_id, sum(success_n) AS success_n, sum(failure_n) AS failure_n,
                 sum(partial_n) AS partial_n, sum(error_n) AS error_n,
                 sum(scored_n) AS scored_n, sum(quality) AS quality,
                 sum(measured_n) AS measured_n, sum(tokens) AS tokens
          FROM per_day GROUP BY pattern_id) f
    WHERE s.pattern_id = f.pattern_id
)
UPDATE pattern_roi_daily d
SET outcome_success_executions = f.success_n,
    outcome_failure_executions = f.failure_n,
    outcome_partial_success_executions = f.partial_n,
    outcome_error_executions = f.error_n,
    quality_scored_executions = f.scored_n,
    total_quality_score = f.quality,
    token_measured_executions = f.measured_n,
    total_tokens_saved = f.tokens
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
    cost_anomaly_executions,
    outcome_success_executions,
    outcome_failure_executions,
    outcome_partial_success_executions,
    outcome_error_executions,
    quality_scored_executions,
    total_quality_score / NULLIF(quality_scored_executions, 0)    AS quality_score_mean,
    token_measured_executions,
    total_tokens_saved
FROM pattern_roi_summary;
