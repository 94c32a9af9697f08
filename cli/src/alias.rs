//! `adapterctl tag REF ALIAS`, `alias ls|history|rm`, `gate set|show|rm`: aliases moved by
//! compare-and-swap (the CLI always sends an expectation: `--expect`, or the target it has
//! just read), and the gates that guard them.

use adapter_core::api::{AliasMove, GateCondition, GateInfo, GateSpec};
use adapter_core::manifest::Kind;
use adapter_core::name::{AliasName, Name};
use anyhow::anyhow;
use clap::Subcommand;
use serde_json::json;

use crate::catalog::date;
use crate::client::Client;
use crate::exit::Failure;
use crate::pull::parse_reference;
use crate::{Ctx, KindFlag};

/// `NS/NAME` → its two names.
pub fn parse_repo(s: &str) -> Result<(Name, Name), Failure> {
    let bad = |m: String| Failure::usage(anyhow!("`{}` is not NS/NAME: {m}", s.escape_debug()));
    let (ns, name) = s.split_once('/').ok_or_else(|| bad("no `/`".into()))?;
    let ns = Name::new(ns).map_err(|e| bad(e.to_string()))?;
    let name = Name::new(name).map_err(|e| bad(e.to_string()))?;
    Ok((ns, name))
}

pub fn parse_alias(s: &str) -> Result<AliasName, Failure> {
    AliasName::new(s)
        .map_err(|e| Failure::usage(anyhow!("`{}` is not a valid alias: {e}", s.escape_debug())))
}

fn parse_version(what: &str, s: &str) -> Result<String, Failure> {
    semver::Version::parse(s)
        .map(|v| v.to_string())
        .map_err(|e| {
            Failure::usage(anyhow!(
                "{what} `{}` is not a version: {e}",
                s.escape_debug()
            ))
        })
}

/// The kind of repository `ns/name`: the one given, else adapters, then models.
pub async fn repo_kind(
    client: &Client,
    kind: Option<Kind>,
    ns: &str,
    name: &str,
) -> Result<Kind, Failure> {
    if let Some(k) = kind {
        return Ok(k);
    }
    let first = match client.repository(Kind::Adapter, ns, name).await {
        Ok(_) => return Ok(Kind::Adapter),
        Err(e) if e.is_not_found() => e,
        Err(e) => return Err(e.into()),
    };
    match client.repository(Kind::Model, ns, name).await {
        Ok(_) => Ok(Kind::Model),
        Err(e) if e.is_not_found() => Err(first.into()),
        Err(e) => Err(e.into()),
    }
}

/// Arguments of `adapterctl tag`.
#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// `namespace/name[@selector]`: the version to point to (default: the latest).
    reference: String,
    /// The alias (`prod`, `staging`, …).
    alias: String,
    /// The version the alias must point to now [default: what it points to when read
    /// just before; a new alias if it does not exist].
    #[arg(long, value_name = "VERSION")]
    expect: Option<String>,
    /// Why (kept in the alias history).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    #[command(flatten)]
    kind: KindFlag,
}

/// `adapterctl alias …`.
#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// The aliases of a repository and where they point.
    Ls(RepoArgs),
    /// Every move of an alias: when, who, from, to, why.
    History(AliasArgs),
    /// Delete an alias, compare-and-swap.
    Rm(RmArgs),
}

/// `adapterctl gate …`.
#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Replace the gate of an alias with these conditions (all must pass).
    Set(GateSetArgs),
    /// Show the gate of an alias.
    Show(AliasArgs),
    /// Remove the gate of an alias.
    Rm(AliasArgs),
}

/// Arguments of `alias ls`: a repository.
#[derive(Debug, clap::Args)]
pub struct RepoArgs {
    /// `namespace/name`.
    repository: String,
    #[command(flatten)]
    kind: KindFlag,
}

/// Arguments of `alias history`, `gate show` and `gate rm`: an alias.
#[derive(Debug, clap::Args)]
pub struct AliasArgs {
    #[command(flatten)]
    target: AliasTarget,
    #[command(flatten)]
    kind: KindFlag,
}

