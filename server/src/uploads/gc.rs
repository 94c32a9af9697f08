//! Expired upload sessions: deleted with their parts (run periodically by `serve`).

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
