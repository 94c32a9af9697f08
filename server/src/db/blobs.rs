//! The `blobs` table: which content-addressed blobs are complete and verified; and who may
//! read one: `version_blobs` (every blob a version references) and `blob_uploaders`.

use std::collections::HashSet;

use adapter_core::digest::Digest;
use sqlx::{AnyConnection, AssertSqlSafe, Row as _};

use super::{Db, now, retry_busy, to_i64, to_u64};

impl Db {
    /// Record a verified blob (idempotent).
    pub async fn insert_blob(&self, digest: &Digest, size: u64) -> Result<(), sqlx::Error> {
        let digest = digest.to_string();
        retry_busy(|| {
            sqlx::query(
                "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(digest.clone())
            .bind(to_i64(size))
            .bind(now())
            .execute(&self.pool)
        })
        .await
        .map(|_| ())
    }

    /// The size of a stored blob, if it exists.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, sqlx::Error> {
        let row = sqlx::query("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get::<i64, _>(0).map(to_u64)).transpose()
    }

    /// The subset of `digests` that are stored, with their sizes.
    pub async fn existing_blobs(
        &self,
        digests: &[Digest],
    ) -> Result<std::collections::HashMap<Digest, u64>, sqlx::Error> {
        let mut found = std::collections::HashMap::new();
        let unique = distinct(digests);
        for chunk in unique.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            // Only `$N` placeholders are interpolated; every value is bound.
            let sql = format!(
                "SELECT digest, size FROM blobs WHERE digest IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for d in chunk {
                q = q.bind(d.clone());
            }
            add_sizes(&q.fetch_all(&self.pool).await?, &mut found)?;
        }
        Ok(found)
    }

    /// The subset of `digests` that are stored and readable by `reader`, with their sizes
    /// (one indexed query per 500 digests).
    pub async fn readable_blobs(
        &self,
        digests: &[Digest],
        reader: &BlobReader,
    ) -> Result<std::collections::HashMap<Digest, u64>, sqlx::Error> {
        let BlobReader::Versions {
            namespaces,
            uploader,
        } = reader
        else {
            return self.existing_blobs(digests).await;
        };
        let mut found = std::collections::HashMap::new();
        let unique = distinct(digests);
        for chunk in unique.chunks(500) {
            let mut n = 0;
            let mut next = || {
                n += 1;
                format!("${n}")
            };
            let these: Vec<String> = chunk.iter().map(|_| next()).collect();
            let these = these.join(", ");
            let mut listed = format!(
                "SELECT vb.digest FROM version_blobs vb \
                 JOIN versions v ON v.id = vb.version_id \
                 JOIN repositories r ON r.id = v.repository_id \
                 WHERE vb.digest IN ({these})"
            );
            if let Some(ns) = namespaces {
                let allowed: Vec<String> = ns.iter().map(|_| next()).collect();
                if allowed.is_empty() {
                    listed.push_str(" AND 1 = 0");
                } else {
                    listed.push_str(&format!(" AND r.namespace IN ({})", allowed.join(", ")));
                }
            }
            let mut readable = listed;
            if uploader.is_some() {
                let token = next();
                readable.push_str(&format!(
                    " UNION SELECT u.digest FROM blob_uploaders u \
                     WHERE u.token_id = {token} AND u.digest IN ({these})"
                ));
            }
            // Only `$N` placeholders are interpolated; every value is bound.
            let sql =
                format!("SELECT b.digest, b.size FROM blobs b WHERE b.digest IN ({readable})");
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for d in chunk {
                q = q.bind(d.clone());
            }
            for ns in namespaces.iter().flatten() {
                q = q.bind(ns.clone());
            }
            if let Some(token) = uploader {
                q = q.bind(token.clone());
            }
            add_sizes(&q.fetch_all(&self.pool).await?, &mut found)?;
        }
        Ok(found)
    }

    /// `(version id, manifest)` of the model versions registered headers-only.
    pub async fn headers_only_versions(&self) -> Result<Vec<(i64, String)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT v.id, v.manifest FROM versions v \
             JOIN repositories r ON r.id = v.repository_id \
             WHERE r.kind = 'model' AND v.manifest LIKE '%\"headers_only\":true%'",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// List `digests` as referenced by version `version_id` (idempotent).
    pub async fn add_version_blobs(
        &self,
        version_id: i64,
        digests: &[Digest],
    ) -> Result<(), sqlx::Error> {
        for d in digests {
            let d = d.to_string();
            retry_busy(|| {
                sqlx::query(
                    "INSERT INTO version_blobs (version_id, digest) VALUES ($1, $2) \
                     ON CONFLICT (version_id, digest) DO NOTHING",
                )
                .bind(version_id)
                .bind(d.clone())
                .execute(&self.pool)
            })
            .await?;
        }
        Ok(())
    }

    /// Record that `token_id` sent (and the server verified) the bytes of `digest`.
    pub async fn add_blob_uploader(
        &self,
        digest: &Digest,
        token_id: &str,
    ) -> Result<(), sqlx::Error> {
        let digest = digest.to_string();
        retry_busy(|| {
            sqlx::query(
                "INSERT INTO blob_uploaders (digest, token_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (digest, token_id) DO NOTHING",
            )
            .bind(digest.clone())
            .bind(token_id.to_owned())
            .bind(now())
            .execute(&self.pool)
        })
        .await
        .map(|_| ())
    }
}

/// The distinct digests, as stored.
/// Are all of `digests` stored (rows in `blobs`), as seen on `conn` (a publish's
/// transaction)?
pub async fn all_exist(conn: &mut AnyConnection, digests: &[Digest]) -> Result<bool, sqlx::Error> {
    let unique = distinct(digests);
    for chunk in unique.chunks(500) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        // Only `$N` placeholders are interpolated; every value is bound.
        let sql = format!(
            "SELECT COUNT(*) FROM blobs WHERE digest IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for d in chunk {
            q = q.bind(d.clone());
        }
        let found: i64 = q.fetch_one(&mut *conn).await?.try_get(0)?;
        if to_u64(found) != chunk.len() as u64 {
            return Ok(false);
        }
    }
    Ok(true)
}

fn distinct(digests: &[Digest]) -> Vec<String> {
    digests
        .iter()
        .map(Digest::to_string)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect()
}

/// `(digest, size)` rows into `found`.
fn add_sizes(
    rows: &[sqlx::any::AnyRow],
    found: &mut std::collections::HashMap<Digest, u64>,
) -> Result<(), sqlx::Error> {
    for row in rows {
        let digest: String = row.try_get(0)?;
        let size: i64 = row.try_get(1)?;
        if let Ok(d) = digest.parse() {
            found.insert(d, to_u64(size));
        }
    }
    Ok(())
}

/// Who reads a blob (decided by `auth::walls`).
#[derive(Debug, Clone)]
pub enum BlobReader {
    /// Every stored blob (an admin over all namespaces, the registry itself).
    Everything,
    /// Blobs listed by a version in `namespaces` (`None`: any namespace), or uploaded by
    /// the token `uploader`.
    Versions {
        namespaces: Option<Vec<String>>,
        uploader: Option<String>,
    },
}
