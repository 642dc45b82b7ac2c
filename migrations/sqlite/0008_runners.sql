-- The runner registry: every process that owns a browser pool registers here and heartbeats.
-- A runner silent for longer than the heartbeat timeout is marked dead by whichever node sees it
-- first, and its live sessions are failed (with events); a runner that comes back with the same
-- id starts clean.
CREATE TABLE runners (
    id TEXT PRIMARY KEY,
    -- Where API nodes reach its internal API; NULL for a runner embedded in an API node.
    address TEXT,
    capacity INTEGER NOT NULL,
    version TEXT NOT NULL,
    -- active | draining | stopped | dead
    state TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    live_sessions INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX runners_state_heartbeat ON runners (state, heartbeat_at);
