-- Files of sessions: downloads (their bytes sealed in the blob store, so they outlive the session
-- and its runner) and uploads (files placed in a session's upload directory for file inputs).
CREATE TABLE session_downloads (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    session_id   TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    guid         TEXT NOT NULL,
    filename     TEXT NOT NULL,
    url          TEXT NOT NULL,
    mime_type    TEXT,
    state        TEXT NOT NULL,
    size         BIGINT NOT NULL DEFAULT 0,
    sha256       TEXT,
    blob_address TEXT,
    created_at   BIGINT NOT NULL,
    completed_at BIGINT,
    UNIQUE (session_id, guid)
);
CREATE INDEX session_downloads_session ON session_downloads (account_id, session_id, id);

CREATE TABLE session_uploads (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    filename    TEXT NOT NULL,
    size        BIGINT NOT NULL,
    path        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX session_uploads_session ON session_uploads (account_id, session_id, id);
