//! `adapter-registry`: the registry server.
//!
//! This binary is the home of `serve`, `migrate` and `worker` (see docs/ARCHITECTURE.md and
//! the open issues). Today it only identifies itself: the HTTP API arrives with the
//! "registry slice" issue, and the format core it will use is `adapter-core`.

use clap::Parser;

/// The adapter registry server.
#[derive(Debug, Parser)]
#[command(name = "adapter-registry", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "adapter-registry {}: the server commands (serve, migrate, worker) are not built yet; \
         use `adapterctl inspect` meanwhile",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
