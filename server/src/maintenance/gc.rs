//! `adapter-registry gc`: online mark-and-sweep of blobs. A blob goes when no version
//! references it (its files, or a headers-only model's header blobs) and it is older than the
//! grace period and than the oldest running job (whose outputs are not published yet);
//! expired upload sessions (with their parts) and the staging objects of ended jobs go too.
//! Safe while servers run and publish: see [`crate::db::Db::delete_unreferenced_blob`].

use std::time::Duration;

use serde::Serialize;

use crate::app::AppState;
use crate::blobs::blob_key;
use crate::db::now;
use crate::{jobs, uploads};

/// Blobs listed per query.
const PAGE: i64 = 500;

/// What a gc run did (or, with `dry_run`, would do).
#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// Blobs created before this (unix seconds) were candidates.
    pub cutoff: i64,
    pub blobs_deleted: u64,
    pub bytes_freed: u64,
    /// Candidates a publish referenced before they could be deleted (kept).
    pub blobs_referenced_meanwhile: u64,
    pub upload_sessions_purged: usize,
    pub job_staging_purged: usize,
}

/// Run gc with `grace`; `dry_run` only counts.
pub async fn gc(app: &AppState, grace: Duration, dry_run: bool) -> anyhow::Result<GcReport> {
    let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    let mut cutoff = now().saturating_sub(grace);
    if let Some(started) = app.db.oldest_running_job_start().await? {
        cutoff = cutoff.min(started);
    }
    let mut report = GcReport {
        dry_run,
        cutoff,
        ..GcReport::default()
    };
    let mut after = String::new();
    loop {
        let page = app.db.unreferenced_blobs(cutoff, &after, PAGE).await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = last.to_string();
        for (digest, size) in page {
            if dry_run {
                report.blobs_deleted += 1;
                report.bytes_freed += size;
                continue;
            }
            let key = blob_key(&digest);
            let deleted = app
                .db
                .delete_unreferenced_blob(&digest, || app.blobs.delete(&key))
                .await?;
            match deleted {
                Ok(true) => {
                    report.blobs_deleted += 1;
                    report.bytes_freed += size;
                    tracing::info!(%digest, size, "gc: deleted blob");
                }
                Ok(false) => report.blobs_referenced_meanwhile += 1,
                Err(e) => return Err(anyhow::Error::new(e).context(format!("deleting {digest}"))),
            }
        }
    }
    if !dry_run {
        report.upload_sessions_purged = uploads::sweep(app).await?;
        report.job_staging_purged = jobs::blobio::sweep_staging(app).await?;
    }
    Ok(report)
}
