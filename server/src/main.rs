//! `adapter-registry serve | migrate`.

use std::time::Duration;

use adapter_registry::app::AppState;
use adapter_registry::config::{Cli, Command, Config};
use adapter_registry::db::Db;
use adapter_registry::serve;
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
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
            Db::connect(&config.database_url).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve(args) => {
            let config =
                Config::from_storage_args(&args.storage, Duration::from_secs(args.upload_ttl))?;
            tracing::info!(?config, "starting");
            let state = AppState::new(config).await?;
            let listener = serve::bind_and_announce(args.listen).await?;
            serve::serve(state, listener, serve::shutdown_signal()).await
        }
    }
}
