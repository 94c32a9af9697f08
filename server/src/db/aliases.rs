//! Aliases, their history and their gates. A move is compare-and-swap: the conditional
//! write (INSERT for a new alias, `UPDATE … WHERE version = expected`, `DELETE … WHERE
//! version = expected`) comes first in the transaction, so it both checks the expectation
//! and takes the row (PostgreSQL) or database (SQLite) write lock; the gate is then evaluated
//! under that lock and the history row written before the commit. Concurrent movers with the
//! same expectation: exactly one write matches, the others see 0 rows (or a unique
//! violation) and get the current target back.

use std::collections::BTreeMap;

use adapter_core::api::{GateCondition, GateFailure};
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use super::{Db, is_unique_violation, now, retry_busy};
use crate::gates::{self, Candidate, Score, Scores};

#[derive(Debug, Clone)]
pub struct AliasRow {
    pub alias: String,
    pub version: String,
    pub updated_at: i64,
    pub updated_by: Option<String>,
}

#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub id: i64,
    pub alias: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct GateRow {
    pub alias: String,
    pub conditions: Vec<GateCondition>,
    pub updated_at: i64,
    pub updated_by: Option<String>,
}

/// A requested change of one alias.
#[derive(Debug, Clone)]
pub struct AliasChange<'a> {
    pub repo_id: i64,
    pub alias: &'a str,
    /// The new target; `None` deletes the alias.
    pub to: Option<&'a str>,
    /// The target the caller expects now; `None`: the alias must not exist.
    pub expect: Option<&'a str>,
    pub actor: &'a str,
    pub reason: Option<&'a str>,
}

/// How a change ended.
#[derive(Debug)]
pub enum ChangeOutcome {
    /// Created (`from` was `None`) or moved.
    Moved {
        row: AliasRow,
        created: bool,
    },
    Deleted,
    /// The alias already points to the requested version (nothing written).
    Unchanged(AliasRow),
    /// The expectation is stale: where the alias points now (`None`: it does not exist).
    Conflict {
        current: Option<String>,
    },
    /// The target version does not exist.
    TargetMissing,
    /// The gate refused: every failing condition.
    GateFailed(Vec<GateFailure>),
}

const ALIAS_COLUMNS: &str = "alias, version, updated_at, updated_by";

fn alias_of(row: &AnyRow) -> Result<AliasRow, sqlx::Error> {
    Ok(AliasRow {
        alias: row.try_get(0)?,
        version: row.try_get(1)?,
        updated_at: row.try_get(2)?,
        updated_by: row.try_get(3)?,
    })
}

impl Db {
    /// Every alias of a repository, by name.
    pub async fn aliases(&self, repo_id: i64) -> Result<Vec<AliasRow>, sqlx::Error> {
        let sql =
            format!("SELECT {ALIAS_COLUMNS} FROM aliases WHERE repository_id = $1 ORDER BY alias");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(alias_of).collect()
    }

    /// Alias → version, for resolution and `RepositoryInfo.aliases`.
    pub async fn alias_map(&self, repo_id: i64) -> Result<BTreeMap<String, String>, sqlx::Error> {
        Ok(self
            .aliases(repo_id)
            .await?
            .into_iter()
            .map(|a| (a.alias, a.version))
            .collect())
    }

