//! Submitting a job: check the kind, its inputs and parameters, resolve every input
//! reference to a version and manifest digest, derive the idempotency key, insert.

use std::collections::BTreeMap;

use adapter_core::api::{JobInfo, JobInput, JobSubmit};
use adapter_core::digest::Digest;
use adapter_core::manifest::Kind;
use adapter_core::reference::{Reference, resolve};
use serde_json::{Value, json};

use super::derived::{self, Existing, Output};
use super::{JobsConfig, is_submittable, merge, quantise, testing, validate};
use crate::app::AppState;
use crate::auth::Caller;
use crate::db::jobs::{NewJob, Submitted};
use crate::error::{ApiError, ApiResult};
use crate::publish::info::version_records;

/// Longest caller-chosen idempotency key.
pub const MAX_KEY_LEN: usize = 200;
/// Largest `params` object, serialised.
pub const MAX_PARAMS: usize = 64 * 1024;

/// Kept for callers that want to tell submit failures apart from other errors.
pub type SubmitError = ApiError;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new("invalid_job", message)
}

/// The inputs a kind takes: name, the kind of repository it references, and whether the
/// caller must name it (a merge's `base` defaults to the base its adapter names).
fn input_kinds(kind: &str) -> &'static [(&'static str, Kind, bool)] {
    if kind == validate::KIND {
        &[
            ("adapter", Kind::Adapter, true),
            ("base", Kind::Model, true),
        ]
    } else if kind == merge::KIND {
        &[
            ("adapter", Kind::Adapter, true),
            ("base", Kind::Model, false),
        ]
    } else if kind == quantise::KIND {
        &[("model", Kind::Model, true)]
    } else {
        &[]
    }
}

/// Who submits a job.
#[derive(Debug, Clone, Copy)]
pub enum Submitter<'a> {
    /// The registry itself (a publish queueing a validation); the name is recorded.
    Registry(&'a str),
    /// An API caller: its token must cover the namespace of every input and of the output.
    Caller(&'a Caller),
}

impl Submitter<'_> {
    fn name(&self) -> String {
        match self {
            Self::Registry(n) => (*n).to_owned(),
            Self::Caller(c) => c.actor(),
        }
    }

    fn may_use(&self, namespace: &str, what: &str) -> ApiResult<()> {
        match self {
            Self::Caller(c) if !c.covers(namespace) => Err(ApiError::with_details(
                "forbidden",
                format!("the token does not cover namespace `{namespace}` ({what})"),
                json!({ "namespace": namespace }),
            )),
            _ => Ok(()),
        }
    }
}

/// Submit `req` for `submitter` with the config's attempt cap.
pub async fn submit(
    app: &AppState,
    config: &JobsConfig,
    req: &JobSubmit,
    submitter: Submitter<'_>,
) -> ApiResult<(Submitted, JobInfo)> {
    if !is_submittable(config, &req.kind) {
        return Err(ApiError::with_details(
            "invalid_job",
            format!(
                "`{}` is not a job kind this server accepts",
                req.kind.escape_debug()
            ),
            json!({ "field": "kind" }),
        ));
    }
    let params = req.params.clone().unwrap_or_else(|| json!({}));
    if !params.is_object() {
        return Err(invalid("params must be a JSON object"));
    }
    if params.to_string().len() > MAX_PARAMS {
        return Err(invalid(format!("params is larger than {MAX_PARAMS} bytes")));
    }
    if req.kind == validate::KIND && params.as_object().is_some_and(|o| !o.is_empty()) {
        return Err(invalid("a validate job takes no params"));
    }
    if testing::KINDS.contains(&req.kind.as_str()) {
        testing::check_params(&params).map_err(invalid)?;
    }
    let output = match req.kind.as_str() {
        k if k == merge::KIND => Some(merge::check_params(&params)?.output),
        k if k == quantise::KIND => Some(quantise::check_params(&params)?.output),
        _ => None,
    };
    if let Some(out) = &output {
        submitter.may_use(out.namespace.as_str(), "the output")?;
    }
    let wanted = input_kinds(&req.kind);
    for name in req.inputs.keys() {
        if !wanted.iter().any(|(n, _, _)| n == name) {
            return Err(invalid(format!(
                "a {} job has no input `{}`",
                req.kind,
                name.escape_debug()
            )));
        }
    }
    let mut inputs = BTreeMap::new();
    for (name, kind, required) in wanted {
        let reference = match req.inputs.get(*name) {
            Some(r) => r.clone(),
            None if *required => {
                return Err(invalid(format!(
                    "a {} job needs the input `{name}`",
                    req.kind
                )));
            }
            None => default_input(app, &inputs, name).await?,
        };
        if let Ok(r) = reference.parse::<Reference>() {
            submitter.may_use(r.namespace.as_str(), &format!("input `{name}`"))?;
        }
        let resolved = resolve_input(app, *kind, &reference).await?;
        inputs.insert((*name).to_owned(), resolved);
    }
    let key = match &req.idempotency_key {
        Some(k) => {
            if k.is_empty() || k.len() > MAX_KEY_LEN || k.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "idempotency_key is 1..={MAX_KEY_LEN} bytes without control characters"
                )));
            }
            format!("key:{k}")
        }
        None => default_key(&req.kind, &inputs, &params),
    };
    if let Some(out) = &output {
        output_free(app, out, &key).await?;
    }
    let new = NewJob {
        id: new_id(),
        kind: req.kind.clone(),
        inputs: serde_json::to_string(&inputs).map_err(ApiError::internal)?,
        params: params.to_string(),
        idempotency_key: key,
        max_attempts: config.max_attempts.max(1),
        submitter: Some(submitter.name()),
    };
    let (how, job) = app.db.submit_job(&new).await?;
    if how != Submitted::Existing {
        super::worker::wake(app).await;
    }
    Ok((how, job))
}

