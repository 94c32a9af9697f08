//! The `blobs` table: which content-addressed blobs are complete and verified.

use std::collections::HashSet;

use adapter_core::digest::Digest;
use sqlx::{AssertSqlSafe, Row as _};

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
        let unique: Vec<String> = digests
            .iter()
            .map(Digest::to_string)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
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
            for row in q.fetch_all(&self.pool).await? {
                let digest: String = row.try_get(0)?;
                let size: i64 = row.try_get(1)?;
                if let Ok(d) = digest.parse() {
                    found.insert(d, to_u64(size));
                }
            }
        }
        Ok(found)
    }
}
