//! Catalogue search: per repository, the newest non-yanked version passing every filter,
//! sorted and paged by keyset. Portable SQL (no JSON functions): filters are EXISTS
//! sub-queries over the facts tables, every value is bound.

use adapter_core::manifest::Kind;
use sqlx::{AssertSqlSafe, Row as _};

use super::Db;
use super::repositories::{RepoRow, escape_like};

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Int(i64),
    Real(f64),
}

/// Comparison of an eval filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl CmpOp {
    pub fn sql(self) -> &'static str {
        match self {
            Self::Ge => ">=",
            Self::Gt => ">",
            Self::Le => "<=",
            Self::Lt => "<",
            Self::Eq => "=",
        }
    }
}

/// `benchmark:metric OP value` over the latest value of that metric.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalCond {
    pub benchmark: String,
    pub metric: String,
    pub op: CmpOp,
    pub value: f64,
}

/// What `base=` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseFilter {
    /// `sha256:…`: the base's content digest or its shape fingerprint.
    Digest(String),
    /// A base name (`base_model_name_or_path`) or a registered reference, with or without
    /// its `@version`.
    Name(String),
}

/// Sort keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    /// `(namespace, name)`.
    Name,
    /// The matched version's publication time.
    Created,
    /// The latest value of `benchmark:metric` on the matched version; versions without
    /// it come last in either direction.
    Eval { benchmark: String, metric: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

/// Where the previous page ended (the last row's sort keys).
#[derive(Debug, Clone, PartialEq)]
pub enum After {
    Name {
        namespace: String,
        name: String,
    },
    Created {
        created_at: i64,
        version_id: i64,
    },
    Eval {
        value: Option<f64>,
        namespace: String,
        name: String,
    },
}

/// Every filter of a search; empty means "no condition".
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    /// Namespaces the caller may see; `None` = all (the lead plugs in the token's list).
    pub visible: Option<Vec<String>>,
    pub namespace: Option<String>,
    /// Lower-cased; a literal substring of `ns/name` or of the base model's name.
    pub q: Option<String>,
    pub base: Option<BaseFilter>,
    pub targets: Vec<String>,
    pub rank_min: Option<i64>,
    pub rank_max: Option<i64>,
    /// Accepted spellings of the variant (already normalised).
    pub variant: Option<String>,
    /// `(key, value)`; `None` = the key is present.
    pub labels: Vec<(String, Option<String>)>,
    pub evals: Vec<EvalCond>,
    /// A validation of the version against this model (`namespace`, `name`, exact version or
    /// any) ended `compatible` or `compatible_with_warnings`.
    pub compatible_with: Option<(String, String, Option<String>)>,
}

/// One search hit.
#[derive(Debug, Clone)]
pub struct Hit {
    pub repo: RepoRow,
    pub version_id: i64,
    pub version: String,
    pub manifest_digest: String,
    pub version_created_at: i64,
    pub sort_value: Option<f64>,
}

struct Sql {
    binds: Vec<Bind>,
}

impl Sql {
    fn p(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }
}

