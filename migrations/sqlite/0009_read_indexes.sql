-- Indexes for reads at 10,000 repositories (issue 19). Keep in step with
-- migrations/postgres/0009_read_indexes.sql.

-- Catalogue search finds each repository's head, the newest version passing the filters,
-- with one index-only look-up per repository, and pages by publication time by walking
-- versions in that order. Without these, both read every version row, which is wide (its
-- manifest and summary).
CREATE INDEX versions_head ON versions (repository_id, yanked, id);
CREATE INDEX versions_created ON versions (created_at, id);

-- A version page's lineage: the version a lineage row names, by manifest digest in any
-- repository, and the versions whose lineage names this one by its pinned reference. Each
-- was a scan of its table.
CREATE INDEX versions_by_manifest ON versions (manifest_digest);
CREATE INDEX lineage_reference ON lineage (reference);

-- A version's latest result per benchmark:metric (what every read of evals asks for:
-- MAX(id) per version, benchmark and metric) is one index seek. PostgreSQL's index did not
-- hold the id, so each row's MAX read every result of its metric: with 2,000 results of one
-- metric on a version, its lookup took up to a second (catalog-bench --writes-per-second).
-- SQLite's index already ended with the rowid, which is the id; the same index in both.
DROP INDEX evals_version;
CREATE INDEX evals_version ON evals (version_id, benchmark, metric, id);
