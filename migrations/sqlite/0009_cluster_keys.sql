-- What every node of one database must agree on, as check values: an HMAC of a fixed label
-- under the master key (`master_key`) or the cluster token (`cluster_token`), never the secret.
-- The first node to start records them; a node whose secrets differ refuses to start.
CREATE TABLE cluster_checks (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The master key each serving node runs with (its check value), reported every heartbeat: the
-- recorded key moves to a new one once every node seen recently reports it (key rotation).
CREATE TABLE node_keys (
    node_id TEXT PRIMARY KEY,
    key_check TEXT NOT NULL,
    seen_at BIGINT NOT NULL
);
