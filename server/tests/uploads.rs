//! Resumable uploads: chunks, wrong offsets, status, finish, mismatch, cancel, restart,
//! expiry — on every stack.

mod common;

use std::time::Duration;

use adapter_core::digest::Digest;
use common::{Reply, TestServer, config, stacks};
use serde_json::{Value, json};

async fn post_start(s: &TestServer, body: &str) -> Reply {
    Reply::of(
        s.http
            .post(s.u("/v1/uploads"))
            .body(body.to_owned())
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn start_session(s: &TestServer, body: &str) -> Value {
    let r = post_start(s, body).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let loc = format!("/v1/uploads/{}", v["id"].as_str().unwrap());
    assert_eq!(r.header("location"), Some(loc.as_str()));
    assert_eq!(v["offset"], 0);
    v
}

async fn patch(s: &TestServer, id: &str, offset: Option<&str>, chunk: Vec<u8>) -> Reply {
    let mut req = s.http.patch(s.u(&format!("/v1/uploads/{id}"))).body(chunk);
    if let Some(o) = offset {
        req = req.header("upload-offset", o);
    }
    Reply::of(req.send().await.unwrap()).await
}

async fn finish(s: &TestServer, id: &str, digest: &str) -> Reply {
    Reply::of(
        s.http
            .put(s.u(&format!("/v1/uploads/{id}?digest={digest}")))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chunks_offsets_status_and_finish() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let data: Vec<u8> = (0..(9 * 1024 * 1024 + 5))
            .map(|i| (i % 241) as u8)
            .collect();
        let digest = Digest::of_bytes(&data);
        let session = start_session(&s, "").await;
        let id = session["id"].as_str().unwrap();

        let cuts = [0, 1000, 1000, 6 * 1024 * 1024, data.len()];
        for w in cuts.windows(2) {
            let r = patch(&s, id, Some(&w[0].to_string()), data[w[0]..w[1]].to_vec()).await;
            assert_eq!(
                r.status,
                202,
                "{stack}: {}",
                String::from_utf8_lossy(&r.body)
            );
            assert_eq!(r.json()["offset"], w[1] as u64);
            assert_eq!(r.header("upload-offset"), Some(w[1].to_string().as_str()));
        }
        // A chunk at the wrong offset: 416 with the current offset, nothing appended.
        let r = patch(&s, id, Some("5"), b"xx".to_vec()).await;
        let e = r.error(416, "wrong_offset");
        assert_eq!(e["details"]["offset"], data.len() as u64);
        assert_eq!(
            r.header("upload-offset"),
            Some(data.len().to_string().as_str())
        );

        let st = s.get(&format!("/v1/uploads/{id}")).await;
        assert_eq!(st.status, 200);
        assert_eq!(st.json()["offset"], data.len() as u64);

        // The blob is not visible before finishing.
        s.get(&format!("/v1/blobs/{digest}"))
            .await
            .error(404, "blob_not_found");
        let r = finish(&s, id, &digest.to_string()).await;
        assert_eq!(
            r.status,
            201,
            "{stack}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json(), json!({"digest": digest, "size": data.len()}));
        let got = s.get(&format!("/v1/blobs/{digest}")).await;
        assert!(got.body == data, "{stack}: assembled blob differs");
        s.get(&format!("/v1/uploads/{id}"))
            .await
            .error(404, "upload_not_found");
        if let Some(bucket) = backend.s3() {
            assert!(
                bucket.keys(&format!("blobs/uploads/{id}")).is_empty(),
                "parts left"
            );
        }
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mismatch_cancel_and_bad_offsets() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let session = start_session(&s, r#"{"size": 5}"#).await;
        let id = session["id"].as_str().unwrap();
        for bad in [
            None,
            Some("abc"),
            Some("-1"),
            Some("99999999999999999999999"),
            Some(""),
        ] {
            patch(&s, id, bad, b"x".to_vec())
                .await
                .error(400, "invalid_offset");
        }
        patch(&s, id, Some("7"), b"x".to_vec())
            .await
            .error(416, "wrong_offset");
        assert_eq!(
            patch(&s, id, Some("0"), b"hello".to_vec()).await.status,
            202
        );
        let wrong = Digest::of_bytes(b"world");
        let e = finish(&s, id, &wrong.to_string())
            .await
            .error(400, "digest_mismatch");
        assert_eq!(
            e["details"]["actual"],
            Digest::of_bytes(b"hello").to_string()
        );
        s.get(&format!("/v1/uploads/{id}"))
            .await
            .error(404, "upload_not_found");
        s.get(&format!("/v1/blobs/{wrong}"))
            .await
            .error(404, "blob_not_found");
        s.get(&format!("/v1/blobs/{}", Digest::of_bytes(b"hello")))
            .await
            .error(404, "blob_not_found");

        let session = start_session(&s, "").await;
        let id = session["id"].as_str().unwrap();
        assert_eq!(patch(&s, id, Some("0"), b"abc".to_vec()).await.status, 202);
        finish(&s, id, "sha256:nothex")
            .await
            .error(400, "invalid_digest");
        let r = Reply::of(
            s.http
                .put(s.u(&format!("/v1/uploads/{id}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.error(400, "invalid_digest");
        let r = Reply::of(
            s.http
                .delete(s.u(&format!("/v1/uploads/{id}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 204);
        s.get(&format!("/v1/uploads/{id}"))
            .await
            .error(404, "upload_not_found");
        patch(&s, id, Some("3"), b"x".to_vec())
            .await
            .error(404, "upload_not_found");
        for unknown in [
            "00000000-0000-0000-0000-000000000000",
            "..%2f..%2fetc",
            "not-a-uuid",
        ] {
            s.get(&format!("/v1/uploads/{unknown}"))
                .await
                .error(404, "upload_not_found");
        }
        let r = Reply::of(
            s.http
                .post(s.u("/v1/uploads"))
                .body("{oops")
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.error(400, "invalid_json");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_survives_restart_and_expires() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let session = start_session(&s, "").await;
        let id = session["id"].as_str().unwrap().to_owned();
        assert_eq!(
            patch(&s, &id, Some("0"), b"first half, ".to_vec())
                .await
                .status,
            202
        );
        s.stop().await;

        let s = TestServer::start(&backend).await;
        assert_eq!(
            s.get(&format!("/v1/uploads/{id}")).await.json()["offset"],
            12
        );
        assert_eq!(
            patch(&s, &id, Some("12"), b"second half".to_vec())
                .await
                .status,
            202
        );
        let d = Digest::of_bytes(b"first half, second half");
        assert_eq!(finish(&s, &id, &d.to_string()).await.status, 201, "{stack}");
        assert_eq!(
            s.get(&format!("/v1/blobs/{d}")).await.body,
            b"first half, second half"
        );

        // Expiry: the TTL sets `expires_at` (renewed by every chunk); once it has passed,
        // the session answers 404 and the sweeper deletes it and its parts. Time is not
        // waited for: the session row is moved into the past, as the clock would.
        let mut short = config(&backend);
        short.upload_ttl = Duration::from_secs(3600);
        s.stop().await;
        let s = TestServer::start_with(&backend, short).await;
        let session = start_session(&s, "").await;
        let id = session["id"].as_str().unwrap().to_owned();
        assert_eq!(
            patch(&s, &id, Some("0"), b"abandoned".to_vec())
                .await
                .status,
            202
        );
        let status = s.get(&format!("/v1/uploads/{id}")).await.json();
        let now = adapter_registry::db::now();
        let expires = status["expires_at"].as_i64().unwrap();
        assert!(
            (now + 3590..=now + 3600).contains(&expires),
            "{stack}: expires_at {expires}, now {now}"
        );
        assert_eq!(adapter_registry::uploads::sweep(&s.state).await.unwrap(), 0);
        sqlx::query("UPDATE upload_sessions SET expires_at = $1 WHERE id = $2")
            .bind(now - 1)
            .bind(id.clone())
            .execute(&s.state.db.pool)
            .await
            .unwrap();
        s.get(&format!("/v1/uploads/{id}"))
            .await
            .error(404, "upload_not_found");
        let swept = adapter_registry::uploads::sweep(&s.state).await.unwrap();
        assert_eq!(swept, 1, "{stack}");
        if let Some(bucket) = backend.s3() {
            assert!(
                bucket.keys(&format!("blobs/uploads/{id}")).is_empty(),
                "parts left"
            );
        } else {
            let dir = backend.data_dir().join(format!("blobs/uploads/{id}"));
            let left = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
            assert_eq!(left, 0, "parts left in {}", dir.display());
        }
        s.stop().await;
    }
}

/// Send the headers of a chunk of `declared` bytes, then only `sent` of them, and hang up.
async fn patch_and_hang_up(s: &TestServer, id: &str, offset: u64, declared: usize, sent: &[u8]) {
    use tokio::io::AsyncWriteExt as _;
    let addr = s.url.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PATCH /v1/uploads/{id} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nUpload-Offset: {offset}\r\nContent-Length: {declared}\r\n\r\n",
        s.admin_token
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(sent).await.unwrap();
    tcp.flush().await.unwrap();
    drop(tcp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interrupted_chunk_keeps_what_arrived_and_one_part_is_moved_into_place() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let data: Vec<u8> = (0..(3 * 1024 * 1024 + 11))
            .map(|i| (i % 239) as u8)
            .collect();
        let digest = Digest::of_bytes(&data);

        // One uninterrupted chunk: finished by moving the single part into place.
        let session = start_session(&s, "").await;
        let id = session["id"].as_str().unwrap();
        assert_eq!(patch(&s, id, Some("0"), data.clone()).await.status, 202);
        assert_eq!(
            finish(&s, id, &digest.to_string()).await.status,
            201,
            "{stack}"
        );
        let got = s.get(&format!("/v1/blobs/{digest}")).await;
        assert_eq!(got.status, 200);
        assert!(got.body == data, "{stack}: moved blob differs");

        // A chunk cut off after 1 MiB: the registry keeps that MiB.
        let other: Vec<u8> = data.iter().map(|b| b.wrapping_add(1)).collect();
        let other_digest = Digest::of_bytes(&other);
        let session = start_session(&s, "").await;
        let id = session["id"].as_str().unwrap();
        let kept = 1024 * 1024;
        patch_and_hang_up(&s, id, 0, other.len(), &other[..kept]).await;
        let mut offset = 0;
        for _ in 0..200 {
            offset = s.get(&format!("/v1/uploads/{id}")).await.json()["offset"]
                .as_u64()
                .unwrap();
            if offset > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            offset > 0 && offset <= kept as u64,
            "{stack}: kept {offset} bytes"
        );
        // Resume from the kept offset; the blob is exact (two parts, streamed together).
        let r = patch(
            &s,
            id,
            Some(&offset.to_string()),
            other[offset as usize..].to_vec(),
        )
        .await;
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            finish(&s, id, &other_digest.to_string()).await.status,
            201,
            "{stack}"
        );
        let got = s.get(&format!("/v1/blobs/{other_digest}")).await;
        assert!(got.body == other, "{stack}: resumed blob differs");
        s.stop().await;
    }
}

/// Found by schemathesis (scripts/schemathesis.py): a session start body that is a JSON array
/// (`[null, null]`: serde fills a struct from its fields in order) was accepted, and a
/// declared size past i64 was kept clamped to i64::MAX instead of refused. An integral float
/// (`5.0`) is the integer it equals (JSON Schema's `integer` admits it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_start_bodies_are_objects_and_sizes_fit() {
    let backend = adapter_testkit::Backend::new(&stacks()[0]);
    let s = TestServer::start(&backend).await;
    let r = post_start(&s, "[null, null]").await;
    r.error(400, "invalid_json");
    let message = r.json()["error"]["message"].to_string();
    assert!(message.contains("must be a JSON object"), "{message}");
    post_start(&s, "[]").await.error(400, "invalid_json");
    post_start(&s, "5").await.error(400, "invalid_json");
    let r = post_start(&s, r#"{"size": 9223372036854775808}"#).await;
    r.error(400, "invalid_body");
    let r = post_start(&s, r#"{"size": 18446744073709551615}"#).await;
    r.error(400, "invalid_body");
    // The largest size that fits is accepted; so is `5.0`, as 5 (a fraction is not a size).
    start_session(&s, r#"{"size": 9223372036854775807}"#).await;
    start_session(&s, r#"{"size": 5.0}"#).await;
    post_start(&s, r#"{"size": 5.5}"#)
        .await
        .error(400, "invalid_json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunk_past_the_declared_size_is_refused_whole() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let session = start_session(&s, r#"{"size": 5}"#).await;
        let id = session["id"].as_str().unwrap();
        // Past the end from the start: nothing of it is kept.
        patch(&s, id, Some("0"), b"hello world".to_vec())
            .await
            .error(413, "payload_too_large");
        let status = s.get(&format!("/v1/uploads/{id}")).await;
        assert_eq!(status.json()["offset"], 0, "{stack}");
        assert_eq!(patch(&s, id, Some("0"), b"hel".to_vec()).await.status, 202);
        // The rest plus one byte: refused whole; the exact rest is taken.
        patch(&s, id, Some("3"), b"lo!".to_vec())
            .await
            .error(413, "payload_too_large");
        assert_eq!(patch(&s, id, Some("3"), b"lo".to_vec()).await.status, 202);
        patch(&s, id, Some("5"), b"x".to_vec())
            .await
            .error(413, "payload_too_large");
        let digest = Digest::of_bytes(b"hello").to_string();
        assert_eq!(finish(&s, id, &digest).await.status, 201, "{stack}");
        assert_eq!(s.get(&format!("/v1/blobs/{digest}")).await.body, b"hello");
    }
}
