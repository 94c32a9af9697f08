//! The `validate` job: an adapter version against a model version, from headers and config
//! files only (`adapter_core::compat::validate`), so its time does not grow with model size.
//! The report is the job's result and is stored on the adapter version (`validations`).

use adapter_core::api::jobs::KIND_VALIDATE;
use adapter_core::compat::validate;
use adapter_core::manifest::Kind;
use serde_json::Value;

use super::inputs::{adapter_facts, base_facts, load, no_safetensors};
use super::{Ctx, JobError, JobResult};
use crate::publish::model::weights;

pub const KIND: &str = KIND_VALIDATE;

/// The job.
pub async fn run(ctx: Ctx) -> JobResult {
    let adapter_ref = ctx.input("adapter")?.reference.clone();
    let base_ref = ctx.input("base")?.reference.clone();
    ctx.log(format!("validating {adapter_ref} against {base_ref}"))
        .await;
    let adapter = load(&ctx.app, Kind::Adapter, &adapter_ref).await?;
    let base = load(&ctx.app, Kind::Model, &base_ref).await?;
    if weights(&base.manifest).map_err(JobError::fatal)?.is_empty() {
        return Err(no_safetensors(&base_ref));
    }
    let facts = adapter_facts(&ctx.app, &adapter).await?;
    ctx.progress(0.1, "read the adapter").await?;
    let base_facts = base_facts(&ctx, &base).await?;
    let report = validate(&facts, &base_facts);
    let json = serde_json::to_value(&report).map_err(anyhow::Error::from)?;
    let verdict = json
        .get("verdict")
        .and_then(Value::as_str)
        .unwrap_or("incompatible")
        .to_owned();
    ctx.checkpoint()?;
    ctx.app
        .db
        .put_validation(adapter.id, base.id, &verdict, &json.to_string(), &ctx.id)
        .await
        .map_err(anyhow::Error::from)?;
    ctx.log(format!("verdict: {verdict}")).await;
    Ok(json)
}