/// Arguments of `alias rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    #[command(flatten)]
    target: AliasTarget,
    /// The version it must point to now [default: read just before].
    #[arg(long, value_name = "VERSION")]
    expect: Option<String>,
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    #[command(flatten)]
    kind: KindFlag,
}

/// Arguments of `gate set`.
#[derive(Debug, clap::Args)]
pub struct GateSetArgs {
    #[command(flatten)]
    target: AliasTarget,
    #[command(flatten)]
    flags: GateFlags,
    #[command(flatten)]
    kind: KindFlag,
}

/// An alias of a repository, as typed.
#[derive(Debug, clap::Args)]
pub struct AliasTarget {
    /// `namespace/name`.
    repository: String,
    alias: String,
}

impl AliasTarget {
    /// The repository's namespace and name, and the alias: usage errors before any request.
    fn parse(&self) -> Result<(Name, Name, AliasName), Failure> {
        let (ns, name) = parse_repo(&self.repository)?;
        Ok((ns, name, parse_alias(&self.alias)?))
    }
}

/// `adapterctl alias ls|history|rm`.
pub async fn run_alias(ctx: &Ctx, command: &AliasCommand) -> Result<(), Failure> {
    match command {
        AliasCommand::Ls(a) => ls(ctx, a).await,
        AliasCommand::History(a) => history(ctx, a).await,
        AliasCommand::Rm(a) => rm(ctx, a).await,
    }
}

/// `adapterctl gate set|show|rm`.
pub async fn run_gate(ctx: &Ctx, command: &GateCommand) -> Result<(), Failure> {
    match command {
        GateCommand::Set(a) => gate_set(ctx, a).await,
        GateCommand::Show(a) => gate_show(ctx, a).await,
        GateCommand::Rm(a) => gate_rm(ctx, a).await,
    }
}

/// `adapterctl tag REF ALIAS [--expect VERSION] [--reason TEXT]`.
pub async fn tag(ctx: &Ctx, a: &TagArgs) -> Result<(), Failure> {
    let r = parse_reference(&a.reference)?;
    let alias = parse_alias(&a.alias)?;
    let expect = a
        .expect
        .as_deref()
        .map(|v| parse_version("--expect", v))
        .transpose()?;
    let client = ctx.client()?;
    let (ns, name) = (r.namespace.as_str(), r.name.as_str());
    let kinds = a
        .kind
        .get()
        .map_or_else(|| vec![Kind::Adapter, Kind::Model], |k| vec![k]);
    let (kind, resolved) = client
        .resolve_in(&kinds, ns, name, r.selector.as_ref())
        .await
        .map_err(|e| Failure::from(e).context(format!("resolving {r}")))?;
    if resolved.yanked && !ctx.json {
        eprintln!(
            "warning: {}@{} is yanked{}",
            r.repository(),
            resolved.version,
            resolved
                .yank_reason
                .as_deref()
                .map_or(String::new(), |w| format!(": {w}"))
        );
    }
    // Without --expect, the expectation is what the alias points to now: still a CAS.
    let expect = match expect {
        Some(v) => Some(v),
        None => client
            .alias(kind, ns, name, alias.as_str())
            .await
            .map_err(|e| Failure::from(e).context(format!("reading alias {alias}")))?
            .map(|a| a.version),
    };
    let body = AliasMove {
        version: resolved.version.clone(),
        expect: expect.clone(),
        reason: a.reason.clone(),
    };
    let info = client
        .move_alias(kind, ns, name, alias.as_str(), &body)
        .await
        .map_err(|e| Failure::from(e).context(format!("moving {}:{alias}", r.repository())))?;
    if ctx.json {
        println!(
            "{}",
            json!({
                "repository": r.repository(),
                "kind": kind,
                "alias": info.alias,
                "version": info.version,
                "previous": expect,
            })
        );
    } else {
        match &expect {
            Some(prev) if *prev == info.version => {
                println!(
                    "{} {alias} already points to {}",
                    r.repository(),
                    info.version
                );
            }
            Some(prev) => println!("{} {alias}: {prev} -> {}", r.repository(), info.version),
            None => println!("{} {alias}: (new) -> {}", r.repository(), info.version),
        }
    }
    Ok(())
}

