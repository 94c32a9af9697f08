//! `adapterctl eval add REF BENCH:METRIC=VALUE… [--dataset D] [--source S] [--lower-is-better]`,
//! `adapterctl eval ls REF`, and recording `push --eval` results after a publish.

use adapter_core::api::evals::parse_eval_arg;
use adapter_core::api::{EvalInput, EvalResult};
use adapter_core::manifest::Kind;
use adapter_core::reference::Reference;
use anyhow::anyhow;
use clap::Subcommand;
use serde_json::json;

use crate::catalog::date;
use crate::client::Client;
use crate::exit::Failure;
use crate::pull::parse_reference;
use crate::{Ctx, KindArg};

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Record eval results for one version (appended; the newest value per
    /// benchmark:metric is the one the version shows).
    Add {
        /// `namespace/name@selector`: a version, range, alias or `sha256:…` digest.
        reference: String,
        /// Results: `BENCHMARK:METRIC=VALUE` (e.g. `mmlu:acc=0.612`), at least one.
        #[arg(required = true, value_name = "BENCH:METRIC=VALUE", value_parser = parse_eval)]
        results: Vec<EvalInput>,
        /// Dataset or split the values were measured on.
        #[arg(long, value_name = "DATASET")]
        dataset: Option<String>,
        /// Where the values come from, e.g. a training run id.
        #[arg(long, value_name = "SOURCE")]
        source: Option<String>,
        /// Smaller values are better (loss, perplexity, error rate).
        #[arg(long)]
        lower_is_better: bool,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// List every eval result of a version, oldest first.
    Ls {
        /// `namespace/name[@selector]` (default: the latest version).
        reference: String,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
}

/// clap value parser for `BENCHMARK:METRIC=VALUE`.
pub fn parse_eval(s: &str) -> Result<EvalInput, String> {
    parse_eval_arg(s)
}

pub async fn run(ctx: &Ctx, command: &EvalCommand) -> Result<(), Failure> {
    match command {
        EvalCommand::Add {
            reference,
            results,
            dataset,
            source,
            lower_is_better,
            kind,
        } => {
            let r = parse_reference(reference)?;
            if r.selector.is_none() {
                return Err(Failure::usage(anyhow!(
                    "eval add needs the version it scores: `{reference}@VERSION` (or a range, \
                     alias or sha256: digest)"
                )));
            }
            let mut results = results.clone();
            for e in &mut results {
                e.dataset.clone_from(dataset);
                e.source.clone_from(source);
                e.higher_is_better = !lower_is_better;
            }
            let batch = adapter_core::api::EvalBatch { results };
            batch.check().map_err(|e| Failure::usage(anyhow!("{e}")))?;
            add(ctx, &r, kind.map(Into::into), &batch.results).await
        }
        EvalCommand::Ls { reference, kind } => {
            ls(ctx, &parse_reference(reference)?, kind.map(Into::into)).await
        }
    }
}

fn kinds(kind: Option<Kind>) -> Vec<Kind> {
    kind.map_or_else(|| vec![Kind::Adapter, Kind::Model], |k| vec![k])
}

/// Resolve a reference to `(kind, version)`.
pub async fn resolve(
    client: &Client,
    r: &Reference,
    kind: Option<Kind>,
) -> Result<(Kind, String), Failure> {
    let (k, resolved) = client
        .resolve_in(
            &kinds(kind),
            r.namespace.as_str(),
            r.name.as_str(),
            r.selector.as_ref(),
        )
        .await
        .map_err(|e| Failure::from(e).context(format!("resolving {r}")))?;
    Ok((k, resolved.version))
}

async fn add(
    ctx: &Ctx,
    r: &Reference,
    kind: Option<Kind>,
    results: &[EvalInput],
) -> Result<(), Failure> {
    let client = ctx.client()?;
    let (k, version) = resolve(&client, r, kind).await?;
    let pinned = format!("{}@{version}", r.repository());
    let stored = client
        .add_evals(k, r.namespace.as_str(), r.name.as_str(), &version, results)
        .await
        .map_err(|e| Failure::from(e).context(format!("recording evals for {pinned}")))?;
    if ctx.json {
        println!(
            "{}",
            json!({"reference": pinned, "kind": k, "added": stored.evals})
        );
    } else {
        eprintln!("recorded {} result(s) for {pinned}", stored.evals.len());
        print_table(&stored.evals);
    }
    Ok(())
}

async fn ls(ctx: &Ctx, r: &Reference, kind: Option<Kind>) -> Result<(), Failure> {
    let client = ctx.client()?;
    let (k, version) = resolve(&client, r, kind).await?;
    let pinned = format!("{}@{version}", r.repository());
    let list = client
        .evals(k, r.namespace.as_str(), r.name.as_str(), &version)
        .await
        .map_err(|e| Failure::from(e).context(format!("listing evals of {pinned}")))?;
    if ctx.json {
        println!(
            "{}",
            json!({"reference": pinned, "kind": k, "evals": list.evals})
        );
        return Ok(());
    }
    println!("{pinned} ({k})");
    if list.evals.is_empty() {
        println!("  no eval results");
    } else {
        print_table(&list.evals);
    }
    Ok(())
}

fn print_table(evals: &[EvalResult]) {
    let width = evals
        .iter()
        .map(|e| e.benchmark.len() + e.metric.len() + 1)
        .max()
        .unwrap_or(0)
        .max(6);
    for e in evals {
        let mut extra = Vec::new();
        if let Some(d) = &e.dataset {
            extra.push(format!("dataset={d}"));
        }
        if let Some(s) = &e.source {
            extra.push(format!("source={s}"));
        }
        if let Some(a) = &e.author {
            extra.push(format!("by {a}"));
        }
        println!(
            "  {:<width$}  {:>12}  {}  {}  {}",
            e.key(),
            format_value(e.value),
            if e.higher_is_better { "↑" } else { "↓" },
            date(e.created_at),
            extra.join("  ")
        );
    }
}

/// Shortest form that reads back as the same number.
pub fn format_value(v: f64) -> String {
    format!("{v}")
}

/// After a publish: record the `--eval` results the version does not have yet (a result
/// identical to a stored one, same value, direction, dataset and source, is skipped, so an
/// idempotent re-push adds nothing). Returns `(added, skipped)`.
pub async fn record_after_push(
    client: &Client,
    kind: Kind,
    ns: &str,
    name: &str,
    version: &str,
    results: &[EvalInput],
) -> Result<(Vec<EvalResult>, usize), Failure> {
    if results.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let what = || format!("recording evals for {ns}/{name}@{version} (the version is published)");
    let existing = client
        .evals(kind, ns, name, version)
        .await
        .map_err(|e| Failure::from(e).context(what()))?
        .evals;
    let new: Vec<EvalInput> = results
        .iter()
        .filter(|r| !existing.iter().any(|e| e.same_as(r)))
        .cloned()
        .collect();
    let skipped = results.len() - new.len();
    if new.is_empty() {
        return Ok((Vec::new(), skipped));
    }
    let stored = client
        .add_evals(kind, ns, name, version, &new)
        .await
        .map_err(|e| Failure::from(e).context(what()))?;
    Ok((stored.evals, skipped))
}
