//! End to end: a large file the client has not hashed yet is uploaded while it is hashed
//! (dropped at finish when the registry has the blob; resumed from the registry's offset
//! after a cut), and a large file is pulled in parallel ranges, hashed in order (a corrupted
//! range fails verification and places nothing; a cut-off pull resumes from its recorded
//! frontier, hashing the kept prefix again).

mod support;

use adapter_testkit::stacks;
use support::{Env, big_model, tree};

const MIB: u64 = 1 << 20;
/// Over the 64 MiB single-`PUT` limit (hashed while uploading) and over the 64 MiB from which
/// a pull goes in ranges (8 MiB pieces).
const BIG: u64 = 100 * MIB;

fn push(env: &Env, dir: &std::path::Path, name: &str, version: &str) -> serde_json::Value {
    env.ctl_json(
        &[
            "push",
            dir.to_str().unwrap(),
            "--name",
            name,
            "--version",
            version,
        ],
        0,
    )
}

/// Keys of blobs and of upload sessions in the store.
fn blobs_and_sessions(env: &Env) -> (usize, usize) {
    let keys = env.stored_keys();
    let blobs = keys.iter().filter(|k| k.contains("blobs/sha256/")).count();
    let sessions = keys.iter().filter(|k| k.contains("uploads/")).count();
    (blobs, sessions)
}

/// The partial directory a pull of `manifest_digest` into `env.path("out")` uses.
fn partial_dir(env: &Env, manifest_digest: &str) -> std::path::PathBuf {
    let hex12 = &manifest_digest["sha256:".len().."sha256:".len() + 12];
    env.path(&format!(".out.partial-{hex12}"))
}

fn progress_file(partial: &std::path::Path) -> std::path::PathBuf {
    let mut name = partial.as_os_str().to_owned();
    name.push(".progress");
    name.into()
}

#[test]
fn a_blob_the_registry_has_is_dropped_at_finish_and_a_cached_file_asks_first() {
    for stack in stacks() {
        let env = Env::new(&stack);
        let dir = env.path("big");
        big_model(&dir, BIG, 11);
        let size = std::fs::metadata(dir.join("model.safetensors"))
            .unwrap()
            .len();
        let config_len = std::fs::metadata(dir.join("config.json")).unwrap().len();

        let v = push(&env, &dir, "acme/a", "1.0.0");
        assert_eq!(v["uploaded_bytes"], size + config_len, "{stack}: {v}");
        assert_eq!(v["hashed_bytes"], size + config_len, "{stack}: {v}");
        assert_eq!(blobs_and_sessions(&env), (2, 0), "{stack}");

        // A client that never hashed these files: the weights go up while they are hashed,
        // and the registry drops them at finish (it has the blob); the small config is
        // hashed first and found present.
        std::fs::remove_dir_all(env.cache_dir()).unwrap();
        let v = push(&env, &dir, "acme/b", "1.0.0");
        assert_eq!(v["uploaded_bytes"], size, "{stack}: {v}");
        assert_eq!(v["uploaded_files"], 1, "{stack}: {v}");
        assert_eq!(v["skipped_files"], 1, "{stack}: {v}");
        assert_eq!(blobs_and_sessions(&env), (2, 0), "{stack}: stored once");
        let state = std::fs::read_to_string(env.cache_dir().join("uploads.json")).unwrap();
        assert!(!state.contains("file:"), "{stack}: {state}");

        // The digest is cached now: a re-push asks first and sends nothing.
        let v = push(&env, &dir, "acme/b", "1.0.1");
        assert_eq!(v["uploaded_bytes"], 0, "{stack}: {v}");
        assert_eq!(v["cache_hits"], 2, "{stack}: {v}");
        assert_eq!(v["hashed_bytes"], 0, "{stack}: {v}");

        let out = env.path("out");
        env.ctl_json(&["pull", "acme/b@1.0.0", "-o", out.to_str().unwrap()], 0);
        assert_eq!(tree(&out), tree(&dir), "{stack}");
    }
}

