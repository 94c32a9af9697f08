-- Catalogue, governance and access (issue 4). Keep in step with migrations/postgres/0002_catalogue.sql.

-- Yank: who, when, why (versions.yanked stays the flag resolution reads).
ALTER TABLE versions ADD COLUMN yank_reason TEXT;
ALTER TABLE versions ADD COLUMN yanked_at   INTEGER;
ALTER TABLE versions ADD COLUMN yanked_by   TEXT;

-- Searchable facts of a version, derived from its summary when it is published
-- (one row per version; columns are NULL where they do not apply, e.g. rank for a model).
CREATE TABLE version_facts (
    version_id             INTEGER PRIMARY KEY REFERENCES versions (id),
    peft_type              TEXT,
    -- lora | dora | rslora | dora+rslora
    variant                TEXT,
    rank_min               INTEGER,
    rank_max               INTEGER,
    base_name              TEXT,
    base_reference         TEXT,
    base_content_digest    TEXT,
    base_shape_fingerprint TEXT,
    -- for models: their own identities
    content_digest         TEXT,
    shape_fingerprint      TEXT
);
CREATE INDEX version_facts_base_content ON version_facts (base_content_digest);
CREATE INDEX version_facts_base_shape ON version_facts (base_shape_fingerprint);
CREATE INDEX version_facts_content ON version_facts (content_digest);

-- Target modules of an adapter version (PEFT target names as configured, e.g. q_proj).
CREATE TABLE version_targets (
    version_id INTEGER NOT NULL REFERENCES versions (id),
    module     TEXT    NOT NULL,
    PRIMARY KEY (version_id, module)
);
CREATE INDEX version_targets_module ON version_targets (module);

-- Labels (key=value) of a version.
CREATE TABLE version_labels (
    version_id INTEGER NOT NULL REFERENCES versions (id),
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    PRIMARY KEY (version_id, key)
);

-- Append-only eval results.
CREATE TABLE evals (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    version_id       INTEGER NOT NULL REFERENCES versions (id),
    benchmark        TEXT    NOT NULL,
    metric           TEXT    NOT NULL,
    value            REAL    NOT NULL,
    higher_is_better INTEGER NOT NULL DEFAULT 1,
    dataset          TEXT,
    source           TEXT,
    author           TEXT,
    created_at       INTEGER NOT NULL
);
CREATE INDEX evals_version ON evals (version_id, benchmark, metric);
CREATE INDEX evals_metric ON evals (benchmark, metric, value);

-- Lineage: what a version was made from. An adapter has one `base` row; a derived model
-- has `input` rows (its base and adapters) and a recipe (job kind + parameters).
CREATE TABLE lineage (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    version_id        INTEGER NOT NULL REFERENCES versions (id),
    relation          TEXT    NOT NULL,
    kind              TEXT,
    reference         TEXT,
    manifest_digest   TEXT,
    content_digest    TEXT,
    shape_fingerprint TEXT,
    recipe            TEXT
);
CREATE INDEX lineage_version ON lineage (version_id);
CREATE INDEX lineage_manifest ON lineage (manifest_digest);
CREATE INDEX lineage_content ON lineage (content_digest);
CREATE INDEX lineage_shape ON lineage (shape_fingerprint);

-- Aliases: one row per (repository, alias); moves are compare-and-swap on `version`.
CREATE TABLE aliases (
    repository_id INTEGER NOT NULL REFERENCES repositories (id),
    alias         TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL,
    updated_by    TEXT,
    PRIMARY KEY (repository_id, alias)
);

-- Every alias move, in order.
CREATE TABLE alias_history (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    repository_id INTEGER NOT NULL REFERENCES repositories (id),
    alias         TEXT    NOT NULL,
    from_version  TEXT,
    to_version    TEXT,
    actor         TEXT,
    reason        TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX alias_history_alias ON alias_history (repository_id, alias, id);

-- Gates an alias move must pass (JSON list of conditions).
CREATE TABLE alias_gates (
    repository_id INTEGER NOT NULL REFERENCES repositories (id),
    alias         TEXT    NOT NULL,
    conditions    TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL,
    updated_by    TEXT,
    PRIMARY KEY (repository_id, alias)
);

-- Bearer tokens, stored as sha256 of the secret only.
CREATE TABLE tokens (
    id           TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    secret_hash  TEXT    NOT NULL UNIQUE,
    -- read | write | admin (each implies the ones before it)
    scope        TEXT    NOT NULL,
    -- JSON list of namespaces, or NULL for all
    namespaces   TEXT,
    created_at   INTEGER NOT NULL,
    created_by   TEXT,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);

-- Every mutation, with who did it and how it ended.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    status     INTEGER NOT NULL,
    outcome    TEXT    NOT NULL,
    details    TEXT
);
CREATE INDEX audit_log_created ON audit_log (created_at);
