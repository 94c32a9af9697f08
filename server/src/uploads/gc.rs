//! The sweeper: deletes expired upload sessions and their parts, and the staging objects
//! of jobs that ended.

use std::time::Duration;

use uuid::Uuid;

use crate::app::AppState;

/// Sweep now; returns how many sessions were deleted.
pub async fn sweep(app: &AppState) -> anyhow::Result<usize> {
    let mut deleted = 0;
    loop {
        let ids = app.db.expired_sessions(100).await?;
        if ids.is_empty() {
            return Ok(deleted);
        }
        for id in ids {
            let Ok(uuid) = Uuid::parse_str(&id) else {
                app.db.delete_session(&id).await?;
                continue;
            };
            super::delete_session(app, &uuid)
                .await
                .map_err(|e| anyhow::anyhow!("deleting upload {id}: {e}"))?;
            deleted += 1;
        }
    }
}

/// Run [`sweep`] every `interval` until the task is aborted.
pub fn spawn_gc(app: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            match sweep(&app).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sessions = n, "expired upload sessions deleted"),
                Err(e) => tracing::warn!(error = %e, "upload sweep failed"),
            }
            match crate::jobs::blobio::sweep_staging(&app).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "staging objects of ended jobs deleted"),
                Err(e) => tracing::warn!(error = %e, "job staging sweep failed"),
            }
        }
    })
}
