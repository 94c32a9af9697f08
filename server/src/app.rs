//! The application state: one handle (`AppState(Arc<App>)`) holding the configuration, the
//! database, the blob store and the process's metrics, and nothing else. Tests build the same `App` over temp
//! storage. Bottom floor: imports only `config`, `db`, `blobs` and `metrics`; start-up work (the facts
//! backfill) is `serve::open`.

use std::ops::Deref;
use std::sync::Arc;

use crate::blobs::BlobStore;
use crate::config::Config;
use crate::db::Db;
use crate::metrics::Metrics;

/// Everything a request needs.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub db: Db,
    pub blobs: BlobStore,
    /// What this process observed, for `/metrics`.
    pub metrics: Metrics,
}

/// The cheap-to-clone handle given to handlers.
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

impl AppState {
    /// Connect and migrate the database, open the blob store.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let db = Db::connect(&config.database_url, config.db_acquire_timeout).await?;
        let blobs = BlobStore::build(&config.blob_store)?;
        Ok(Self(Arc::new(App {
            config,
            db,
            blobs,
            metrics: Metrics::new(),
        })))
    }
}
