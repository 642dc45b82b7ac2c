-- Session recordings (rrweb DOM replay): the session's recording state, and its chunks — sealed,
-- compressed batches of rrweb events in the blob store, in order.
ALTER TABLE sessions ADD COLUMN recording_state TEXT;
ALTER TABLE sessions ADD COLUMN recording_truncated BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE sessions ADD COLUMN recording_bytes BIGINT NOT NULL DEFAULT 0;

CREATE TABLE session_recording_chunks (
    session_id   TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    blob_address TEXT NOT NULL,
    events       BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX session_recording_chunks_created ON session_recording_chunks (created_at);
