-- A session's last frame: a JPEG of its page taken as it ended, sealed in the blob store, kept
-- as long as the session's logs and recording (the plan's `log_retention_days`).
CREATE TABLE session_frames (
    session_id   TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    blob_address TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    taken_at     BIGINT NOT NULL
);
CREATE INDEX session_frames_taken ON session_frames (taken_at);
