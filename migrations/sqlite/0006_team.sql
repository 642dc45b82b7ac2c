-- Team invitations: an email invited into an account with a role, accepted by a signed-in user
-- with that email through a one-time token (stored as SHA-256), for 7 days unless revoked.
CREATE TABLE team_invites (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    invited_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    accepted_at BIGINT,
    accepted_by TEXT,
    revoked_at  BIGINT
);
CREATE INDEX team_invites_account ON team_invites (account_id, id);
CREATE INDEX team_invites_email ON team_invites (account_id, email);
