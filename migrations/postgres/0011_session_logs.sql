-- Session logs: console messages, page errors, the network log and the CDP command log of every
-- session, one row per entry (redacted before it is written), kept for the plan's retention.
CREATE TABLE session_logs (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    entry       TEXT NOT NULL
);
CREATE INDEX session_logs_by_kind ON session_logs (session_id, kind, id);
CREATE INDEX session_logs_session ON session_logs (session_id, id);
CREATE INDEX session_logs_created ON session_logs (created_at);

-- Set once a session's logs reached the plan's byte limit (later entries were not kept).
ALTER TABLE sessions ADD COLUMN logs_truncated BOOLEAN NOT NULL DEFAULT FALSE;
