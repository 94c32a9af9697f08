-- Garbage collection and fsck (issue 13). Keep in step with migrations/sqlite/0007_gc_fsck.sql.

-- A version's blobs must exist: `adapter-registry gc` deletes a blob row only while no
-- version references it, and this constraint makes that hold under concurrency (a publish
-- that references a blob locks its row; a gc delete of a referenced row fails). NOT VALID:
-- enforced from now on without re-checking existing rows (fsck reports those).
ALTER TABLE version_blobs
    ADD CONSTRAINT version_blobs_blob FOREIGN KEY (digest) REFERENCES blobs (digest) NOT VALID;

-- gc lists unreferenced blobs older than its grace period.
CREATE INDEX blobs_created ON blobs (created_at);

-- `adapter-registry fsck --repair` marks a version whose manifest or blobs are damaged
-- (why, in words); pulls of it are refused.
ALTER TABLE versions ADD COLUMN damaged TEXT;
