//! `adapterctl diff A B`: what changed between two versions: config (adapter_config.json or
//! config.json), the registry's summary (rank, alpha, variant, targets, …), tensors (from
//! each safetensors header, fetched with ranged GETs: weights are never downloaded) and eval
//! deltas, flagging catastrophic forgetting: a general benchmark that got worse by more than
//! the threshold, whatever the task metrics did.
//!
//! Exit code: 0, or 1 (`PROBLEMS`) with `--fail-on-forgetting` when forgetting is flagged
//! (the diff is printed either way).

mod compare;

use std::collections::BTreeMap;
use std::process::ExitCode;

use adapter_core::api::{HeadersOnlyWeight, VersionInfo, metadata};
use adapter_core::digest::Digest;
use adapter_core::manifest::Kind;
use adapter_core::reference::Reference;
use adapter_core::safetensors::{Limits, read_header};
use adapter_core::{model, peft};
use anyhow::anyhow;
use serde_json::{Map, Value, json};

use crate::client::Client;
use crate::exit::{Failure, PROBLEMS, SERVER, VERIFY};
use crate::pull::parse_reference;
use crate::{Ctx, KindArg};
use compare::{EvalDelta, Forgetting, Movement, ObjectDiff, TensorDiff, TensorShape};

pub use compare::DEFAULT_GENERAL;

/// Largest config file fetched for the comparison.
const MAX_CONFIG: u64 = 1024 * 1024;

/// Summary fields compared (top level, or `base.*`).
const ADAPTER_FIELDS: &[&str] = &[
    "peft_type",
    "variant",
    "r",
    "lora_alpha",
    "use_rslora",
    "use_dora",
    "module_count",
    "tensor_count",
    "parameters",
    "dtypes",
    "layers",
    "mergeable",
    "base.name_or_path",
    "base.reference",
    "base.content_digest",
    "base.shape_fingerprint",
];
const MODEL_FIELDS: &[&str] = &[
    "headers_only",
    "content_digest",
    "shape_fingerprint",
    "weight_files",
    "tensor_count",
    "parameters",
    "dtypes",
    "model_type",
    "architectures",
    "num_hidden_layers",
];
/// Shown even when equal (the facts people compare first).
const ALWAYS_SHOWN: &[&str] = &["r", "lora_alpha", "variant"];

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The version compared from: `namespace/name[@selector]` (default: its latest).
    pub a: String,
    /// The version compared to.
    pub b: String,
    /// Look only in adapters or models (default: adapters, then models).
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// General benchmarks (comma-separated names): a drop on one of these is catastrophic
    /// forgetting. An empty value turns the check off.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_GENERAL, value_name = "LIST")]
    pub general: Vec<String>,
    /// Largest tolerated drop on a general benchmark, absolute (0.01 = one point of accuracy).
    #[arg(long, default_value_t = 0.01, value_parser = parse_threshold, value_name = "DROP")]
    pub forgetting_threshold: f64,
    /// Exit with 1 when forgetting is flagged.
    #[arg(long)]
    pub fail_on_forgetting: bool,
}

