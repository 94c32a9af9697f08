//! `adapter-registry fsck`: every manifest matches its digest, and every blob a version
//! references exists (its row and its bytes) and hashes to its digest with its recorded
//! size. Damage is reported; with `repair`, the damaged versions are marked
//! (`versions.damaged`, why) so resolving or pulling them is refused with 410
//! `version_damaged`, and versions found sound again are unmarked. Streams every blob
//! (memory stays bounded whatever their size).

use std::collections::BTreeMap;

use adapter_core::digest::{Digest, Hasher};
use adapter_core::manifest::Manifest;
use futures::StreamExt as _;
use serde::Serialize;

use crate::app::AppState;
use crate::blobs::blob_key;

const PAGE: i64 = 500;

/// One damaged thing.
#[derive(Debug, Clone, Serialize)]
pub struct Damage {
    /// `kind ns/name@version`, or `sha256:…` for a blob.
    pub what: String,
    pub problem: String,
}

/// What fsck found.
#[derive(Debug, Default, Serialize)]
pub struct FsckReport {
    pub versions_checked: u64,
    pub blobs_checked: u64,
    pub bytes_hashed: u64,
    pub damaged_blobs: Vec<Damage>,
    pub damaged_versions: Vec<Damage>,
    /// With `repair`: versions marked damaged now, and versions unmarked (sound again).
    pub marked: u64,
    pub unmarked: u64,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.damaged_blobs.is_empty() && self.damaged_versions.is_empty()
    }
}

/// Hash the stored bytes of `digest`: `Ok(None)` when they hash to it with `size` bytes,
/// else what is wrong.
async fn check_blob(
    app: &AppState,
    digest: &str,
    size: Option<u64>,
) -> anyhow::Result<(Option<String>, u64)> {
    let Some(size) = size else {
        return Ok((
            Some("no `blobs` row (never uploaded, or deleted)".into()),
            0,
        ));
    };
    let Ok(d) = digest.parse::<Digest>() else {
        return Ok((Some("not a sha256 digest".into()), 0));
    };
    let mut stream = match app.blobs.stream_all(&blob_key(&d)).await {
        Ok(stream) => stream,
        Err(object_store::Error::NotFound { .. }) => {
            return Ok((Some("its bytes are missing from the blob store".into()), 0));
        }
        Err(e) => return Err(e.into()),
    };
    let mut hasher = Hasher::new();
    while let Some(chunk) = stream.next().await {
        let chunk: bytes::Bytes = chunk?;
        hasher.update(&chunk);
    }
    let len = hasher.len();
    let actual = hasher.finish();
    let problem = if actual != d {
        Some(format!("its bytes hash to {actual} ({len} bytes)"))
    } else if len != size {
        Some(format!("{len} bytes stored, {size} recorded"))
    } else {
        None
    };
    Ok((problem, len))
}

pub async fn fsck(app: &AppState, repair: bool) -> anyhow::Result<FsckReport> {
    let mut report = FsckReport::default();
    // Why each version is damaged (row id → problems).
    let mut problems: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut labels: BTreeMap<i64, (String, Option<String>)> = BTreeMap::new();

    let mut after = 0;
    loop {
        let page = app.db.versions_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for v in page {
            report.versions_checked += 1;
            let problem = match Manifest::from_json(v.manifest.as_bytes()) {
                Err(e) => Some(format!("its manifest does not parse: {e}")),
                Ok(m) if m.digest().to_string() != v.manifest_digest => Some(format!(
                    "its manifest hashes to {}, not {}",
                    m.digest(),
                    v.manifest_digest
                )),
                Ok(_) => None,
            };
            if let Some(p) = problem {
                problems.entry(v.id).or_default().push(p);
            }
            labels.insert(v.id, (v.label, v.damaged));
        }
    }

    let mut after = String::new();
    loop {
        let page = app.db.referenced_blobs(&after, PAGE).await?;
        let Some((last, _)) = page.last() else { break };
        after = last.clone();
        for (digest, size) in page {
            report.blobs_checked += 1;
            let (problem, hashed) = check_blob(app, &digest, size).await?;
            report.bytes_hashed += hashed;
            if let Some(p) = problem {
                for id in app.db.versions_referencing(&digest).await? {
                    problems
                        .entry(id)
                        .or_default()
                        .push(format!("blob {digest}: {p}"));
                }
                report.damaged_blobs.push(Damage {
                    what: digest,
                    problem: p,
                });
            }
        }
    }

    for (id, (label, marked)) in &labels {
        let found = problems.get(id).map(|p| p.join("; "));
        if let Some(why) = &found {
            report.damaged_versions.push(Damage {
                what: label.clone(),
                problem: why.clone(),
            });
        }
        if !repair || found == *marked {
            continue;
        }
        app.db.set_damaged(*id, found.as_deref()).await?;
        if found.is_some() {
            report.marked += 1;
            tracing::warn!(version = %label, "fsck: marked damaged");
        } else {
            report.unmarked += 1;
            tracing::info!(version = %label, "fsck: sound again, unmarked");
        }
    }
    Ok(report)
}
