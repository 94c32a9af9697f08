//! `adapterctl validate ADAPTER_REF --base MODEL_REF [--wait]`: queue a compatibility
//! validation (a `validate` job) and, with `--wait`, print its verdict and reasons.
//! Exit codes: 0 compatible (warnings are printed), 11 incompatible, 12 the job failed or
//! was cancelled.

use adapter_core::api::JobSubmit;
use adapter_core::api::jobs::KIND_VALIDATE;
use anyhow::anyhow;
use serde_json::Value;

use crate::Ctx;
use crate::exit::{self, Failure};
use crate::pull::parse_reference;

/// Arguments of `adapterctl validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The adapter: `ns/name[@selector]`.
    adapter: String,
    /// The base model: `ns/name[@selector]`.
    #[arg(long, value_name = "MODEL_REF")]
    base: String,
    /// Wait for the verdict (a progress bar on a terminal) and print it.
    #[arg(long)]
    wait: bool,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<(), Failure> {
    let Args {
        adapter,
        base,
        wait,
    } = args;
    parse_reference(adapter)?;
    parse_reference(base)?;
    let client = ctx.client()?;
    let req = JobSubmit {
        kind: KIND_VALIDATE.to_owned(),
        inputs: [
            ("adapter".to_owned(), adapter.to_owned()),
            ("base".to_owned(), base.to_owned()),
        ]
        .into(),
        params: None,
        idempotency_key: None,
    };
    let job = client.submit_job(&req).await?;
    if !wait {
        if ctx.json {
            println!(
                "{}",
                serde_json::to_string(&job).map_err(anyhow::Error::from)?
            );
        } else {
            eprintln!(
                "validation of {} against {}: {} ({}); follow it with `adapterctl jobs watch {}`",
                crate::jobs::input_ref(&job, "adapter"),
                crate::jobs::input_ref(&job, "base"),
                job.state,
                job.id,
                job.id
            );
            println!("{}", job.id);
        }
        return Ok(());
    }
    let job = crate::jobs::wait(&client, &job.id).await?;
    crate::jobs::ended_well(&job)?;
    let report = job
        .result
        .clone()
        .ok_or_else(|| Failure::new(exit::SERVER, anyhow!("job {} has no report", job.id)))?;
    let verdict = report
        .get("verdict")
        .and_then(Value::as_str)
        .unwrap_or("incompatible")
        .to_owned();
    if ctx.json {
        println!("{report}");
    } else {
        println!(
            "{} against {}: {verdict}",
            crate::jobs::input_ref(&job, "adapter"),
            crate::jobs::input_ref(&job, "base")
        );
        for (key, label) in [("errors", "error"), ("warnings", "warning")] {
            for f in report
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                println!(
                    "  {label}: {} ({})",
                    f.get("message").and_then(Value::as_str).unwrap_or(""),
                    f.get("code").and_then(Value::as_str).unwrap_or("")
                );
            }
        }
        let modules = report.get("modules").and_then(Value::as_array);
        let bad = modules
            .into_iter()
            .flatten()
            .filter(|m| m.get("ok") == Some(&Value::Bool(false)))
            .count();
        if let Some(m) = modules {
            println!(
                "  modules: {} checked, {bad} without a match in the base",
                m.len()
            );
        }
    }
    if verdict == "incompatible" {
        // The verdict and its reasons were printed: the exit code says the rest.
        return Err(Failure::quiet(
            exit::INCOMPATIBLE,
            anyhow!("the adapter is incompatible with the base"),
        ));
    }
    Ok(())
}
