//! `adapter-registry gc` and `adapter-registry fsck` on both stacks: the real binary collects
//! only what nothing references and what is past the grace period; a push loop racing a gc
//! loop never loses an acknowledged version (a publish whose upload was collected gets
//! `missing_blobs` and leaves nothing); fsck finds a blob whose bytes changed or vanished and
//! a manifest that no longer matches its digest, and `--repair` makes pulls refuse the
//! damaged versions with 410 `version_damaged`.

mod common;

use std::time::{Duration, Instant};

use adapter_core::digest::Digest;
use common::{Reply, TestServer, stacks, tiny_adapter};
use object_store::ObjectStoreExt as _;
use serde_json::{Value, json};

/// Run `adapter-registry ARGS --json` on the test server's stack.
fn run(backend: &adapter_testkit::Backend, args: &[&str]) -> (i32, Value) {
    adapter_testkit::admin_json(backend, args)
}

/// The tiny adapter's manifest (its files uploaded) plus `notes.txt` (not uploaded).
async fn manifest_with_notes(s: &TestServer, notes: &[u8]) -> Value {
    let mut manifest = tiny_adapter(s, json!({})).await;
    let d = Digest::of_bytes(notes);
    manifest["files"]
        .as_array_mut()
        .unwrap()
        .push(json!({"path": "notes.txt", "size": notes.len(), "digest": d.to_string()}));
    manifest
}

/// Upload `notes` and publish the tiny adapter plus `notes.txt` as `repo@version`.
async fn publish_with_notes(s: &TestServer, repo: &str, version: &str, notes: &[u8]) -> Reply {
    s.upload(notes).await;
    let manifest = manifest_with_notes(s, notes).await;
    s.publish("adapters", repo, version, &manifest).await
}

