-- Who opened an upload session (issue 12): a Git LFS upload URL handed out by the Hub
-- protocol's batch API is a session its PUT fills without credentials, so the session
-- remembers the token that asked for it; that token becomes the blob's uploader.
-- Keep in step with migrations/sqlite/0006_upload_owners.sql.
ALTER TABLE upload_sessions ADD COLUMN token_id TEXT;
