-- 0002: the content fingerprint of each stored event, so that a re-delivered event (same
-- event_id, same content) is told apart from a conflicting one (same event_id, other content).
-- SHA-256 of the event's canonical JSON (ExecutionEvent.fingerprint). Rows stored before this
-- migration have none; an event arriving again for such a row counts as a duplicate.

ALTER TABLE pattern_executions
    ADD COLUMN content_sha256 bytea CHECK (octet_length(content_sha256) = 32);

COMMENT ON COLUMN pattern_executions.content_sha256 IS
    'SHA-256 of the canonical event JSON; tells duplicates from conflicting re-uses of event_id.';
