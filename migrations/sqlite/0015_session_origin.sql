-- Who started a session (`key_…` or `usr_…`), from where (`api`, `mcp` or `dashboard`), and, for
-- a failed session, why (a sentence shown on its page). Older sessions read these as NULL.
ALTER TABLE sessions ADD COLUMN created_by TEXT;
ALTER TABLE sessions ADD COLUMN source TEXT;
ALTER TABLE sessions ADD COLUMN failure TEXT;
