//! `adapterctl jobs ls|show|logs|cancel|watch`, and waiting for a job (`--wait`).

use std::io::IsTerminal as _;
use std::time::Duration;

use adapter_core::api::{JobInfo, JobState};
use anyhow::anyhow;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Ctx;
use crate::client::Client;
use crate::client::jobs::JobQuery;
use crate::exit::{self, Failure};

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    Ls {
        /// queued, running, succeeded, failed or cancelled.
        #[arg(long)]
        state: Option<String>,
        /// Only jobs of this kind (`validate`, `merge`, `quantise`).
        #[arg(long)]
        kind: Option<String>,
        /// At most this many (1..=100).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// A job: state, attempts, progress, error, result.
    Show { id: String },
    /// A job's log lines.
    Logs { id: String },
    /// Cancel a job (a running one stops at its next checkpoint).
    Cancel { id: String },
    /// Follow a job until it ends (a progress bar on a terminal); exit 12 if it failed.
    Watch { id: String },
}

pub async fn run(ctx: &Ctx, command: &JobsCommand) -> Result<(), Failure> {
    match command {
        JobsCommand::Ls { state, kind, limit } => {
            ls(ctx, state.as_deref(), kind.as_deref(), *limit).await
        }
        JobsCommand::Show { id } => show(ctx, id).await,
        JobsCommand::Logs { id } => logs(ctx, id).await,
        JobsCommand::Cancel { id } => cancel(ctx, id).await,
        JobsCommand::Watch { id } => watch(ctx, id).await,
    }
}

/// How often a waiting client looks at the job.
const POLL: Duration = Duration::from_millis(250);

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), Failure> {
    println!("{}", serde_json::to_string(v).map_err(anyhow::Error::from)?);
    Ok(())
}

/// One line per job: id, kind, state, attempts, progress, inputs.
fn line(j: &JobInfo) -> String {
    let inputs: Vec<String> = j
        .inputs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.reference))
        .collect();
    let progress = j
        .progress
        .map_or_else(String::new, |p| format!(" {:.0}%", p * 100.0));
    format!(
        "{}\t{}\t{}{progress}\tattempt {}/{}\t{}",
        j.id,
        j.kind,
        j.state,
        j.attempts,
        j.max_attempts,
        inputs.join(" ")
    )
}

fn show_text(j: &JobInfo) {
    println!("{}", line(j));
    if let Some(m) = &j.progress_message {
        println!("  progress: {m}");
    }
    if j.cancel_requested && !j.state.is_terminal() {
        println!("  cancel requested");
    }
    if let Some(e) = &j.error {
        println!("  error: {e}");
    }
    if let Some(s) = &j.submitter {
        println!("  submitted by {s}");
    }
}

pub async fn ls(
    ctx: &Ctx,
    state: Option<&str>,
    kind: Option<&str>,
    limit: Option<u32>,
) -> Result<(), Failure> {
    if let Some(s) = state {
        s.parse::<JobState>()
            .map_err(|e| Failure::usage(anyhow!(e)))?;
    }
    let list = ctx
        .client()?
        .jobs(&JobQuery {
            state,
            kind,
            cursor: None,
            limit,
        })
        .await?;
    if ctx.json {
        return print_json(&list);
    }
    for j in &list.jobs {
        println!("{}", line(j));
    }
    if list.jobs.is_empty() {
        eprintln!("no jobs");
    }
    Ok(())
}

pub async fn show(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let j = ctx.client()?.job(id).await?;
    if ctx.json {
        return print_json(&j);
    }
    show_text(&j);
    if let Some(r) = &j.result {
        println!("  result: {r}");
    }
    Ok(())
}

pub async fn logs(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let client = ctx.client()?;
    let mut after = 0;
    let mut all = Vec::new();
    loop {
        let page = client.job_logs(id, after).await?;
        let Some(last) = page.lines.last() else { break };
        after = last.seq;
        all.extend(page.lines);
    }
    if ctx.json {
        return print_json(&adapter_core::api::JobLogs { lines: all });
    }
    for l in &all {
        println!("{}", l.line);
    }
    Ok(())
}

pub async fn cancel(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let j = ctx.client()?.cancel_job(id).await?;
    if ctx.json {
        return print_json(&j);
    }
    if j.state == JobState::Cancelled {
        eprintln!("cancelled {}", j.id);
    } else {
        eprintln!("{} is {}: it stops at its next checkpoint", j.id, j.state);
    }
    Ok(())
}

/// `jobs watch ID`: follow the job until it ends (a progress bar on a terminal); exit 12
/// when it failed or was cancelled.
pub async fn watch(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let client = ctx.client()?;
    let j = wait(&client, id).await?;
    if ctx.json {
        print_json(&j)?;
    } else {
        show_text(&j);
    }
    ended_well(&j)
}

/// `Err` (exit 12) unless the job succeeded.
pub fn ended_well(j: &JobInfo) -> Result<(), Failure> {
    if j.state == JobState::Succeeded {
        return Ok(());
    }
    let why = j.error.as_deref().unwrap_or("no error recorded");
    let mut f = Failure::new(exit::JOB_FAILED, anyhow!("job {} {}: {why}", j.id, j.state));
    f.details = serde_json::json!({ "job": j });
    Err(f)
}

/// The exact version a job's input `name` resolved to (empty when it has none).
pub fn input_ref(job: &JobInfo, name: &str) -> String {
    job.inputs
        .get(name)
        .map_or_else(String::new, |i| i.reference.clone())
}

/// Submit a job that makes a new version (merge, quantise). Without `wait`: print its id
/// (the job as JSON with `--json`). With `wait`: follow it; on success print `done`'s lines
/// (the result as JSON with `--json`); exit 12 when it failed or was cancelled.
pub async fn submit_and_follow(
    ctx: &Ctx,
    req: &adapter_core::api::JobSubmit,
    wait: bool,
    what: &str,
    done: impl FnOnce(&JobInfo) -> Vec<String>,
) -> Result<(), Failure> {
    let client = ctx.client()?;
    let job = client.submit_job(req).await?;
    if !wait {
        if ctx.json {
            return print_json(&job);
        }
        eprintln!(
            "{what} job {}: {}; follow it with `adapterctl jobs watch {}`",
            job.id, job.state, job.id
        );
        println!("{}", job.id);
        return Ok(());
    }
    let job = self::wait(&client, &job.id).await?;
    ended_well(&job)?;
    if ctx.json {
        return print_json(&job.result.clone().unwrap_or_default());
    }
    for line in done(&job) {
        println!("{line}");
    }
    Ok(())
}

/// Poll the job until it ends, drawing a bar on stderr when it is a terminal.
pub async fn wait(client: &Client, id: &str) -> Result<JobInfo, Failure> {
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{prefix:12} {bar:30} {percent:>3}% {msg}")
                .expect("static template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    loop {
        let j = client.job(id).await?;
        bar.set_prefix(j.state.to_string());
        if let Some(p) = j.progress {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            bar.set_position((p.clamp(0.0, 1.0) * 1000.0) as u64);
        }
        bar.set_message(j.progress_message.clone().unwrap_or_default());
        if j.state.is_terminal() {
            bar.finish_and_clear();
            return Ok(j);
        }
        tokio::time::sleep(POLL).await;
    }
}
