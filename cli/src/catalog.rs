//! `adapterctl ls [NS | NS/NAME] [--kind K] [filters]` and `adapterctl show REF`: browsing
//! the catalogue (search filters and sort: docs/API.md "Catalogue search").

use adapter_core::api::{
    AdapterSummary, BaseModelRef, LineageNode, ModelSummary, RepositoryInfo, Summary, kind_segment,
};
use adapter_core::manifest::Kind;
use adapter_core::name::Name;
use anyhow::anyhow;
use serde_json::{Value, json};

use crate::exit::Failure;
use crate::output::{field, group_digits};
use crate::pull::parse_reference;
use crate::{Ctx, KindFlag};

/// Page size asked of the server.
const PAGE: u32 = 100;

/// Arguments of `adapterctl ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// A namespace, or `namespace/name` to list its versions.
    what: Option<String>,
    #[command(flatten)]
    kind: KindFlag,
    #[command(flatten)]
    filters: Filters,
}

/// Arguments of `adapterctl show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// `namespace/name[@selector]` (default: the latest version).
    reference: String,
    #[command(flatten)]
    kind: KindFlag,
}

/// Search filters of `ls` (sent to `GET /v1/{kind}` as they are; the server checks them).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Filters {
    /// Substring of `ns/name` or of the base model's name.
    #[arg(long, short = 'q', value_name = "TEXT")]
    pub query: Option<String>,
    /// Base model: name, `ns/name[@version]`, or a `sha256:` content digest / shape fingerprint.
    #[arg(long, value_name = "BASE")]
    pub base: Option<String>,
    /// Only adapters validated compatible with this model (`ns/name[@version]`).
    #[arg(long, value_name = "MODEL")]
    pub compatible_with: Option<String>,
    /// Adapted module (repeatable: all must be adapted).
    #[arg(long, value_name = "MODULE")]
    pub target: Vec<String>,
    /// Smallest rank at least this.
    #[arg(long, value_name = "N")]
    pub rank_min: Option<u32>,
    /// Largest rank at most this.
    #[arg(long, value_name = "N")]
    pub rank_max: Option<u32>,
    /// lora, dora, rslora or rslora+dora.
    #[arg(long, value_name = "VARIANT")]
    pub variant: Option<String>,
    /// `key=value` or `key` (repeatable).
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub label: Vec<String>,
    /// `benchmark:metric` OP number, e.g. `mmlu:acc>=0.6` (repeatable).
    #[arg(long, value_name = "EXPR")]
    pub eval: Vec<String>,
    /// name, -name, created, -created, eval:B:M or -eval:B:M.
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// Stop after this many repositories.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl Filters {
    fn is_empty(&self) -> bool {
        self.query.is_none()
            && self.base.is_none()
            && self.compatible_with.is_none()
            && self.target.is_empty()
            && self.rank_min.is_none()
            && self.rank_max.is_none()
            && self.variant.is_none()
            && self.label.is_empty()
            && self.eval.is_empty()
            && self.sort.is_none()
            && self.limit.is_none()
    }

    fn params(&self, namespace: Option<&str>) -> Vec<(&'static str, String)> {
        let mut p: Vec<(&'static str, String)> = Vec::new();
        let mut one = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                p.push((k, v));
            }
        };
        one("namespace", namespace.map(str::to_owned));
        one("q", self.query.clone());
        one("base", self.base.clone());
        one("compatible_with", self.compatible_with.clone());
        one("rank_min", self.rank_min.map(|n| n.to_string()));
        one("rank_max", self.rank_max.map(|n| n.to_string()));
        one("variant", self.variant.clone());
        one("sort", self.sort.clone());
        for (k, list) in [
            ("target", &self.target),
            ("label", &self.label),
            ("eval", &self.eval),
        ] {
            p.extend(list.iter().map(|v| (k, v.clone())));
        }
        p
    }
}

fn kinds(kind: Option<Kind>) -> Vec<Kind> {
    kind.map_or_else(|| vec![Kind::Adapter, Kind::Model], |k| vec![k])
}

