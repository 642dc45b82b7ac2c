-- Human in the loop: shareable live links to a session's live view, the account's list of
-- origins allowed to frame the live page, and a session's current handoff to a person.
CREATE TABLE live_links (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    session_id   TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    -- `view` or `interact`.
    mode         TEXT NOT NULL,
    -- SHA-256 of the one-time token in the link's URL (the token itself is never stored).
    token_hash   TEXT NOT NULL UNIQUE,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    exchanged_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX live_links_session ON live_links (session_id, id);

-- JSON array of origins (`https://app.example.com`); empty: the live page may not be framed.
ALTER TABLE accounts ADD COLUMN live_frame_ancestors TEXT NOT NULL DEFAULT '[]';

ALTER TABLE sessions ADD COLUMN handoff_id TEXT;
-- `requested`, `completed` or `expired`.
ALTER TABLE sessions ADD COLUMN handoff_state TEXT;
ALTER TABLE sessions ADD COLUMN handoff_reason TEXT;
ALTER TABLE sessions ADD COLUMN handoff_mode TEXT;
ALTER TABLE sessions ADD COLUMN handoff_link_id TEXT;
ALTER TABLE sessions ADD COLUMN handoff_requested_at BIGINT;
ALTER TABLE sessions ADD COLUMN handoff_deadline BIGINT;
ALTER TABLE sessions ADD COLUMN handoff_ended_at BIGINT;
