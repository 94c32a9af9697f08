//! `adapterctl login` (check a token, then keep URL + token in the config file, mode 0600)
//! and `adapterctl whoami`.

use std::io::BufRead as _;

use anyhow::anyhow;
use serde_json::json;

use crate::Ctx;
use crate::config::{self, FileConfig};
use crate::exit::Failure;
use crate::output::field;

/// Arguments of `adapterctl login`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read the token from the first line of standard input instead of --token.
    #[arg(long)]
    token_stdin: bool,
}

pub async fn login(ctx: &Ctx, args: &Args) -> Result<(), Failure> {
    let mut ctx_token = ctx.connection.token.clone();
    if args.token_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::unreadable(anyhow!("reading the token from stdin: {e}")))?;
        ctx_token = Some(line.trim().to_owned());
    }
    let token = ctx_token.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        Failure::usage(anyhow!(
            "no token: pass --token, set ADAPTERCTL_TOKEN, or use --token-stdin"
        ))
    })?;
    let path = ctx
        .dirs
        .config_file()
        .ok_or_else(|| Failure::usage(anyhow!("no config directory: HOME is not set")))?;
    // A malformed config file is reported, not silently replaced.
    config::read_file(&path).map_err(Failure::usage)?;
    let client = ctx.with_token(token.clone()).client()?;
    // Only a token the registry accepts is saved.
    let me = client
        .whoami()
        .await
        .map_err(|e| Failure::from(e).context("checking the token"))?;
    let file = FileConfig {
        url: Some(client.base().as_str().trim_end_matches('/').to_owned()),
        token: Some(token),
    };
    config::write_file(&path, &file).map_err(Failure::unreadable)?;
    if ctx.json {
        println!(
            "{}",
            json!({"url": file.url, "actor": me.actor, "config": path, "token": me.token})
        );
    } else {
        println!("logged in to {} as {}", client.base(), me.actor);
        field("config", path.display());
    }
    Ok(())
}

pub async fn whoami(ctx: &Ctx) -> Result<(), Failure> {
    let client = ctx.client()?;
    let me = client.whoami().await.map_err(Failure::from)?;
    if ctx.json {
        println!("{}", serde_json::to_string(&me).unwrap_or_default());
        return Ok(());
    }
    println!("{} at {}", me.actor, client.base());
    if let Some(t) = &me.token {
        field("scope", t.scope);
        let ns = t
            .namespaces
            .as_ref()
            .map_or_else(|| "all".to_owned(), |n| n.join(", "));
        field("namespaces", ns);
        if let Some(at) = t.expires_at {
            field("expires at", at);
        }
    }
    field("public read", me.public_read);
    Ok(())
}
