//! Aliases: compare-and-swap moves (body and If-Match), stale expectations, history, deletes,
//! resolution through aliases, a race of concurrent movers, gates (refusal listing every
//! failing condition, pass, latest eval row), hostile input that changes nothing.

mod common;

use std::sync::Arc;

use common::{Reply, TestServer, publish_tiny_model, stacks, tiny_adapter};
use serde_json::{Value, json};

const REPO: &str = "/v1/adapters/acme/bot";

/// Publish `versions` of acme/bot (distinct manifests).
async fn publish_versions(s: &TestServer, versions: &[&str]) {
    for v in versions {
        let m = tiny_adapter(s, json!({ "build": v })).await;
        let r = s.publish("adapters", "acme/bot", v, &m).await;
        assert_eq!(
            r.status,
            201,
            "{}: {}",
            s.stack,
            String::from_utf8_lossy(&r.body)
        );
    }
}

async fn put_alias(s: &TestServer, alias: &str, body: Value) -> Reply {
    let r = s
        .http
        .put(s.u(&format!("{REPO}/aliases/{alias}")))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    Reply::of(r).await
}

async fn history(s: &TestServer, alias: &str) -> Vec<Value> {
    let r = s.get(&format!("{REPO}/aliases/{alias}/history")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["entries"].as_array().unwrap().clone()
}

async fn resolve(s: &TestServer, selector: &str) -> Reply {
    s.get(&format!("{REPO}/resolve/{selector}")).await
}

/// Append an eval row directly (the evals API is another part of the catalogue).
async fn add_eval(s: &TestServer, version: &str, key: &str, value: f64, higher_is_better: bool) {
    let (benchmark, metric) = key.split_once(':').unwrap();
    sqlx::query(
        "INSERT INTO evals (version_id, benchmark, metric, value, higher_is_better, created_at) \
         SELECT v.id, $1, $2, $3, $4, 0 FROM versions v JOIN repositories r \
         ON r.id = v.repository_id WHERE r.namespace = 'acme' AND r.name = 'bot' \
         AND v.version = $5",
    )
    .bind(benchmark.to_owned())
    .bind(metric.to_owned())
    .bind(value)
    .bind(i64::from(higher_is_better))
    .bind(version.to_owned())
    .execute(&s.state.db.pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_swap_moves_history_and_resolution() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        publish_versions(&s, &["1.0.0", "1.1.0", "1.2.0"]).await;

        // Create (expect null), then a second create is stale.
        let r = put_alias(
            &s,
            "prod",
            json!({"version": "1.0.0", "expect": null, "reason": "first"}),
        )
        .await;
        assert_eq!(
            r.status,
            201,
            "{stack}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["version"], "1.0.0");
        assert_eq!(r.header("etag"), Some("\"1.0.0\""));
        let e = put_alias(&s, "prod", json!({"version": "1.1.0"}))
            .await
            .error(412, "alias_conflict");
        assert_eq!(e["details"]["current"], "1.0.0", "{e}");
        assert_eq!(e["details"]["expected"], Value::Null, "{e}");

        // Move with the right expectation; then the same expectation is stale.
        let r = put_alias(
            &s,
            "prod",
            json!({"version": "1.1.0", "expect": "1.0.0", "reason": "better tone"}),
        )
        .await;
        assert_eq!(
            r.status,
            200,
            "{stack}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let e = put_alias(&s, "prod", json!({"version": "1.2.0", "expect": "1.0.0"}))
            .await
            .error(412, "alias_conflict");
        assert_eq!(e["details"]["current"], "1.1.0", "{e}");
        assert_eq!(e["details"]["expected"], "1.0.0", "{e}");

        // If-Match carries the expectation instead of the body.
        let r = s
            .http
            .put(s.u(&format!("{REPO}/aliases/prod")))
            .header("if-match", "\"1.1.0\"")
            .body(json!({"version": "1.2.0"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{stack}");
        let r = s
            .http
            .put(s.u(&format!("{REPO}/aliases/prod")))
            .header("if-match", "\"1.1.0\"")
            .body(json!({"version": "1.0.0"}).to_string())
            .send()
            .await
            .unwrap();
        Reply::of(r).await.error(412, "alias_conflict");

        // Already there: 200, nothing recorded.
        let r = put_alias(&s, "prod", json!({"version": "1.2.0", "expect": "1.2.0"})).await;
        assert_eq!(r.status, 200, "{stack}");

        let r = resolve(&s, "prod").await;
        assert_eq!(r.status, 200, "{stack}");
        assert_eq!(r.json()["version"], "1.2.0");
        assert_eq!(r.json()["yanked"], false);
        let info = s.get(REPO).await.json();
        assert_eq!(info["aliases"], json!({"prod": "1.2.0"}), "{info}");
        let got = s.get(&format!("{REPO}/aliases/prod")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("etag"), Some("\"1.2.0\""));
        assert_eq!(got.json()["updated_by"], s.admin_actor);
        let list = s.get(&format!("{REPO}/aliases")).await.json();
        assert_eq!(list["aliases"].as_array().unwrap().len(), 1, "{list}");

        let h = history(&s, "prod").await;
        let moves: Vec<(Value, Value)> = h
            .iter()
            .map(|e| (e["from"].clone(), e["to"].clone()))
            .collect();
        assert_eq!(
            moves,
            vec![
                (Value::Null, json!("1.0.0")),
                (json!("1.0.0"), json!("1.1.0")),
                (json!("1.1.0"), json!("1.2.0")),
            ],
            "{stack}: {h:?}"
        );
        assert_eq!(h[1]["reason"], "better tone");
        assert_eq!(h[1]["actor"], s.admin_actor);
        assert!(h[0]["at"].as_i64().unwrap() > 0);

        // Delete: CAS too, and recorded.
        let del = |q: &str| {
            s.http
                .delete(s.u(&format!("{REPO}/aliases/prod{q}")))
                .send()
        };
        Reply::of(del("").await.unwrap())
            .await
            .error(400, "invalid_precondition");
        let e = Reply::of(del("?expect=1.1.0").await.unwrap())
            .await
            .error(412, "alias_conflict");
        assert_eq!(e["details"]["current"], "1.2.0");
        assert_eq!(
            del("?expect=1.2.0&reason=retired").await.unwrap().status(),
            204
        );
        resolve(&s, "prod").await.error(404, "no_match");
        s.get(&format!("{REPO}/aliases/prod"))
            .await
            .error(404, "alias_not_found");
        let h = history(&s, "prod").await;
        assert_eq!(h.len(), 4, "{h:?}");
        assert_eq!(
            (&h[3]["from"], &h[3]["to"], &h[3]["reason"]),
            (&json!("1.2.0"), &Value::Null, &json!("retired"))
        );
        let e = Reply::of(del("?expect=1.2.0").await.unwrap())
            .await
            .error(412, "alias_conflict");
        assert_eq!(e["details"]["current"], Value::Null);
        s.get(&format!("{REPO}/aliases/never/history"))
            .await
            .error(404, "alias_not_found");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_input_changes_nothing() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        publish_versions(&s, &["1.0.0"]).await;
        let ok = put_alias(&s, "prod", json!({"version": "1.0.0"})).await;
        assert_eq!(ok.status, 201, "{stack}");
        for (alias, body, status, code) in [
            ("1prod", json!({"version": "1.0.0"}), 400, "invalid_alias"),
            ("v2", json!({"version": "1.0.0"}), 400, "invalid_alias"),
            ("Prod", json!({"version": "1.0.0"}), 400, "invalid_alias"),
            ("staging", json!({"version": "one"}), 400, "invalid_version"),
            (
                "prod",
                json!({"version": "1.0.0", "expect": "x"}),
                400,
                "invalid_version",
            ),
            (
                "staging",
                json!({"version": "9.9.9"}),
                404,
                "version_not_found",
            ),
            (
                "staging",
                json!({"version": "1.0.0", "reason": ""}),
                400,
                "invalid_reason",
            ),
            (
                "staging",
                json!({"version": "1.0.0", "reason": "x".repeat(2000)}),
                400,
                "invalid_reason",
            ),
            (
                "staging",
                json!({"version": "1.0.0", "force": true}),
                400,
                "invalid_json",
            ),
            ("staging", json!({"expect": null}), 400, "invalid_json"),
        ] {
            put_alias(&s, alias, body).await.error(status, code);
        }
        let r = s
            .http
            .put(s.u(&format!("{REPO}/aliases/staging")))
            .body(r#"{"version": "1.0.0", "version": "1.0.0"}"#)
            .send()
            .await
            .unwrap();
        Reply::of(r).await.error(400, "invalid_json");
        let r = s
            .http
            .put(s.u(&format!("{REPO}/aliases/prod")))
            .header("if-match", "\"1.0.0\"")
            .body(json!({"version": "1.0.0", "expect": "1.0.0"}).to_string())
            .send()
            .await
            .unwrap();
        Reply::of(r).await.error(400, "invalid_precondition");
        s.http
            .put(s.u("/v1/adapters/acme/nobody/aliases/prod"))
            .body(json!({"version": "1.0.0"}).to_string())
            .send()
            .await
            .map(Reply::of)
            .unwrap()
            .await
            .error(404, "repository_not_found");
        let list = s.get(&format!("{REPO}/aliases")).await.json();
        assert_eq!(
            list["aliases"],
            json!([{"alias": "prod", "version": "1.0.0", "updated_at": list["aliases"][0]["updated_at"], "updated_by": s.admin_actor}]),
            "{stack}"
        );
        assert_eq!(history(&s, "prod").await.len(), 1, "{stack}");
        s.stop().await;
    }
}

/// Many movers of one alias with the same expectation: exactly one wins each round, the
/// losers are told the winner's version, no move is lost, the history is complete and chained.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_movers_exactly_one_wins_each_round() {
    const MOVERS: usize = 12;
    const ROUNDS: usize = 4;
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = Arc::new(TestServer::start(&backend).await);
        let versions: Vec<String> = (0..MOVERS).map(|i| format!("1.{i}.0")).collect();
        let refs: Vec<&str> = versions.iter().map(String::as_str).collect();
        publish_versions(&s, &refs).await;
        // Round 0 creates the alias (every mover expects it not to exist), then it moves.
        let mut current: Option<String> = None;
        let mut winners = Vec::new();
        for round in 0..=ROUNDS {
            let mut tasks = Vec::new();
            for (i, v) in versions
                .iter()
                .enumerate()
                .filter(|(_, v)| Some(*v) != current.as_ref())
            {
                let s = Arc::clone(&s);
                let body = json!({"version": v, "expect": current, "reason": format!("round {round} mover {i}")});
                tasks.push(tokio::spawn(async move {
                    let r = put_alias(&s, "prod", body.clone()).await;
                    (body["version"].as_str().unwrap().to_owned(), r)
                }));
            }
            let mut won = Vec::new();
            let mut lost = Vec::new();
            for t in tasks {
                let (v, r) = t.await.unwrap();
                match r.status {
                    201 if round == 0 => won.push(v),
                    200 if round > 0 => won.push(v),
                    412 => lost.push(r.error(412, "alias_conflict")),
                    other => panic!("{stack}: {other}: {}", String::from_utf8_lossy(&r.body)),
                }
            }
            assert_eq!(won.len(), 1, "{stack}: round {round}: winners {won:?}");
            for e in &lost {
                assert_eq!(e["details"]["current"], json!(won[0]), "{stack}: {e}");
            }
            current = Some(won[0].clone());
            winners.push(won[0].clone());
        }
        let h = history(&s, "prod").await;
        let to: Vec<String> = h
            .iter()
            .map(|e| e["to"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(to, winners, "{stack}: history is every winner, in order");
        for pair in h.windows(2) {
            assert_eq!(pair[1]["from"], pair[0]["to"], "{stack}: chained");
            assert!(pair[1]["id"].as_i64() > pair[0]["id"].as_i64());
        }
        assert_eq!(resolve(&s, "prod").await.json()["version"], json!(current));
        Arc::into_inner(s).unwrap().stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gates_refuse_with_every_failure_and_let_good_moves_pass() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        publish_versions(&s, &["1.0.0", "1.1.0", "1.2.0"]).await;
        add_eval(&s, "1.0.0", "mmlu:acc", 0.70, true).await;
        add_eval(&s, "1.1.0", "mmlu:acc", 0.65, true).await;
        // An older, lower score of 1.2.0: the latest row is the one that counts.
        add_eval(&s, "1.2.0", "mmlu:acc", 0.30, true).await;
        add_eval(&s, "1.2.0", "mmlu:acc", 0.695, true).await;

        let gate_url = s.u(&format!("{REPO}/aliases/prod/gate"));
        let gate = json!({"conditions": [
            {"eval": "mmlu:acc", "min": 0.6},
            {"no_regression": "mmlu:acc", "max_drop": 0.01},
            {"not_yanked": true},
        ]});
        let r = Reply::of(
            s.http
                .put(&gate_url)
                .body(gate.to_string())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            r.status,
            200,
            "{stack}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["conditions"], gate["conditions"]);
        let got = s.get(&format!("{REPO}/aliases/prod/gate")).await;
        assert_eq!(got.json()["conditions"], gate["conditions"], "{stack}");

        // A new alias: no regression to measure; the thresholds pass.
        let r = put_alias(&s, "prod", json!({"version": "1.0.0"})).await;
        assert_eq!(
            r.status,
            201,
            "{stack}: {}",
            String::from_utf8_lossy(&r.body)
        );

        // 1.1.0 drops 0.05: refused, one failure.
        let e = put_alias(&s, "prod", json!({"version": "1.1.0", "expect": "1.0.0"}))
            .await
            .error(409, "gate_failed");
        let failures = e["details"]["failures"].as_array().unwrap();
        assert_eq!(failures.len(), 1, "{e}");
        assert_eq!(failures[0]["condition"], gate["conditions"][1]);

        // Yanked and a newer, lower score too: every failing condition is listed, in order.
        let y = s
            .http
            .post(s.u(&format!("{REPO}/versions/1.1.0/yank")))
            .body(json!({"reason": "leaks prompts"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(y.status(), 200);
        add_eval(&s, "1.1.0", "mmlu:acc", 0.50, true).await;
        let e = put_alias(&s, "prod", json!({"version": "1.1.0", "expect": "1.0.0"}))
            .await
            .error(409, "gate_failed");
        let conditions: Vec<&Value> = e["details"]["failures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| &f["condition"])
            .collect();
        assert_eq!(
            conditions,
            gate["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            "{stack}: {e}"
        );
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("yanked") && message.contains("below the minimum"),
            "{message}"
        );

        // 1.2.0's latest score is within 0.01 of 1.0.0's: passes.
        let r = put_alias(&s, "prod", json!({"version": "1.2.0", "expect": "1.0.0"})).await;
        assert_eq!(
            r.status,
            200,
            "{stack}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let to: Vec<Value> = history(&s, "prod")
            .await
            .iter()
            .map(|h| h["to"].clone())
            .collect();
        assert_eq!(
            to,
            vec![json!("1.0.0"), json!("1.2.0")],
            "refusals leave no history"
        );

        // No validation of 1.0.0 against that base exists (tests/jobs.rs: one that does).
        let v = json!({"conditions": [{"validated_against": "acme/llama@1.0.0"}]});
        let r = s
            .http
            .put(&gate_url)
            .body(v.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let e = put_alias(&s, "prod", json!({"version": "1.0.0", "expect": "1.2.0"}))
            .await
            .error(409, "gate_failed");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("no validation of 1.0.0 against acme/llama@1.0.0"),
            "{e}"
        );

        // Malformed gates are refused, the stored one stays.
        for (bad, index) in [
            (json!({"conditions": []}), None),
            (
                json!({"conditions": [{"not_yanked": true}, {"eval": "mmlu", "min": 0.5}]}),
                Some(1),
            ),
            (json!({"conditions": [{"eval": "mmlu:acc"}]}), Some(0)),
            (
                json!({"conditions": [{"no_regression": "mmlu:acc", "max_drop": -1}]}),
                Some(0),
            ),
        ] {
            let r = Reply::of(
                s.http
                    .put(&gate_url)
                    .body(bad.to_string())
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            let e = r.error(400, "invalid_gate");
            if let Some(i) = index {
                assert_eq!(e["details"]["index"], i, "{e}");
            }
        }
        let r = Reply::of(
            s.http
                .put(&gate_url)
                .body(r#"{"conditions": [{"eval": "a:b", "min": 1, "bogus": 2}]}"#)
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.error(400, "invalid_json");
        assert_eq!(
            s.get(&format!("{REPO}/aliases/prod/gate")).await.json()["conditions"],
            v["conditions"]
        );

        assert_eq!(s.http.delete(&gate_url).send().await.unwrap().status(), 204);
        s.get(&format!("{REPO}/aliases/prod/gate"))
            .await
            .error(404, "gate_not_found");
        Reply::of(s.http.delete(&gate_url).send().await.unwrap())
            .await
            .error(404, "gate_not_found");
        let r = put_alias(&s, "prod", json!({"version": "1.0.0", "expect": "1.2.0"})).await;
        assert_eq!(r.status, 200, "{stack}: ungated");
        s.stop().await;
    }
}

/// An adapter's base reference may name an alias of the model; it is stored pinned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn base_references_resolve_through_model_aliases() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        publish_tiny_model(&s, "acme/llama").await;
        let r = s
            .http
            .put(s.u("/v1/models/acme/llama/aliases/prod"))
            .body(json!({"version": "1.0.0"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{stack}");
        let m = tiny_adapter(&s, json!({"base": {"reference": "acme/llama@prod"}})).await;
        let r = s.publish("adapters", "acme/bot", "1.0.0", &m).await;
        assert_eq!(
            r.status,
            201,
            "{stack}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["summary"]["base"]["reference"], "acme/llama@1.0.0");
        let m = tiny_adapter(&s, json!({"base": {"reference": "acme/llama@staging"}})).await;
        s.publish("adapters", "acme/bot", "1.1.0", &m)
            .await
            .error(400, "base_mismatch");
        s.stop().await;
    }
}
