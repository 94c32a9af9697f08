//! Getting bytes in: monolithic blob uploads and resumable upload sessions (docs/API.md).
//! Every path streams through the hasher; a blob becomes visible (object complete, then its
//! `blobs` row) only after its digest was verified.

mod gc;
mod stream;

use adapter_core::api::{BlobInfo, UploadStart, UploadStatus};
use adapter_core::digest::{Digest, Hasher};
use axum::body::Body;
use futures::StreamExt as _;
use serde_json::json;
use uuid::Uuid;

use crate::app::AppState;
use crate::blobs::{blob_key, part_key, session_prefix};
use crate::db::now;
use crate::db::uploads::{Part, Session};
use crate::error::{ApiError, ApiResult};

pub use gc::sweep;

pub(crate) fn digest_mismatch(expected: &Digest, actual: &Digest) -> ApiError {
    ApiError::with_details(
        "digest_mismatch",
        format!("the uploaded bytes hash to {actual}, not {expected}"),
        json!({ "expected": expected, "actual": actual }),
    )
}

/// Acknowledge a blob stored at its key: made durable first, then its `blobs` row (from
/// which on it counts as uploaded). Every path that stores a blob ends here.
pub(crate) async fn record_blob(app: &AppState, digest: &Digest, size: u64) -> ApiResult<()> {
    app.blobs
        .make_durable(&blob_key(digest))
        .await
        .map_err(ApiError::internal)?;
    crate::crash_point!("blob.after_store");
    app.db.insert_blob(digest, size).await?;
    crate::crash_point!("blob.after_record");
    Ok(())
}

/// `PUT /v1/blobs/{digest}` of a blob the caller may not read (yet): the body is streamed
/// and verified; stored when the blob is new (`Ok((true, info))`), only hashed when it is
/// stored already (`Ok((false, info))`: one stored copy, the caller proved it has the bytes).
pub async fn put_monolithic(
    app: &AppState,
    digest: &Digest,
    body: Body,
) -> ApiResult<(bool, BlobInfo)> {
    if app.db.blob_size(digest).await?.is_some() {
        let size = stream::verify(body, digest).await?;
        return Ok((
            false,
            BlobInfo {
                digest: *digest,
                size,
            },
        ));
    }
    let sink = app.blobs.sink(blob_key(digest));
    let size = stream::ingest_verified(sink, body, digest).await?;
    record_blob(app, digest, size).await?;
    Ok((
        true,
        BlobInfo {
            digest: *digest,
            size,
        },
    ))
}

fn status_of(s: &Session) -> UploadStatus {
    UploadStatus {
        id: s.id.clone(),
        offset: s.offset,
        expires_at: s.expires_at,
    }
}

fn ttl_secs(app: &AppState) -> i64 {
    i64::try_from(app.config.upload_ttl.as_secs()).unwrap_or(i64::MAX / 2)
}

fn not_found() -> ApiError {
    ApiError::new(
        "upload_not_found",
        "no such upload session (unknown or expired)",
    )
}

/// Session ids are UUIDs; anything else cannot name a session.
fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id)
        .ok()
        .filter(|u| u.hyphenated().to_string() == id)
        .ok_or_else(not_found)
}

async fn live_session(app: &AppState, id: &Uuid) -> ApiResult<Session> {
    app.db.session(&id.to_string()).await?.ok_or_else(not_found)
}

fn restore(s: &Session) -> ApiResult<Hasher> {
    let bytes = hex::decode(&s.hash_state).map_err(ApiError::internal)?;
    Hasher::restore_state(&bytes).map_err(ApiError::internal)
}

/// `POST /v1/uploads`, and a Git LFS upload URL (`hf::lfs`): a session opened by the token
/// `opener`.
pub async fn start(
    app: &AppState,
    req: UploadStart,
    opener: Option<&str>,
) -> ApiResult<UploadStatus> {
    let session = Session {
        id: Uuid::new_v4().to_string(),
        offset: 0,
        hash_state: hex::encode(Hasher::new().save_state()),
        expected_digest: req.digest,
        expected_size: req.size,
        finishing: false,
        expires_at: now().saturating_add(ttl_secs(app)),
        token_id: opener.map(str::to_owned),
    };
    app.db.create_session(&session).await?;
    Ok(status_of(&session))
}

