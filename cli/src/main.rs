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
    /// Print machine-readable JSON (one object on stdout) instead of text.
    #[arg(long, global = true)]
    json: bool,

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

    #[command(subcommand)]
    command: Command,
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

#[derive(Debug, Subcommand)]
enum Command {
    /// Check an adapter against a base model on the registry (a `validate` job: headers and
    /// configs only); with --wait, print the verdict (exit 11 when incompatible).
    Validate {
        /// The adapter: `ns/name[@selector]`.
        adapter: String,
        /// The base model: `ns/name[@selector]`.
        #[arg(long, value_name = "MODEL_REF")]
        base: String,
        /// Wait for the verdict (a progress bar on a terminal) and print it.
        #[arg(long)]
        wait: bool,
    },
    /// Merge an adapter into its base as PEFT's merge_and_unload would (streaming, sharded):
    /// a job on the registry (`--as NS/NAME@VERSION`) or offline (`--local`).
    Merge(merge::MergeArgs),
    /// Jobs on the registry: ls, show, logs, cancel, watch.
    Jobs {
        #[command(subcommand)]
        command: jobs::JobsCommand,
    },
    /// Quantise a model: GGUF (q8_0, q4_0, q4_k, q6_k) or bitsandbytes NF4, as a job on the
    /// registry (`--as NS/NAME@VERSION`) or offline (`--local MODEL_DIR -o OUT`).
    #[command(visible_alias = "quantize")]
    Quantise(quantise::QuantiseArgs),
    /// Inspect a PEFT adapter or a model directory offline: summary and every problem found.
    Inspect {
        /// An adapter directory (adapter_config.json + adapter_model.safetensors) or a model
        /// directory (config.json + model.safetensors or a sharded index).
        dir: PathBuf,
        /// Also check the adapter against this base model directory (headers only).
        #[arg(long, value_name = "BASE_DIR")]
        base_dir: Option<PathBuf>,
    },
    /// Validate a directory, upload the blobs the registry lacks, publish a version.
    Push {
        /// An adapter directory (adapter_config.json) or a model directory (config.json,
        /// model.safetensors or its index). Every regular top-level file except dotfiles is pushed.
        dir: PathBuf,
        /// Repository: `namespace/name`.
        #[arg(long, value_name = "NS/NAME")]
        name: String,
        /// Semver version to publish (immutable once published).
        #[arg(long = "version", value_name = "VERSION")]
        version: String,
        /// Adapters: the registered base model (`ns/name[@selector]`); its content digest and
        /// shape fingerprint are recorded.
        #[arg(long, value_name = "REF", conflicts_with = "base_dir")]
        base: Option<String>,
        /// Adapters: a local base model directory; checked against the adapter, its content
        /// digest and shape fingerprint are recorded.
        #[arg(long, value_name = "DIR")]
        base_dir: Option<PathBuf>,
        /// Models: upload everything but the *.safetensors weights, whose headers, sizes and
        /// digests are recorded instead.
        #[arg(long)]
        headers_only: bool,
        /// After publishing, record an eval result `BENCHMARK:METRIC=VALUE` (repeatable;
        /// results the version already has, identical, are not recorded again).
        #[arg(long = "eval", value_name = "BENCH:METRIC=VALUE", value_parser = evals::parse_eval)]
        evals: Vec<adapter_core::api::EvalInput>,
        /// A label `KEY=VALUE` stored in the manifest's `metadata.labels` (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = labels::parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Download a version, verify every byte, and place it atomically in a directory.
    Pull {
        /// `namespace/name[@selector]`: a version, a range (`^1.2`), an alias or `sha256:…`.
        reference: String,
        /// Destination directory.
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        output: PathBuf,
        /// Record the pulled version in this lock file (TOML; created or updated).
        #[arg(long, value_name = "FILE")]
        lock: Option<PathBuf>,
        /// Pull exactly the manifest digest this lock file records for the repository.
        #[arg(long, value_name = "FILE")]
        locked: Option<PathBuf>,
        /// Replace a destination that holds other files.
        #[arg(long)]
        force: bool,
        /// Look only in adapters or models (default: adapters, then models).
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Search repositories (all, one namespace, or by filters), or list the versions of
    /// `ns/name`.
    Ls {
        /// A namespace, or `namespace/name` to list its versions.
        what: Option<String>,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        #[command(flatten)]
        filters: catalog::Filters,
    },
    /// Check a token against the registry and keep URL + token in the config file (0600).
    Login {
        /// Read the token from the first line of standard input instead of --token.
        #[arg(long)]
        token_stdin: bool,
    },
    /// Who the registry takes you for: token name, scope, namespaces.
    Whoami,
    /// Record or list eval results of a version.
    Eval {
        #[command(subcommand)]
        command: evals::EvalCommand,
    },
    /// Compare two versions: config, rank/alpha/targets, tensors (headers only) and eval
    /// deltas, flagging catastrophic forgetting on general benchmarks.
    Diff(diff::DiffArgs),
    /// Show one version: manifest, metadata, the registry's summary and lineage.
    Show {
        /// `namespace/name[@selector]` (default: the latest version).
        reference: String,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Point an alias at a version, compare-and-swap (exit 9 if it moved meanwhile, 10 if
    /// its gate refuses).
    Tag {
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
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// List, trace or remove aliases.
    Alias {
        #[command(subcommand)]
        command: AliasCommand,
    },
    /// Set, show or remove the conditions an alias move must pass.
    Gate {
        #[command(subcommand)]
        command: GateCommand,
    },
    /// Yank a version: ranges and "latest" skip it; exact pins still pull, with a warning.
    Yank {
        /// `namespace/name@version` (or `@sha256:…`).
        reference: String,
        /// Why (required; shown to everyone who pulls it).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Un-yank a version.
    Unyank {
        /// `namespace/name@version` (or `@sha256:…`).
        reference: String,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
}

#[derive(Debug, Subcommand)]
enum AliasCommand {
    /// The aliases of a repository and where they point.
    Ls {
        /// `namespace/name`.
        repository: String,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Every move of an alias: when, who, from, to, why.
    History {
        /// `namespace/name`.
        repository: String,
        alias: String,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Delete an alias, compare-and-swap.
    Rm {
        /// `namespace/name`.
        repository: String,
        alias: String,
        /// The version it must point to now [default: read just before].
        #[arg(long, value_name = "VERSION")]
        expect: Option<String>,
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
}

#[derive(Debug, Subcommand)]
enum GateCommand {
    /// Replace the gate of an alias with these conditions (all must pass).
    Set {
        /// `namespace/name`.
        repository: String,
        alias: String,
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
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Show the gate of an alias.
    Show {
        /// `namespace/name`.
        repository: String,
        alias: String,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Remove the gate of an alias.
    Rm {
        /// `namespace/name`.
        repository: String,
        alias: String,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
}

/// What every networked command needs.
#[derive(Debug)]
pub struct Ctx {
    pub json: bool,
    url: Option<String>,
    token: Option<String>,
    dirs: Dirs,
    pub cache_dir: Option<PathBuf>,
    client: OnceLock<Client>,
}

impl Ctx {
    /// The same settings without the built client (to build another one).
    fn detached(&self) -> Self {
        Self {
            json: self.json,
            url: self.url.clone(),
            token: self.token.clone(),
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
        let settings = config::resolve(self.url.as_deref(), self.token.as_deref(), &file)
            .map_err(Failure::usage)?;
        let client = Client::new(&settings).map_err(Failure::usage)?;
        Ok(self.client.get_or_init(|| client).clone())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let dirs = Dirs::from_env();
    let ctx = Ctx {
        json: cli.json,
        url: cli.url.clone(),
        token: cli.token.clone(),
        cache_dir: dirs.cache_dir(),
        dirs,
        client: OnceLock::new(),
    };
    let result = match &cli.command {
        Command::Inspect { dir, base_dir } => inspect::run(dir, base_dir.as_deref(), cli.json),
        Command::Diff(args) => diff::run(&ctx, args),
        Command::Quantise(args) => quantise::run(&ctx, args),
        Command::Merge(args) => merge::run(&ctx, args),
        command => run_networked(&ctx, command).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(failure) => failure.report(cli.json),
    }
}

/// The async runtime networked commands run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::unreadable(anyhow::anyhow!("starting the async runtime: {e}")))
}

fn run_networked(ctx: &Ctx, command: &Command) -> Result<(), Failure> {
    runtime()?.block_on(async {
        match command {
            Command::Inspect { .. } => unreachable!("inspect runs offline"),
            Command::Diff(_) => unreachable!("diff returns its own exit code"),
            Command::Quantise(_) => unreachable!("quantise runs its own runtime"),
            Command::Merge(_) => unreachable!("merge runs its own runtime"),
            Command::Push {
                dir,
                name,
                version,
                base,
                base_dir,
                headers_only,
                evals,
                labels,
            } => {
                push::run(
                    ctx,
                    push::Args {
                        dir,
                        name,
                        version,
                        base: base.as_deref(),
                        base_dir: base_dir.as_deref(),
                        headers_only: *headers_only,
                        evals,
                        labels,
                    },
                )
                .await
            }
            Command::Pull {
                reference,
                output,
                lock,
                locked,
                force,
                kind,
            } => {
                pull::run(
                    ctx,
                    pull::Args {
                        reference,
                        out: output,
                        lock: lock.as_deref(),
                        locked: locked.as_deref(),
                        force: *force,
                        kind: kind.map(Into::into),
                    },
                )
                .await
            }
            Command::Login { token_stdin } => login::login(ctx, *token_stdin).await,
            Command::Whoami => login::whoami(ctx).await,
            Command::Eval { command } => evals::run(ctx, command).await,
            Command::Ls {
                what,
                kind,
                filters,
            } => catalog::ls(ctx, what.as_deref(), kind.map(Into::into), filters).await,
            Command::Show { reference, kind } => {
                catalog::show(ctx, reference, kind.map(Into::into)).await
            }
            Command::Tag {
                reference,
                alias,
                expect,
                reason,
                kind,
            } => {
                alias::tag(
                    ctx,
                    alias::TagArgs {
                        reference,
                        alias,
                        expect: expect.as_deref(),
                        reason: reason.as_deref(),
                        kind: kind.map(Into::into),
                    },
                )
                .await
            }
            Command::Alias { command } => run_alias(ctx, command).await,
            Command::Validate {
                adapter,
                base,
                wait,
            } => validate::run(ctx, adapter, base, *wait).await,
            Command::Jobs { command } => jobs::run(ctx, command).await,
            Command::Gate { command } => run_gate(ctx, command).await,
            Command::Yank {
                reference,
                reason,
                kind,
            } => yank::run(ctx, reference, Some(reason), kind.map(Into::into)).await,
            Command::Unyank { reference, kind } => {
                yank::run(ctx, reference, None, kind.map(Into::into)).await
            }
        }
    })
}

async fn run_alias(ctx: &Ctx, command: &AliasCommand) -> Result<(), Failure> {
    match command {
        AliasCommand::Ls { repository, kind } => {
            alias::ls(ctx, repository, kind.map(Into::into)).await
        }
        AliasCommand::History {
            repository,
            alias,
            kind,
        } => alias::history(ctx, repository, alias, kind.map(Into::into)).await,
        AliasCommand::Rm {
            repository,
            alias,
            expect,
            reason,
            kind,
        } => {
            alias::rm(
                ctx,
                repository,
                alias,
                expect.as_deref(),
                reason.as_deref(),
                kind.map(Into::into),
            )
            .await
        }
    }
}

async fn run_gate(ctx: &Ctx, command: &GateCommand) -> Result<(), Failure> {
    match command {
        GateCommand::Set {
            repository,
            alias,
            min,
            max,
            no_regression,
            not_yanked,
            validated_against,
            kind,
        } => {
            let flags = alias::GateFlags {
                min,
                max,
                no_regression,
                not_yanked: *not_yanked,
                validated_against,
            };
            alias::gate_set(ctx, repository, alias, &flags, kind.map(Into::into)).await
        }
        GateCommand::Show {
            repository,
            alias,
            kind,
        } => alias::gate_show(ctx, repository, alias, kind.map(Into::into)).await,
        GateCommand::Rm {
            repository,
            alias,
            kind,
        } => alias::gate_rm(ctx, repository, alias, kind.map(Into::into)).await,
    }
}
