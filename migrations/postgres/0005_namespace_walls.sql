-- Namespaces are a wall for jobs and blobs (issue 21). Keep in step with
-- migrations/sqlite/0005_namespace_walls.sql.

-- The namespaces a job touches (its inputs' and its output's), written with the job: a job
-- is visible to a caller who may read every one of them, and lists filter on this in SQL.
CREATE TABLE job_namespaces (
    job_id    TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    namespace TEXT NOT NULL,
    PRIMARY KEY (job_id, namespace)
);
CREATE INDEX job_namespaces_namespace ON job_namespaces (namespace, job_id);

-- Every blob a version references: its files and, for a headers-only model, the blobs
-- holding its weight files' headers. Whoever may read the version may read the blob.
CREATE TABLE version_blobs (
    version_id BIGINT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    digest     TEXT    NOT NULL,
    PRIMARY KEY (version_id, digest)
);
CREATE INDEX version_blobs_digest ON version_blobs (digest, version_id);
INSERT INTO version_blobs (version_id, digest)
    SELECT DISTINCT version_id, digest FROM version_files;

-- Who stored (or re-sent and verified) a blob: its uploader may read it and publish it
-- before any version lists it.
CREATE TABLE blob_uploaders (
    digest     TEXT    NOT NULL,
    token_id   TEXT    NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (digest, token_id)
);
