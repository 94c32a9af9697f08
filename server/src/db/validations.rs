//! Compatibility validations: the latest verdict of an adapter version against a model
//! version (written by the `validate` job), listed on either side and read by the alias gate
//! condition `validated_against`.

use std::collections::BTreeSet;

use adapter_core::api::{Condition, GateCondition, ValidationInfo};
use adapter_core::manifest::Kind;
use adapter_core::reference::Reference;
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use super::{Db, now, retry_busy};

/// Which side of the validation a version list is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Validations of this adapter version.
    Adapter,
    /// Validations against this model version.
    Base,
}

const SELECT: &str = "SELECT ar.namespace, ar.name, av.version, br.namespace, br.name, \
     bv.version, x.verdict, x.report, x.job_id, x.created_at FROM validations x \
     JOIN versions av ON av.id = x.adapter_version_id \
     JOIN repositories ar ON ar.id = av.repository_id \
     JOIN versions bv ON bv.id = x.base_version_id \
     JOIN repositories br ON br.id = bv.repository_id";

fn info_of(r: &AnyRow) -> Result<ValidationInfo, sqlx::Error> {
    let s = |i: usize| r.try_get::<String, _>(i);
    let report: String = r.try_get(7)?;
    Ok(ValidationInfo {
        adapter: format!("{}/{}@{}", s(0)?, s(1)?, s(2)?),
        base: format!("{}/{}@{}", s(3)?, s(4)?, s(5)?),
        verdict: s(6)?,
        report: serde_json::from_str(&report).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        job_id: s(8)?,
        created_at: r.try_get(9)?,
    })
}

impl Db {
    /// Store (or replace) the validation of an adapter version against a base version.
    pub async fn put_validation(
        &self,
        adapter_version_id: i64,
        base_version_id: i64,
        verdict: &str,
        report: &str,
        job_id: &str,
    ) -> Result<(), sqlx::Error> {
        retry_busy(|| async {
            sqlx::query(
                "INSERT INTO validations (adapter_version_id, base_version_id, verdict, report, \
                 job_id, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (adapter_version_id, base_version_id) DO UPDATE SET \
                 verdict = excluded.verdict, report = excluded.report, \
                 job_id = excluded.job_id, created_at = excluded.created_at",
            )
            .bind(adapter_version_id)
            .bind(base_version_id)
            .bind(verdict.to_owned())
            .bind(report.to_owned())
            .bind(job_id.to_owned())
            .bind(now())
            .execute(&self.pool)
            .await
        })
        .await
        .map(|_| ())
    }

    /// The validations of a version (by adapter or by base), oldest first.
    pub async fn validations(
        &self,
        side: Side,
        version_id: i64,
    ) -> Result<Vec<ValidationInfo>, sqlx::Error> {
        let column = match side {
            Side::Adapter => "x.adapter_version_id",
            Side::Base => "x.base_version_id",
        };
        let sql = format!("{SELECT} WHERE {column} = $1 ORDER BY x.created_at, bv.id, av.id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(version_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(info_of).collect()
    }
}

/// The `validated_against` bases of `conditions` that `version_id` passes: the reference
/// resolves (now, like any reference) to a registered model version, and the latest
/// validation of this version against it has a verdict other than `incompatible`.
pub async fn validated_bases(
    tx: &mut Transaction<'static, Any>,
    version_id: i64,
    conditions: &[GateCondition],
) -> Result<BTreeSet<String>, sqlx::Error> {
    let mut passed = BTreeSet::new();
    for c in conditions {
        let Ok(Condition::ValidatedAgainst { base }) = c.check() else {
            continue;
        };
        let Ok(r) = base.parse::<Reference>() else {
            continue;
        };
        let Some(base_id) = resolve_model(tx, &r).await? else {
            continue;
        };
        let verdict: Option<String> = sqlx::query(
            "SELECT verdict FROM validations WHERE adapter_version_id = $1 \
             AND base_version_id = $2",
        )
        .bind(version_id)
        .bind(base_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        if verdict.is_some_and(|v| v != "incompatible") {
            passed.insert(base);
        }
    }
    Ok(passed)
}

/// The id of the model version `r` resolves to, if any.
async fn resolve_model(
    tx: &mut Transaction<'static, Any>,
    r: &Reference,
) -> Result<Option<i64>, sqlx::Error> {
    let found =
        super::resolve::resolvable(tx, Kind::Model, r.namespace.as_str(), r.name.as_str()).await?;
    Ok(found
        .and_then(|f| f.resolve(r.selector.as_ref()).ok())
        .map(|res| res.version_id))
}
