-- Jobs and the worker (issue 5). Keep in step with migrations/sqlite/0003_jobs.sql.

-- One row per job. `run_after` and `locked_until` are Unix milliseconds (leases are short);
-- the other times are Unix seconds like everywhere else.
CREATE TABLE jobs (
    id               TEXT    PRIMARY KEY,
    kind             TEXT    NOT NULL,
    -- JSON: name -> {reference, manifest_digest}, resolved when the job was submitted
    inputs           TEXT    NOT NULL,
    -- JSON object
    params           TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL UNIQUE,
    -- queued | running | succeeded | failed | cancelled
    state            TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    max_attempts     BIGINT  NOT NULL,
    run_after        BIGINT  NOT NULL,
    locked_until     BIGINT,
    -- the lease token of the claim that holds the job
    locked_by        TEXT,
    cancel_requested BIGINT  NOT NULL DEFAULT 0,
    progress         DOUBLE PRECISION,
    progress_message TEXT,
    -- JSON
    result           TEXT,
    error            TEXT,
    submitter        TEXT,
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX jobs_claim ON jobs (state, run_after);
CREATE INDEX jobs_kind ON jobs (kind, id);

CREATE TABLE job_logs (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     TEXT    NOT NULL REFERENCES jobs (id),
    created_at BIGINT  NOT NULL,
    line       TEXT    NOT NULL
);
CREATE INDEX job_logs_job ON job_logs (job_id, id);

-- The latest compatibility validation of an adapter version against a model version.
CREATE TABLE validations (
    adapter_version_id BIGINT  NOT NULL REFERENCES versions (id),
    base_version_id    BIGINT  NOT NULL REFERENCES versions (id),
    -- compatible | compatible_with_warnings | incompatible
    verdict            TEXT    NOT NULL,
    -- JSON (core::compat::CompatReport)
    report             TEXT    NOT NULL,
    job_id             TEXT    NOT NULL,
    created_at         BIGINT  NOT NULL,
    PRIMARY KEY (adapter_version_id, base_version_id)
);
CREATE INDEX validations_base ON validations (base_version_id);
