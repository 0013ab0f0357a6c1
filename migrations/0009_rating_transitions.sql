-- 0009: rating transitions, recorded where they are detected and published once (DESIGN.md,
-- "Rating transitions"; docs/event-contract.md, "Rating transitions").
--
-- The state of a pattern is its rating over all time and the status of its latest snapshot
-- (NULL before its first one). `pattern_rating_state` holds each pattern's current state and
-- the sequence number of the transition that set it. A batch that changes a pattern's summary
-- compares the pattern's new state with this row in the same transaction and, when it
-- differs, updates the row and appends the transition to `pattern_rating_transitions`, the
-- outbox: sequence = previous + 1 per pattern. A pattern's first state is its transition 1,
-- from nothing (old_rating NULL). Time alone can change a snapshot status (a pattern reaching
-- day 30, 60 or 90): the publishing worker's sweep records those the same way.
--
-- One worker at a time (a session advisory lock) publishes the unsent rows in sequence order,
-- waits for the broker's acknowledgement, then sets `sent_at`. A crash in between sends the
-- same (pattern_id, sequence) again; none is ever skipped.
--
-- Nothing to backfill: the first sweep records every existing pattern's first state.

CREATE TABLE pattern_rating_state (
    pattern_id      text        PRIMARY KEY,
    rating          text        NOT NULL,
    snapshot_status text,
    sequence        bigint      NOT NULL CHECK (sequence >= 1),
    changed_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pattern_rating_transitions (
    pattern_id            text        NOT NULL,
    sequence              bigint      NOT NULL CHECK (sequence >= 1),
    occurred_at           timestamptz NOT NULL DEFAULT now(),
    old_rating            text,
    old_snapshot_status   text,
    new_rating            text        NOT NULL,
    new_snapshot_status   text,
    -- The pattern's all-time figures at the change (the rates are derived from them).
    executions            bigint      NOT NULL CHECK (executions >= 0),
    successful_executions bigint      NOT NULL CHECK (successful_executions >= 0),
    cost_saved_usd        numeric     NOT NULL,
    investment_usd        numeric     NOT NULL,
    -- When the broker acknowledged it; NULL: still to publish.
    sent_at               timestamptz,
    PRIMARY KEY (pattern_id, sequence),
    CONSTRAINT pattern_rating_transitions_first_has_no_old CHECK (
        (sequence = 1) = (old_rating IS NULL)
    ),
    CONSTRAINT pattern_rating_transitions_changes CHECK (
        old_rating IS NULL
        OR old_rating <> new_rating
        OR old_snapshot_status IS DISTINCT FROM new_snapshot_status
    )
);

-- The publisher's queue: small, as rows leave it once sent.
CREATE INDEX pattern_rating_transitions_unsent
    ON pattern_rating_transitions (pattern_id, sequence) WHERE sent_at IS NULL;

COMMENT ON TABLE pattern_rating_state IS
    'Each pattern''s current rating and latest snapshot status, and the sequence that set them.';
COMMENT ON TABLE pattern_rating_transitions IS
    'Rating transitions (the outbox of the pattern-rating-changed events); sent_at once published.';