/// An input the caller left out: a merge's `base` is the registered base its adapter names.
async fn default_input(
    app: &AppState,
    resolved: &BTreeMap<String, JobInput>,
    name: &str,
) -> ApiResult<String> {
    let adapter = &resolved["adapter"];
    let r: Reference = adapter.reference.parse().map_err(ApiError::internal)?;
    let version = r.selector.map(|s| s.to_string()).unwrap_or_default();
    let row = app
        .db
        .version(
            Kind::Adapter,
            r.namespace.as_str(),
            r.name.as_str(),
            &version,
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                "no_match",
                format!("{} no longer exists", adapter.reference),
            )
        })?;
    let summary: Value = serde_json::from_str(&row.summary).map_err(ApiError::internal)?;
    summary
        .get("base")
        .and_then(|b| b.get("reference"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            invalid(format!(
                "{} names no registered base model: give the input `{name}`",
                adapter.reference
            ))
        })
}

/// A job that makes `out` can be queued unless that version exists and is not the work of
/// the job holding the same idempotency key (then the submit returns that job).
async fn output_free(app: &AppState, out: &Output, key: &str) -> ApiResult<()> {
    let holder = app.db.job_id_by_key(key).await?.unwrap_or_default();
    match derived::existing(app, out, &holder)
        .await
        .map_err(ApiError::internal)?
    {
        Existing::Free | Existing::Ours(_) => Ok(()),
        Existing::Taken(digest) => Err(ApiError::with_details(
            "version_exists",
            format!(
                "model {} exists already; choose a new version for the output",
                out.reference()
            ),
            json!({ "manifest_digest": digest }),
        )),
    }
}

/// `job_` + a time-ordered UUID (v7) in hex: ids sort by creation.
pub fn new_id() -> String {
    format!("job_{}", uuid::Uuid::now_v7().simple())
}

/// Whether `s` has the shape of a job id.
pub fn is_job_id(s: &str) -> bool {
    s.strip_prefix("job_").is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// kind + resolved input digests + parameters, hashed.
fn default_key(kind: &str, inputs: &BTreeMap<String, JobInput>, params: &Value) -> String {
    let digests: BTreeMap<&str, String> = inputs
        .iter()
        .map(|(k, v)| (k.as_str(), v.manifest_digest.to_string()))
        .collect();
    let v = json!({ "kind": kind, "inputs": digests, "params": params });
    format!(
        "auto:{}",
        Digest::of_bytes(&adapter_core::json::canonical(&v))
    )
}

/// `ns/name[@selector]` of `kind` → the exact version and its manifest digest.
pub async fn resolve_input(app: &AppState, kind: Kind, reference: &str) -> ApiResult<JobInput> {
    let r: Reference = reference.parse().map_err(|e| {
        ApiError::with_details(
            "invalid_job",
            format!("input `{}`: {e}", reference.escape_debug()),
            json!({ "reference": reference }),
        )
    })?;
    let repo = app
        .db
        .repository(kind, r.namespace.as_str(), r.name.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                "repository_not_found",
                format!(
                    "{kind} repository {}/{} does not exist",
                    r.namespace, r.name
                ),
            )
        })?;
    let records = version_records(&app.db.version_heads(repo.id).await?);
    let aliases = crate::api::alias_targets(&app.db.alias_map(repo.id).await?);
    let res = resolve(r.selector.as_ref(), &records, &aliases).map_err(|e| {
        ApiError::with_details(
            "no_match",
            format!("{}/{}: {e}", r.namespace, r.name),
            json!({ "reference": reference }),
        )
    })?;
    Ok(JobInput {
        reference: format!("{}/{}@{}", r.namespace, r.name, res.version),
        manifest_digest: res.manifest_digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_one_shape() {
        let id = new_id();
        assert!(is_job_id(&id), "{id}");
        assert!(!is_job_id("job_../../etc"));
        assert!(!is_job_id(&id.to_uppercase()));
    }

    #[test]
    fn default_key_ignores_param_order() {
        let inputs = BTreeMap::new();
        let a = default_key("validate", &inputs, &json!({"a": 1, "b": 2}));
        let b = default_key("validate", &inputs, &json!({"b": 2, "a": 1}));
        assert_eq!(a, b);
        assert_ne!(
            a,
            default_key("validate", &inputs, &json!({"a": 2, "b": 2}))
        );
    }
}
