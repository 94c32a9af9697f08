//! Submitting a job: check the kind, its inputs and parameters, resolve every input
//! reference to a version and manifest digest, derive the idempotency key, insert.

use std::collections::BTreeMap;

use adapter_core::api::{JobInfo, JobInput, JobSubmit};
use adapter_core::manifest::Kind;
use adapter_core::reference::{Reference, Selector};
use serde_json::json;

use super::derived::{self, Existing, Output};
use super::{JobsConfig, is_submittable, merge, quantise, validate};
use crate::app::AppState;
use crate::auth::Caller;
use crate::catalog;
use crate::db::jobs::{NewJob, Submitted};
use crate::error::{ApiError, ApiResult};

/// Longest caller-chosen idempotency key.
pub const MAX_KEY_LEN: usize = 200;
/// Largest `params` object, serialised.
pub const MAX_PARAMS: usize = 64 * 1024;

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
    #[cfg(feature = "test-hooks")]
    if super::testing::KINDS.contains(&req.kind.as_str()) {
        super::testing::check_params(&params).map_err(invalid)?;
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
    if let Some(k) = &req.idempotency_key
        && (k.is_empty() || k.len() > MAX_KEY_LEN || k.chars().any(char::is_control))
    {
        return Err(invalid(format!(
            "idempotency_key is 1..={MAX_KEY_LEN} bytes without control characters"
        )));
    }
    let new = NewJob::new(
        &req.kind,
        &inputs,
        output.as_ref().map(|o| o.namespace.as_str()),
        &params,
        req.idempotency_key.as_deref(),
        config.max_attempts,
        submitter.name(),
    )
    .map_err(ApiError::internal)?;
    if let Some(out) = &output {
        output_free(app, out, &new.idempotency_key).await?;
    }
    let (how, job) = app.db.submit_job(&new).await?;
    if how != Submitted::Existing {
        app.db.wake_workers().await;
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
    let Some(Selector::Version(version)) = &r.selector else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a resolved input is not pinned: {}",
            adapter.reference
        )));
    };
    let row = catalog::version(&app.db, Kind::Adapter, &r.namespace, &r.name, version).await?;
    catalog::summary_of(&row)?
        .adapter()
        .and_then(|a| a.base.reference.clone())
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

/// `ns/name[@selector]` of `kind` → the exact version and its manifest digest.
pub async fn resolve_input(app: &AppState, kind: Kind, reference: &str) -> ApiResult<JobInput> {
    let r: Reference = reference.parse().map_err(|e| {
        ApiError::with_details(
            "invalid_job",
            format!("input `{}`: {e}", reference.escape_debug()),
            json!({ "reference": reference }),
        )
    })?;
    Ok(catalog::job_input(&app.db, kind, &r).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::jobs::is_job_id;
    use serde_json::Value;

    fn key(params: &Value) -> String {
        NewJob::new(
            "validate",
            &BTreeMap::new(),
            None,
            params,
            None,
            1,
            "t".into(),
        )
        .unwrap()
        .idempotency_key
    }

    #[test]
    fn ids_have_one_shape() {
        let id = crate::db::jobs::new_job_id();
        assert!(is_job_id(&id), "{id}");
        assert!(!is_job_id("job_../../etc"));
        assert!(!is_job_id(&id.to_uppercase()));
    }

    #[test]
    fn default_key_ignores_param_order() {
        let a = key(&json!({"a": 1, "b": 2}));
        assert_eq!(a, key(&json!({"b": 2, "a": 1})));
        assert_ne!(a, key(&json!({"a": 2, "b": 2})));
    }
}