    pub async fn alias(&self, repo_id: i64, alias: &str) -> Result<Option<AliasRow>, sqlx::Error> {
        let sql =
            format!("SELECT {ALIAS_COLUMNS} FROM aliases WHERE repository_id = $1 AND alias = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repo_id)
            .bind(alias.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(alias_of).transpose()
    }

    /// Every move of an alias, oldest first.
    pub async fn alias_history(
        &self,
        repo_id: i64,
        alias: &str,
    ) -> Result<Vec<HistoryRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, alias, from_version, to_version, actor, reason, created_at \
             FROM alias_history WHERE repository_id = $1 AND alias = $2 ORDER BY id",
        )
        .bind(repo_id)
        .bind(alias.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryRow {
                    id: r.try_get(0)?,
                    alias: r.try_get(1)?,
                    from: r.try_get(2)?,
                    to: r.try_get(3)?,
                    actor: r.try_get(4)?,
                    reason: r.try_get(5)?,
                    created_at: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Create, move or delete an alias, compare-and-swap, gate checked, history written, all
    /// in one transaction.
    pub async fn change_alias(&self, c: &AliasChange<'_>) -> Result<ChangeOutcome, sqlx::Error> {
        if c.to.is_some() && c.to == c.expect {
            return Ok(match self.alias(c.repo_id, c.alias).await? {
                Some(row) if Some(row.version.as_str()) == c.to => ChangeOutcome::Unchanged(row),
                other => ChangeOutcome::Conflict {
                    current: other.map(|r| r.version),
                },
            });
        }
        let at = now();
        match retry_busy(|| self.try_change_alias(c, at)).await {
            Ok(Some(outcome)) => Ok(outcome),
            Ok(None) => self.conflict(c).await,
            Err(e) if is_unique_violation(&e) => self.conflict(c).await,
            Err(e) => Err(e),
        }
    }

    async fn conflict(&self, c: &AliasChange<'_>) -> Result<ChangeOutcome, sqlx::Error> {
        let current = self.alias(c.repo_id, c.alias).await?.map(|r| r.version);
        Ok(ChangeOutcome::Conflict { current })
    }

    /// `Ok(None)`: the conditional write matched no row (stale expectation).
    async fn try_change_alias(
        &self,
        c: &AliasChange<'_>,
        at: i64,
    ) -> Result<Option<ChangeOutcome>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let written =
            match (c.expect, c.to) {
                (None, Some(to)) => sqlx::query(
                    "INSERT INTO aliases (repository_id, alias, version, updated_at, updated_by) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(c.repo_id)
                .bind(c.alias.to_owned())
                .bind(to.to_owned())
                .bind(at)
                .bind(c.actor.to_owned())
                .execute(&mut *tx)
                .await?,
                (Some(expect), Some(to)) => {
                    sqlx::query(
                        "UPDATE aliases SET version = $1, updated_at = $2, updated_by = $3 \
                     WHERE repository_id = $4 AND alias = $5 AND version = $6",
                    )
                    .bind(to.to_owned())
                    .bind(at)
                    .bind(c.actor.to_owned())
                    .bind(c.repo_id)
                    .bind(c.alias.to_owned())
                    .bind(expect.to_owned())
                    .execute(&mut *tx)
                    .await?
                }
                (Some(expect), None) => sqlx::query(
                    "DELETE FROM aliases WHERE repository_id = $1 AND alias = $2 AND version = $3",
                )
                .bind(c.repo_id)
                .bind(c.alias.to_owned())
                .bind(expect.to_owned())
                .execute(&mut *tx)
                .await?,
                // Deleting an alias that must not exist: nothing to do, and it is a conflict
                // whatever the state (the handler never asks this).
                (None, None) => return Ok(None),
            };
        if written.rows_affected() != 1 {
            return Ok(None);
        }
        if let Some(to) = c.to {
            let gate = gate_in(&mut tx, c.repo_id, c.alias).await?;
            let conditions = gate.as_deref().unwrap_or_default();
            let Some(target) = candidate(&mut tx, c.repo_id, to, conditions).await? else {
                return Ok(Some(ChangeOutcome::TargetMissing));
            };
            if let Some(conditions) = gate {
                let current = match c.expect {
                    Some(v) => candidate(&mut tx, c.repo_id, v, &[]).await?,
                    None => None,
                };
                let failures = gates::evaluate(
                    &conditions,
                    &gates::Move {
                        target: &target,
                        current: current.as_ref(),
                    },
                );
                if !failures.is_empty() {
                    return Ok(Some(ChangeOutcome::GateFailed(failures)));
                }
            }
        }
        sqlx::query(
            "INSERT INTO alias_history (repository_id, alias, from_version, to_version, actor, \
             reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.repo_id)
        .bind(c.alias.to_owned())
        .bind(c.expect.map(str::to_owned))
        .bind(c.to.map(str::to_owned))
        .bind(c.actor.to_owned())
        .bind(c.reason.map(str::to_owned))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        crate::crash_point!("alias.after_commit");
        Ok(Some(match c.to {
            Some(to) => ChangeOutcome::Moved {
                row: AliasRow {
                    alias: c.alias.to_owned(),
                    version: to.to_owned(),
                    updated_at: at,
                    updated_by: Some(c.actor.to_owned()),
                },
                created: c.expect.is_none(),
            },
            None => ChangeOutcome::Deleted,
        }))
    }

    pub async fn gate(&self, repo_id: i64, alias: &str) -> Result<Option<GateRow>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT conditions, updated_at, updated_by FROM alias_gates \
             WHERE repository_id = $1 AND alias = $2",
        )
        .bind(repo_id)
        .bind(alias.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(GateRow {
                alias: alias.to_owned(),
                conditions: parse_conditions(&r.try_get::<String, _>(0)?)?,
                updated_at: r.try_get(1)?,
                updated_by: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Create or replace the gate of an alias (the alias need not exist yet).
    pub async fn set_gate(
        &self,
        repo_id: i64,
        alias: &str,
        conditions: &[GateCondition],
        actor: &str,
    ) -> Result<GateRow, sqlx::Error> {
        let json =
            serde_json::to_string(conditions).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let at = now();
        sqlx::query(
            "INSERT INTO alias_gates (repository_id, alias, conditions, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (repository_id, alias) DO UPDATE SET \
             conditions = excluded.conditions, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by",
        )
        .bind(repo_id)
        .bind(alias.to_owned())
        .bind(json)
        .bind(at)
        .bind(actor.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(GateRow {
            alias: alias.to_owned(),
            conditions: conditions.to_vec(),
            updated_at: at,
            updated_by: Some(actor.to_owned()),
        })
    }

    /// Remove a gate; `false` when there was none.
    pub async fn delete_gate(&self, repo_id: i64, alias: &str) -> Result<bool, sqlx::Error> {
        let r = sqlx::query("DELETE FROM alias_gates WHERE repository_id = $1 AND alias = $2")
            .bind(repo_id)
            .bind(alias.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

fn parse_conditions(json: &str) -> Result<Vec<GateCondition>, sqlx::Error> {
    serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

async fn gate_in(
    tx: &mut Transaction<'static, Any>,
    repo_id: i64,
    alias: &str,
) -> Result<Option<Vec<GateCondition>>, sqlx::Error> {
    let row =
        sqlx::query("SELECT conditions FROM alias_gates WHERE repository_id = $1 AND alias = $2")
            .bind(repo_id)
            .bind(alias.to_owned())
            .fetch_optional(&mut **tx)
            .await?;
    row.map(|r| parse_conditions(&r.try_get::<String, _>(0)?))
        .transpose()
}

/// A version with its yanked flag, latest scores and the `validated_against` bases of
/// `conditions` it passes, or `None` if it does not exist.
async fn candidate(
    tx: &mut Transaction<'static, Any>,
    repo_id: i64,
    version: &str,
    conditions: &[GateCondition],
) -> Result<Option<Candidate>, sqlx::Error> {
    let Some(row) =
        sqlx::query("SELECT id, yanked FROM versions WHERE repository_id = $1 AND version = $2")
            .bind(repo_id)
            .bind(version.to_owned())
            .fetch_optional(&mut **tx)
            .await?
    else {
        return Ok(None);
    };
    let id: i64 = row.try_get(0)?;
    let yanked = row.try_get::<i64, _>(1)? != 0;
    Ok(Some(Candidate {
        version: version.to_owned(),
        yanked,
        scores: latest_scores(tx, id).await?,
        validated_against: super::validations::validated_bases(tx, id, conditions).await?,
    }))
}

/// The latest eval result per (benchmark, metric) of a version, as the gates score it.
async fn latest_scores(
    tx: &mut Transaction<'static, Any>,
    version_id: i64,
) -> Result<Scores, sqlx::Error> {
    let latest = super::evals::latest_evals(&mut **tx, version_id).await?;
    Ok(latest
        .into_iter()
        .map(|e| {
            let score = Score {
                value: e.value,
                higher_is_better: e.higher_is_better,
            };
            ((e.benchmark, e.metric), score)
        })
        .collect())
}