/// `adapterctl alias ls NS/NAME`.
async fn ls(ctx: &Ctx, a: &RepoArgs) -> Result<(), Failure> {
    let (ns, name) = parse_repo(&a.repository)?;
    let client = ctx.client()?;
    let kind = repo_kind(&client, a.kind.get(), ns.as_str(), name.as_str()).await?;
    let list = client.aliases(kind, ns.as_str(), name.as_str()).await?;
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string(&list).map_err(anyhow::Error::from)?
        );
        return Ok(());
    }
    if list.aliases.is_empty() {
        println!("{ns}/{name} has no aliases");
    }
    for a in &list.aliases {
        println!(
            "{:<16} {:<14} {}  {}",
            a.alias,
            a.version,
            date(a.updated_at),
            a.updated_by.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// `adapterctl alias history NS/NAME ALIAS`.
async fn history(ctx: &Ctx, a: &AliasArgs) -> Result<(), Failure> {
    let (ns, name, alias) = a.target.parse()?;
    let client = ctx.client()?;
    let kind = repo_kind(&client, a.kind.get(), ns.as_str(), name.as_str()).await?;
    let h = client
        .alias_history(kind, ns.as_str(), name.as_str(), alias.as_str())
        .await?;
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string(&h).map_err(anyhow::Error::from)?
        );
        return Ok(());
    }
    for e in &h.entries {
        println!(
            "{}  {:<12} {} -> {}{}",
            date(e.at),
            e.actor.as_deref().unwrap_or("-"),
            e.from.as_deref().unwrap_or("(new)"),
            e.to.as_deref().unwrap_or("(deleted)"),
            e.reason
                .as_deref()
                .map_or(String::new(), |r| format!("  {r}"))
        );
    }
    Ok(())
}

/// `adapterctl alias rm NS/NAME ALIAS [--expect VERSION] [--reason TEXT]`.
async fn rm(ctx: &Ctx, a: &RmArgs) -> Result<(), Failure> {
    let (ns, name, alias) = a.target.parse()?;
    let expect = a
        .expect
        .as_deref()
        .map(|v| parse_version("--expect", v))
        .transpose()?;
    let client = ctx.client()?;
    let kind = repo_kind(&client, a.kind.get(), ns.as_str(), name.as_str()).await?;
    let expect = match expect {
        Some(v) => v,
        None => {
            client
                .alias(kind, ns.as_str(), name.as_str(), alias.as_str())
                .await?
                .ok_or_else(|| {
                    Failure::new(
                        crate::exit::NOT_FOUND,
                        anyhow!("alias `{alias}` of {ns}/{name} does not exist"),
                    )
                })?
                .version
        }
    };
    client
        .delete_alias(
            kind,
            ns.as_str(),
            name.as_str(),
            alias.as_str(),
            &expect,
            a.reason.as_deref(),
        )
        .await?;
    if ctx.json {
        println!(
            "{}",
            json!({"alias": alias.as_str(), "deleted": true, "previous": expect})
        );
    } else {
        println!("{ns}/{name} {alias}: {expect} -> (deleted)");
    }
    Ok(())
}

/// The conditions `gate set` builds from its flags.
#[derive(Debug, clap::Args)]
pub struct GateFlags {
    /// `benchmark:metric=MIN`: the new target scores at least MIN.
    #[arg(long, value_name = "METRIC=MIN")]
    min: Vec<String>,
    /// `benchmark:metric=MAX`: at most MAX (lower-is-better metrics).
    #[arg(long, value_name = "METRIC=MAX")]
    max: Vec<String>,
    /// `benchmark:metric[=MAX_DROP]`: no worse than the current target by more than
    /// MAX_DROP (default 0).
    #[arg(long, value_name = "METRIC[=MAX_DROP]")]
    no_regression: Vec<String>,
    /// The new target must not be yanked.
    #[arg(long)]
    not_yanked: bool,
    /// A successful validation against this base (`ns/name@version`); validation jobs do
    /// not exist yet, so this condition fails for now.
    #[arg(long, value_name = "REF")]
    validated_against: Vec<String>,
}

