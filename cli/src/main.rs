//! `adapterctl`: the registry's client.
//!
//! Exit codes scripts can rely on:
//! * 0 — success (warnings may have been printed);
//! * 1 — the thing inspected has errors (it was read, and it is wrong);
//! * 2 — usage error (bad flags or arguments);
//! * 3 — the input could not be read at all (missing directory, unreadable or malformed files).

mod exit;
mod inspect;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Push, pull and inspect LoRA adapters and base models.
#[derive(Debug, Parser)]
#[command(name = "adapterctl", version, about, propagate_version = true)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect a PEFT adapter or a model directory offline: summary and every problem found.
    Inspect {
        /// An adapter directory (adapter_config.json + adapter_model.safetensors) or a model
        /// directory (config.json + model.safetensors or a sharded index).
        dir: PathBuf,
        /// Also check the adapter against this base model directory (headers only).
        #[arg(long, value_name = "BASE_DIR")]
        base_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Inspect { dir, base_dir } => inspect::run(dir, base_dir.as_deref(), cli.json),
    };
    match result {
        Ok(code) => code,
        Err(failure) => failure.report(cli.json),
    }
}
