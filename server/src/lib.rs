//! `adapter-registry`: the registry server (HTTP API, metadata store, blob store, jobs).
//! Map of the code: docs/ARCHITECTURE.md; the contract: docs/API.md.
//!
//! Three floors; a module imports only modules below it:
//! * top: `serve` (puts it together), then `api` (`/v1`), `hf` (the Hugging Face Hub
//!   protocol under `/hf`) and `ui` (pages);
//! * middle, lowest first: `catalog` (every read), `auth`, `uploads`, `publish`, `jobs`,
//!   `maintenance` (gc, fsck);
//! * bottom: `app` (handles), `config`, `db`, `blobs`, `error`, `extract`, `range`,
//!   `download`, `gates`, `metrics`, `listen` (the HTTP server loop and its timeouts).

#![forbid(unsafe_code)]

/// A named point where a `test-hooks` build can be made to die at once, as a `SIGKILL`
/// would kill it (`FAILPOINTS=<name>=return`): between a write and its acknowledgement.
/// server/tests/crash_points.rs arms each one and checks what a restart finds. Compiled
/// away in other builds. The points: `blob.after_store` (bytes durable, no row yet),
/// `blob.after_record` (row committed, no answer), `upload.after_assemble`,
/// `publish.after_commit`, `alias.after_commit`, `job.before_outcome` (the job's work
/// done, its outcome not written).
#[macro_export]
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "test-hooks")]
        {
            let _: Option<()> = fail::eval($name, |_| {
                eprintln!("crash point {}: exiting", $name);
                std::process::exit(137)
            });
        }
    };
}

pub mod api;
pub mod app;
pub mod auth;
pub mod blobs;
pub mod catalog;
pub mod config;
pub mod db;
pub mod download;
pub mod error;
pub mod extract;
pub mod gates;
pub mod hf;
pub mod jobs;
pub mod listen;
pub mod maintenance;
pub mod metrics;
pub mod publish;
pub mod range;
pub mod serve;
pub mod ui;
pub mod uploads;
