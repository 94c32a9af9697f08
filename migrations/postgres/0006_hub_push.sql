-- The Hugging Face Hub protocol's push path (issue 12). Keep in step with
-- migrations/sqlite/0006_hub_push.sql.

-- Who opened an upload session: a Git LFS upload URL handed out by the batch API is a
-- session its PUT fills without credentials, so the session remembers the token that asked
-- for it; that token becomes the blob's uploader.
ALTER TABLE upload_sessions ADD COLUMN token_id TEXT;

-- Repositories created with the Hub's create_repo before their first version: they exist to
-- the Hub's clients (empty: no files at `main`), and become registry repositories (of the
-- kind their first commit makes) with that commit.
CREATE TABLE hub_repositories (
    namespace  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);
