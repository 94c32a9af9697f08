-- Generation counters (issue 13): a process may keep what it read from the catalogue, or a
-- token, for as long as the counter it was read under has not moved. Triggers bump the
-- counters in the same transaction as every write to the tables they cover, so a reader on
-- any server that sees the counter unchanged knows nothing it cached has changed: caches
-- stay correct across servers (docs/ARCHITECTURE.md, "What processes share").
-- Keep in step with migrations/postgres/0008_generations.sql.

CREATE TABLE generations (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    -- every table the catalogue reads
    catalog INTEGER NOT NULL,
    -- what authentication reads of a token (not `last_used_at`)
    tokens  INTEGER NOT NULL
);
INSERT INTO generations (id, catalog, tokens) VALUES (1, 0, 0);

CREATE TRIGGER repositories_insert_generation AFTER INSERT ON repositories
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER repositories_update_generation AFTER UPDATE ON repositories
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER repositories_delete_generation AFTER DELETE ON repositories
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER versions_insert_generation AFTER INSERT ON versions
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER versions_update_generation AFTER UPDATE ON versions
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER versions_delete_generation AFTER DELETE ON versions
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER version_files_insert_generation AFTER INSERT ON version_files
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER version_files_update_generation AFTER UPDATE ON version_files
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER version_files_delete_generation AFTER DELETE ON version_files
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER version_facts_insert_generation AFTER INSERT ON version_facts
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER version_facts_update_generation AFTER UPDATE ON version_facts
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER version_facts_delete_generation AFTER DELETE ON version_facts
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER version_targets_insert_generation AFTER INSERT ON version_targets
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER version_targets_update_generation AFTER UPDATE ON version_targets
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER version_targets_delete_generation AFTER DELETE ON version_targets
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER version_labels_insert_generation AFTER INSERT ON version_labels
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER version_labels_update_generation AFTER UPDATE ON version_labels
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER version_labels_delete_generation AFTER DELETE ON version_labels
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER evals_insert_generation AFTER INSERT ON evals
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER evals_update_generation AFTER UPDATE ON evals
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER evals_delete_generation AFTER DELETE ON evals
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER validations_insert_generation AFTER INSERT ON validations
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER validations_update_generation AFTER UPDATE ON validations
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER validations_delete_generation AFTER DELETE ON validations
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER lineage_insert_generation AFTER INSERT ON lineage
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER lineage_update_generation AFTER UPDATE ON lineage
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER lineage_delete_generation AFTER DELETE ON lineage
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER aliases_insert_generation AFTER INSERT ON aliases
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER aliases_update_generation AFTER UPDATE ON aliases
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER aliases_delete_generation AFTER DELETE ON aliases
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER alias_gates_insert_generation AFTER INSERT ON alias_gates
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER alias_gates_update_generation AFTER UPDATE ON alias_gates
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER alias_gates_delete_generation AFTER DELETE ON alias_gates
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER alias_history_insert_generation AFTER INSERT ON alias_history
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER alias_history_update_generation AFTER UPDATE ON alias_history
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;
CREATE TRIGGER alias_history_delete_generation AFTER DELETE ON alias_history
BEGIN UPDATE generations SET catalog = catalog + 1 WHERE id = 1; END;

CREATE TRIGGER tokens_update_generation AFTER UPDATE OF name, secret_hash, scope, namespaces, expires_at, revoked_at ON tokens
BEGIN UPDATE generations SET tokens = tokens + 1 WHERE id = 1; END;
CREATE TRIGGER tokens_delete_generation AFTER DELETE ON tokens
BEGIN UPDATE generations SET tokens = tokens + 1 WHERE id = 1; END;
