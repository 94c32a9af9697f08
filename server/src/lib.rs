//! `adapter-registry`: the registry server (HTTP API, metadata store, blob store, jobs).
//! Map of the code: docs/ARCHITECTURE.md; the contract: docs/API.md.
//!
//! Three floors; a module imports only modules below it:
//! * top: `serve` (puts it together), then `api` (`/v1`), `hf` (the Hugging Face Hub
//!   protocol under `/hf`) and `ui` (pages);
//! * middle, lowest first: `catalog` (every read), `auth`, `uploads`, `publish`, `jobs`,
//!   `maintenance` (gc, fsck);
//! * bottom: `app` (handles), `config`, `db`, `blobs`, `error`, `extract`, `range`,
//!   `download`, `gates`, `metrics`.

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
pub mod maintenance;
pub mod metrics;
pub mod publish;
pub mod range;
pub mod serve;
pub mod ui;
pub mod uploads;
