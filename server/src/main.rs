//! `adapter-registry serve | worker | migrate | token | gc | fsck`.

use std::cell::Cell;
use std::time::{Duration, Instant};

use adapter_registry::auth;
use adapter_registry::config::{Cli, Command, Config, HttpLimits, LogFormat, TokenCommand};
use adapter_registry::db::Db;
use adapter_registry::jobs;
use adapter_registry::listen;
use adapter_registry::maintenance;
use adapter_registry::serve;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc: see server/Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` (its `mi_option_e`, pinned by Cargo.lock's libmimalloc-sys).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// The purge delay the server sets, and how often a parking worker collects at most.
const PURGE_DELAY_MS: u64 = 10;

/// How freed memory goes back to the OS. mimalloc purges freed pages `purge_delay` after
/// they were freed, but only when the thread that freed them calls into it again, so what a
/// burst of large requests (hostile headers, big JSON bodies) freed stayed resident while
/// the threads that freed it idled: +78 MiB after the hostile barrage (RELIABILITY.md).
/// Purging at once instead (`purge_delay` 0) made every large buffer of a transfer (the HTTP
/// read buffers, blob chunks) fault its pages in again after each use: +25 % of the server's
/// CPU for a 1 GiB push, +45 % for a pull (BENCHMARKS.md). So the delay is 10 ms (set here:
/// left unset, the peak of the barrage was 40–50 MiB instead of 25–28), and each runtime
/// worker collects as it parks ([`collect_freed_memory`]): what it freed more than the delay
/// ago goes back while it idles. `MIMALLOC_PURGE_DELAY` in the environment still decides
/// when set.
#[allow(unsafe_code)]
fn set_purge_delay() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` stores an integer in mimalloc's option table (an atomic
        // store); it has no preconditions and may be called at any time, from any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _) };
    }
}

/// Run by each runtime worker as it parks (goes idle); see [`set_purge_delay`]. At most once
/// per purge delay per thread: under load a worker parks thousands of times a second, and a
/// collection each time looked to cost 7–19 % of the catalogue's throughput in a
/// `catalog-bench` run.
fn collect_freed_memory() {
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    let due = LAST
        .get()
        .is_none_or(|at| now.duration_since(at) >= Duration::from_millis(PURGE_DELAY_MS));
    if due {
        LAST.set(Some(now));
        collect();
    }
}

#[allow(unsafe_code)]
fn collect() {
    // SAFETY: `mi_collect` collects the calling thread's heap (its own free lists and
    // pages) and purges what is due; it has no preconditions and may be called at any time
    // from any thread that may allocate.
    unsafe { libmimalloc_sys::mi_collect(false) };
}

fn main() -> std::process::ExitCode {
    set_purge_delay();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(collect_freed_memory)
        .build()
        .expect("the async runtime starts")
        .block_on(start())
}

