-- Browser sessions: one row per session, every lifecycle transition persisted.
CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    runner_id        TEXT NOT NULL,
    status           TEXT NOT NULL,
    options          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    expires_at       BIGINT NOT NULL,
    idle_timeout_ms  BIGINT NOT NULL,
    ended_at         BIGINT,
    end_reason       TEXT,
    create_ms        BIGINT,
    navigations      BIGINT NOT NULL DEFAULT 0,
    actions          BIGINT NOT NULL DEFAULT 0,
    captures         BIGINT NOT NULL DEFAULT 0,
    requests         BIGINT NOT NULL DEFAULT 0,
    bytes_received   BIGINT NOT NULL DEFAULT 0,
    bytes_sent       BIGINT NOT NULL DEFAULT 0,
    blocked_requests BIGINT NOT NULL DEFAULT 0,
    egress_denied    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_account ON sessions (account_id, id);
CREATE INDEX sessions_account_status ON sessions (account_id, status);
CREATE INDEX sessions_runner_status ON sessions (runner_id, status);
