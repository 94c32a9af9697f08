//! Eval results: append-only rows per version. A batch is inserted in one transaction (all
//! or nothing); "latest" is the row with the highest id per `benchmark:metric`.

use adapter_core::api::{EvalInput, EvalResult};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Db, now, retry_busy};

const COLUMNS: &str = "e.id, e.benchmark, e.metric, e.value, e.higher_is_better, e.dataset, \
                       e.source, e.author, e.created_at";

fn result_of(row: &AnyRow) -> Result<EvalResult, sqlx::Error> {
    Ok(EvalResult {
        id: row.try_get(0)?,
        benchmark: row.try_get(1)?,
        metric: row.try_get(2)?,
        value: row.try_get(3)?,
        higher_is_better: row.try_get::<i64, _>(4)? != 0,
        dataset: row.try_get(5)?,
        source: row.try_get(6)?,
        author: row.try_get(7)?,
        created_at: row.try_get(8)?,
    })
}

impl Db {
    /// Append `results` to a version in one transaction; returns them as stored, in order.
    /// The caller has validated them (`EvalBatch::check`).
    pub async fn insert_evals(
        &self,
        version_id: i64,
        results: &[EvalInput],
        author: &str,
    ) -> Result<Vec<EvalResult>, sqlx::Error> {
        let created_at = now();
        retry_busy(|| self.try_insert_evals(version_id, results, author, created_at)).await
    }

    async fn try_insert_evals(
        &self,
        version_id: i64,
        results: &[EvalInput],
        author: &str,
        created_at: i64,
    ) -> Result<Vec<EvalResult>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            let id: i64 = sqlx::query(
                "INSERT INTO evals (version_id, benchmark, metric, value, higher_is_better, \
                 dataset, source, author, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(version_id)
            .bind(r.benchmark.clone())
            .bind(r.metric.clone())
            .bind(r.value)
            .bind(i64::from(r.higher_is_better))
            .bind(r.dataset.clone())
            .bind(r.source.clone())
            .bind(author.to_owned())
            .bind(created_at)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            out.push(EvalResult {
                id,
                benchmark: r.benchmark.clone(),
                metric: r.metric.clone(),
                value: r.value,
                higher_is_better: r.higher_is_better,
                dataset: r.dataset.clone(),
                source: r.source.clone(),
                author: Some(author.to_owned()),
                created_at,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Every result of a version, oldest first (in the order they were recorded).
    pub async fn evals(&self, version_id: i64) -> Result<Vec<EvalResult>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM evals e WHERE e.version_id = $1 ORDER BY e.id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(version_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(result_of).collect()
    }

    /// The latest result per `benchmark:metric` of a version, sorted by benchmark, then
    /// metric (byte order, the same on every backend).
    pub async fn latest_evals(&self, version_id: i64) -> Result<Vec<EvalResult>, sqlx::Error> {
        latest_evals(&self.pool, version_id).await
    }
}

/// The latest result per `benchmark:metric` of a version (sorted by benchmark, metric), on
/// any executor: the pool, or a transaction that must see its own snapshot (alias gates).
pub async fn latest_evals<'e, E>(exec: E, version_id: i64) -> Result<Vec<EvalResult>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = format!(
        "SELECT {COLUMNS} FROM evals e WHERE e.version_id = $1 AND e.id = \
         (SELECT MAX(l.id) FROM evals l WHERE l.version_id = e.version_id \
          AND l.benchmark = e.benchmark AND l.metric = e.metric)"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(version_id)
        .fetch_all(exec)
        .await?;
    let mut out: Vec<EvalResult> = rows.iter().map(result_of).collect::<Result<_, _>>()?;
    out.sort_by(|a, b| (&a.benchmark, &a.metric).cmp(&(&b.benchmark, &b.metric)));
    Ok(out)
}
