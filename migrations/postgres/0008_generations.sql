-- Generation counters (issue 13): a process may keep what it read from the catalogue, or a
-- token, for as long as the counter it was read under has not moved. Triggers bump the
-- counters in the same transaction as every write to the tables they cover, so a reader on
-- any server that sees the counter unchanged knows nothing it cached has changed: caches
-- stay correct across servers (docs/ARCHITECTURE.md, "What processes share").
-- Keep in step with migrations/sqlite/0008_generations.sql.
--
-- The bump is a deferred constraint trigger: it runs at COMMIT, after the transaction took
-- every other lock it needs, so the counter row's lock is always taken last and held only
-- for the commit. No deadlock can go through it, and writers queue on it for microseconds.
-- One bump per transaction and counter (a transaction-local setting remembers it).

CREATE TABLE generations (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    -- every table the catalogue reads
    catalog BIGINT  NOT NULL,
    -- what authentication reads of a token (not `last_used_at`)
    tokens  BIGINT  NOT NULL
);
INSERT INTO generations (id, catalog, tokens) VALUES (1, 0, 0);

CREATE FUNCTION bump_catalog_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('registry.catalog_bumped', true) IS DISTINCT FROM 'yes' THEN
        UPDATE generations SET catalog = catalog + 1 WHERE id = 1;
        PERFORM set_config('registry.catalog_bumped', 'yes', true);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION bump_tokens_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('registry.tokens_bumped', true) IS DISTINCT FROM 'yes' THEN
        UPDATE generations SET tokens = tokens + 1 WHERE id = 1;
        PERFORM set_config('registry.tokens_bumped', 'yes', true);
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER repositories_generation AFTER INSERT OR UPDATE OR DELETE ON repositories
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_catalog_generation();
CREATE CONSTRAINT TRIGGER versions_generation AFTER INSERT OR UPDATE OR DELETE ON versions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_catalog_generation();
CREATE CONSTRAINT TRIGGER version_files_generation AFTER INSERT OR UPDATE OR DELETE ON version_files
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_catalog_generation();
CREATE CONSTRAINT TRIGGER version_facts_generation AFTER INSERT OR UPDATE OR DELETE ON version_facts
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_catalog_generation();
CREATE CONSTRAINT TRIGGER version_targets_generation AFTER INSERT OR UPDATE OR DELETE ON version_targets
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_catalog_generation();
CREATE CONSTRAINT TRIGGER version_labels_generation AFTER INSERT OR UPDATE OR DELETE ON version_labels
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_catalog_generation();
CREATE CONSTRAINT TRIGGER evals_generation AFTER INSERT OR UPDATE OR DELETE ON evals
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_catalog_generation();
CREATE CONSTRAINT TRIGGER validations_generation AFTER INSERT OR UPDATE OR DELETE ON validations
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_catalog_generation();
CREATE CONSTRAINT TRIGGER lineage_generation AFTER INSERT OR UPDATE OR DELETE ON lineage
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_catalog_generation();
CREATE CONSTRAINT TRIGGER aliases_generation AFTER INSERT OR UPDATE OR DELETE ON aliases
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_catalog_generation();
CREATE CONSTRAINT TRIGGER alias_gates_generation AFTER INSERT OR UPDATE OR DELETE ON alias_gates
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_catalog_generation();
CREATE CONSTRAINT TRIGGER alias_history_generation AFTER INSERT OR UPDATE OR DELETE ON alias_history
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_catalog_generation();

CREATE CONSTRAINT TRIGGER tokens_generation
    AFTER UPDATE OF name, secret_hash, scope, namespaces, expires_at, revoked_at OR DELETE ON tokens
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_tokens_generation();
