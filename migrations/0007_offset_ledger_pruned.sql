-- 0007: `roi-worker offsets prune` deletes a stale group's consumer_offsets rows and the offset
-- ledger rows reconcile no longer needs (docs/operations.md, "Pruning stale groups").
--
-- It keeps the ledger rows that still account for stored rows: batch rows whose inserted
-- executions are not all deleted by retention, and unaudited ranges written since 0006.
-- Reconcile still matches the stored executions against them, but no longer walks them as a
-- chain (the group's start, resets and consumer_offsets rows are gone): `pruned_at` says when
-- the group they belong to was pruned. A later prune deletes them once retention has deleted
-- their executions. NULL: a row of a group's current chain.
--
-- A nullable column without a default: PostgreSQL adds it without rewriting the table; batches
-- wait for its lock for a moment.

ALTER TABLE offset_ledger ADD COLUMN pruned_at timestamptz;

COMMENT ON COLUMN offset_ledger.pruned_at IS
    'When `offsets prune` removed the group; its kept rows account for executions still stored.';