impl Db {
    pub async fn search(
        &self,
        kind: Kind,
        filter: &SearchFilter,
        sort: &Sort,
        after: Option<&After>,
        limit: i64,
    ) -> Result<Vec<Hit>, sqlx::Error> {
        let mut s = Sql { binds: Vec::new() };
        let kind_p = s.p(Bind::Text(kind.as_str().to_owned()));
        // Conditions on the candidate version `v` (and its facts `f`).
        let mut vc: Vec<String> = vec!["v.repository_id = r.id".into(), "v.yanked = 0".into()];
        if let Some(base) = &filter.base {
            vc.push(match base {
                BaseFilter::Digest(d) => {
                    let p = s.p(Bind::Text(d.clone()));
                    format!("(f.base_content_digest = {p} OR f.base_shape_fingerprint = {p})")
                }
                BaseFilter::Name(n) => {
                    let p = s.p(Bind::Text(n.clone()));
                    let pinned = s.p(Bind::Text(format!("{}@%", escape_like(n))));
                    format!(
                        "(f.base_name = {p} OR f.base_reference = {p} \
                         OR f.base_reference LIKE {pinned} ESCAPE '\\')"
                    )
                }
            });
        }
        if let Some((ns, name, version)) = &filter.compatible_with {
            let ns = s.p(Bind::Text(ns.clone()));
            let name = s.p(Bind::Text(name.clone()));
            let version = match version {
                Some(v) => format!(" AND bv.version = {}", s.p(Bind::Text(v.clone()))),
                None => String::new(),
            };
            vc.push(format!(
                "EXISTS (SELECT 1 FROM validations val \
                 JOIN versions bv ON bv.id = val.base_version_id \
                 JOIN repositories br ON br.id = bv.repository_id \
                 WHERE val.adapter_version_id = v.id AND val.verdict <> 'incompatible' \
                 AND br.kind = 'model' AND br.namespace = {ns} AND br.name = {name}{version})"
            ));
        }
        for t in &filter.targets {
            let p = s.p(Bind::Text(t.clone()));
            vc.push(format!(
                "EXISTS (SELECT 1 FROM version_targets t WHERE t.version_id = v.id \
                 AND t.module = {p})"
            ));
        }
        if let Some(n) = filter.rank_min {
            vc.push(format!("f.rank_min >= {}", s.p(Bind::Int(n))));
        }
        if let Some(n) = filter.rank_max {
            vc.push(format!("f.rank_max <= {}", s.p(Bind::Int(n))));
        }
        if let Some(variant) = &filter.variant {
            vc.push(format!("f.variant = {}", s.p(Bind::Text(variant.clone()))));
        }
        for (k, val) in &filter.labels {
            let kp = s.p(Bind::Text(k.clone()));
            let value = match val {
                Some(val) => format!(" AND l.value = {}", s.p(Bind::Text(val.clone()))),
                None => String::new(),
            };
            vc.push(format!(
                "EXISTS (SELECT 1 FROM version_labels l WHERE l.version_id = v.id \
                 AND l.key = {kp}{value})"
            ));
        }
        for e in &filter.evals {
            let b = s.p(Bind::Text(e.benchmark.clone()));
            let m = s.p(Bind::Text(e.metric.clone()));
            let x = s.p(Bind::Real(e.value));
            vc.push(format!(
                "EXISTS (SELECT 1 FROM evals e WHERE e.version_id = v.id AND e.benchmark = {b} \
                 AND e.metric = {m} AND e.value {op} {x} AND e.id = (SELECT MAX(e2.id) \
                 FROM evals e2 WHERE e2.version_id = v.id AND e2.benchmark = {b} \
                 AND e2.metric = {m}))",
                op = e.op.sql()
            ));
        }
        // Conditions on the repository `r`.
        let mut rc: Vec<String> = vec![format!("r.kind = {kind_p}")];
        if let Some(list) = &filter.visible {
            if list.is_empty() {
                rc.push("1 = 0".into());
            } else {
                let ps: Vec<String> = list.iter().map(|n| s.p(Bind::Text(n.clone()))).collect();
                rc.push(format!("r.namespace IN ({})", ps.join(", ")));
            }
        }
        if let Some(ns) = &filter.namespace {
            rc.push(format!("r.namespace = {}", s.p(Bind::Text(ns.clone()))));
        }
        if let Some(q) = &filter.q {
            let p = s.p(Bind::Text(format!("%{}%", escape_like(q))));
            // The base name is a property of versions: the matched one must have it.
            vc.push(format!(
                "(LOWER(r.namespace || '/' || r.name) LIKE {p} ESCAPE '\\' \
                 OR LOWER(f.base_name) LIKE {p} ESCAPE '\\')"
            ));
        }
        let sort_value = match &sort.key {
            SortKey::Eval { benchmark, metric } => {
                let b = s.p(Bind::Text(benchmark.clone()));
                let m = s.p(Bind::Text(metric.clone()));
                format!(
                    "(SELECT e.value FROM evals e WHERE e.version_id = m.vid \
                     AND e.benchmark = {b} AND e.metric = {m} ORDER BY e.id DESC LIMIT 1)"
                )
            }
            _ => "CAST(NULL AS DOUBLE PRECISION)".into(),
        };
        // Per repository, the newest (highest id) version passing every condition: one pass
        // over the candidate rows, numbered per repository newest first.
        let inner = format!(
            "SELECT m.rid, m.ns, m.nm, m.rcreated, m.vid, m.ver, m.digest, m.vcreated, \
             {sort_value} AS sk FROM (SELECT r.id AS rid, r.namespace AS ns, r.name AS nm, \
             r.created_at AS rcreated, v.id AS vid, v.version AS ver, \
             v.manifest_digest AS digest, v.created_at AS vcreated, \
             ROW_NUMBER() OVER (PARTITION BY r.id ORDER BY v.id DESC) AS rn \
             FROM repositories r JOIN versions v ON v.repository_id = r.id \
             LEFT JOIN version_facts f ON f.version_id = v.id WHERE {} AND {}) m \
             WHERE m.rn = 1",
            rc.join(" AND "),
            vc.join(" AND ")
        );
        let dir = if sort.descending { "DESC" } else { "ASC" };
        let op = if sort.descending { "<" } else { ">" };
        let nullflag = "(CASE WHEN t.sk IS NULL THEN 1 ELSE 0 END)";
        let order = match &sort.key {
            SortKey::Name => format!("t.ns {dir}, t.nm {dir}"),
            SortKey::Created => format!("t.vcreated {dir}, t.vid {dir}"),
            SortKey::Eval { .. } => format!("{nullflag} ASC, t.sk {dir}, t.ns {dir}, t.nm {dir}"),
        };
        // Keyset: the rows strictly after `after` in this order.
        let mut keys: Vec<(String, &str, Bind)> = Vec::new();
        match after {
            None => {}
            Some(After::Name { namespace, name })
            | Some(After::Eval {
                namespace, name, ..
            }) => {
                if let Some(After::Eval { value, .. }) = after {
                    keys.push((nullflag.into(), ">", Bind::Int(i64::from(value.is_none()))));
                    if let Some(v) = value {
                        keys.push(("t.sk".into(), op, Bind::Real(*v)));
                    }
                }
                keys.push(("t.ns".into(), op, Bind::Text(namespace.clone())));
                keys.push(("t.nm".into(), op, Bind::Text(name.clone())));
            }
            Some(After::Created {
                created_at,
                version_id,
            }) => {
                keys.push(("t.vcreated".into(), op, Bind::Int(*created_at)));
                keys.push(("t.vid".into(), op, Bind::Int(*version_id)));
            }
        }
        let mut ors: Vec<String> = Vec::new();
        let mut eqs: Vec<String> = Vec::new();
        for (expr, o, b) in keys {
            let p = s.p(b);
            let mut term = eqs.clone();
            term.push(format!("{expr} {o} {p}"));
            ors.push(format!("({})", term.join(" AND ")));
            eqs.push(format!("{expr} = {p}"));
        }
        let keyset = if ors.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", ors.join(" OR "))
        };
        let sql = format!(
            "SELECT t.rid, t.ns, t.nm, t.rcreated, t.vid, t.ver, t.digest, t.vcreated, t.sk \
             FROM ({inner}) t {keyset} ORDER BY {order} LIMIT {}",
            limit.max(0)
        );
        // Only placeholders, fixed fragments and an integer are interpolated.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for b in s.binds {
            query = match b {
                Bind::Text(t) => query.bind(t),
                Bind::Int(i) => query.bind(i),
                Bind::Real(x) => query.bind(x),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(Hit {
                    repo: RepoRow {
                        id: r.try_get(0)?,
                        namespace: r.try_get(1)?,
                        name: r.try_get(2)?,
                        created_at: r.try_get(3)?,
                    },
                    version_id: r.try_get(4)?,
                    version: r.try_get(5)?,
                    manifest_digest: r.try_get(6)?,
                    version_created_at: r.try_get(7)?,
                    sort_value: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// A server secret by name, created (32 random bytes, hex) on first use; every replica
    /// over one database reads the same value (kept in memory once read: it never changes).
    pub async fn secret(&self, name: &str) -> Result<String, sqlx::Error> {
        if let Some(v) = self.secrets.lock().expect("not poisoned").get(name) {
            return Ok(v.clone());
        }
        let value = self.stored_secret(name).await?;
        self.secrets
            .lock()
            .expect("not poisoned")
            .insert(name.to_owned(), value.clone());
        Ok(value)
    }

    async fn stored_secret(&self, name: &str) -> Result<String, sqlx::Error> {
        let read = || async {
            sqlx::query("SELECT value FROM registry_secrets WHERE name = $1")
                .bind(name.to_owned())
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get::<String, _>(0))
                .transpose()
        };
        if let Some(v) = read().await? {
            return Ok(v);
        }
        let fresh = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        super::retry_busy(|| {
            sqlx::query(
                "INSERT INTO registry_secrets (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name.to_owned())
            .bind(fresh.clone())
            .execute(&self.pool)
        })
        .await?;
        read().await?.ok_or(sqlx::Error::RowNotFound)
    }
}