/// `GET /v1/uploads/{id}`.
pub async fn status(app: &AppState, id: &str) -> ApiResult<UploadStatus> {
    let id = parse_id(id)?;
    Ok(status_of(&live_session(app, &id).await?))
}

/// `PATCH /v1/uploads/{id}`: append one chunk that starts at `offset`.
pub async fn append(app: &AppState, id: &str, offset: u64, body: Body) -> ApiResult<UploadStatus> {
    let uuid = parse_id(id)?;
    let session = live_session(app, &uuid).await?;
    if session.finishing {
        return Err(ApiError::new(
            "upload_finishing",
            "the session is being finished",
        ));
    }
    if offset != session.offset {
        return Err(ApiError::WrongOffset {
            offset: session.offset,
            got: offset,
        });
    }
    // A session opened with its size takes nothing past it: the chunk that would go
    // further is refused whole (413), and the session stays where it was.
    let body = match session.expected_size {
        Some(size) => stream::capped(body, size.saturating_sub(offset)),
        None => body,
    };
    let mut hasher = restore(&session)?;
    let key = part_key(&uuid, offset);
    let mut sink = app.blobs.sink(key.clone());
    let ingested = stream::ingest(&mut sink, &mut hasher, body).await;
    // A client that went away mid-chunk keeps what arrived (every byte hashed was also
    // written), so it resumes from there instead of re-sending the whole chunk.
    let interrupted = match ingested {
        Ok(()) => None,
        // A body cut off by the idle timeout keeps what arrived too.
        Err(e) if matches!(e.code(), stream::INTERRUPTED | "request_timeout") => Some(e),
        Err(e) => {
            sink.abort().await;
            return Err(e);
        }
    };
    let size = hasher.len() - session.offset;
    if size == 0 {
        sink.abort().await;
        return match interrupted {
            Some(e) => Err(e),
            None => Ok(status_of(&session)),
        };
    }
    sink.finish().await?;
    let part = Part {
        offset,
        size,
        key: key.to_string(),
    };
    let expires_at = now().saturating_add(ttl_secs(app));
    let state = hex::encode(hasher.save_state());
    if !app
        .db
        .advance_session(&session.id, offset, &state, expires_at, &part)
        .await?
    {
        // Another chunk won the race: ours is not part of the session.
        app.blobs.delete(&key).await?;
        let now_at = live_session(app, &uuid).await?;
        return Err(ApiError::WrongOffset {
            offset: now_at.offset,
            got: offset,
        });
    }
    if let Some(e) = interrupted {
        tracing::info!(upload = %session.id, kept = size, "chunk interrupted; kept what arrived");
        return Err(e);
    }
    Ok(UploadStatus {
        id: session.id,
        offset: offset + size,
        expires_at,
    })
}

/// Fill a session opened for one known blob (a Git LFS upload URL) with the whole blob in
/// one body: the URL is the credential (the basic transfer's `PUT` carries none), so only
/// the bytes of the digest and size it was opened for are taken, and the token that opened
/// it becomes the blob's uploader. The session stays until it expires, so a retried `PUT`
/// (the response was lost) succeeds again.
pub async fn fill(app: &AppState, id: &str, body: Body) -> ApiResult<BlobInfo> {
    let uuid = parse_id(id)?;
    let session = live_session(app, &uuid).await?;
    let (Some(digest), Some(size), Some(opener)) = (
        session.expected_digest,
        session.expected_size,
        session.token_id.as_deref(),
    ) else {
        // A `/v1` session: filled by its own routes, with credentials.
        return Err(not_found());
    };
    let (_, info) = put_monolithic(app, &digest, stream::capped(body, size)).await?;
    app.db.add_blob_uploader(&digest, opener).await?;
    Ok(info)
}