async fn blob_status(s: &TestServer, d: &Digest) -> u16 {
    s.get(&format!("/v1/blobs/{d}")).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_collects_only_what_nothing_references() {
    for stack in stacks() {
        let at = stack.to_string();
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let kept = b"notes of a published version".to_vec();
        publish_with_notes(&s, "acme/bot", "1.0.0", &kept)
            .await
            .expect(201, &at);
        let orphan = b"uploaded, never published".to_vec();
        let orphan_digest = s.upload(&orphan).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;

        // Within the grace period nothing goes; a dry run only counts.
        let (code, r) = run(&backend, &["gc", "--grace", "1h"]);
        assert_eq!(
            (code, r["blobs_deleted"].as_u64()),
            (0, Some(0)),
            "{at}: {r}"
        );
        let (_, r) = run(&backend, &["gc", "--grace", "0s", "--dry-run"]);
        assert_eq!(
            (r["blobs_deleted"].as_u64(), r["bytes_freed"].as_u64()),
            (Some(1), Some(orphan.len() as u64)),
            "{at}: {r}"
        );
        assert_eq!(blob_status(&s, &orphan_digest).await, 200, "{at}");

        let (code, r) = run(&backend, &["gc", "--grace", "0s"]);
        assert_eq!(code, 0, "{at}: {r}");
        assert_eq!(
            (r["blobs_deleted"].as_u64(), r["bytes_freed"].as_u64()),
            (Some(1), Some(orphan.len() as u64)),
            "{at}: {r}"
        );
        assert_eq!(blob_status(&s, &orphan_digest).await, 404, "{at}");
        // Everything the version references is still there, byte for byte.
        let v = s
            .get("/v1/adapters/acme/bot/versions/1.0.0")
            .await
            .expect(200, &at);
        for f in v["manifest"]["files"].as_array().unwrap() {
            let got = s
                .get(&format!("/v1/blobs/{}", f["digest"].as_str().unwrap()))
                .await;
            assert_eq!(got.status, 200, "{at}: {f}");
            assert_eq!(
                Digest::of_bytes(&got.body).to_string(),
                f["digest"].as_str().unwrap()
            );
        }
        // Uploading the collected bytes again stores them afresh.
        assert_eq!(s.upload(&orphan).await, orphan_digest);
        assert_eq!(blob_status(&s, &orphan_digest).await, 200, "{at}");
        let (code, r) = run(&backend, &["fsck"]);
        assert_eq!(code, 0, "{at}: {r}");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_loop_racing_gc_loses_nothing() {
    for stack in stacks() {
        let at = stack.to_string();
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let state = s.state.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gc_loop = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut deleted = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = adapter_registry::maintenance::gc::gc(&state, Duration::ZERO, false)
                        .await
                        .expect("gc");
                    deleted += r.blobs_deleted;
                }
                deleted
            })
        };
        // Each push uploads new bytes and publishes them, after a pause that lets gc (grace
        // 0) see the upload as collectable: a publish either wins (201) or finds its upload
        // collected (missing_blobs, nothing visible) and pushes again.
        let (mut published, mut refused) = (Vec::new(), 0);
        let deadline = Instant::now() + Duration::from_secs(4);
        let mut i = 0;
        while Instant::now() < deadline || published.len() < 2 {
            i += 1;
            let notes = format!("push {i} of the race").into_bytes();
            let version = format!("1.0.{i}");
            for attempt in 0.. {
                // Every attempt uploads all its files again: the racing gc may have collected
                // the tiny adapter's as well as the notes (re-uploading only the notes could
                // then never publish).
                let manifest = manifest_with_notes(&s, &notes).await;
                s.upload(&notes).await;
                if attempt == 0 && i % 2 == 0 {
                    tokio::time::sleep(Duration::from_millis(1050)).await;
                }
                let r = s
                    .publish("adapters", "acme/race", &version, &manifest)
                    .await;
                match r.status {
                    201 => break,
                    400 => {
                        r.error(400, "missing_blobs");
                        let gone = s
                            .get(&format!("/v1/adapters/acme/race/versions/{version}"))
                            .await;
                        assert_eq!(gone.status, 404, "{at}: a refused publish is visible");
                        refused += 1;
                    }
                    other => panic!(
                        "{at}: publish answered {other}: {}",
                        String::from_utf8_lossy(&r.body)
                    ),
                }
            }
            published.push((version, Digest::of_bytes(&notes)));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let deleted = gc_loop.await.unwrap();
        for (version, notes) in &published {
            s.get(&format!("/v1/adapters/acme/race/versions/{version}"))
                .await
                .expect(200, &at);
            assert_eq!(
                blob_status(&s, notes).await,
                200,
                "{at}: {version} lost a blob"
            );
        }
        let (code, r) = run(&backend, &["fsck"]);
        assert_eq!(code, 0, "{at}: {r}");
        eprintln!(
            "{at}: {} pushes acknowledged, {refused} refused (upload collected first), {deleted} \
             blobs collected by the racing gc",
            published.len()
        );
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fsck_finds_damage_and_repair_makes_pulls_refuse_it() {
    for stack in stacks() {
        let at = stack.to_string();
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let notes = b"these bytes will rot".to_vec();
        let notes_digest = Digest::of_bytes(&notes);
        publish_with_notes(&s, "acme/rot", "1.0.0", &notes)
            .await
            .expect(201, &at);
        publish_with_notes(&s, "acme/fine", "1.0.0", b"these stay")
            .await
            .expect(201, &at);
        let (code, r) = run(&backend, &["fsck"]);
        assert_eq!(code, 0, "{at}: {r}");
        assert!(r["blobs_checked"].as_u64().unwrap() >= 3, "{at}: {r}");

        // The stored bytes change (bit rot, a bad copy): fsck reports, repair marks.
        let key = adapter_registry::blobs::blob_key(&notes_digest);
        s.state
            .blobs
            .object_store()
            .put(&key, b"these bytes have rotted".to_vec().into())
            .await
            .unwrap();
        let (code, r) = run(&backend, &["fsck"]);
        assert_ne!(code, 0, "{at}: {r}");
        assert_eq!(
            r["damaged_blobs"][0]["what"],
            notes_digest.to_string(),
            "{at}: {r}"
        );
        assert_eq!(
            r["damaged_versions"].as_array().unwrap().len(),
            1,
            "{at}: {r}"
        );
        assert_eq!(r["damaged_versions"][0]["what"], "adapter acme/rot@1.0.0");
        // Not repaired yet: still served.
        s.get("/v1/adapters/acme/rot/resolve/1.0.0")
            .await
            .expect(200, &at);
        let (code, r) = run(&backend, &["fsck", "--repair"]);
        assert_ne!(code, 0, "{at}: {r}");
        assert_eq!(r["marked"], 1, "{at}: {r}");
        let refused = s.get("/v1/adapters/acme/rot/resolve/1.0.0").await;
        let e = refused.error(410, "version_damaged");
        assert!(e["message"].as_str().unwrap().contains("hash"), "{at}: {e}");
        s.get("/hf/acme/rot/resolve/main/notes.txt")
            .await
            .hub_error(410, "version_damaged");
        let info = s
            .get("/v1/adapters/acme/rot/versions/1.0.0")
            .await
            .expect(200, &at);
        assert!(
            info["damaged"]
                .as_str()
                .is_some_and(|d| d.contains(&notes_digest.to_string()))
        );
        s.get("/v1/adapters/acme/fine/resolve/1.0.0")
            .await
            .expect(200, &at);

        // Restored: repair unmarks it.
        s.state
            .blobs
            .object_store()
            .put(&key, notes.clone().into())
            .await
            .unwrap();
        let (code, r) = run(&backend, &["fsck", "--repair"]);
        assert_eq!((code, r["unmarked"].as_u64()), (0, Some(1)), "{at}: {r}");
        s.get("/v1/adapters/acme/rot/resolve/1.0.0")
            .await
            .expect(200, &at);

        // A blob that vanished, and a manifest that no longer matches its digest.
        s.state.blobs.delete(&key).await.unwrap();
        let (_, r) = run(&backend, &["fsck"]);
        assert!(
            r["damaged_blobs"][0]["problem"]
                .as_str()
                .unwrap()
                .contains("missing"),
            "{at}: {r}"
        );
        sqlx::query("UPDATE versions SET manifest = REPLACE(manifest, 'notes.txt', 'notes.TXT')")
            .execute(&s.state.db.pool)
            .await
            .unwrap();
        let (_, r) = run(&backend, &["fsck"]);
        let problems = r["damaged_versions"].to_string();
        assert!(problems.contains("manifest hashes to"), "{at}: {r}");
        s.stop().await;
    }
}
