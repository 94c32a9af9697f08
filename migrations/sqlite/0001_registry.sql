-- Blobs that are complete and verified in the blob store (content-addressed).
CREATE TABLE blobs (
    digest     TEXT    PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- Resumable upload sessions; the hasher state lets a session resume after a restart.
CREATE TABLE upload_sessions (
    id              TEXT    PRIMARY KEY,
    upload_offset   INTEGER NOT NULL,
    hash_state      TEXT    NOT NULL,
    expected_digest TEXT,
    expected_size   INTEGER,
    finishing       INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX upload_sessions_expires ON upload_sessions (expires_at);

CREATE TABLE upload_parts (
    session_id  TEXT    NOT NULL,
    part_offset INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    object_key  TEXT    NOT NULL,
    PRIMARY KEY (session_id, part_offset)
);

CREATE TABLE repositories (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    namespace  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (kind, namespace, name)
);

CREATE TABLE versions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    repository_id   INTEGER NOT NULL REFERENCES repositories (id),
    version         TEXT    NOT NULL,
    manifest_digest TEXT    NOT NULL,
    manifest        TEXT    NOT NULL,
    summary         TEXT    NOT NULL,
    total_size      INTEGER NOT NULL,
    yanked          INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    UNIQUE (repository_id, version)
);
CREATE INDEX versions_manifest_digest ON versions (repository_id, manifest_digest);

CREATE TABLE version_files (
    version_id INTEGER NOT NULL REFERENCES versions (id),
    path       TEXT    NOT NULL,
    digest     TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    PRIMARY KEY (version_id, path)
);
CREATE INDEX version_files_digest ON version_files (digest);