pub async fn ls(ctx: &Ctx, args: &LsArgs) -> Result<(), Failure> {
    let (kind, filters) = (args.kind.get(), &args.filters);
    match args.what.as_deref() {
        Some(w) if w.contains('/') || w.contains('@') => {
            if !filters.is_empty() {
                return Err(Failure::usage(anyhow!(
                    "filters apply to a search; `ls {w}` lists that repository's versions"
                )));
            }
            versions(ctx, w, kind).await
        }
        Some(ns) => {
            let ns = Name::new(ns).map_err(|e| {
                Failure::usage(anyhow!(
                    "`{}` is not a valid namespace: {e}",
                    ns.escape_debug()
                ))
            })?;
            repositories(ctx, Some(ns.as_str()), kind, filters).await
        }
        None => repositories(ctx, None, kind, filters).await,
    }
}

async fn repositories(
    ctx: &Ctx,
    namespace: Option<&str>,
    kind: Option<Kind>,
    filters: &Filters,
) -> Result<(), Failure> {
    let client = ctx.client()?;
    let max = filters.limit.unwrap_or(usize::MAX);
    let mut all: Vec<RepositoryInfo> = Vec::new();
    for k in kinds(kind) {
        let mut cursor: Option<String> = None;
        while all.len() < max {
            let mut params = filters.params(namespace);
            params.push(("limit", PAGE.to_string()));
            if let Some(c) = &cursor {
                params.push(("cursor", c.clone()));
            }
            let page = client
                .search(k, &params)
                .await
                .map_err(|e| Failure::from(e).context(format!("searching {}", kind_segment(k))))?;
            all.extend(page.repositories);
            match page.next_cursor {
                Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
                _ => break,
            }
        }
    }
    all.truncate(max);
    if ctx.json {
        println!("{}", json!({ "repositories": all }));
        return Ok(());
    }
    if all.is_empty() {
        eprintln!("no repositories");
        return Ok(());
    }
    let width = all
        .iter()
        .map(|r| r.namespace.len() + r.name.len() + 1)
        .max()
        .unwrap_or(0)
        .max(10);
    println!(
        "{:<7}  {:<width$}  {:>8}  {:<10}  {:<10}  {:<9}  {:<11}  {:<24}  EVALS",
        "KIND", "REPOSITORY", "VERSIONS", "LATEST", "MATCHED", "RANK", "VARIANT", "BASE"
    );
    for r in &all {
        let m = r.matched.as_ref();
        let f = m.map(|m| &m.facts);
        let rank = match f.map(|f| (f.rank_min, f.rank_max)) {
            Some((Some(a), Some(b))) if a == b => a.to_string(),
            Some((Some(a), Some(b))) => format!("{a}-{b}"),
            _ => "-".into(),
        };
        let base = f
            .and_then(|f| f.base.as_ref())
            .and_then(|b| b.reference.clone().or_else(|| b.name_or_path.clone()))
            .unwrap_or_else(|| "-".into());
        let evals: Vec<String> = m
            .map(|m| {
                m.evals
                    .iter()
                    .map(|e| format!("{}:{}={}", e.benchmark, e.metric, e.value))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:<7}  {:<width$}  {:>8}  {:<10}  {:<10}  {:<9}  {:<11}  {:<24}  {}",
            r.kind.as_str(),
            format!("{}/{}", r.namespace, r.name),
            r.version_count,
            r.latest.as_deref().unwrap_or("-"),
            m.map_or("-", |m| m.version.as_str()),
            rank,
            f.and_then(|f| f.variant.as_deref()).unwrap_or("-"),
            base,
            evals.join(" ")
        );
    }
    Ok(())
}