#[test]
fn a_cut_off_hashing_upload_resumes_from_the_registry_offset() {
    use std::os::unix::fs::MetadataExt;
    for stack in stacks() {
        let env = Env::new(&stack);
        let dir = env.path("big");
        let digest = big_model(&dir, BIG, 12);
        let weights = std::fs::canonicalize(dir.join("model.safetensors")).unwrap();
        let meta = std::fs::metadata(&weights).unwrap();
        let size = meta.len();
        let config_len = std::fs::metadata(dir.join("config.json")).unwrap().len();

        // An earlier push sent the first 48 MiB into a session opened before the digest
        // was known, and recorded it for this file, then died.
        let id = env.upload_prefix(&serde_json::json!({ "size": size }), &weights, 48 * MIB);
        let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
        let record = serde_json::json!({
            "version": 1,
            "sessions": { format!("{}/", env.server.url): {
                format!("file:{}", weights.display()): {
                    "id": id, "size": size,
                    "file": {"size": size, "mtime_ns": mtime_ns, "inode": meta.ino()},
                }
            } }
        });
        std::fs::create_dir_all(env.cache_dir()).unwrap();
        std::fs::write(env.cache_dir().join("uploads.json"), record.to_string()).unwrap();

        let v = push(&env, &dir, "acme/big", "1.0.0");
        assert_eq!(v["resumed_bytes"], 48 * MIB, "{stack}: {v}");
        assert_eq!(
            v["uploaded_bytes"],
            size - 48 * MIB + config_len,
            "{stack}: {v}"
        );
        // Hashed once, the kept prefix included.
        assert_eq!(v["hashed_bytes"], size + config_len, "{stack}: {v}");
        let state = std::fs::read_to_string(env.cache_dir().join("uploads.json")).unwrap();
        assert!(!state.contains(&id), "{stack}: {state}");
        assert_eq!(blobs_and_sessions(&env), (2, 0), "{stack}");

        let out = env.path("out");
        env.ctl_json(&["pull", "acme/big@1.0.0", "-o", out.to_str().unwrap()], 0);
        assert_eq!(
            adapter_core::digest::sha256_file(&out.join("model.safetensors"))
                .unwrap()
                .0,
            digest
        );
    }
}

#[test]
fn a_corrupted_range_fails_verification_and_places_nothing() {
    for stack in stacks() {
        let env = Env::new(&stack);
        let dir = env.path("big");
        let digest = big_model(&dir, BIG, 13);
        let v = push(&env, &dir, "acme/big", "1.0.0");
        let manifest_digest = v["manifest_digest"].as_str().unwrap().to_owned();
        // One byte in the ninth 8 MiB piece.
        env.tamper_at(&digest, (70 * MIB) as usize);
        let out = env.path("out");
        let e = env.ctl_json(&["pull", "acme/big@1.0.0", "-o", out.to_str().unwrap()], 7);
        let m = e["error"]["message"].as_str().unwrap();
        assert!(
            m.contains("model.safetensors") && m.contains("verification failed"),
            "{stack}: {m}"
        );
        assert!(!out.exists(), "{stack}: a destination was created");
        let partial = partial_dir(&env, &manifest_digest);
        assert!(
            !partial.join("model.safetensors").exists(),
            "{stack}: the bad file was kept"
        );
        assert!(!progress_file(&partial).exists(), "{stack}");
    }
}

#[test]
fn a_cut_off_ranged_pull_resumes_from_its_recorded_frontier() {
    for stack in stacks() {
        let env = Env::new(&stack);
        let dir = env.path("big");
        big_model(&dir, BIG, 14);
        let v = push(&env, &dir, "acme/big", "1.0.0");
        let manifest_digest = v["manifest_digest"].as_str().unwrap().to_owned();
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let size = bytes.len() as u64;
        let config_len = std::fs::metadata(dir.join("config.json")).unwrap().len();
        let partial = partial_dir(&env, &manifest_digest);
        // Pieces landed out of order before the pull died: the first 24 MiB complete (the
        // recorded frontier), a hole, then later pieces.
        let cut = |frontier: u64| {
            std::fs::create_dir_all(&partial).unwrap();
            let mut kept = bytes.clone();
            kept[(24 * MIB) as usize..(48 * MIB) as usize].fill(0);
            std::fs::write(partial.join("model.safetensors"), &kept).unwrap();
            let record =
                serde_json::json!({"version": 1, "files": {"model.safetensors": frontier}});
            std::fs::write(progress_file(&partial), record.to_string()).unwrap();
        };

        cut(24 * MIB);
        let out = env.path("out");
        let p = env.ctl_json(&["pull", "acme/big", "-o", out.to_str().unwrap()], 0);
        assert_eq!(p["resumed_bytes"], 24 * MIB, "{stack}: {p}");
        assert_eq!(
            p["downloaded_bytes"],
            size - 24 * MIB + config_len,
            "{stack}: {p}"
        );
        assert_eq!(tree(&out), tree(&dir), "{stack}");
        assert!(!partial.exists(), "{stack}");
        assert!(!progress_file(&partial).exists(), "{stack}");

        // A frontier past what really landed: the kept prefix is hashed again, fails, and
        // the file is fetched whole.
        std::fs::remove_dir_all(&out).unwrap();
        cut(30 * MIB);
        let p = env.ctl_json(&["pull", "acme/big", "-o", out.to_str().unwrap()], 0);
        assert_eq!(p["resumed_bytes"], 0, "{stack}: {p}");
        assert_eq!(
            p["downloaded_bytes"],
            (size - 30 * MIB) + size + config_len,
            "{stack}: {p}"
        );
        assert_eq!(tree(&out), tree(&dir), "{stack}");
        assert!(!progress_file(&partial).exists(), "{stack}");
    }
}