async fn start() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    // A `test-hooks` build reads fail points from FAILPOINTS (a no-op otherwise).
    #[cfg(feature = "test-hooks")]
    let _fail_points = fail::FailScenario::setup();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("adapter-registry: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate(storage) => {
            let config = Config::from_storage_args(&storage, Duration::from_secs(86_400))?;
            Db::connect(&config.database_url, config.db_acquire_timeout).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Token(command) => token(command).await,
        Command::Gc(args) => {
            let config = Config::from_storage_args(&args.storage, Duration::from_secs(86_400))?;
            let state = serve::open(config).await?;
            let r = maintenance::gc::gc(&state, args.grace, args.dry_run).await?;
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                let verb = if r.dry_run { "would delete" } else { "deleted" };
                println!(
                    "gc: {verb} {} blob(s), {} bytes; {} referenced meanwhile (kept); {} expired \
                     upload session(s) and {} ended job(s)' staging purged",
                    r.blobs_deleted,
                    r.bytes_freed,
                    r.blobs_referenced_meanwhile,
                    r.upload_sessions_purged,
                    r.job_staging_purged
                );
            }
            Ok(())
        }
        Command::Fsck(args) => {
            let config = Config::from_storage_args(&args.storage, Duration::from_secs(86_400))?;
            let state = serve::open(config).await?;
            let r = maintenance::fsck::fsck(&state, args.repair).await?;
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                for d in r.damaged_blobs.iter().chain(&r.damaged_versions) {
                    println!("damaged: {}: {}", d.what, d.problem);
                }
                println!(
                    "fsck: {} version(s), {} blob(s) ({} bytes) checked; {} damaged blob(s), {} \
                     damaged version(s); {} marked, {} unmarked",
                    r.versions_checked,
                    r.blobs_checked,
                    r.bytes_hashed,
                    r.damaged_blobs.len(),
                    r.damaged_versions.len(),
                    r.marked,
                    r.unmarked
                );
            }
            if r.is_clean() {
                Ok(())
            } else {
                anyhow::bail!(
                    "damage found{}",
                    if args.repair {
                        " (damaged versions marked)"
                    } else {
                        "; run with --repair to mark the damaged versions"
                    }
                )
            }
        }
        Command::Worker(args) => {
            let mut config = Config::from_storage_args(&args.storage, Duration::from_secs(86_400))?;
            config.jobs = args.jobs.config();
            tracing::info!(?config, workers = args.workers, "starting workers");
            let state = serve::open(config).await?;
            let kinds = jobs::Kinds::standard(&state.config.jobs);
            let mut workers = jobs::spawn_workers(&state, kinds, &state.config.jobs, args.workers);
            println!("running {} job worker(s)", args.workers);
            let metrics = match args.metrics_listen {
                Some(addr) => {
                    let listener = serve::bind(addr)?;
                    println!("metrics on http://{}/metrics", listener.local_addr()?);
                    let app = serve::metrics_router(state.clone());
                    Some(tokio::spawn(async move {
                        let limits = HttpLimits::default();
                        listen::serve(listener, app, limits, std::future::pending()).await
                    }))
                }
                None => None,
            };
            serve::shutdown_signal().await;
            if let Some(m) = metrics {
                m.abort();
            }
            workers.stop();
            Ok(())
        }
        Command::Serve(args) => {
            let mut config =
                Config::from_storage_args(&args.storage, Duration::from_secs(args.upload_ttl))?;
            config.public_read = args.public_read;
            config.public_url = args.public_url.clone();
            config.jobs = args.jobs.config();
            config.http = HttpLimits {
                header_timeout: args.header_timeout,
                body_idle_timeout: args.body_idle_timeout,
            };
            tracing::info!(?config, "starting");
            let state = serve::open(config).await?;
            if let Some((secret, path)) =
                auth::bootstrap_admin(&state.db, &state.config.data_dir).await?
            {
                println!(
                    "created the first admin token (shown once; also in {}): {secret}",
                    path.display()
                );
            }
            let kinds = jobs::Kinds::standard(&state.config.jobs);
            let mut workers = jobs::spawn_workers(&state, kinds, &state.config.jobs, args.workers);
            let listener = serve::bind_and_announce(args.listen).await?;
            let served = serve::serve(state, listener, serve::shutdown_signal()).await;
            workers.stop();
            served
        }
    }
}

/// `adapter-registry token create|list|revoke`, straight on the database.
async fn token(command: TokenCommand) -> anyhow::Result<()> {
    let storage = match &command {
        TokenCommand::Create { storage, .. }
        | TokenCommand::List { storage, .. }
        | TokenCommand::Revoke { storage, .. } => storage,
    };
    let config = Config::from_storage_args(storage, Duration::from_secs(86_400))?;
    let db = Db::connect(&config.database_url, config.db_acquire_timeout).await?;
    let audit = |action: &'static str, target: String| {
        let db = db.clone();
        async move {
            db.append_audit(&adapter_registry::db::audit::NewAudit {
                actor: "adapter-registry token (server command line)",
                action,
                method: "CLI",
                target: &target,
                status: 200,
                outcome: "ok",
                details: None,
            })
            .await
        }
    };
    match command {
        TokenCommand::Create {
            name,
            scope,
            namespaces,
            expires_in_days,
            ..
        } => {
            let scope = scope.parse().map_err(anyhow::Error::msg)?;
            let now = adapter_registry::db::now();
            let req = adapter_core::api::TokenCreate {
                name,
                scope,
                namespaces: (!namespaces.is_empty()).then_some(namespaces),
                expires_at: expires_in_days.map(|d| now + i64::from(d) * 86_400),
            };
            let namespaces = adapter_registry::api::validate_token_request(&req, now)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let (secret, info) = auth::create_token(
                &db,
                &req.name,
                req.scope,
                namespaces.as_deref(),
                req.expires_at,
                "server command line",
            )
            .await?;
            audit("token.create", format!("/v1/tokens/{}", info.id)).await?;
            eprintln!(
                "created {} ({}, scope {}); the secret is shown once:",
                info.id, info.name, info.scope
            );
            println!("{secret}");
        }
        TokenCommand::List { json, .. } => {
            let tokens = db.tokens().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                for t in tokens {
                    let ns = t.namespaces.map_or_else(|| "*".to_owned(), |n| n.join(","));
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!("{}\t{}\t{}\t{}\t{}", t.id, t.name, t.scope, ns, state);
                }
            }
        }
        TokenCommand::Revoke { id, .. } => {
            let Some(info) = db.revoke_token(&id).await? else {
                anyhow::bail!("no token has the id `{}`", id.escape_debug());
            };
            audit("token.revoke", format!("/v1/tokens/{}", info.id)).await?;
            eprintln!("revoked {} ({})", info.id, info.name);
        }
    }
    Ok(())
}
