//! Test-only job kinds, compiled only with the `test-hooks` feature (the test suite's
//! build), and accepted and run ONLY when the server or worker was also started with
//! `--enable-test-jobs` (`ADAPTER_REGISTRY_ENABLE_TEST_JOBS`): they touch files named in
//! their parameters, which no production server should allow.
//!
//! * `test.block` `{"record": PATH, "release": PATH}`: appends `start <job> <pid>` to
//!   `record`, waits (checking for a cancel) until the file `release` exists, appends
//!   `done <job> <pid>`, succeeds with `{"pid": …}`. Lets a test kill a worker mid-job.

use std::io::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Ctx, JobResult, Kinds};

pub const BLOCK: &str = "test.block";
pub const KINDS: [&str; 1] = [BLOCK];

pub fn register(kinds: Kinds) -> Kinds {
    kinds.with(BLOCK, |ctx| Box::pin(block(ctx)))
}

/// The parameters of a test kind.
pub fn check_params(params: &Value) -> Result<(), String> {
    for (k, v) in params.as_object().into_iter().flatten() {
        if !matches!(k.as_str(), "record" | "release") || !v.is_string() {
            return Err(format!("test job parameter `{k}` is not a path string"));
        }
    }
    Ok(())
}

fn param(ctx: &Ctx, name: &str) -> anyhow::Result<String> {
    ctx.params
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("test.block needs the parameter `{name}`"))
}

fn append(path: &str, line: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_all()?;
    Ok(())
}

async fn block(ctx: Ctx) -> JobResult {
    let record = param(&ctx, "record")?;
    let release = param(&ctx, "release")?;
    let pid = std::process::id();
    // Log and progress are committed before the record line, so a test that sees the line
    // (and then kills this process) can count on both being stored.
    ctx.log(format!("started in process {pid}")).await;
    ctx.progress(0.5, "waiting for the release file").await?;
    append(&record, &format!("start {} {pid}", ctx.id))?;
    while !std::path::Path::new(&release).exists() {
        ctx.checkpoint()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    append(&record, &format!("done {} {pid}", ctx.id))?;
    Ok(json!({ "pid": pid }))
}
