//! `adapterctl`: the registry's client.
//!
//! Exit codes scripts can rely on:
//! * 0 — success (warnings may have been printed; an idempotent re-publish is a success);
//! * 1 — the thing inspected or pushed has errors (it was read, and it is wrong), or the
//!   registry refused it as invalid (422);
//! * 2 — usage error: bad flags or arguments, an invalid reference, name or version, a
//!   malformed config file, a repository missing from the `--locked` file;
//! * 3 — local input could not be read or written (missing directory, unreadable or
//!   malformed files);
//! * 4 — the registry could not be reached, failed (5xx) or refused the request otherwise;
//! * 5 — conflict: the version exists with other content (409 `version_exists`), or `pull`'s
//!   destination holds other files (use `--force`);
//! * 6 — not found: repository, version, selector match or blob;
//! * 7 — verification failed: a file's size or digest differs from its manifest, or the
//!   registry's manifest for a locked version differs from the lock file;
//! * 8 — the registry refused the credentials (401/403);
//! * 9 — an alias moved meanwhile: the expected version is stale (412 `alias_conflict`);
//!   read the current target and decide again;
//! * 10 — an alias gate refused the move (409 `gate_failed`): every failing condition is
//!   listed;
//! * 11 — `validate --wait`, `merge --local`: the adapter is incompatible with the base (the verdict and its
//!   reasons are printed);
//! * 12 — a waited-for job (`validate`, `merge`, `quantise --wait`; `jobs watch`) ended `failed` or `cancelled`.
//!
//! `diff --fail-on-forgetting` exits with 1 when it flags catastrophic forgetting (the diff
//! is printed as usual).
//!
//! Registry errors print as one line, `error: <message> (<code>)`; with `--json`, as one
//! object `{"error": {"code", "message", "details"}}` on stdout.

#![forbid(unsafe_code)]

mod alias;
mod cache;
mod catalog;
mod catalog_client;
mod client;
mod config;
mod diff;
mod evals;
mod exit;
mod fsutil;
mod inspect;
mod jobs;
mod labels;
mod lock;
mod login;
mod merge;
mod output;
mod progress;
mod pull;
mod push;
mod quantise;
mod upload;
mod validate;
mod yank;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use adapter_core::manifest::Kind;
use clap::{Parser, Subcommand, ValueEnum};

use crate::client::Client;
use crate::config::Dirs;
use crate::exit::Failure;

/// Push, pull and inspect LoRA adapters and base models.
#[derive(Debug, Parser)]
#[command(name = "adapterctl", version, about)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: Command,
}

/// Options every command takes, before or after its name.
#[derive(Debug, clap::Args)]
struct GlobalArgs {
    /// Print machine-readable JSON (one object on stdout) instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(flatten)]
    connection: Connection,
}

/// The registry and the credentials for it, as given by flags or environment (the config file
/// fills in what is missing when the client is built).
#[derive(Clone, clap::Args)]
struct Connection {
    /// Registry URL [default: config file `url`, else http://127.0.0.1:8080].
    #[arg(long, global = true, env = "ADAPTERCTL_URL", value_name = "URL")]
    url: Option<String>,

    /// Bearer token for the registry [default: config file `token`].
    #[arg(
        long,
        global = true,
        env = "ADAPTERCTL_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Adapter,
    Model,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Adapter => Kind::Adapter,
            KindArg::Model => Kind::Model,
        }
    }
}

/// `--kind adapter|model`, for the commands that name a repository of either kind.
#[derive(Debug, Clone, Copy, clap::Args)]
struct KindFlag {
    #[arg(long, value_enum)]
    kind: Option<KindArg>,
}

