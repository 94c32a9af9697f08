//! `adapter-registry`: the registry server (HTTP API, metadata store, blob store).
//! Map of the code: docs/ARCHITECTURE.md; the contract: docs/API.md.

pub mod api;
pub mod app;
pub mod auth;
pub mod blobs;
pub mod config;
pub mod db;
pub mod error;
pub mod gates;
pub mod jobs;
pub mod publish;
pub mod serve;
pub mod ui;
pub mod uploads;
