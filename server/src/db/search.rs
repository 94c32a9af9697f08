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
            let name_matches = format!("LOWER(r.namespace || '/' || r.name) LIKE {p} ESCAPE '\\'");
            vc.push(format!(
                "({name_matches} OR LOWER(f.base_name) LIKE {p} ESCAPE '\\')"
            ));
            // The same test on the repository first, so the many that cannot match skip the
            // look-up of their head: its name matches, or some version's base name does
            // (the facts scanned once).
            rc.push(format!(
                "({name_matches} OR r.id IN (SELECT bv.repository_id FROM version_facts bf \
                 CROSS JOIN versions bv WHERE bv.id = bf.version_id \
                 AND LOWER(bf.base_name) LIKE {p} ESCAPE '\\'))"
            ));
        }
        let dir = if sort.descending { "DESC" } else { "ASC" };
        let op = if sort.descending { "<" } else { ">" };
        let nullflag = "(CASE WHEN t.sk IS NULL THEN 1 ELSE 0 END)";
        // Keyset: the rows strictly after `after` in this order, by the sort's columns.
        let mut keys: Vec<(String, &str, Bind)> = Vec::new();
        match after {
            None => {}
            Some(After::Name { namespace, name }) => {
                keys.push(("r.namespace".into(), op, Bind::Text(namespace.clone())));
                keys.push(("r.name".into(), op, Bind::Text(name.clone())));
            }
            Some(After::Eval {
                value,
                namespace,
                name,
            }) => {
                keys.push((nullflag.into(), ">", Bind::Int(i64::from(value.is_none()))));
                if let Some(v) = value {
                    keys.push(("t.sk".into(), op, Bind::Real(*v)));
                }
                keys.push(("t.ns".into(), op, Bind::Text(namespace.clone())));
                keys.push(("t.nm".into(), op, Bind::Text(name.clone())));
            }
            Some(After::Created {
                created_at,
                version_id,
            }) => {
                keys.push(("hv.created_at".into(), op, Bind::Int(*created_at)));
                keys.push(("hv.id".into(), op, Bind::Int(*version_id)));
            }
        }
        let eval_key = match &sort.key {
            SortKey::Eval { benchmark, metric } => Some((
                s.p(Bind::Text(benchmark.clone())),
                s.p(Bind::Text(metric.clone())),
            )),
            _ => None,
        };
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
            format!(" AND ({})", ors.join(" OR "))
        };
        let (rc, vc) = (rc.join(" AND "), vc.join(" AND "));
        let limit = limit.max(0);
        // Per repository, the newest (highest id) version passing every condition: its head.
        let head = format!(
            "(SELECT MAX(v.id) FROM versions v LEFT JOIN version_facts f \
             ON f.version_id = v.id WHERE {vc})"
        );
        let hit = "r.id, r.namespace, r.name, r.created_at, hv.id, hv.version, \
                   hv.manifest_digest, hv.created_at";
        // The first two walk an index in the page's order and stop after a page of hits
        // (the table order is fixed with CROSS JOIN, which SQLite never reorders, so the
        // plan does not hang on statistics). Sorting by an eval value needs every hit first.
        let sql = match eval_key {
            None if sort.key == SortKey::Name => format!(
                "SELECT {hit}, CAST(NULL AS DOUBLE PRECISION) FROM repositories r \
                 CROSS JOIN versions hv WHERE {rc} AND hv.id = {head}{keyset} \
                 ORDER BY r.namespace {dir}, r.name {dir} LIMIT {limit}"
            ),
            None => format!(
                "SELECT {hit}, CAST(NULL AS DOUBLE PRECISION) FROM versions hv \
                 CROSS JOIN repositories r WHERE r.id = hv.repository_id AND {rc} \
                 AND hv.id = {head}{keyset} \
                 ORDER BY hv.created_at {dir}, hv.id {dir} LIMIT {limit}"
            ),
            Some((b, m)) => format!(
                "SELECT t.rid, t.ns, t.nm, t.rcreated, t.vid, t.ver, t.digest, t.vcreated, t.sk \
                 FROM (SELECT r.id AS rid, r.namespace AS ns, r.name AS nm, \
                 r.created_at AS rcreated, hv.id AS vid, hv.version AS ver, \
                 hv.manifest_digest AS digest, hv.created_at AS vcreated, \
                 (SELECT e.value FROM evals e WHERE e.version_id = hv.id \
                 AND e.benchmark = {b} AND e.metric = {m} ORDER BY e.id DESC LIMIT 1) AS sk \
                 FROM repositories r CROSS JOIN versions hv WHERE {rc} AND hv.id = {head}) t \
                 WHERE 1 = 1{keyset} \
                 ORDER BY {nullflag} ASC, t.sk {dir}, t.ns {dir}, t.nm {dir} LIMIT {limit}"
            ),
        };
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