/// `PUT /v1/uploads/{id}?digest=`: verify, assemble the blob, delete the session.
pub async fn finish(app: &AppState, id: &str, digest: &Digest) -> ApiResult<BlobInfo> {
    let uuid = parse_id(id)?;
    let session = live_session(app, &uuid).await?;
    let actual = restore(&session)?.finish();
    if actual != *digest {
        delete_session(app, &uuid).await?;
        return Err(digest_mismatch(digest, &actual));
    }
    if !app.db.mark_finishing(&session.id, session.offset).await? {
        return Err(ApiError::new(
            "conflict",
            "a chunk was appended while finishing; check the status and retry",
        ));
    }
    let info = BlobInfo {
        digest: *digest,
        size: session.offset,
    };
    if app.db.blob_size(digest).await?.is_none() {
        // A finish that died after placing the bytes (`upload.after_assemble`) left them
        // at the blob's key, where only bytes verified against the digest are ever put
        // (atomically: a rename, a completed upload): they are recorded, not placed again
        // (the staged parts they came from may be gone).
        if app.blobs.size(&blob_key(digest)).await? != Some(session.offset) {
            assemble(app, &session, digest).await?;
        }
        crate::crash_point!("upload.after_assemble");
        record_blob(app, digest, session.offset).await?;
    }
    delete_session(app, &uuid).await?;
    Ok(info)
}

/// Make the session's parts the blob at its final key ([`place_blob`]), after checking
/// that they cover the session without gaps.
async fn assemble(app: &AppState, session: &Session, digest: &Digest) -> ApiResult<()> {
    let parts = app.db.parts(&session.id).await?;
    let mut expected_offset = 0;
    for p in &parts {
        if p.offset != expected_offset {
            return Err(ApiError::internal(anyhow::anyhow!(
                "upload {} has a gap at offset {expected_offset}",
                session.id
            )));
        }
        expected_offset += p.size;
    }
    if expected_offset != session.offset {
        return Err(ApiError::internal(anyhow::anyhow!(
            "upload {} parts cover {expected_offset} of {} bytes",
            session.id,
            session.offset
        )));
    }
    let parts: Vec<(object_store::path::Path, u64)> = parts
        .iter()
        .map(|p| (object_store::path::Path::from(p.key.as_str()), p.size))
        .collect();
    place_blob(app, &parts, digest).await
}

/// Make staged objects (in order) the blob `digest` at its final key; the caller records
/// the `blobs` row afterwards. One object is moved there (a rename on a filesystem, a
/// server-side copy on S3); several, or a move the store refuses (S3 copies over 5 GB), are
/// streamed in order into the final key, hashing again on the way. The staged objects are
/// left for the caller to delete.
pub(crate) async fn place_blob(
    app: &AppState,
    parts: &[(object_store::path::Path, u64)],
    digest: &Digest,
) -> ApiResult<()> {
    if let [(only, _)] = parts {
        match app.blobs.rename(only, &blob_key(digest)).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::info!(staged = %only, error = %e, "moving the staged object failed; copying instead")
            }
        }
    }
    let mut sink = app.blobs.sink(blob_key(digest));
    let mut hasher = Hasher::new();
    let copied: ApiResult<()> = async {
        for (key, size) in parts {
            let mut stream = app.blobs.stream_range(key, 0..*size).await?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                sink.write(chunk).await?;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = copied {
        sink.abort().await;
        return Err(e);
    }
    let again = hasher.finish();
    if again != *digest {
        sink.abort().await;
        return Err(ApiError::internal(anyhow::anyhow!(
            "staged objects hash to {again}, not the expected {digest}"
        )));
    }
    sink.finish().await?;
    Ok(())
}

/// `DELETE /v1/uploads/{id}`.
pub async fn cancel(app: &AppState, id: &str) -> ApiResult<()> {
    let uuid = parse_id(id)?;
    live_session(app, &uuid).await?;
    delete_session(app, &uuid).await
}

/// Objects first, then rows: a crash in between leaves rows the sweeper still finds.
pub(crate) async fn delete_session(app: &AppState, id: &Uuid) -> ApiResult<()> {
    app.blobs.delete_prefix(&session_prefix(id)).await?;
    app.db.delete_session(&id.to_string()).await?;
    Ok(())
}
