//! Blob upload, HEAD, GET with ranges, digest mismatch, check — on every stack.

mod common;

use adapter_core::digest::Digest;
use common::{Reply, TestServer, stacks};
use serde_json::json;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn monolithic_upload_head_get_and_ranges() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let data = pattern(100_000);
        let d = Digest::of_bytes(&data);
        let url = s.u(&format!("/v1/blobs/{d}"));

        let head = Reply::of(s.http.head(&url).send().await.unwrap()).await;
        assert_eq!(head.status, 404, "{stack}");

        let put = Reply::of(s.http.put(&url).body(data.clone()).send().await.unwrap()).await;
        assert_eq!(put.status, 201, "{stack}");
        assert_eq!(put.json(), json!({"digest": d, "size": 100_000}));
        let again = Reply::of(s.http.put(&url).body(data.clone()).send().await.unwrap()).await;
        assert_eq!(again.status, 200, "{stack}: re-upload is idempotent");

        let head = Reply::of(s.http.head(&url).send().await.unwrap()).await;
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-length"), Some("100000"));
        assert_eq!(head.header("etag"), Some(format!("\"{d}\"").as_str()));
        assert_eq!(head.header("accept-ranges"), Some("bytes"));

        let full = s.get(&format!("/v1/blobs/{d}")).await;
        assert_eq!(full.status, 200);
        assert_eq!(full.body, data, "{stack}: full body");

        for (range, span) in [
            ("bytes=0-0", 0..1),
            ("bytes=10-19", 10..20),
            ("bytes=99990-", 99_990..100_000),
            ("bytes=-5", 99_995..100_000),
            ("bytes=99999-200000", 99_999..100_000),
        ] {
            let r = Reply::of(
                s.http
                    .get(&url)
                    .header("range", range)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(r.status, 206, "{stack} {range}");
            assert_eq!(r.body, &data[span.clone()], "{stack} {range}");
            let cr = format!("bytes {}-{}/100000", span.start, span.end - 1);
            assert_eq!(r.header("content-range"), Some(cr.as_str()), "{range}");
        }
        let r = Reply::of(
            s.http
                .get(&url)
                .header("range", "bytes=100000-")
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.error(416, "range_not_satisfiable");
        assert_eq!(r.header("content-range"), Some("bytes */100000"));
        for bad in ["bytes=0-1,5-6", "bytes=5-1", "lines=0-1", "bytes=x-"] {
            let r = Reply::of(s.http.get(&url).header("range", bad).send().await.unwrap()).await;
            r.error(400, "invalid_range");
        }
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_blob_streams_through_multipart() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let data = pattern(13 * 1024 * 1024 + 17);
        let d = s.upload(&data).await;
        let r = s.get(&format!("/v1/blobs/{d}")).await;
        assert_eq!(r.status, 200);
        assert!(r.body == data, "{stack}: large blob round trip");
        let r = Reply::of(
            s.http
                .get(s.u(&format!("/v1/blobs/{d}")))
                .header("range", "bytes=8388600-8388700")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.body, &data[8_388_600..8_388_701]);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digest_mismatch_stores_nothing() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let claimed = Digest::of_bytes(b"the bytes I promised");
        for body in [b"other bytes".to_vec(), pattern(9 * 1024 * 1024)] {
            let r = Reply::of(
                s.http
                    .put(s.u(&format!("/v1/blobs/{claimed}")))
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            let e = r.error(400, "digest_mismatch");
            assert_eq!(e["details"]["expected"], claimed.to_string());
        }
        let head = Reply::of(
            s.http
                .head(s.u(&format!("/v1/blobs/{claimed}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            head.status, 404,
            "{stack}: nothing visible after a mismatch"
        );
        if let Some(bucket) = backend.s3() {
            assert!(
                bucket.keys("blobs/blobs/").is_empty(),
                "{stack}: no object left"
            );
        } else {
            let dir = backend
                .data_dir()
                .join("blobs/blobs/sha256")
                .join(&claimed.hex()[..2]);
            let left: Vec<_> = std::fs::read_dir(&dir)
                .map(|d| d.collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "{stack}: files left: {left:?}");
        }
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn empty_blob_and_check() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let empty = s.upload(b"").await;
        let r = s.get(&format!("/v1/blobs/{empty}")).await;
        assert_eq!((r.status, r.body.len()), (200, 0), "{stack}");
        let absent = Digest::of_bytes(b"absent");
        let r = Reply::of(
            s.http
                .post(s.u("/v1/blobs/check"))
                .body(json!({"digests": [absent, empty, absent]}).to_string())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), json!({"missing": [absent, absent]}));
        let r = Reply::of(
            s.http
                .post(s.u("/v1/blobs/check"))
                .body(r#"{"digests": ["sha256:XYZ"]}"#)
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.error(400, "invalid_json");
        s.stop().await;
    }
}
