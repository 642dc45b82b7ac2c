-- Profiles: persistent browser identities, their snapshots and the encrypted state blobs both
-- point at. A blob is referenced by a profile's current state and by snapshots; `refs` counts
-- those references so a blob is deleted exactly when nothing points at it any more.
CREATE TABLE profile_blobs (
    address    TEXT PRIMARY KEY,
    refs       BIGINT NOT NULL,
    bytes      BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE profiles (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    -- The current state (NULL: empty, never saved).
    state_blob      TEXT REFERENCES profile_blobs(address),
    -- What the last save verified it stored (cookies per domain, origins, bytes).
    state_summary   TEXT,
    state_saved_at  BIGINT,
    -- The live session holding the one-writer lock (free once that session is over).
    locked_by       TEXT,
    last_save_error TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX profiles_account ON profiles (account_id, id);

CREATE TABLE profile_snapshots (
    id         TEXT PRIMARY KEY,
    profile_id TEXT NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    name       TEXT,
    -- `profile` (its saved state) or `session` (read from its live session).
    source     TEXT NOT NULL,
    session_id TEXT,
    state_blob TEXT REFERENCES profile_blobs(address),
    summary    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX profile_snapshots_profile ON profile_snapshots (profile_id, id);
