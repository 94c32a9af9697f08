//! A full disk: the database and the blobs of a real server on a small tmpfs. Uploads that do
//! not fit are answered 507 `storage_full` and leave nothing; what was acknowledged stays
//! readable; once space is freed the same requests succeed without a restart; `fsck` is
//! clean. Mounting needs root (as on CI, which then fails rather than skips without it).

use std::path::Path;
use std::process::Command;

use adapter_core::digest::Digest;
use adapter_testkit::{Backend, ServerProcess, Stack, admin_json, require_services};
use proc::{adapter_manifest, assert_version_whole, get, try_publish, try_put_blob};
use serde_json::json;

mod proc;

/// A tmpfs of a fixed size, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            other => {
                let why = format!("cannot mount a tmpfs (root needed): {other:?}");
                assert!(!require_services(), "{why}");
                eprintln!("skipping the full-disk test: {why}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// 1 MiB that differs per `i` (and does not compress: a tmpfs would not care, but a
/// filesystem that did would make the test lie).
fn mebibyte(i: u64) -> Vec<u8> {
    adapter_testkit::Rng::new(i).bytes(1 << 20)
}

#[test]
fn a_full_disk_refuses_writes_with_507_keeps_what_was_stored_and_recovers() {
    let Some(disk) = Tmpfs::mount("24m") else {
        return;
    };
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 6 << 20]).unwrap();
    let db = format!("sqlite://{}", disk.path().join("registry.db").display());
    let blobs = format!("file://{}", disk.path().join("blobs").display());
    let storage = [
        "--database-url",
        db.as_str(),
        "--blob-store",
        blobs.as_str(),
    ];
    let backend = Backend::new(&Stack::Embedded);
    let server = ServerProcess::start_with(&backend, &storage, &[]);

    let manifest = adapter_manifest(&server, b"before the disk filled");
    let r = try_publish(&server, "full/bot", "1.0.0", &manifest).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());

    // Fill the disk with 1 MiB blobs until the registry refuses one.
    let mut stored = Vec::new();
    let refused = (0..64)
        .find_map(|i| {
            let bytes = mebibyte(i);
            let r = try_put_blob(&server, &bytes).unwrap();
            match r.status {
                201 => {
                    stored.push(bytes);
                    None
                }
                507 => Some((bytes, r)),
                s => panic!("blob {i}: {s} {}", r.text()),
            }
        })
        .expect("24 MiB filled without a refusal");
    let (refused, answer) = refused;
    assert_eq!(
        answer.json()["error"]["code"],
        "storage_full",
        "{}",
        answer.text()
    );
    assert!(!stored.is_empty(), "nothing fit before the disk was full");
    let digest = Digest::of_bytes(&refused);
    assert_eq!(get(&server, &format!("/v1/blobs/{digest}")).status, 404);

    // While full: reads work; a publish either fits or is refused whole.
    assert_version_whole(&server, "full/bot", "1.0.0");
    for bytes in &stored {
        let d = Digest::of_bytes(bytes);
        assert!(get(&server, &format!("/v1/blobs/{d}")).body == *bytes);
    }
    let mut files = manifest["files"].as_array().unwrap().clone();
    for (i, bytes) in stored.iter().enumerate() {
        files.push(json!({"path": format!("part-{i}.bin"), "size": bytes.len(),
            "digest": Digest::of_bytes(bytes).to_string()}));
    }
    let bigger =
        json!({"schema": "adapter-registry.manifest.v1", "kind": "adapter", "files": files});
    let r = try_publish(&server, "full/bot", "1.1.0", &bigger).unwrap();
    match r.status {
        201 => assert_version_whole(&server, "full/bot", "1.1.0"),
        507 => {
            assert_eq!(r.json()["error"]["code"], "storage_full");
            let v = get(&server, "/v1/adapters/full/bot/versions/1.1.0");
            assert_eq!(v.status, 404, "a refused publish is visible: {}", v.text());
            String::new()
        }
        s => panic!("publish while full: {s} {}", r.text()),
    };
    assert_eq!(get(&server, "/healthz").status, 200);

    // Space freed: the same requests succeed, without a restart.
    std::fs::remove_file(&ballast).unwrap();
    let r = try_put_blob(&server, &refused).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let r = try_publish(&server, "full/bot", "1.1.0", &bigger).unwrap();
    assert!(r.status == 201 || r.status == 200, "{}", r.text());
    assert_version_whole(&server, "full/bot", "1.1.0");
    drop(server);
    let (code, report) = admin_json(
        &backend,
        &["fsck", "--database-url", &db, "--blob-store", &blobs],
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["damaged_blobs"], json!([]), "{report}");
    assert_eq!(report["damaged_versions"], json!([]), "{report}");
}
