//! The metadata database: one `AnyPool` over SQLite (embedded) or PostgreSQL (scale-out).
//! SQL is portable (`$N` placeholders, BIGINT/TEXT only); what differs between the two
//! backends lives here: connection setup and the migration folder.

pub mod aliases;
pub mod audit;
pub mod blobs;
pub mod catalog;
pub mod evals;
pub mod facts;
pub mod generations;
pub mod jobs;
pub mod lineage;
pub mod maintenance;
pub mod repositories;
pub mod resolve;
pub mod search;
pub mod tokens;
pub mod uploads;
pub mod validations;
pub mod versions;
pub mod yank;

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor as _};

/// Which database the URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            anyhow::bail!("unsupported database URL scheme (expected sqlite: or postgres://)")
        }
    }
}

/// The pool and which backend it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// Server secrets read so far ([`Db::secret`]): a secret never changes once stored, so
    /// this copy is what every process over the database reads.
    secrets: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
    /// What this process keeps of what it read, valid while a generation counter holds
    /// ([`generations`]).
    pub caches: std::sync::Arc<Caches>,
}

/// The caches of a process, each kept correct by a generation counter.
#[derive(Debug)]
pub struct Caches {
    /// Tokens by secret hash, under `generations.tokens`.
    pub tokens: generations::GenCache<adapter_core::api::TokenInfo>,
    /// Catalogue answers (JSON bytes) by request, under `generations.catalog`.
    pub catalog: generations::GenCache<bytes::Bytes>,
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            tokens: generations::GenCache::new(10_000),
            catalog: generations::GenCache::new(10_000),
        }
    }
}

impl Db {
    /// Connect (creating a SQLite file and its directory if missing) and migrate; a request
    /// waits at most `acquire_timeout` for a connection.
    pub async fn connect(url: &str, acquire_timeout: Duration) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let (url, max) = match backend {
            Backend::Sqlite => (sqlite_url(url)?, 8),
            Backend::Postgres => (url.to_owned(), 16),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA busy_timeout = 30000").await?;
                        // FULL: a commit is on disk when it returns, so what the API
                        // acknowledged survives a power loss too (NORMAL, in WAL mode, only
                        // survives a process crash).
                        conn.execute("PRAGMA synchronous = FULL").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .context("connecting to the database")?;
        if backend == Backend::Sqlite {
            // Persistent in the file; concurrent readers never block the writer.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .context("enabling WAL")?;
        }
        let db = Self {
            pool,
            backend,
            secrets: Default::default(),
            caches: Default::default(),
        };
        db.migrate().await?;
        Ok(db)
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("../migrations/postgres"),
        };
        migrator
            .run(&self.pool)
            .await
            .context("running database migrations")
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

/// `sqlite://path` → the same with `mode=rwc`, and the parent directory created.
fn sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    if !path.is_empty()
        && path != ":memory:"
        && let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// Unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The database cannot be reached (down, restarting, the pool waited out its acquire
/// timeout): the API answers 503 `not_ready` and the client may retry.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// A foreign key violation (on PostgreSQL: a version referencing a blob `gc` deleted).
pub fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

/// SQLite's "database is locked" family (SQLITE_BUSY and its extended codes).
pub fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            let code = d.code();
            matches!(code.as_deref(), Some("5" | "261" | "517" | "6" | "262"))
                || d.message().contains("database is locked")
        }
        _ => false,
    }
}

/// Run a write transaction body again when SQLite reports it busy (a writer that started
/// as a reader cannot wait for the lock); other errors return at once.
pub async fn retry_busy<T, F, Fut>(mut f: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut delay = Duration::from_millis(5);
    for _ in 0..50 {
        match f().await {
            Err(e) if is_busy(&e) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
    f().await
}

/// u64 → BIGINT, refusing values past i64::MAX (sizes and offsets never get there).
pub fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// BIGINT → u64 (negative values never stored; clamp defensively).
pub fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