async fn versions(ctx: &Ctx, what: &str, kind: Option<Kind>) -> Result<(), Failure> {
    let r = parse_reference(what)?;
    if r.selector.is_some() {
        return Err(Failure::usage(anyhow!(
            "ls takes `namespace/name`; use `adapterctl show {what}` for one version"
        )));
    }
    let client = ctx.client()?;
    let (ns, name) = (r.namespace.as_str(), r.name.as_str());
    let mut last = None;
    for k in kinds(kind) {
        match client.versions(k, ns, name).await {
            Ok(list) => {
                if ctx.json {
                    println!(
                        "{}",
                        json!({"kind": k, "repository": r.repository(), "versions": list.versions})
                    );
                    return Ok(());
                }
                println!("{} ({k})", r.repository());
                if list.versions.is_empty() {
                    println!("  no versions");
                }
                for v in &list.versions {
                    println!(
                        "  {:<20} {}  {:>15} bytes  {}{}",
                        v.version,
                        v.manifest_digest,
                        group_digits(v.size),
                        date(v.created_at),
                        if v.yanked { "  yanked" } else { "" }
                    );
                }
                return Ok(());
            }
            Err(e) if e.is_not_found() => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .map(Failure::from)
        .unwrap_or_else(|| Failure::usage(anyhow!("no kind to look in"))))
}

pub async fn show(ctx: &Ctx, args: &ShowArgs) -> Result<(), Failure> {
    let (r, kind) = (parse_reference(&args.reference)?, args.kind.get());
    let client = ctx.client()?;
    let (ns, name) = (r.namespace.as_str(), r.name.as_str());
    let (k, resolved) = client
        .resolve_in(&kinds(kind), ns, name, r.selector.as_ref())
        .await
        .map_err(|e| Failure::from(e).context(format!("resolving {r}")))?;
    let info = client
        .version(k, ns, name, &resolved.version)
        .await
        .map_err(|e| {
            Failure::from(e).context(format!("reading {}@{}", r.repository(), resolved.version))
        })?;
    let lineage = client
        .lineage(k, ns, name, &resolved.version)
        .await
        .map_err(|e| {
            Failure::from(e).context(format!(
                "lineage of {}@{}",
                r.repository(),
                resolved.version
            ))
        })?;
    if ctx.json {
        let mut v = serde_json::to_value(&info).expect("serialises");
        v["lineage"] = serde_json::to_value(&lineage).expect("serialises");
        println!("{v}");
        return Ok(());
    }
    println!(
        "{}/{}@{} ({})",
        info.namespace, info.name, info.version, info.kind
    );
    field("manifest", info.manifest_digest);
    field("created", date(info.created_at));
    field(
        "size",
        format!("{} bytes", group_digits(info.manifest.total_size())),
    );
    if info.yanked {
        field("yanked", info.yank_reason.as_deref().unwrap_or("yes"));
    }
    println!("  files");
    let width = info
        .manifest
        .files()
        .iter()
        .map(|f| f.path.as_str().len())
        .max()
        .unwrap_or(0);
    for f in info.manifest.files() {
        println!(
            "    {:<width$}  {:>15}  {}",
            f.path,
            group_digits(f.size),
            f.digest
        );
    }
    print_object("metadata", &Value::Object(info.manifest.metadata().clone()));
    print_summary(&info.summary);
    print_nodes("parents", &lineage.parents);
    print_nodes("derived", &lineage.children);
    if lineage.chain.len() > 1 {
        let steps: Vec<String> = lineage.chain.iter().map(node_name).collect();
        println!("  chain\n    {}", steps.join(" → "));
    }
    Ok(())
}

/// `ns/name@version`, else the recorded reference or digest.
fn node_name(n: &LineageNode) -> String {
    match (&n.namespace, &n.name, &n.version) {
        (Some(ns), Some(name), Some(v)) => format!("{ns}/{name}@{v}"),
        _ => n
            .reference
            .clone()
            .or_else(|| n.manifest_digest.clone())
            .or_else(|| n.content_digest.clone())
            .unwrap_or_else(|| "(unknown)".into()),
    }
}

fn print_nodes(title: &str, nodes: &[LineageNode]) {
    if nodes.is_empty() {
        return;
    }
    println!("  {title}");
    for n in nodes {
        let registered = if n.namespace.is_some() {
            ""
        } else {
            "  (not registered here)"
        };
        let yanked = if n.yanked == Some(true) {
            "  yanked"
        } else {
            ""
        };
        println!("    {:<8}{}{registered}{yanked}", n.relation, node_name(n));
    }
}

/// The registry's summary of a version, a field a line.
fn print_summary(summary: &Summary) {
    println!("  summary");
    let line = |k: &str, v: String| println!("    {k:<22}{v}");
    let list = |items: &[String]| {
        if items.is_empty() {
            "–".to_owned()
        } else {
            items.join(", ")
        }
    };
    match summary {
        Summary::Adapter(a) => print_adapter_summary(a, &line, &list),
        Summary::Model(m) => print_model_summary(m, &line, &list),
    }
}

fn print_adapter_summary(
    a: &AdapterSummary,
    line: &dyn Fn(&str, String),
    list: &dyn Fn(&[String]) -> String,
) {
    let (lo, hi) = a.rank_range();
    let rank = if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}–{hi} (r {})", a.r)
    };
    line("type", format!("{} ({})", a.peft_type, a.variant));
    line("rank", rank);
    line("alpha", a.lora_alpha.to_string());
    line("targets", list(&a.target_modules));
    line("modules", a.module_count.to_string());
    line("tensors", a.tensor_count.to_string());
    line("parameters", group_digits(a.parameters));
    line("dtypes", list(&a.dtypes));
    let layers: Vec<String> = a.layers.iter().map(u64::to_string).collect();
    line("layers", list(&layers));
    line(
        "mergeable",
        if a.mergeable { "yes" } else { "no" }.to_owned(),
    );
    print_base(&a.base, line);
    for w in &a.warnings {
        let about = w
            .subject
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        line("warning", format!("{}{about}: {}", w.code, w.message));
    }
}

