//! The real `adapter-registry` binary: killed mid-upload it loses nothing acknowledged, and
//! 1,000 concurrent publishes of one version (two contents) have exactly one winner — on every stack.

use adapter_core::digest::Digest;
use adapter_testkit::{Backend, ServerProcess, http, stacks};
use proc::{example, put_blob};
use serde_json::json;

mod proc;

#[test]
fn killed_mid_upload_the_acknowledged_chunks_survive() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let data: Vec<u8> = (0..(2 * 1024 * 1024 + 3))
            .map(|i| (i % 233) as u8)
            .collect();
        let digest = Digest::of_bytes(&data);
        let half = data.len() / 2;

        let mut server = ServerProcess::start(&backend);
        let auth = server.auth();
        let h = [(auth.0, auth.1.as_str())];
        let r = http("POST", &format!("{}/v1/uploads", server.url), &h, b"");
        assert_eq!(r.status, 201, "{}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let url = format!("{}/v1/uploads/{id}", server.url);
        let r = http(
            "PATCH",
            &url,
            &[("Upload-Offset", "0"), h[0]],
            &data[..half],
        );
        assert_eq!(r.status, 202, "{}", r.text());
        server.kill();

        // A new process on the same database and blob store: the acknowledged half is there.
        let server = ServerProcess::start(&backend);
        let url = format!("{}/v1/uploads/{id}", server.url);
        let status = http("GET", &url, &h, b"");
        assert_eq!(status.status, 200, "{stack}: {}", status.text());
        assert_eq!(status.json()["offset"], half as u64, "{stack}");
        let offset = half.to_string();
        let r = http(
            "PATCH",
            &url,
            &[("Upload-Offset", &offset), h[0]],
            &data[half..],
        );
        assert_eq!(r.status, 202, "{}", r.text());
        let r = http("PUT", &format!("{url}?digest={digest}"), &h, b"");
        assert_eq!(r.status, 201, "{stack}: {}", r.text());
        let blob = http("GET", &format!("{}/v1/blobs/{digest}", server.url), &h, b"");
        assert!(blob.body == data, "{stack}: the blob differs after a crash");
    }
}

/// Publishers racing for one version; half send one content, half another.
const PUBLISHERS: usize = 1000;

#[test]
fn a_thousand_concurrent_publishes_of_one_version_have_one_winner() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let server = ServerProcess::start(&backend);
        let auth = server.auth();
        let h = [(auth.0, auth.1.as_str())];
        let mut files = Vec::new();
        for name in ["adapter_config.json", "adapter_model.safetensors"] {
            let mut entry = put_blob(&server, &example("tiny-llama-lora", name));
            entry["path"] = json!(name);
            files.push(entry);
        }
        let manifest = |label: usize| {
            json!({
                "schema": "adapter-registry.manifest.v1",
                "kind": "adapter",
                "files": files,
                // Half the publishers send other content for the same version.
                "metadata": {"run": label % 2},
            })
            .to_string()
        };
        let url = format!("{}/v1/adapters/race/bot/versions/1.0.0", server.url);
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..PUBLISHERS)
                .map(|i| {
                    let body = manifest(i);
                    let url = url.clone();
                    scope.spawn(move || {
                        http(
                            "PUT",
                            &url,
                            &[("Content-Type", "application/json"), h[0]],
                            body.as_bytes(),
                        )
                        .status
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let created = statuses.iter().filter(|s| **s == 201).count();
        let same = statuses.iter().filter(|s| **s == 200).count();
        let conflict = statuses.iter().filter(|s| **s == 409).count();
        assert_eq!(created, 1, "{stack}: {statuses:?}");
        assert_eq!(
            created + same + conflict,
            PUBLISHERS,
            "{stack}: {statuses:?}"
        );
        assert_eq!(
            same,
            PUBLISHERS / 2 - 1,
            "{stack}: the other publishers of the winner's content succeed: {statuses:?}"
        );
        let versions = http(
            "GET",
            &format!("{}/v1/adapters/race/bot/versions", server.url),
            &h,
            b"",
        );
        assert_eq!(
            versions.json()["versions"].as_array().unwrap().len(),
            1,
            "{stack}"
        );
    }
}