impl KindFlag {
    fn get(self) -> Option<Kind> {
        self.kind.map(Kind::from)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check an adapter against a base model on the registry (a `validate` job: headers and
    /// configs only); with --wait, print the verdict (exit 11 when incompatible).
    Validate(validate::Args),
    /// Merge an adapter into its base as PEFT's merge_and_unload would (streaming, sharded):
    /// a job on the registry (`--as NS/NAME@VERSION`) or offline (`--local`).
    Merge(merge::MergeArgs),
    /// Jobs on the registry: ls, show, logs, cancel, watch.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Quantise a model: GGUF (q8_0, q4_0, q4_k, q6_k) or bitsandbytes NF4, as a job on the
    /// registry (`--as NS/NAME@VERSION`) or offline (`--local MODEL_DIR -o OUT`).
    #[command(visible_alias = "quantize")]
    Quantise(quantise::QuantiseArgs),
    /// Inspect a PEFT adapter or a model directory offline: summary and every problem found.
    Inspect(inspect::Args),
    /// Validate a directory, upload the blobs the registry lacks, publish a version.
    Push(push::Args),
    /// Download a version, verify every byte, and place it atomically in a directory.
    Pull(pull::Args),
    /// Search repositories (all, one namespace, or by filters), or list the versions of
    /// `ns/name`.
    Ls(catalog::LsArgs),
    /// Check a token against the registry and keep URL + token in the config file (0600).
    Login(login::Args),
    /// Who the registry takes you for: token name, scope, namespaces.
    Whoami,
    /// Record or list eval results of a version.
    #[command(subcommand)]
    Eval(evals::EvalCommand),
    /// Compare two versions: config, rank/alpha/targets, tensors (headers only) and eval
    /// deltas, flagging catastrophic forgetting on general benchmarks.
    Diff(diff::DiffArgs),
    /// Show one version: manifest, metadata, the registry's summary and lineage.
    Show(catalog::ShowArgs),
    /// Point an alias at a version, compare-and-swap (exit 9 if it moved meanwhile, 10 if
    /// its gate refuses).
    Tag(alias::TagArgs),
    /// List, trace or remove aliases.
    #[command(subcommand)]
    Alias(alias::AliasCommand),
    /// Set, show or remove the conditions an alias move must pass.
    #[command(subcommand)]
    Gate(alias::GateCommand),
    /// Yank a version: ranges and "latest" skip it; exact pins still pull, with a warning.
    Yank(yank::YankArgs),
    /// Un-yank a version.
    Unyank(yank::UnyankArgs),
}

/// What every networked command needs.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub json: bool,
    connection: Connection,
    dirs: Dirs,
    pub cache_dir: Option<PathBuf>,
    client: OnceLock<Client>,
}

impl Ctx {
    fn new(global: GlobalArgs) -> Self {
        let dirs = Dirs::from_env();
        Self {
            json: global.json,
            connection: global.connection,
            cache_dir: dirs.cache_dir(),
            dirs,
            client: OnceLock::new(),
        }
    }

    /// The same settings with another token, and no client built yet.
    fn with_token(&self, token: String) -> Self {
        Self {
            json: self.json,
            connection: Connection {
                token: Some(token),
                ..self.connection.clone()
            },
            dirs: self.dirs.clone(),
            cache_dir: self.cache_dir.clone(),
            client: OnceLock::new(),
        }
    }

    /// The registry client (flags > env > config file > default), built on first use.
    pub fn client(&self) -> Result<Client, Failure> {
        if let Some(c) = self.client.get() {
            return Ok(c.clone());
        }
        let file = match self.dirs.config_file() {
            Some(path) => config::read_file(&path).map_err(Failure::usage)?,
            None => config::FileConfig::default(),
        };
        let Connection { url, token } = &self.connection;
        let settings =
            config::resolve(url.as_deref(), token.as_deref(), &file).map_err(Failure::usage)?;
        let client = Client::new(&settings).map_err(Failure::usage)?;
        Ok(self.client.get_or_init(|| client).clone())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx::new(cli.global);
    let result = match &cli.command {
        Command::Inspect(args) => inspect::run(args, ctx.json),
        Command::Diff(args) => diff::run(&ctx, args),
        Command::Quantise(args) => quantise::run(&ctx, args),
        Command::Merge(args) => merge::run(&ctx, args),
        Command::Validate(args) => block_on(validate::run(&ctx, args)),
        Command::Jobs(command) => block_on(jobs::run(&ctx, command)),
        Command::Push(args) => block_on(push::run(&ctx, args)),
        Command::Pull(args) => block_on(pull::run(&ctx, args)),
        Command::Ls(args) => block_on(catalog::ls(&ctx, args)),
        Command::Show(args) => block_on(catalog::show(&ctx, args)),
        Command::Login(args) => block_on(login::login(&ctx, args)),
        Command::Whoami => block_on(login::whoami(&ctx)),
        Command::Eval(command) => block_on(evals::run(&ctx, command)),
        Command::Tag(args) => block_on(alias::tag(&ctx, args)),
        Command::Alias(command) => block_on(alias::run_alias(&ctx, command)),
        Command::Gate(command) => block_on(alias::run_gate(&ctx, command)),
        Command::Yank(args) => block_on(yank::yank(&ctx, args)),
        Command::Unyank(args) => block_on(yank::unyank(&ctx, args)),
    };
    match result {
        Ok(code) => code,
        Err(failure) => failure.report(ctx.json),
    }
}

/// The async runtime networked commands run on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::unreadable(anyhow::anyhow!("starting the async runtime: {e}")))
}

/// Run a networked command to its end: success is exit 0.
fn block_on(command: impl Future<Output = Result<(), Failure>>) -> Result<ExitCode, Failure> {
    runtime()?.block_on(command)?;
    Ok(ExitCode::SUCCESS)
}
