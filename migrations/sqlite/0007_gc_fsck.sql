-- Garbage collection and fsck (issue 13). Keep in step with
-- migrations/postgres/0007_gc_fsck.sql. (SQLite needs no foreign key for gc: writes are
-- serialised, and a publish checks its blobs inside its write transaction.)

-- gc lists unreferenced blobs older than its grace period.
CREATE INDEX blobs_created ON blobs (created_at);

-- `adapter-registry fsck --repair` marks a version whose manifest or blobs are damaged
-- (why, in words); pulls of it are refused.
ALTER TABLE versions ADD COLUMN damaged TEXT;
