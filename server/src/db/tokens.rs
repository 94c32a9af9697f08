//! Bearer tokens. Only the sha256 of a secret is stored; the secret is shown once.

use adapter_core::api::{Scope, TokenInfo};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Db, now, retry_busy};

/// A token to insert (the secret's hash, never the secret).
#[derive(Debug)]
pub struct NewToken<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub secret_hash: &'a str,
    pub scope: Scope,
    pub namespaces: Option<&'a [String]>,
    pub created_by: Option<&'a str>,
    pub expires_at: Option<i64>,
}

const COLUMNS: &str = "id, name, scope, namespaces, created_at, created_by, expires_at, \
                       revoked_at, last_used_at";

/// `last_used_at` is written at most this often per token (seconds), so reads stay reads.
const LAST_USED_GRANULARITY: i64 = 60;

fn token_of(row: &AnyRow) -> Result<TokenInfo, sqlx::Error> {
    let decode = |e: String| sqlx::Error::Decode(e.into());
    let scope: String = row.try_get(2)?;
    let namespaces: Option<String> = row.try_get(3)?;
    Ok(TokenInfo {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        scope: scope.parse().map_err(decode)?,
        namespaces: namespaces
            .map(|n| serde_json::from_str(&n).map_err(|e| decode(e.to_string())))
            .transpose()?,
        created_at: row.try_get(4)?,
        created_by: row.try_get(5)?,
        expires_at: row.try_get(6)?,
        revoked_at: row.try_get(7)?,
        last_used_at: row.try_get(8)?,
    })
}

impl Db {
    pub async fn insert_token(&self, t: &NewToken<'_>) -> Result<TokenInfo, sqlx::Error> {
        let namespaces = t
            .namespaces
            .map(|n| serde_json::to_string(n).unwrap_or_else(|_| "[]".into()));
        let created_at = now();
        retry_busy(|| {
            sqlx::query(
                "INSERT INTO tokens (id, name, secret_hash, scope, namespaces, created_at, \
                 created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(t.id.to_owned())
            .bind(t.name.to_owned())
            .bind(t.secret_hash.to_owned())
            .bind(t.scope.as_str())
            .bind(namespaces.clone())
            .bind(created_at)
            .bind(t.created_by.map(str::to_owned))
            .bind(t.expires_at)
            .execute(&self.pool)
        })
        .await?;
        self.token(t.id).await?.ok_or(sqlx::Error::RowNotFound)
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenInfo>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_of).transpose()
    }

    /// The token with this secret hash (revoked and expired ones included: the caller decides).
    pub async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenInfo>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE secret_hash = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(secret_hash.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_of).transpose()
    }

    /// Every token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM tokens ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_of).collect()
    }

    pub async fn token_count(&self) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT COUNT(*) FROM tokens")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)
    }

    /// Take the one-time right to create the first admin token: `true` for exactly one
    /// caller over the life of the database, however many servers start at once.
    pub async fn claim_first_admin(&self) -> Result<bool, sqlx::Error> {
        retry_busy(|| {
            sqlx::query(
                "INSERT INTO registry_secrets (name, value) VALUES ('first-admin-token', $1) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(now().to_string())
            .execute(&self.pool)
        })
        .await
        .map(|r| r.rows_affected() == 1)
    }

    /// Revoke (idempotent: the first revocation time is kept). `None` if no such token.
    pub async fn revoke_token(&self, id: &str) -> Result<Option<TokenInfo>, sqlx::Error> {
        let at = now();
        retry_busy(|| {
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at)
                .bind(id.to_owned())
                .execute(&self.pool)
        })
        .await?;
        self.token(id).await
    }

    /// Note that a token was used (at most once a minute per token).
    pub async fn touch_token(&self, id: &str) -> Result<(), sqlx::Error> {
        let at = now();
        retry_busy(|| {
            sqlx::query(
                "UPDATE tokens SET last_used_at = $1 WHERE id = $2 \
                 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(at)
            .bind(id.to_owned())
            .bind(at - LAST_USED_GRANULARITY)
            .execute(&self.pool)
        })
        .await
        .map(|_| ())
    }
}
