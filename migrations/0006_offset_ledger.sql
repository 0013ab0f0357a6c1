-- 0006: the offset ledger: every offset a group stores is accounted for (docs/operations.md,
-- "Reconcile: every offset accounted for").
--
-- Each batch writes, in its own transaction and beside its events and its consumer_offsets
-- update, one row per partition: the range [first_offset, next_offset) it moved the group's
-- stored offset over, and what became of each offset in it. The counts add up to the size:
--   inserted, duplicates, conflicts (conflicting_duplicate), refused (database_rejected),
--   expired (older than the retention horizon), dead_lettered (failed decode or validation,
--   undecodable records included), and skipped: offsets the broker never delivered (transaction
--   markers and aborted transactions under read_committed, records compacted or deleted by the
--   topic's retention before they were read).
-- Other kinds of row carry no counts:
--   start      where the group began the partition (first_offset = next_offset)
--   unaudited  offsets stored without a ledger: before this migration, or by a writer that keeps
--              none (a worker of an older release) until a current worker notices it
--   reset      `roi-worker offsets reset` moved the stored offset from first_offset to
--              next_offset (backwards too)
--   replay     `roi-worker replay` started its group at next_offset, where it stood elsewhere
-- For one (group, topic, partition), in id order, the range rows tile from its start (a start
-- or unaudited row) to the stored next offset, the reset and replay rows marking where the
-- position jumped.
-- `deleted_by_retention` counts the inserted rows `roi-worker retention` has deleted since, so
-- that the inserted rows still stored can be matched against the ledger. A batch's rows and the
-- executions it inserted share their timestamp: written_at = ingested_at = the transaction's
-- now().

CREATE TABLE offset_ledger (
    id                   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer_group       text        NOT NULL,
    topic                text        NOT NULL,
    partition            integer     NOT NULL CHECK (partition >= 0),
    kind                 text        NOT NULL
        CHECK (kind IN ('batch', 'start', 'unaudited', 'reset', 'replay')),
    first_offset         bigint      NOT NULL CHECK (first_offset >= 0),
    next_offset          bigint      NOT NULL CHECK (next_offset >= 0),
    inserted             bigint      NOT NULL DEFAULT 0 CHECK (inserted >= 0),
    duplicates           bigint      NOT NULL DEFAULT 0 CHECK (duplicates >= 0),
    conflicts            bigint      NOT NULL DEFAULT 0 CHECK (conflicts >= 0),
    refused              bigint      NOT NULL DEFAULT 0 CHECK (refused >= 0),
    expired              bigint      NOT NULL DEFAULT 0 CHECK (expired >= 0),
    dead_lettered        bigint      NOT NULL DEFAULT 0 CHECK (dead_lettered >= 0),
    skipped              bigint      NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    -- How many batches the row stands for: 1, more once retention has merged old rows.
    batches              integer     NOT NULL DEFAULT 0 CHECK (batches >= 0),
    deleted_by_retention bigint      NOT NULL DEFAULT 0
        CHECK (deleted_by_retention >= 0),
    written_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT offset_ledger_batch_adds_up CHECK (
        kind <> 'batch' OR (
            next_offset > first_offset AND batches >= 1
            AND inserted + duplicates + conflicts + refused + expired + dead_lettered + skipped
                = next_offset - first_offset
        )
    ),
    CONSTRAINT offset_ledger_others_count_nothing CHECK (
        kind = 'batch' OR (
            inserted + duplicates + conflicts + refused + expired + dead_lettered + skipped
                + batches + deleted_by_retention = 0
            AND (kind <> 'unaudited' OR next_offset > first_offset)
        )
    )
);

COMMENT ON TABLE offset_ledger IS
    'Per batch and partition: the offset range a group stored and what became of each offset.';

-- reconcile walks each partition's rows in id order; retention finds a deleted execution's
-- batch by (topic, partition, written_at = ingested_at).
CREATE INDEX offset_ledger_chain_idx ON offset_ledger (consumer_group, topic, partition, id);
CREATE INDEX offset_ledger_written_idx ON offset_ledger (topic, partition, written_at);

-- Where the ledger's record of the partition ends. Writers that keep the ledger set it to
-- next_offset; one that does not (an older release, a hand edit) moves next_offset alone, and
-- the next batch records the difference (unaudited forwards, a reset backwards). New rows
-- written by such a writer get 0: nothing of them is accounted for.
ALTER TABLE consumer_offsets
    ADD COLUMN ledger_offset bigint NOT NULL DEFAULT 0 CHECK (ledger_offset >= 0);

COMMENT ON COLUMN consumer_offsets.ledger_offset IS
    'Where offset_ledger''s record of this partition ends (next_offset unless an older writer moved it).';

-- The offsets stored so far have no ledger: one unaudited row each, from 0. ALTER TABLE holds
-- consumer_offsets' ACCESS EXCLUSIVE lock until this transaction commits, so no batch moves an
-- offset between this snapshot and the commit.
INSERT INTO offset_ledger (consumer_group, topic, partition, kind, first_offset, next_offset)
SELECT consumer_group, topic, partition, 'unaudited', 0, next_offset
FROM consumer_offsets
WHERE next_offset > 0
ORDER BY consumer_group, topic, partition;

UPDATE consumer_offsets SET ledger_offset = next_offset;
