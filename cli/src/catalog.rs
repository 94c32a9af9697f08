//! `adapterctl ls [NS | NS/NAME] [--kind K]` and `adapterctl show REF`: browsing the catalogue.

use adapter_core::api::{RepositoryInfo, kind_segment};
use adapter_core::manifest::Kind;
use adapter_core::name::Name;
use anyhow::anyhow;
use serde_json::{Value, json};

use crate::Ctx;
use crate::exit::Failure;
use crate::output::{field, group_digits};
use crate::pull::parse_reference;

/// Page size asked of the server.
const PAGE: u32 = 100;

fn kinds(kind: Option<Kind>) -> Vec<Kind> {
    kind.map_or_else(|| vec![Kind::Adapter, Kind::Model], |k| vec![k])
}

pub async fn ls(ctx: &Ctx, what: Option<&str>, kind: Option<Kind>) -> Result<(), Failure> {
    match what {
        Some(w) if w.contains('/') || w.contains('@') => versions(ctx, w, kind).await,
        Some(ns) => {
            let ns = Name::new(ns).map_err(|e| {
                Failure::usage(anyhow!(
                    "`{}` is not a valid namespace: {e}",
                    ns.escape_debug()
                ))
            })?;
            repositories(ctx, Some(ns.as_str()), kind).await
        }
        None => repositories(ctx, None, kind).await,
    }
}

async fn repositories(
    ctx: &Ctx,
    namespace: Option<&str>,
    kind: Option<Kind>,
) -> Result<(), Failure> {
    let client = ctx.client()?;
    let mut all: Vec<RepositoryInfo> = Vec::new();
    for k in kinds(kind) {
        let mut cursor: Option<String> = None;
        loop {
            let page = client
                .list_repositories(k, namespace, None, cursor.as_deref(), Some(PAGE))
                .await
                .map_err(|e| Failure::from(e).context(format!("listing {}", kind_segment(k))))?;
            all.extend(page.repositories);
            match page.next_cursor {
                Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
                _ => break,
            }
        }
    }
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
        "{:<7}  {:<width$}  {:>8}  LATEST",
        "KIND", "REPOSITORY", "VERSIONS"
    );
    for r in &all {
        println!(
            "{:<7}  {:<width$}  {:>8}  {}",
            r.kind.as_str(),
            format!("{}/{}", r.namespace, r.name),
            r.version_count,
            r.latest.as_deref().unwrap_or("-")
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

pub async fn show(ctx: &Ctx, reference: &str, kind: Option<Kind>) -> Result<(), Failure> {
    let r = parse_reference(reference)?;
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
    if ctx.json {
        println!("{}", serde_json::to_string(&info).expect("serialises"));
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
    print_object("summary", &info.summary);
    Ok(())
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
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
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
