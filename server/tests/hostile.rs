//! Hostile input: each gets the right 4xx in the one error shape and changes nothing.

mod common;

use adapter_testkit::http;
use common::{Reply, TestServer, stacks, tiny_adapter};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_names_versions_digests_and_bodies() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let m = tiny_adapter(&s, json!({})).await;
        let auth = format!("Bearer {}", s.admin_token);
        let h = [("authorization", auth.as_str())];

        // Names: traversal (raw, so the client does not normalise it), case, unicode, NUL.
        for path in [
            "/v1/adapters/../etc/versions/1.0.0",
            "/v1/adapters/%2e%2e/bot/versions/1.0.0",
            "/v1/adapters/acme/%2e%2e/versions/1.0.0",
            "/v1/adapters/Acme/bot/versions/1.0.0",
            "/v1/adapters/acme/b%C3%B6t/versions/1.0.0",
            "/v1/adapters/acme/a..b/versions/1.0.0",
            "/v1/adapters/acme/-bot/versions/1.0.0",
        ] {
            let r = http("PUT", &s.u(path), &h, m.to_string().as_bytes());
            assert_eq!(r.status, 400, "{stack} {path}: {}", r.text());
            assert_eq!(r.json()["error"]["code"], "invalid_name", "{path}");
        }
        // A NUL is refused before routing (docs/API.md); bytes that are not UTF-8 after
        // percent-decoding by the path extractor.
        let r = http(
            "PUT",
            &s.u("/v1/adapters/acme/bot%00/versions/1.0.0"),
            &h,
            m.to_string().as_bytes(),
        );
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "invalid_path");
        let r = http(
            "PUT",
            &s.u("/v1/adapters/acme/%ff/versions/1.0.0"),
            &h,
            m.to_string().as_bytes(),
        );
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "invalid_path");

        for v in ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "latest", "%20"] {
            s.publish("adapters", "acme/bot", v, &m)
                .await
                .error(400, "invalid_version");
        }
        let long = "1.0.0-".to_string() + &"a".repeat(300);
        s.publish("adapters", "acme/bot", &long, &m)
            .await
            .error(400, "invalid_version");

        // Manifests: not JSON, duplicate keys, traversal paths, unknown fields.
        let put = |body: &str| {
            http(
                "PUT",
                &s.u("/v1/adapters/acme/bot/versions/1.0.0"),
                &h,
                body.as_bytes(),
            )
        };
        let code = |r: &adapter_testkit::HttpResponse| {
            r.json()["error"]["code"].as_str().unwrap().to_owned()
        };
        assert_eq!(code(&put("not json")), "invalid_json");
        assert_eq!(code(&put(r#"{"schema":"a","schema":"b"}"#)), "invalid_json");
        let mut traversal = m.clone();
        traversal["files"][0]["path"] = json!("../../etc/passwd");
        let r = put(&traversal.to_string());
        assert_eq!((r.status, code(&r)), (400, "invalid_manifest".into()));
        let mut extra = m.clone();
        extra["evil"] = json!(1);
        assert_eq!(code(&put(&extra.to_string())), "invalid_manifest");
        let huge = vec![b' '; 9 * 1024 * 1024];
        let r = put(std::str::from_utf8(&huge).unwrap());
        assert_eq!((r.status, code(&r)), (413, "payload_too_large".into()));

        // Digests.
        for d in [
            "sha256:abc",
            "sha512:00",
            "SHA256:00",
            "..%2f..%2fregistry.db",
            "sha256:",
        ] {
            let r = http("GET", &s.u(&format!("/v1/blobs/{d}")), &h, b"");
            assert_eq!(r.status, 400, "{d}: {}", r.text());
            assert_eq!(code(&r), "invalid_digest", "{d}");
        }
        let upper = format!("sha256:{}", "A".repeat(64));
        let r = http("PUT", &s.u(&format!("/v1/blobs/{upper}")), &h, b"x");
        assert_eq!(code(&r), "invalid_digest");

        // Nothing was created.
        s.get("/v1/adapters").await;
        assert_eq!(
            s.get("/v1/adapters").await.json()["repositories"],
            json!([]),
            "{stack}"
        );
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_routes_methods_and_health() {
    let backend = adapter_testkit::Backend::new(&adapter_testkit::Stack::Embedded);
    let s = TestServer::start(&backend).await;
    for path in [
        "/ui", // `/` is the HTML catalogue (server/tests/ui.rs)
        "/v1",
        "/v1/widgets",
        "/v1/widgets/a/b",
        "/v1/adapters/a",
        "/etc/passwd",
    ] {
        s.get(path).await.error(404, "not_found");
    }
    let r = Reply::of(s.http.delete(s.u("/v1/blobs/check")).send().await.unwrap()).await;
    r.error(405, "method_not_allowed");
    assert_eq!(s.get("/healthz").await.json(), json!({"status": "ok"}));
    assert_eq!(s.get("/readyz").await.json(), json!({"status": "ok"}));
    let r = Reply::of(
        s.http
            .post(s.u("/v1/blobs/check"))
            .body(vec![b'['; 3 * 1024 * 1024])
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.error(413, "payload_too_large");
    // The unread rest of the body makes the connection unusable: the client is told.
    assert_eq!(r.header("connection"), Some("close"));
    let r = Reply::of(
        s.http
            .get(s.u(
                "/v1/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.error(404, "blob_not_found");
    s.stop().await;
}
