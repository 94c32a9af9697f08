//! End to end: large files through resumable sessions, resumed uploads and downloads, and
//! tampered blobs caught on pull.

mod support;

use adapter_core::digest::Digest;
use adapter_testkit::stacks;
use support::{Env, big_model, examples, tree};

const MIB: u64 = 1 << 20;
/// Bigger than the CLI's 64 MiB single-PUT limit: three chunks.
const BIG: u64 = 150 * MIB;

fn write_session(env: &Env, digest: &Digest, id: &str, size: u64) {
    let dir = env.cache_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let state = serde_json::json!({
        "version": 1,
        "sessions": { format!("{}/", env.server.url): { digest.to_string(): {"id": id, "size": size} } }
    });
    std::fs::write(dir.join("uploads.json"), state.to_string()).unwrap();
}

#[test]
fn big_model_round_trips_and_an_interrupted_upload_resumes() {
    for stack in stacks() {
        let env = Env::new(&stack);
        let dir = env.path("big");
        big_model(&dir, BIG, 7);
        let weights = dir.join("model.safetensors");
        let (digest, size) = adapter_core::digest::sha256_file(&weights).unwrap();
        let config_len = std::fs::metadata(dir.join("config.json")).unwrap().len();

        // Upload the first 64 MiB by hand, as if an earlier push died there, and record it
        // where adapterctl keeps its sessions.
        let start = serde_json::json!({"digest": digest, "size": size});
        let id = env.upload_prefix(&start, &weights, 64 * MIB);
        write_session(&env, &digest, &id, size);

        let v = env.ctl_json(
            &[
                "push",
                dir.to_str().unwrap(),
                "--name",
                "acme/big",
                "--version",
                "1.0.0",
            ],
            0,
        );
        assert_eq!(v["resumed_bytes"], 64 * MIB, "{stack}: {v}");
        assert_eq!(
            v["uploaded_bytes"],
            size - 64 * MIB + config_len,
            "{stack}: {v}"
        );
        // The finished session is forgotten.
        let state = std::fs::read_to_string(env.cache_dir().join("uploads.json")).unwrap();
        assert!(!state.contains(&id), "{stack}: {state}");

        // Pull it back: identical bytes.
        let out = env.path("out");
        let p = env.ctl_json(&["pull", "acme/big@1.0.0", "-o", out.to_str().unwrap()], 0);
        assert_eq!(p["downloaded_bytes"], size + config_len, "{stack}");
        assert_eq!(
            adapter_core::digest::sha256_file(&out.join("model.safetensors"))
                .unwrap()
                .0,
            digest
        );
        assert_eq!(
            std::fs::read(out.join("config.json")).unwrap(),
            std::fs::read(dir.join("config.json")).unwrap()
        );
    }
}

#[test]
fn stale_session_starts_over_and_a_partial_download_resumes() {
    for stack in stacks() {
        let env = Env::new(&stack);
        let dir = env.path("big");
        let digest = big_model(&dir, 70 * MIB, 3);
        let size = std::fs::metadata(dir.join("model.safetensors"))
            .unwrap()
            .len();
        // A recorded session the server never heard of (expired): a 404, so a new session.
        write_session(&env, &digest, "no-such-session", size);
        let v = env.ctl_json(
            &[
                "push",
                dir.to_str().unwrap(),
                "--name",
                "acme/big",
                "--version",
                "1.0.0",
            ],
            0,
        );
        assert_eq!(v["resumed_bytes"], 0, "{stack}: {v}");
        assert!(
            v["uploaded_bytes"].as_u64().unwrap() >= size,
            "{stack}: {v}"
        );
        let manifest_digest = v["manifest_digest"].as_str().unwrap().to_owned();

        // A pull that died half-way: the partial directory holds half the weights.
        let hex12 = &manifest_digest["sha256:".len().."sha256:".len() + 12];
        let partial = env.path(&format!(".out.partial-{hex12}"));
        std::fs::create_dir_all(&partial).unwrap();
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        std::fs::write(partial.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
        // A complete, correct config from the earlier attempt is kept too.
        std::fs::copy(dir.join("config.json"), partial.join("config.json")).unwrap();
        let out = env.path("out");
        let p = env.ctl_json(&["pull", "acme/big", "-o", out.to_str().unwrap()], 0);
        let config_len = std::fs::metadata(dir.join("config.json")).unwrap().len();
        assert_eq!(
            p["resumed_bytes"],
            bytes.len() as u64 / 2 + config_len,
            "{stack}: {p}"
        );
        assert_eq!(
            p["downloaded_bytes"],
            (bytes.len() - bytes.len() / 2) as u64,
            "{stack}: {p}"
        );
        assert_eq!(tree(&out), tree(&dir), "{stack}");
        assert!(!partial.exists(), "{stack}");

        // A partial file with wrong bytes (right length) is detected and fetched again.
        let mut bad = bytes[..bytes.len() / 2].to_vec();
        bad[0] ^= 1;
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::write(partial.join("model.safetensors"), &bad).unwrap();
        let out2 = env.path("out");
        std::fs::remove_dir_all(&out2).unwrap();
        // The resumed file fails verification; its prefix is dropped and it is fetched whole.
        let p = env.ctl_json(&["pull", "acme/big", "-o", out2.to_str().unwrap()], 0);
        // Network bytes: the wasted second half, then the whole file, and the config.
        let wasted = (bytes.len() - bytes.len() / 2) as u64;
        assert_eq!(
            p["downloaded_bytes"],
            wasted + bytes.len() as u64 + config_len,
            "{stack}: {p}"
        );
        assert_eq!(p["resumed_bytes"], 0, "{stack}: {p}");
        assert_eq!(tree(&out2), tree(&dir), "{stack}");
    }
}

#[test]
fn tampered_blob_fails_verification_and_places_nothing() {
    for stack in stacks() {
        let env = Env::new(&stack);
        let lora = examples().join("tiny-llama-lora");
        env.ctl_json(
            &[
                "push",
                lora.to_str().unwrap(),
                "--name",
                "acme/bot",
                "--version",
                "1.0.0",
            ],
            0,
        );
        let (weights, _) =
            adapter_core::digest::sha256_file(&lora.join("adapter_model.safetensors")).unwrap();
        env.tamper(&weights);
        let out = env.path("out");
        let e = env.ctl_json(&["pull", "acme/bot@1.0.0", "-o", out.to_str().unwrap()], 7);
        let m = e["error"]["message"].as_str().unwrap();
        assert!(
            m.contains("adapter_model.safetensors") && m.contains("verification failed"),
            "{stack}: {m}"
        );
        assert!(!out.exists(), "{stack}: a destination was created");
        // The bad file is not kept for a later resume.
        for entry in std::fs::read_dir(env.home.path()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().contains("partial") {
                assert!(
                    !entry.path().join("adapter_model.safetensors").exists(),
                    "{stack}"
                );
            }
        }
        // Text mode says the same in one line.
        let o = env.ctl(&["pull", "acme/bot@1.0.0", "-o", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(7));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}
