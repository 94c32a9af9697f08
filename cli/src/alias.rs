//! `adapterctl tag REF ALIAS`, `alias ls|history|rm`, `gate set|show|rm`: aliases moved by
//! compare-and-swap (the CLI always sends an expectation: `--expect`, or the target it has
//! just read), and the gates that guard them.

use adapter_core::api::{AliasMove, GateCondition, GateInfo, GateSpec};
use adapter_core::manifest::Kind;
use adapter_core::name::{AliasName, Name};
use anyhow::anyhow;
use serde_json::json;

use crate::Ctx;
use crate::catalog::date;
use crate::client::Client;
use crate::exit::Failure;
use crate::pull::parse_reference;

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
#[derive(Debug)]
pub struct TagArgs<'a> {
    pub reference: &'a str,
    pub alias: &'a str,
    pub expect: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub kind: Option<Kind>,
}

/// `adapterctl tag REF ALIAS [--expect VERSION] [--reason TEXT]`.
pub async fn tag(ctx: &Ctx, a: TagArgs<'_>) -> Result<(), Failure> {
    let r = parse_reference(a.reference)?;
    let alias = parse_alias(a.alias)?;
    let expect = a.expect.map(|v| parse_version("--expect", v)).transpose()?;
    let client = ctx.client()?;
    let (ns, name) = (r.namespace.as_str(), r.name.as_str());
    let kinds = a
        .kind
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
        reason: a.reason.map(str::to_owned),
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
pub async fn ls(ctx: &Ctx, repo: &str, kind: Option<Kind>) -> Result<(), Failure> {
    let (ns, name) = parse_repo(repo)?;
    let client = ctx.client()?;
    let kind = repo_kind(&client, kind, ns.as_str(), name.as_str()).await?;
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
pub async fn history(
    ctx: &Ctx,
    repo: &str,
    alias: &str,
    kind: Option<Kind>,
) -> Result<(), Failure> {
    let (ns, name) = parse_repo(repo)?;
    let alias = parse_alias(alias)?;
    let client = ctx.client()?;
    let kind = repo_kind(&client, kind, ns.as_str(), name.as_str()).await?;
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
pub async fn rm(
    ctx: &Ctx,
    repo: &str,
    alias: &str,
    expect: Option<&str>,
    reason: Option<&str>,
    kind: Option<Kind>,
) -> Result<(), Failure> {
    let (ns, name) = parse_repo(repo)?;
    let alias = parse_alias(alias)?;
    let expect = expect.map(|v| parse_version("--expect", v)).transpose()?;
    let client = ctx.client()?;
    let kind = repo_kind(&client, kind, ns.as_str(), name.as_str()).await?;
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
            reason,
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
#[derive(Debug, Default)]
pub struct GateFlags<'a> {
    /// `benchmark:metric=MIN`.
    pub min: &'a [String],
    /// `benchmark:metric=MAX`.
    pub max: &'a [String],
    /// `benchmark:metric[=MAX_DROP]`.
    pub no_regression: &'a [String],
    pub not_yanked: bool,
    pub validated_against: &'a [String],
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

impl GateFlags<'_> {
    pub fn conditions(&self) -> Result<Vec<GateCondition>, Failure> {
        let mut out = Vec::new();
        for s in self.min {
            let (m, v) = metric_value("--min", s, true)?;
            out.push(GateCondition {
                eval: Some(m),
                min: v,
                ..Default::default()
            });
        }
        for s in self.max {
            let (m, v) = metric_value("--max", s, true)?;
            out.push(GateCondition {
                eval: Some(m),
                max: v,
                ..Default::default()
            });
        }
        for s in self.no_regression {
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
        for b in self.validated_against {
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
pub async fn gate_set(
    ctx: &Ctx,
    repo: &str,
    alias: &str,
    flags: &GateFlags<'_>,
    kind: Option<Kind>,
) -> Result<(), Failure> {
    let (ns, name) = parse_repo(repo)?;
    let alias = parse_alias(alias)?;
    let spec = GateSpec {
        conditions: flags.conditions()?,
    };
    let client = ctx.client()?;
    let kind = repo_kind(&client, kind, ns.as_str(), name.as_str()).await?;
    let g = client
        .set_gate(kind, ns.as_str(), name.as_str(), alias.as_str(), &spec)
        .await?;
    print_gate(ctx, &g)
}

/// `adapterctl gate show NS/NAME ALIAS`.
pub async fn gate_show(
    ctx: &Ctx,
    repo: &str,
    alias: &str,
    kind: Option<Kind>,
) -> Result<(), Failure> {
    let (ns, name) = parse_repo(repo)?;
    let alias = parse_alias(alias)?;
    let client = ctx.client()?;
    let kind = repo_kind(&client, kind, ns.as_str(), name.as_str()).await?;
    let g = client
        .gate(kind, ns.as_str(), name.as_str(), alias.as_str())
        .await?;
    print_gate(ctx, &g)
}

/// `adapterctl gate rm NS/NAME ALIAS`.
pub async fn gate_rm(
    ctx: &Ctx,
    repo: &str,
    alias: &str,
    kind: Option<Kind>,
) -> Result<(), Failure> {
    let (ns, name) = parse_repo(repo)?;
    let alias = parse_alias(alias)?;
    let client = ctx.client()?;
    let kind = repo_kind(&client, kind, ns.as_str(), name.as_str()).await?;
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
