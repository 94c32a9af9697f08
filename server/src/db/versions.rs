//! Versions and their files. A publish writes the repository (if missing), the version, its
//! file list, facts and the job it asks for in one transaction; a unique violation means
//! someone else published it.

use adapter_core::manifest::{FileEntry, Kind};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Db, is_foreign_key_violation, is_unique_violation, now, retry_busy, to_i64, to_u64};

/// A version as listed (no manifest body).
#[derive(Debug, Clone)]
pub struct VersionHead {
    pub version: String,
    pub manifest_digest: String,
    pub yanked: bool,
    pub created_at: i64,
    pub total_size: u64,
    /// Why `fsck --repair` marked it damaged.
    pub damaged: Option<String>,
}

/// A version in full.
#[derive(Debug, Clone)]
pub struct VersionRow {
    /// The row id (evals, validations, facts and lineage refer to it).
    pub id: i64,
    pub head: VersionHead,
    /// Canonical manifest JSON.
    pub manifest: String,
    /// Summary JSON.
    pub summary: String,
    /// Why, when and by whom it was yanked (set only while yanked).
    pub yank_reason: Option<String>,
    pub yanked_at: Option<i64>,
    pub yanked_by: Option<String>,
}

/// What to store for a new version.
#[derive(Debug)]
pub struct NewVersion<'a> {
    pub kind: Kind,
    pub namespace: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    pub manifest_digest: String,
    pub manifest: String,
    pub summary: String,
    pub total_size: u64,
    pub files: &'a [FileEntry],
    /// Searchable facts, labels and lineage, written in the same transaction.
    pub facts: &'a super::facts::Facts,
    /// Every blob the version references (its files' and a headers-only model's header
    /// blobs): whoever may read the version may read them.
    pub blobs: &'a [adapter_core::digest::Digest],
    /// A job the version asks for (an adapter's validation), queued in the same
    /// transaction: the version is never visible without it.
    pub job: Option<&'a super::jobs::NewJob>,
}

/// Outcome of an insert.
#[derive(Debug)]
pub enum Inserted {
    Created(VersionRow),
    /// The version existed already (this row).
    Existing(VersionRow),
    /// Nothing was inserted: a blob it references was deleted (by `gc`) after the publish
    /// checked it.
    BlobsGone,
}

const HEAD_COLUMNS: &str =
    "v.version, v.manifest_digest, v.yanked, v.created_at, v.total_size, v.damaged";

fn head_of(row: &AnyRow) -> Result<VersionHead, sqlx::Error> {
    Ok(VersionHead {
        version: row.try_get(0)?,
        manifest_digest: row.try_get(1)?,
        yanked: row.try_get::<i64, _>(2)? != 0,
        created_at: row.try_get(3)?,
        total_size: to_u64(row.try_get(4)?),
        damaged: row.try_get(5)?,
    })
}

impl Db {
    /// Every version of a repository (unordered).
    pub async fn version_heads(&self, repo_id: i64) -> Result<Vec<VersionHead>, sqlx::Error> {
        let sql = format!("SELECT {HEAD_COLUMNS} FROM versions v WHERE v.repository_id = $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(head_of).collect()
    }

    pub async fn version(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<VersionRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {HEAD_COLUMNS}, v.manifest, v.summary, v.id, v.yank_reason, v.yanked_at, \
             v.yanked_by FROM versions v \
             JOIN repositories r ON r.id = v.repository_id \
             WHERE r.kind = $1 AND r.namespace = $2 AND r.name = $3 AND v.version = $4"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(kind.as_str())
            .bind(namespace.to_owned())
            .bind(name.to_owned())
            .bind(version.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(VersionRow {
                id: r.try_get(8)?,
                head: head_of(&r)?,
                manifest: r.try_get(6)?,
                summary: r.try_get(7)?,
                yank_reason: r.try_get(9)?,
                yanked_at: r.try_get(10)?,
                yanked_by: r.try_get(11)?,
            })
        })
        .transpose()
    }

    /// Insert a version, creating its repository if missing. Race-safe: of concurrent
    /// inserts of one version exactly one gets `Created`, the others `Existing`.
    pub async fn insert_version(&self, v: &NewVersion<'_>) -> Result<Inserted, sqlx::Error> {
        let created_at = now();
        let created = match retry_busy(|| self.try_insert_version(v, created_at)).await {
            Ok(true) => true,
            Ok(false) => return Ok(Inserted::BlobsGone),
            Err(e) if is_foreign_key_violation(&e) => return Ok(Inserted::BlobsGone),
            Err(e) if is_unique_violation(&e) => false,
            Err(e) => return Err(e),
        };
        let row = self
            .version(v.kind, v.namespace, v.name, v.version)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        Ok(if created {
            Inserted::Created(row)
        } else {
            Inserted::Existing(row)
        })
    }

    /// `Ok(false)`: a referenced blob is gone (rolled back).
    async fn try_insert_version(
        &self,
        v: &NewVersion<'_>,
        created_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // A write first, so SQLite takes the write lock (and waits for it) up front.
        sqlx::query(
            "INSERT INTO repositories (kind, namespace, name, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (kind, namespace, name) DO NOTHING",
        )
        .bind(v.kind.as_str())
        .bind(v.namespace.to_owned())
        .bind(v.name.to_owned())
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
        let repo_id: i64 = sqlx::query(
            "SELECT id FROM repositories WHERE kind = $1 AND namespace = $2 AND name = $3",
        )
        .bind(v.kind.as_str())
        .bind(v.namespace.to_owned())
        .bind(v.name.to_owned())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let version_id: i64 = sqlx::query(
            "INSERT INTO versions (repository_id, version, manifest_digest, manifest, summary, \
             total_size, yanked, created_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7) RETURNING id",
        )
        .bind(repo_id)
        .bind(v.version.to_owned())
        .bind(v.manifest_digest.clone())
        .bind(v.manifest.clone())
        .bind(v.summary.clone())
        .bind(to_i64(v.total_size))
        .bind(created_at)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        for f in v.files {
            sqlx::query(
                "INSERT INTO version_files (version_id, path, digest, size) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(version_id)
            .bind(f.path.as_str().to_owned())
            .bind(f.digest.to_string())
            .bind(to_i64(f.size))
            .execute(&mut *tx)
            .await?;
        }
        for digest in v.blobs {
            sqlx::query(
                "INSERT INTO version_blobs (version_id, digest) VALUES ($1, $2) \
                 ON CONFLICT (version_id, digest) DO NOTHING",
            )
            .bind(version_id)
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        }
        // Every blob still there, seen inside the transaction: on SQLite (one writer at a
        // time) nothing deletes one before the commit; on PostgreSQL the foreign key on
        // version_blobs holds the rows (docs/ARCHITECTURE.md, "gc").
        if !super::blobs::all_exist(&mut tx, v.blobs).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        super::facts::insert(&mut tx, version_id, v.facts).await?;
        if let Some(job) = v.job {
            super::jobs::enqueue_in(&mut tx, job).await?;
        }
        fail::fail_point!("publish.before_commit", |_| Err(sqlx::Error::Protocol(
            "fail point publish.before_commit".into()
        )));
        tx.commit().await?;
        Ok(true)
    }
}
