-- Calls to deprecated routes, per account, credential, route and UTC day (docs/VERSIONING.md).
-- `account_id` is empty for calls without a credential.
CREATE TABLE deprecated_calls (
    account_id TEXT NOT NULL,
    actor      TEXT NOT NULL,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    day        TEXT NOT NULL,
    calls      BIGINT NOT NULL,
    last_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, actor, method, path, day)
);
