//! Eval results: batches recorded whole or not at all, every validation rule, history
//! oldest first, the latest per `benchmark:metric` in the version, unknown versions.

mod common;

use common::{Reply, TestServer, stacks, tiny_adapter, tiny_model};
use serde_json::{Value, json};

const EVALS: &str = "/v1/adapters/acme/bot/versions/1.0.0/evals";

async fn post(s: &TestServer, path: &str, body: &Value) -> Reply {
    post_raw(s, path, body.to_string()).await
}

async fn post_raw(s: &TestServer, path: &str, body: String) -> Reply {
    let r = s.http.post(s.u(path)).body(body).send().await.unwrap();
    Reply::of(r).await
}

/// A server with `acme/bot@1.0.0` published.
async fn with_adapter(stack: &adapter_testkit::Stack) -> (adapter_testkit::Backend, TestServer) {
    let backend = adapter_testkit::Backend::new(stack);
    let s = TestServer::start(&backend).await;
    let m = tiny_adapter(&s, json!({})).await;
    let r = s.publish("adapters", "acme/bot", "1.0.0", &m).await;
    assert_eq!(
        r.status,
        201,
        "{stack}: {}",
        String::from_utf8_lossy(&r.body)
    );
    (backend, s)
}

fn keys_and_values(list: &Value) -> Vec<(String, f64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                format!(
                    "{}:{}",
                    e["benchmark"].as_str().unwrap(),
                    e["metric"].as_str().unwrap()
                ),
                e["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_is_oldest_first_and_the_version_shows_the_latest_per_metric() {
    for stack in stacks() {
        let (_backend, s) = with_adapter(&stack).await;
        // No results yet: empty list, empty `evals` in the version.
        let r = s.get(EVALS).await;
        assert_eq!(r.status, 200, "{stack}");
        assert_eq!(r.json(), json!({"evals": []}), "{stack}");
        assert_eq!(
            s.get("/v1/adapters/acme/bot/versions/1.0.0").await.json()["evals"],
            json!([]),
            "{stack}"
        );

        let first = post(
            &s,
            EVALS,
            &json!({"results": [
                {"benchmark": "support-tone", "metric": "match", "value": 0.81,
                 "dataset": "tone/validation", "source": "run-41"},
                {"benchmark": "mmlu", "metric": "acc", "value": 0.612},
                {"benchmark": "wikitext", "metric": "ppl", "value": 7.5, "higher_is_better": false},
            ]}),
        )
        .await;
        assert_eq!(
            first.status,
            201,
            "{stack}: {}",
            String::from_utf8_lossy(&first.body)
        );
        let stored = first.json()["evals"].clone();
        assert_eq!(
            keys_and_values(&stored),
            [
                ("support-tone:match".to_owned(), 0.81),
                ("mmlu:acc".to_owned(), 0.612),
                ("wikitext:ppl".to_owned(), 7.5)
            ],
            "{stack}: request order"
        );
        let e0 = &stored[0];
        assert_eq!(e0["dataset"], "tone/validation", "{stack}");
        assert_eq!(e0["source"], "run-41", "{stack}");
        assert_eq!(e0["higher_is_better"], true, "{stack}");
        assert!(
            e0["author"]
                .as_str()
                .unwrap()
                .starts_with("test-admin (tok_"),
            "{stack}: {e0}"
        );
        assert!(
            e0["created_at"].as_i64().unwrap() > 1_600_000_000,
            "{stack}"
        );
        assert_eq!(stored[2]["higher_is_better"], false, "{stack}");
        assert!(stored[1].get("dataset").is_none(), "{stack}: {}", stored[1]);

        // A second batch: a new mmlu value, and a new metric.
        let second = post(
            &s,
            EVALS,
            &json!({"results": [
                {"benchmark": "mmlu", "metric": "acc", "value": 0.598, "source": "rerun"},
                {"benchmark": "mmlu", "metric": "acc_norm", "value": 0.63},
            ]}),
        )
        .await;
        assert_eq!(second.status, 201, "{stack}");

        // The history: all five, oldest first, ids increasing.
        let all = s.get(EVALS).await.json()["evals"].clone();
        assert_eq!(
            keys_and_values(&all),
            [
                ("support-tone:match".to_owned(), 0.81),
                ("mmlu:acc".to_owned(), 0.612),
                ("wikitext:ppl".to_owned(), 7.5),
                ("mmlu:acc".to_owned(), 0.598),
                ("mmlu:acc_norm".to_owned(), 0.63),
            ],
            "{stack}"
        );
        let ids: Vec<i64> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{stack}: {ids:?}");
        assert_eq!(
            all[0], stored[0],
            "{stack}: the list returns what the POST returned"
        );

        // The version: the latest per benchmark:metric, sorted.
        let info = s.get("/v1/adapters/acme/bot/versions/1.0.0").await.json();
        assert_eq!(
            keys_and_values(&info["evals"]),
            [
                ("mmlu:acc".to_owned(), 0.598),
                ("mmlu:acc_norm".to_owned(), 0.63),
                ("support-tone:match".to_owned(), 0.81),
                ("wikitext:ppl".to_owned(), 7.5),
            ],
            "{stack}"
        );
        assert_eq!(info["evals"][0]["source"], "rerun", "{stack}");

        // `Db::latest_evals` (used by gates and the catalogue) agrees.
        let name = |n: &str| adapter_core::name::Name::new(n).unwrap();
        let id = adapter_registry::catalog::version(
            &s.state.db,
            adapter_core::manifest::Kind::Adapter,
            &name("acme"),
            &name("bot"),
            &"1.0.0".parse().unwrap(),
        )
        .await
        .unwrap()
        .id;
        let latest = s.state.db.latest_evals(id).await.unwrap();
        assert_eq!(
            serde_json::to_value(&latest).unwrap(),
            info["evals"],
            "{stack}"
        );

        // An idempotent re-publish answers the version with its evals.
        let m = tiny_adapter(&s, json!({})).await;
        let again = s.publish("adapters", "acme/bot", "1.0.0", &m).await;
        assert_eq!(again.status, 200, "{stack}");
        assert_eq!(again.json()["evals"], info["evals"], "{stack}");

        // Another version has its own (empty) results.
        let other = s.publish("adapters", "acme/bot", "1.1.0", &m).await;
        assert_eq!(other.status, 201, "{stack}");
        assert_eq!(other.json()["evals"], json!([]), "{stack}");
        assert_eq!(
            s.get("/v1/adapters/acme/bot/versions/1.1.0/evals")
                .await
                .json(),
            json!({"evals": []}),
            "{stack}"
        );
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_with_one_bad_result_records_nothing() {
    let good = json!({"benchmark": "mmlu", "metric": "acc", "value": 0.5});
    // (result, field the error names)
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"benchmark": "MMLU", "metric": "acc", "value": 0.5}),
            "benchmark",
        ),
        (
            json!({"benchmark": "", "metric": "acc", "value": 0.5}),
            "benchmark",
        ),
        (
            json!({"benchmark": "-mmlu", "metric": "acc", "value": 0.5}),
            "benchmark",
        ),
        (
            json!({"benchmark": "../etc", "metric": "acc", "value": 0.5}),
            "benchmark",
        ),
        (
            json!({"benchmark": "a".repeat(65), "metric": "acc", "value": 0.5}),
            "benchmark",
        ),
        (
            json!({"benchmark": "arc", "metric": "acc>=1", "value": 0.5}),
            "metric",
        ),
        (
            json!({"benchmark": "arc", "metric": "ácc", "value": 0.5}),
            "metric",
        ),
        (
            json!({"benchmark": "arc", "metric": "acc", "value": 0.5, "dataset": " "}),
            "dataset",
        ),
        (
            json!({"benchmark": "arc", "metric": "acc", "value": 0.5, "dataset": "x".repeat(257)}),
            "dataset",
        ),
        (
            json!({"benchmark": "arc", "metric": "acc", "value": 0.5, "source": "run\u{1}1"}),
            "source",
        ),
        // The same key twice in one batch.
        (
            json!({"benchmark": "mmlu", "metric": "acc", "value": 0.7}),
            "metric",
        ),
    ];
    for stack in stacks() {
        let (_backend, s) = with_adapter(&stack).await;
        for (bad, field) in &cases {
            let body = json!({"results": [good, {"benchmark": "hellaswag", "metric": "acc", "value": 0.4}, bad]});
            let e = post(&s, EVALS, &body).await.error(400, "invalid_eval");
            assert_eq!(e["details"]["index"], 2, "{stack}: {bad}: {e}");
            assert_eq!(e["details"]["field"], *field, "{stack}: {bad}: {e}");
        }
        // The batch itself.
        let e = post(&s, EVALS, &json!({"results": []}))
            .await
            .error(400, "invalid_eval");
        assert_eq!(
            e["details"],
            json!({"index": null, "field": "results"}),
            "{stack}"
        );
        let many: Vec<Value> = (0..1001)
            .map(|i| json!({"benchmark": "b", "metric": format!("m{i}"), "value": 1}))
            .collect();
        post(&s, EVALS, &json!({ "results": many }))
            .await
            .error(400, "invalid_eval");
        // Not the documented shape: strict JSON, unknown fields, wrong types, huge numbers.
        for raw in [
            r#"[{"benchmark":"mmlu","metric":"acc","value":0.5}]"#.to_owned(),
            r#"{"results":[{"benchmark":"mmlu","metric":"acc","value":0.5,"higher_is_beter":false}]}"#.to_owned(),
            r#"{"results":[{"benchmark":"mmlu","metric":"acc"}]}"#.to_owned(),
            r#"{"results":[{"benchmark":"mmlu","metric":"acc","value":"0.5"}]}"#.to_owned(),
            r#"{"results":[{"benchmark":"mmlu","metric":"acc","value":1e999}]}"#.to_owned(),
            r#"{"results":[{"benchmark":"mmlu","metric":"acc","value":NaN}]}"#.to_owned(),
            r#"{"results":[],"results":[]}"#.to_owned(),
            "not json".to_owned(),
        ] {
            post_raw(&s, EVALS, raw.clone())
                .await
                .error(400, "invalid_json");
        }
        // Nothing of any of these was recorded.
        assert_eq!(s.get(EVALS).await.json(), json!({"evals": []}), "{stack}");
        // The good results alone go through.
        let ok = post(&s, EVALS, &json!({"results": [good]})).await;
        assert_eq!(ok.status, 201, "{stack}");
        assert_eq!(
            s.get(EVALS).await.json()["evals"].as_array().unwrap().len(),
            1
        );
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_versions_and_bad_paths() {
    for stack in stacks() {
        let (_backend, s) = with_adapter(&stack).await;
        let body = json!({"results": [{"benchmark": "mmlu", "metric": "acc", "value": 0.5}]});
        for (path, status, code) in [
            (
                "/v1/adapters/acme/bot/versions/9.9.9/evals",
                404,
                "version_not_found",
            ),
            (
                "/v1/adapters/acme/nobot/versions/1.0.0/evals",
                404,
                "repository_not_found",
            ),
            (
                "/v1/models/acme/bot/versions/1.0.0/evals",
                404,
                "repository_not_found",
            ),
            (
                "/v1/adapters/acme/bot/versions/latest/evals",
                400,
                "invalid_version",
            ),
            (
                "/v1/adapters/ACME!/bot/versions/1.0.0/evals",
                400,
                "invalid_name",
            ),
        ] {
            post(&s, path, &body).await.error(status, code);
            s.get(path).await.error(status, code);
        }
        // The version string is taken in normal form, like GET …/versions/{version}.
        s.get("/v1/adapters/acme/bot/versions/1.0.0+build/evals")
            .await
            .error(404, "version_not_found");
        assert_eq!(s.get(EVALS).await.json(), json!({"evals": []}), "{stack}");

        // Models have evals too.
        let m = tiny_model(&s).await;
        assert_eq!(
            s.publish("models", "acme/llama", "1.0.0", &m).await.status,
            201
        );
        let path = "/v1/models/acme/llama/versions/1.0.0/evals";
        assert_eq!(post(&s, path, &body).await.status, 201, "{stack}");
        let info = s.get("/v1/models/acme/llama/versions/1.0.0").await.json();
        assert_eq!(info["evals"][0]["benchmark"], "mmlu", "{stack}");
        s.stop().await;
    }
}