fn print_base(b: &BaseModelRef, line: &dyn Fn(&str, String)) {
    if let Some(n) = &b.name_or_path {
        line("base", n.clone());
    }
    if let Some(r) = &b.reference {
        line("base reference", r.clone());
    }
    if let Some(d) = &b.content_digest {
        line("base content", d.to_string());
    }
    if let Some(d) = &b.shape_fingerprint {
        line("base shapes", d.to_string());
    }
}

fn print_model_summary(
    m: &ModelSummary,
    line: &dyn Fn(&str, String),
    list: &dyn Fn(&[String]) -> String,
) {
    let format = m.format.as_deref().unwrap_or("safetensors");
    let how = if m.headers_only {
        " (headers only)"
    } else {
        ""
    };
    line("format", format!("{format}{how}"));
    line("content", m.content_digest.to_string());
    if let Some(d) = &m.shape_fingerprint {
        line("shapes", d.to_string());
    }
    line("weight files", m.weight_files.to_string());
    line("tensors", m.tensor_count.to_string());
    line("parameters", group_digits(m.parameters));
    let dtypes: Vec<String> = m.dtypes.iter().map(|(t, n)| format!("{t} ×{n}")).collect();
    line("dtypes", list(&dtypes));
    if let Some(t) = &m.model_type {
        line("model type", t.clone());
    }
    if let Some(a) = &m.architectures {
        line("architectures", list(a));
    }
    if let Some(a) = &m.architecture {
        line("architecture", a.clone());
    }
    if let Some(n) = m.num_hidden_layers {
        line("layers", n.to_string());
    }
    if let Some(t) = m.file_type {
        line("file type", t.to_string());
    }
}

/// Top-level members one per line, values as compact JSON (strings bare).
fn print_object(title: &str, v: &Value) {
    let Value::Object(m) = v else {
        if !v.is_null() {
            println!("  {title}: {v}");
        }
        return;
    };
    if m.is_empty() {
        return;
    }
    println!("  {title}");
    for (k, v) in m {
        let shown = match v {
            Value::String(s) => s.clone(),
            other => {
                let s = other.to_string();
                if s.chars().count() > 200 {
                    format!("{}…", s.chars().take(200).collect::<String>())
                } else {
                    s
                }
            }
        };
        println!("    {k:<22}{shown}");
    }
}

/// Unix seconds → `YYYY-MM-DD HH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn date(unix: i64) -> String {
    let c = adapter_core::time::civil(unix);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::date;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01 00:00:00Z");
        assert_eq!(date(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(date(1_732_806_000), "2024-11-28 15:00:00Z");
        assert_eq!(date(-1), "1969-12-31 23:59:59Z");
    }
}
