-- Server-side secrets shared by every replica (e.g. the key that signs search cursors).
-- Keep in step with migrations/postgres/0004_registry_secrets.sql.
CREATE TABLE registry_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
