-- 0005: the same pattern_id rule, checked a hundred times faster.
--
-- PostgreSQL's regular expression engine expands a bounded repetition such as {1,200} into an
-- automaton with a state per repetition: `pattern_id ~ '^[A-Za-z0-9._:/-]{1,200}$'` cost about
-- 17 microseconds a row, twice per stored event (the worker's staging table copies the
-- constraint). That was more than half of the database's time per event (docs/benchmarks.md).
-- An unbounded character class plus a length check is the same rule (the characters are
-- ASCII, so characters and bytes agree) at well under a microsecond.
--
-- Re-adding the constraint reads every stored execution once under the table's lock: about a
-- second per million rows, during which batches wait (docs/operations.md, "Upgrading to 0005").

ALTER TABLE pattern_executions
    DROP CONSTRAINT pattern_executions_pattern_id_format,
    ADD CONSTRAINT pattern_executions_pattern_id_format
        CHECK (pattern_id ~ '^[A-Za-z0-9._:/-]+$' AND length(pattern_id) <= 200);