fn parse_threshold(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{}` is not a number ≥ 0", s.escape_debug())),
    }
}

/// One side, fetched.
struct Side {
    pinned: String,
    info: VersionInfo,
    config: Option<(String, Map<String, Value>)>,
    tensors: BTreeMap<String, TensorShape>,
}

pub fn run(ctx: &Ctx, args: &DiffArgs) -> Result<ExitCode, Failure> {
    let (a, b) = (parse_reference(&args.a)?, parse_reference(&args.b)?);
    if args.general.iter().any(|g| {
        !g.trim().is_empty()
            && adapter_core::api::evals::check_eval_name("general", g.trim()).is_err()
    }) {
        return Err(Failure::usage(anyhow!(
            "--general takes benchmark names separated by commas"
        )));
    }
    let rule = Forgetting::new(&args.general, args.forgetting_threshold);
    let kind = args.kind.map(Kind::from);
    let (sa, sb) = crate::runtime()?.block_on(async {
        let client = ctx.client()?;
        let sa = load(&client, &a, kind).await?;
        let sb = load(&client, &b, kind).await?;
        Ok::<_, Failure>((sa, sb))
    })?;
    let report = Report::build(&sa, &sb, &rule);
    if ctx.json {
        println!("{}", report.to_json(&sa, &sb, &rule));
    } else {
        report.print(&sa, &sb, &rule);
    }
    let flagged = report.forgetting();
    if flagged.is_empty() || !args.fail_on_forgetting {
        return Ok(ExitCode::SUCCESS);
    }
    if !ctx.json {
        eprintln!(
            "error: catastrophic forgetting: {} (--fail-on-forgetting)",
            flagged.join(", ")
        );
    }
    Ok(ExitCode::from(PROBLEMS))
}

async fn load(client: &Client, r: &Reference, kind: Option<Kind>) -> Result<Side, Failure> {
    let (k, version) = crate::evals::resolve(client, r, kind).await?;
    let (ns, name) = (r.namespace.as_str(), r.name.as_str());
    let pinned = format!("{}@{version}", r.repository());
    let info = client
        .version(k, ns, name, &version)
        .await
        .map_err(|e| Failure::from(e).context(format!("reading {pinned}")))?;
    let config_file = match k {
        Kind::Adapter => peft::CONFIG_FILE,
        Kind::Model => model::CONFIG_FILE,
    };
    let mut config = None;
    if let Some(entry) = info.manifest.file(config_file)
        && entry.size <= MAX_CONFIG
    {
        let bytes = client
            .blob_range(&entry.digest, 0, entry.size)
            .await
            .map_err(|e| Failure::from(e).context(format!("reading {config_file} of {pinned}")))?;
        if Digest::of_bytes(&bytes) != entry.digest {
            return Err(Failure::new(
                VERIFY,
                anyhow!("{config_file} of {pinned} does not have its recorded digest"),
            ));
        }
        let value = adapter_core::json::parse_strict(&bytes)
            .map_err(|e| Failure::new(PROBLEMS, anyhow!("{config_file} of {pinned}: {e}")))?;
        if let Value::Object(m) = value {
            config = Some((config_file.to_owned(), m));
        }
    }
    let mut tensors = BTreeMap::new();
    for (path, digest) in weight_headers(&info)? {
        let header = remote_header(client, &digest)
            .await
            .map_err(|f| f.context(format!("reading the header of {path} in {pinned}")))?;
        for t in header.tensors {
            tensors.insert(
                t.name,
                TensorShape {
                    dtype: t.dtype.to_string(),
                    shape: t.shape,
                },
            );
        }
    }
    Ok(Side {
        pinned,
        info,
        config,
        tensors,
    })
}

/// `(path, blob)` of every safetensors header: the weights files, or for a headers-only
/// model the blobs holding their headers.
fn weight_headers(info: &VersionInfo) -> Result<Vec<(String, Digest)>, Failure> {
    let meta = info.manifest.metadata();
    if meta.get(metadata::HEADERS_ONLY) == Some(&Value::Bool(true)) {
        let weights: Vec<HeadersOnlyWeight> = meta
            .get(metadata::WEIGHTS)
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| Failure::new(SERVER, anyhow!("metadata.weights: {e}")))?
            .unwrap_or_default();
        return Ok(weights
            .into_iter()
            .map(|w| (w.path, w.header_blob))
            .collect());
    }
    Ok(info
        .manifest
        .files()
        .iter()
        .filter(|f| f.path.as_str().ends_with(".safetensors"))
        .map(|f| (f.path.to_string(), f.digest))
        .collect())
}

/// The first `8 + N` bytes of a blob, parsed strictly: two ranged GETs.
async fn remote_header(
    client: &Client,
    digest: &Digest,
) -> Result<adapter_core::safetensors::Header, Failure> {
    let limits = Limits::SERVER;
    let prefix = client.blob_range(digest, 0, 8).await?;
    let Ok(prefix) = <[u8; 8]>::try_from(prefix.as_slice()) else {
        return Err(Failure::new(
            PROBLEMS,
            anyhow!("shorter than a safetensors prefix"),
        ));
    };
    let n = u64::from_le_bytes(prefix);
    if n > limits.max_header_len {
        return Err(Failure::new(
            PROBLEMS,
            anyhow!(
                "declares a {n}-byte header (limit {})",
                limits.max_header_len
            ),
        ));
    }
    let mut bytes = prefix.to_vec();
    bytes.extend(client.blob_range(digest, 8, n).await?);
    read_header(bytes.as_slice(), &limits, None).map_err(|e| Failure::new(PROBLEMS, anyhow!("{e}")))
}

/// Everything compared.
struct Report {
    config: Option<(String, ObjectDiff)>,
    summary: Vec<(String, Value, Value)>,
    targets_added: Vec<String>,
    targets_removed: Vec<String>,
    tensors: TensorDiff,
    evals: Vec<EvalDelta>,
}

fn field(summary: &Value, path: &str) -> Value {
    path.split('.')
        .try_fold(summary, |v, k| v.get(k))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Strings without quotes, everything else as compact JSON.
fn bare(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Report {
    fn build(a: &Side, b: &Side, rule: &Forgetting) -> Self {
        let config = match (&a.config, &b.config) {
            (Some((file, ca)), Some((_, cb))) => Some((file.clone(), compare::objects(ca, cb))),
            _ => None,
        };
        let fields = match b.info.kind {
            Kind::Adapter => ADAPTER_FIELDS,
            Kind::Model => MODEL_FIELDS,
        };
        let (sa, sb) = (
            serde_json::to_value(&a.info.summary).unwrap_or_default(),
            serde_json::to_value(&b.info.summary).unwrap_or_default(),
        );
        let summary = fields
            .iter()
            .map(|f| ((*f).to_owned(), field(&sa, f), field(&sb, f)))
            .collect();
        let targets = |s: &Side| {
            s.info
                .summary
                .adapter()
                .map(|a| a.target_modules.clone())
                .unwrap_or_default()
        };
        let (ta, tb) = (targets(a), targets(b));
        Self {
            config,
            summary,
            targets_added: tb.iter().filter(|t| !ta.contains(t)).cloned().collect(),
            targets_removed: ta.iter().filter(|t| !tb.contains(t)).cloned().collect(),
            tensors: compare::tensors(&a.tensors, &b.tensors),
            evals: compare::evals(&a.info.evals, &b.info.evals, rule),
        }
    }

    fn forgetting(&self) -> Vec<String> {
        self.evals
            .iter()
            .filter(|e| e.forgetting)
            .map(|e| e.key.clone())
            .collect()
    }

    fn to_json(&self, a: &Side, b: &Side, rule: &Forgetting) -> Value {
        let side = |s: &Side| {
            json!({
                "reference": s.pinned,
                "kind": s.info.kind,
                "version": s.info.version,
                "manifest_digest": s.info.manifest_digest,
            })
        };
        let summary: Vec<Value> = self
            .summary
            .iter()
            .map(|(k, x, y)| json!({"field": k, "a": x, "b": y, "changed": x != y}))
            .collect();
        json!({
            "a": side(a),
            "b": side(b),
            "same_manifest": a.info.manifest_digest == b.info.manifest_digest,
            "config": self.config.as_ref().map(|(file, d)| json!({"file": file, "added": d.added, "removed": d.removed, "changed": d.changed})),
            "summary": summary,
            "targets": {"added": self.targets_added, "removed": self.targets_removed},
            "tensors": self.tensors,
            "evals": self.evals,
            "forgetting": self.forgetting(),
            "general_benchmarks": rule.general,
            "forgetting_threshold": rule.threshold,
        })
    }

    fn print(&self, a: &Side, b: &Side, rule: &Forgetting) {
        println!("diff {} → {}", a.pinned, b.pinned);
        if a.info.manifest_digest == b.info.manifest_digest {
            println!("  same manifest ({})", a.info.manifest_digest);
        }
        match &self.config {
            Some((file, d)) if d.is_empty() => println!("config ({file}): no differences"),
            Some((file, d)) => {
                println!("config ({file})");
                for c in &d.changed {
                    println!("  ~ {}: {} → {}", c.key, c.a, c.b);
                }
                for kv in &d.removed {
                    println!("  - {}: {}", kv.key, kv.value);
                }
                for kv in &d.added {
                    println!("  + {}: {}", kv.key, kv.value);
                }
            }
            None => println!("config: not compared (missing on one side)"),
        }
        println!("summary");
        for (k, x, y) in &self.summary {
            if x != y {
                println!("  ~ {k}: {} → {}", bare(x), bare(y));
            } else if ALWAYS_SHOWN.contains(&k.as_str()) && !x.is_null() {
                println!("    {k}: {}", bare(x));
            }
        }
        for t in &self.targets_removed {
            println!("  - target {t}");
        }
        for t in &self.targets_added {
            println!("  + target {t}");
        }
        let t = &self.tensors;
        println!(
            "tensors: {} added, {} removed, {} changed, {} unchanged",
            t.added.len(),
            t.removed.len(),
            t.changed.len(),
            t.unchanged
        );
        for n in &t.removed {
            println!("  - {} {} {:?}", n.name, n.tensor.dtype, n.tensor.shape);
        }
        for n in &t.added {
            println!("  + {} {} {:?}", n.name, n.tensor.dtype, n.tensor.shape);
        }
        for c in &t.changed {
            println!(
                "  ~ {} {} {:?} → {} {:?}",
                c.key, c.a.dtype, c.a.shape, c.b.dtype, c.b.shape
            );
        }
        self.print_evals(rule);
    }

    fn print_evals(&self, rule: &Forgetting) {
        if self.evals.is_empty() {
            println!("evals: none on either side");
            return;
        }
        println!("evals");
        let width = self.evals.iter().map(|e| e.key.len()).max().unwrap_or(0);
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), crate::evals::format_value);
        for e in &self.evals {
            let delta = e.delta.map_or_else(String::new, |d| format!("{d:+.4}"));
            let what = match e.movement {
                Movement::Improved => "improved",
                Movement::Regressed => "regressed",
                Movement::Unchanged => "unchanged",
                Movement::Added => "only in B",
                Movement::Removed => "only in A",
            };
            println!(
                "  {:<width$}  {:>10} → {:<10} {:>9}  {what}{}{}",
                e.key,
                show(e.a),
                show(e.b),
                delta,
                if e.higher_is_better {
                    ""
                } else {
                    " (lower is better)"
                },
                if e.forgetting { "  FORGETTING" } else { "" }
            );
        }
        let rose: Vec<&str> = self
            .evals
            .iter()
            .filter(|e| !e.general && e.movement == Movement::Improved)
            .map(|e| e.key.as_str())
            .collect();
        for e in self.evals.iter().filter(|e| e.forgetting) {
            let drop = e.delta.unwrap_or(0.0).abs();
            let despite = if rose.is_empty() {
                String::new()
            } else {
                format!(", while {} rose", rose.join(", "))
            };
            println!(
                "warning: catastrophic forgetting: general benchmark {} got worse by {drop:.4} \
                 (more than {}){despite}",
                e.key, rule.threshold
            );
        }
    }
}