fn metric_value(flag: &str, s: &str, required: bool) -> Result<(String, Option<f64>), Failure> {
    let bad = |m: &str| Failure::usage(anyhow!("{flag} `{}`: {m}", s.escape_debug()));
    let (metric, value) = match s.split_once('=') {
        Some((m, v)) => (
            m,
            Some(v.trim().parse::<f64>().map_err(|_| bad("not a number"))?),
        ),
        None if required => return Err(bad("expected benchmark:metric=VALUE")),
        None => (s, None),
    };
    if !metric.contains(':') {
        return Err(bad("expected benchmark:metric (e.g. mmlu:acc)"));
    }
    Ok((metric.to_owned(), value))
}

impl GateFlags {
    fn conditions(&self) -> Result<Vec<GateCondition>, Failure> {
        let mut out = Vec::new();
        for s in &self.min {
            let (m, v) = metric_value("--min", s, true)?;
            out.push(GateCondition {
                eval: Some(m),
                min: v,
                ..Default::default()
            });
        }
        for s in &self.max {
            let (m, v) = metric_value("--max", s, true)?;
            out.push(GateCondition {
                eval: Some(m),
                max: v,
                ..Default::default()
            });
        }
        for s in &self.no_regression {
            let (m, v) = metric_value("--no-regression", s, false)?;
            out.push(GateCondition {
                no_regression: Some(m),
                max_drop: v,
                ..Default::default()
            });
        }
        if self.not_yanked {
            out.push(GateCondition {
                not_yanked: Some(true),
                ..Default::default()
            });
        }
        for b in &self.validated_against {
            out.push(GateCondition {
                validated_against: Some(b.clone()),
                ..Default::default()
            });
        }
        if out.is_empty() {
            return Err(Failure::usage(anyhow!(
                "give at least one condition (--min, --max, --no-regression, --not-yanked, \
                 --validated-against); remove a gate with `gate rm`"
            )));
        }
        Ok(out)
    }
}

fn print_gate(ctx: &Ctx, g: &GateInfo) -> Result<(), Failure> {
    if ctx.json {
        println!("{}", serde_json::to_string(g).map_err(anyhow::Error::from)?);
        return Ok(());
    }
    println!("gate of {}:", g.alias);
    for c in &g.conditions {
        println!(
            "  {}",
            serde_json::to_string(c).map_err(anyhow::Error::from)?
        );
    }
    Ok(())
}

/// `adapterctl gate set NS/NAME ALIAS …` (replaces the gate).
async fn gate_set(ctx: &Ctx, a: &GateSetArgs) -> Result<(), Failure> {
    let (ns, name, alias) = a.target.parse()?;
    let spec = GateSpec {
        conditions: a.flags.conditions()?,
    };
    let client = ctx.client()?;
    let kind = repo_kind(&client, a.kind.get(), ns.as_str(), name.as_str()).await?;
    let g = client
        .set_gate(kind, ns.as_str(), name.as_str(), alias.as_str(), &spec)
        .await?;
    print_gate(ctx, &g)
}

/// `adapterctl gate show NS/NAME ALIAS`.
async fn gate_show(ctx: &Ctx, a: &AliasArgs) -> Result<(), Failure> {
    let (ns, name, alias) = a.target.parse()?;
    let client = ctx.client()?;
    let kind = repo_kind(&client, a.kind.get(), ns.as_str(), name.as_str()).await?;
    let g = client
        .gate(kind, ns.as_str(), name.as_str(), alias.as_str())
        .await?;
    print_gate(ctx, &g)
}

/// `adapterctl gate rm NS/NAME ALIAS`.
async fn gate_rm(ctx: &Ctx, a: &AliasArgs) -> Result<(), Failure> {
    let (ns, name, alias) = a.target.parse()?;
    let client = ctx.client()?;
    let kind = repo_kind(&client, a.kind.get(), ns.as_str(), name.as_str()).await?;
    client
        .delete_gate(kind, ns.as_str(), name.as_str(), alias.as_str())
        .await?;
    if ctx.json {
        println!("{}", json!({"alias": alias.as_str(), "gate": null}));
    } else {
        println!("{ns}/{name} {alias}: gate removed");
    }
    Ok(())
}
