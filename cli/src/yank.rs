//! `adapterctl yank NS/NAME@VERSION --reason TEXT` and `adapterctl unyank NS/NAME@VERSION`.
//! Only an exact version (or a manifest digest, resolved first) is accepted: a range or an
//! alias could yank something other than what the user looked at.

use adapter_core::api::{YankRequest, YankState, kind_segment};
use adapter_core::manifest::Kind;
use adapter_core::reference::Selector;
use anyhow::anyhow;
use reqwest::Method;

use crate::client::{self, Client};
use crate::exit::Failure;
use crate::pull::parse_reference;
use crate::{Ctx, KindFlag};

impl Client {
    /// `POST …/versions/{version}/yank` (`Some(reason)`) or `DELETE …/yank` (`None`).
    pub async fn set_yank(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        version: &str,
        reason: Option<&str>,
    ) -> client::Result<YankState> {
        let url = self.url(&[
            "v1",
            kind_segment(kind),
            ns,
            name,
            "versions",
            version,
            "yank",
        ]);
        let rb = match reason {
            Some(r) => self.request(Method::POST, url).json(&YankRequest {
                reason: r.to_owned(),
            }),
            None => self.request(Method::DELETE, url),
        };
        self.json(rb).await
    }
}

/// Arguments of `adapterctl yank`.
#[derive(Debug, clap::Args)]
pub struct YankArgs {
    /// `namespace/name@version` (or `@sha256:…`).
    reference: String,
    /// Why (required; shown to everyone who pulls it).
    #[arg(long, value_name = "TEXT")]
    reason: String,
    #[command(flatten)]
    kind: KindFlag,
}

/// Arguments of `adapterctl unyank`.
#[derive(Debug, clap::Args)]
pub struct UnyankArgs {
    /// `namespace/name@version` (or `@sha256:…`).
    reference: String,
    #[command(flatten)]
    kind: KindFlag,
}

pub async fn yank(ctx: &Ctx, args: &YankArgs) -> Result<(), Failure> {
    set(ctx, &args.reference, Some(&args.reason), args.kind.get()).await
}

pub async fn unyank(ctx: &Ctx, args: &UnyankArgs) -> Result<(), Failure> {
    set(ctx, &args.reference, None, args.kind.get()).await
}

/// Yank (`Some(reason)`) or un-yank (`None`) the version `reference` names.
async fn set(
    ctx: &Ctx,
    reference: &str,
    reason: Option<&str>,
    kind: Option<Kind>,
) -> Result<(), Failure> {
    let r = parse_reference(reference)?;
    match &r.selector {
        Some(Selector::Version(_) | Selector::Digest(_)) => {}
        _ => {
            return Err(Failure::usage(anyhow!(
                "`{reference}`: name one version exactly (NS/NAME@VERSION or @sha256:…)"
            )));
        }
    }
    if reason.is_some_and(|r| r.trim().is_empty()) {
        return Err(Failure::usage(anyhow!("--reason must not be empty")));
    }
    let client = ctx.client()?;
    let (ns, name) = (r.namespace.as_str(), r.name.as_str());
    let kinds = kind.map_or_else(|| vec![Kind::Adapter, Kind::Model], |k| vec![k]);
    let (kind, resolved) = client
        .resolve_in(&kinds, ns, name, r.selector.as_ref())
        .await
        .map_err(|e| Failure::from(e).context(format!("resolving {r}")))?;
    let state = client
        .set_yank(kind, ns, name, &resolved.version, reason)
        .await
        .map_err(|e| {
            Failure::from(e).context(format!("{}@{}", r.repository(), resolved.version))
        })?;
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string(&state).map_err(anyhow::Error::from)?
        );
    } else if state.yanked {
        println!(
            "{}@{} yanked: {}",
            r.repository(),
            state.version,
            state.yank_reason.as_deref().unwrap_or("")
        );
    } else {
        println!("{}@{} is not yanked", r.repository(), state.version);
    }
    Ok(())
}
