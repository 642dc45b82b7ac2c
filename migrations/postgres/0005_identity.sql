-- Dashboard identity: sign-in sessions and their rotating tokens, one-time links (email
-- verification, magic link, password reset, MFA challenge), TOTP and recovery codes, throttling
-- windows, account profile fields, and the append-only, hash-chained audit log.
ALTER TABLE users ADD COLUMN totp_secret_enc BYTEA;
ALTER TABLE users ADD COLUMN totp_pending_enc BYTEA;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;
ALTER TABLE users ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN last_failed_login_at BIGINT;

ALTER TABLE accounts ADD COLUMN slug TEXT;
ALTER TABLE accounts ADD COLUMN timezone TEXT;
ALTER TABLE accounts ADD COLUMN region TEXT;
ALTER TABLE accounts ADD COLUMN avatar_url TEXT;
CREATE UNIQUE INDEX accounts_slug ON accounts (slug);

-- One sign-in: a family of access and refresh tokens.
CREATE TABLE auth_sessions (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    last_active_at BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    step_up_at     BIGINT,
    revoked_at     BIGINT,
    revoke_reason  TEXT
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);

CREATE TABLE auth_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES auth_sessions(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX auth_tokens_session ON auth_tokens (session_id);

CREATE TABLE auth_links (
    token_hash TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX auth_links_user ON auth_links (user_id, kind);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at    BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- Timestamps of throttled requests per bucket (`email:…`, `ip:…`, `otp:…`).
CREATE TABLE auth_throttle (
    bucket TEXT NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX auth_throttle_bucket ON auth_throttle (bucket, at);

CREATE TABLE audit_log (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    account_id TEXT,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    ip         TEXT,
    user_agent TEXT,
    request_id TEXT,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_log_account ON audit_log (account_id, seq);
