//! Catalogue search over a seeded catalogue (adapters on two bases, ranks with a
//! rank_pattern, DoRA / rsLoRA variants, labels, append-only evals, a yanked version):
//! every filter, every sort, cursor paging, refused input, facts backfill.

mod common;
mod seed;

use common::{TestServer, stacks, tiny_model};
use seed::{Spec, eval, hits, publish, try_publish, yank};
use serde_json::{Value, json};

const QKV: &[&str] = &["q_proj", "k_proj", "v_proj"];

struct Seeded {
    model_content: String,
    model_shape: String,
}

async fn seed(s: &TestServer) -> Seeded {
    let m = tiny_model(s).await;
    let r = s.publish("models", "acme/llama", "1.0.0", &m).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let model = r.json();
    let on_llama = json!({ "base": { "reference": "acme/llama@1.0.0" } });
    let with = |labels: Value| {
        let mut m = on_llama.clone();
        m["labels"] = labels;
        m
    };
    let base_b = "org/base-b";
    publish(s, "acme/alpha", "1.0.0", &Spec::lora("example/tiny-llama", 8, &["q_proj", "v_proj"]), with(json!({"team": "search"}))).await;
    publish(s, "acme/alpha", "1.1.0", &Spec::lora("example/tiny-llama", 16, QKV), with(json!({"team": "search"}))).await;
    let mut beta = Spec::lora("example/tiny-llama", 4, &["q_proj", "k_proj", "v_proj", "o_proj"]);
    beta.dora = true;
    publish(s, "acme/beta", "1.0.0", &beta, with(json!({"team": "infra"}))).await;
    let mut gamma = Spec::lora(base_b, 32, &["q_proj", "v_proj"]);
    gamma.rslora = true;
    gamma.rank_pattern = vec![("model.layers.1.self_attn.q_proj", 64)];
    publish(s, "acme/gamma", "1.0.0", &gamma, json!({})).await;
    let mut delta = Spec::lora(base_b, 8, &["o_proj"]);
    delta.dora = true;
    delta.rslora = true;
    publish(s, "other/delta", "1.0.0", &delta, json!({})).await;
    publish(s, "other/delta", "2.0.0", &Spec::lora(base_b, 2, &["o_proj"]), json!({})).await;
    yank(s, "adapter", "other/delta", "2.0.0", "broken").await;
    publish(s, "other/eps", "1.0.0", &Spec::lora(base_b, 8, &["q_proj"]), json!({})).await;
    publish(s, "other/eps", "1.1.0", &Spec::lora(base_b, 8, &["q_proj"]), json!({"labels": {"stage": "prod"}})).await;

    eval(s, "acme/alpha", "1.0.0", "mmlu", "acc", 0.55).await;
    eval(s, "acme/alpha", "1.1.0", "mmlu", "acc", 0.62).await;
    eval(s, "acme/alpha", "1.1.0", "mmlu", "acc", 0.64).await;
    eval(s, "acme/alpha", "1.1.0", "task", "f1", 0.8).await;
    eval(s, "acme/beta", "1.0.0", "mmlu", "acc", 0.70).await;
    // Gamma once scored 0.9; its latest value is 0.58: filters see the latest only.
    eval(s, "acme/gamma", "1.0.0", "mmlu", "acc", 0.9).await;
    eval(s, "acme/gamma", "1.0.0", "mmlu", "acc", 0.58).await;
    Seeded {
        model_content: model["summary"]["content_digest"].as_str().unwrap().to_owned(),
        model_shape: model["summary"]["shape_fingerprint"].as_str().unwrap().to_owned(),
    }
}

async fn find(s: &TestServer, query: &str) -> Vec<String> {
    let r = s.get(&format!("/v1/adapters?{query}")).await;
    assert_eq!(r.status, 200, "{}: {query}: {}", s.stack, String::from_utf8_lossy(&r.body));
    hits(&r.json())
}

/// Every page of `query` at page size `limit`, checking that each page is full but the last.
async fn walk(s: &TestServer, query: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let mut url = format!("/v1/adapters?{query}&limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let v = s.get(&url).await.json();
        let page = hits(&v);
        match v.get("next_cursor").and_then(Value::as_str) {
            Some(c) => {
                assert_eq!(page.len(), limit, "{}: {url}: a page before the last is full", s.stack);
                cursor = Some(c.to_owned());
                out.extend(page);
            }
            None => {
                out.extend(page);
                return out;
            }
        }
    }
    panic!("paging did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let seeded = seed(&s).await;
        let all = [
            "acme/alpha@1.1.0",
            "acme/beta@1.0.0",
            "acme/gamma@1.0.0",
            "other/delta@1.0.0",
            "other/eps@1.1.0",
        ];
        // No filter: the newest non-yanked version of each repository.
        assert_eq!(find(&s, "").await, all, "{stack}");
        assert_eq!(find(&s, "namespace=other").await, ["other/delta@1.0.0", "other/eps@1.1.0"]);
        assert_eq!(find(&s, "q=GAM").await, ["acme/gamma@1.0.0"], "{stack}");
        assert_eq!(find(&s, "q=base-b").await, ["acme/gamma@1.0.0", "other/delta@1.0.0", "other/eps@1.1.0"], "{stack}: q matches the base name");

        // Base: by registered reference (with or without version), digest, fingerprint, name.
        let on_llama = ["acme/alpha@1.1.0", "acme/beta@1.0.0"];
        assert_eq!(find(&s, "base=acme/llama").await, on_llama, "{stack}");
        assert_eq!(find(&s, "base=acme/llama@1.0.0").await, on_llama, "{stack}");
        assert_eq!(find(&s, &format!("base={}", seeded.model_content)).await, on_llama, "{stack}");
        assert_eq!(find(&s, &format!("base={}", seeded.model_shape)).await, on_llama, "{stack}");
        assert_eq!(find(&s, "base=org/base-b").await, ["acme/gamma@1.0.0", "other/delta@1.0.0", "other/eps@1.1.0"]);
        assert_eq!(find(&s, &format!("base=sha256:{}", "0".repeat(64))).await, Vec::<String>::new());

        // Targets (repeatable: all must be adapted).
        assert_eq!(find(&s, "target=k_proj").await, on_llama, "{stack}");
        assert_eq!(find(&s, "target=o_proj").await, ["acme/beta@1.0.0", "other/delta@1.0.0"]);
        assert_eq!(find(&s, "target=k_proj&target=o_proj").await, ["acme/beta@1.0.0"]);

        // Rank range: rank_pattern counts (gamma is 32..64); a match may be an older version.
        assert_eq!(find(&s, "rank_min=16").await, ["acme/alpha@1.1.0", "acme/gamma@1.0.0"], "{stack}");
        assert_eq!(
            find(&s, "rank_max=8").await,
            ["acme/alpha@1.0.0", "acme/beta@1.0.0", "other/delta@1.0.0", "other/eps@1.1.0"],
            "{stack}"
        );
        assert_eq!(find(&s, "rank_min=33").await, Vec::<String>::new(), "{stack}: gamma's smallest rank is 32");
        assert_eq!(find(&s, "rank_min=64&rank_max=64").await, Vec::<String>::new());
        assert_eq!(find(&s, "rank_min=32&rank_max=64").await, ["acme/gamma@1.0.0"]);
        // The yanked delta@2.0.0 (rank 2) never matches.
        assert_eq!(find(&s, "rank_max=2").await, Vec::<String>::new(), "{stack}");

        // Variants (`+` as %2B, as a form-encoded space, and in either order).
        assert_eq!(find(&s, "variant=dora").await, ["acme/beta@1.0.0"]);
        assert_eq!(find(&s, "variant=rslora").await, ["acme/gamma@1.0.0"]);
        assert_eq!(find(&s, "variant=rslora%2Bdora").await, ["other/delta@1.0.0"]);
        assert_eq!(find(&s, "variant=dora+rslora").await, ["other/delta@1.0.0"]);
        assert_eq!(find(&s, "variant=lora").await, ["acme/alpha@1.1.0", "other/eps@1.1.0"]);

        // Labels.
        assert_eq!(find(&s, "label=team=search").await, ["acme/alpha@1.1.0"]);
        assert_eq!(find(&s, "label=team").await, on_llama);
        assert_eq!(find(&s, "label=team=search&label=team=infra").await, Vec::<String>::new());
        assert_eq!(find(&s, "label=stage=prod").await, ["other/eps@1.1.0"]);

        // Evals: over the latest value per benchmark:metric.
        assert_eq!(find(&s, "eval=mmlu:acc%3E%3D0.6").await, on_llama, "{stack}");
        assert_eq!(find(&s, "eval=mmlu:acc>=0.6").await, on_llama, "{stack}");
        assert_eq!(find(&s, "eval=mmlu:acc<0.6").await, ["acme/alpha@1.0.0", "acme/gamma@1.0.0"], "{stack}");
        assert_eq!(find(&s, "eval=mmlu:acc>0.85").await, Vec::<String>::new(), "{stack}: 0.9 is not gamma's latest");
        assert_eq!(find(&s, "eval=mmlu:acc=0.7").await, ["acme/beta@1.0.0"]);
        assert_eq!(find(&s, "eval=mmlu:acc<=0.64").await, ["acme/alpha@1.1.0", "acme/gamma@1.0.0"]);
        assert_eq!(find(&s, "eval=mmlu:acc>=0.6&eval=task:f1>0.5").await, ["acme/alpha@1.1.0"]);

        // Combined.
        assert_eq!(find(&s, "namespace=acme&variant=lora&rank_max=8").await, ["acme/alpha@1.0.0"]);

        // What a hit carries.
        let v = s.get("/v1/adapters?q=gamma").await.json();
        let hit = &v["repositories"][0];
        assert_eq!(hit["latest"], "1.0.0");
        let m = &hit["matched"];
        assert_eq!(m["facts"]["variant"], "rslora", "{m}");
        assert_eq!(m["facts"]["rank_min"], 32, "{m}");
        assert_eq!(m["facts"]["rank_max"], 64, "{m}");
        assert_eq!(m["facts"]["targets"], json!(["q_proj", "v_proj"]));
        assert_eq!(m["facts"]["base"]["name_or_path"], "org/base-b");
        assert_eq!(m["evals"], json!([{"benchmark": "mmlu", "metric": "acc", "value": 0.58, "higher_is_better": true, "created_at": 1_700_000_000}]));
        let v = s.get("/v1/adapters?q=alpha").await.json();
        let m = &v["repositories"][0]["matched"];
        assert_eq!(m["labels"], json!({"team": "search"}));
        assert_eq!(m["facts"]["base"]["reference"], "acme/llama@1.0.0");
        assert_eq!(m["facts"]["base"]["content_digest"], seeded.model_content.as_str());
        let evals: Vec<(String, f64)> = m["evals"].as_array().unwrap().iter()
            .map(|e| (format!("{}:{}", e["benchmark"].as_str().unwrap(), e["metric"].as_str().unwrap()), e["value"].as_f64().unwrap()))
            .collect();
        assert_eq!(evals, [("mmlu:acc".to_owned(), 0.64), ("task:f1".to_owned(), 0.8)]);

        // Models: their own identities.
        let models = s.get("/v1/models").await.json();
        assert_eq!(hits(&models), ["acme/llama@1.0.0"]);
        assert_eq!(models["repositories"][0]["matched"]["facts"]["content_digest"], seeded.model_content.as_str());
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sorts_and_paging() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        seed(&s).await;
        let by_name = ["acme/alpha@1.1.0", "acme/beta@1.0.0", "acme/gamma@1.0.0", "other/delta@1.0.0", "other/eps@1.1.0"];
        let reversed: Vec<&str> = by_name.iter().rev().copied().collect();
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("sort=name", by_name.to_vec()),
            ("sort=-name", reversed.clone()),
            // Publication order of the matched versions (eps@1.1.0 was published last).
            ("sort=created", vec!["acme/alpha@1.1.0", "acme/beta@1.0.0", "acme/gamma@1.0.0", "other/delta@1.0.0", "other/eps@1.1.0"]),
            ("sort=-created", reversed),
            // Versions without the metric come last in both directions.
            ("sort=-eval:mmlu:acc", vec!["acme/beta@1.0.0", "acme/alpha@1.1.0", "acme/gamma@1.0.0", "other/eps@1.1.0", "other/delta@1.0.0"]),
            ("sort=eval:mmlu:acc", vec!["acme/gamma@1.0.0", "acme/alpha@1.1.0", "acme/beta@1.0.0", "other/delta@1.0.0", "other/eps@1.1.0"]),
            ("sort=-eval:task:f1", vec!["acme/alpha@1.1.0", "other/eps@1.1.0", "other/delta@1.0.0", "acme/gamma@1.0.0", "acme/beta@1.0.0"]),
        ];
        for (query, expected) in &cases {
            let got = find(&s, query).await;
            assert_eq!(got, *expected, "{stack}: {query}");
            // Paging in any page size gives the same rows: no duplicate, no gap.
            for limit in [1, 2, 3] {
                assert_eq!(walk(&s, query, limit).await, got, "{stack}: {query} by {limit}");
            }
        }
        // An eval sort with the eval filter: only versions that have the metric.
        assert_eq!(
            find(&s, "sort=-eval:mmlu:acc&eval=mmlu:acc<0.66").await,
            ["acme/alpha@1.1.0", "acme/gamma@1.0.0"],
            "{stack}"
        );

        // Cursors are opaque and bound to their search: tampering and reuse are refused.
        let v = s.get("/v1/adapters?sort=name&limit=2").await.json();
        let c = v["next_cursor"].as_str().unwrap().to_owned();
        let (payload, mac) = c.split_once('.').unwrap();
        let text = String::from_utf8(hex_decode(payload)).unwrap();
        assert!(text.contains("acme"), "{text}");
        let forged = hex_encode(text.replace("beta", "bet").as_bytes());
        for bad in [
            format!("{forged}.{mac}"),
            format!("{payload}.{}", "0".repeat(mac.len())),
            "zz".to_owned(),
            payload.to_owned(),
        ] {
            s.get(&format!("/v1/adapters?sort=name&limit=2&cursor={bad}"))
                .await
                .error(400, "invalid_cursor");
        }
        s.get(&format!("/v1/adapters?sort=-name&limit=2&cursor={c}"))
            .await
            .error(400, "invalid_cursor");
        s.get(&format!("/v1/adapters?sort=name&namespace=acme&limit=2&cursor={c}"))
            .await
            .error(400, "invalid_cursor");
        // The same search with another page size may go on from it.
        let next = s.get(&format!("/v1/adapters?sort=name&limit=5&cursor={c}")).await;
        assert_eq!(hits(&next.json()), ["acme/gamma@1.0.0", "other/delta@1.0.0", "other/eps@1.1.0"]);
        s.stop().await;
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_input_and_labels_at_publish() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        publish(&s, "acme/one", "1.0.0", &Spec::lora("b", 8, &["q_proj"]), json!({})).await;
        for (query, code) in [
            ("rank_min=0", "invalid_filter"),
            ("rank_min=abc", "invalid_filter"),
            ("rank_max=-1", "invalid_filter"),
            ("rank_min=9&rank_max=3", "invalid_filter"),
            ("variant=qlora", "invalid_filter"),
            ("label=Team=x", "invalid_filter"),
            ("label==x", "invalid_filter"),
            ("eval=mmlu>=0.6", "invalid_filter"),
            ("eval=mmlu:acc>=high", "invalid_filter"),
            ("eval=mmlu:acc>=NaN", "invalid_filter"),
            ("eval=mmlu:acc", "invalid_filter"),
            ("base=sha256:xyz", "invalid_filter"),
            ("base=a%00b", "invalid_filter"),
            ("target=a/b", "invalid_filter"),
            ("sort=size", "invalid_sort"),
            ("sort=eval:mmlu", "invalid_sort"),
            ("sort=--name", "invalid_sort"),
            ("lable=team=x", "invalid_query"),
            ("q=a&q=b", "invalid_query"),
            ("limit=0", "invalid_query"),
            ("limit=101", "invalid_query"),
            ("namespace=..", "invalid_name"),
        ] {
            let e = s.get(&format!("/v1/adapters?{query}")).await.error(400, code);
            if code == "invalid_filter" {
                assert!(e["details"]["param"].is_string(), "{stack}: {query}: {e}");
            }
        }
        let long = "x".repeat(300);
        s.get(&format!("/v1/adapters?q={long}")).await.error(400, "invalid_filter");
        let many: String = (0..17).map(|i| format!("target=m{i}&")).collect();
        s.get(&format!("/v1/adapters?{many}")).await.error(400, "invalid_query");

        // Labels are checked at publish; a refused version leaves nothing behind.
        for labels in [
            json!({"Team": "x"}),
            json!({"team": 1}),
            json!({"team": "x".repeat(257)}),
            json!(["team"]),
            json!({"a b": "x"}),
        ] {
            let r = try_publish(&s, "acme/two", "1.0.0", &Spec::lora("b", 8, &["q_proj"]), json!({"labels": labels})).await;
            r.error(400, "invalid_label");
        }
        s.get("/v1/adapters/acme/two").await.error(404, "repository_not_found");
        assert_eq!(find(&s, "").await, ["acme/one@1.0.0"]);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn facts_are_backfilled_at_startup() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        seed(&s).await;
        let before = find(&s, "rank_min=32&variant=rslora&base=org/base-b").await;
        assert_eq!(before, ["acme/gamma@1.0.0"]);
        // Forget every fact, and make gamma's summary predate rank_min / rank_max.
        let db = &s.state.db.pool;
        for table in ["version_targets", "version_labels", "lineage", "version_facts"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}"))).execute(db).await.unwrap();
        }
        let id = seed::version_id(&s, "adapter", "acme/gamma", "1.0.0").await;
        let row = sqlx::query("SELECT summary FROM versions WHERE id = $1").bind(id).fetch_one(db).await.unwrap();
        let mut summary: Value = serde_json::from_str(&sqlx::Row::get::<String, _>(&row, 0)).unwrap();
        summary.as_object_mut().unwrap().remove("rank_min");
        summary.as_object_mut().unwrap().remove("rank_max");
        sqlx::query("UPDATE versions SET summary = $1 WHERE id = $2").bind(summary.to_string()).bind(id).execute(db).await.unwrap();
        assert_eq!(find(&s, "target=k_proj").await, Vec::<String>::new(), "{stack}: no facts, no hits");

        // A restart backfills (and a second run finds nothing to do).
        let config = common::config(&backend);
        s.stop().await;
        let s = TestServer::start_with(&backend, config).await;
        assert_eq!(adapter_registry::publish::facts::backfill(&s.state).await.unwrap(), 0);
        assert_eq!(find(&s, "rank_min=32&variant=rslora&base=org/base-b").await, before, "{stack}");
        let v = s.get("/v1/adapters?q=gamma").await.json();
        assert_eq!(v["repositories"][0]["matched"]["facts"]["rank_max"], 64, "{stack}: read back from the stored config");
        assert_eq!(find(&s, "label=team=search&base=acme/llama").await, ["acme/alpha@1.1.0"]);
        assert_eq!(find(&s, "").await.len(), 5);
        s.stop().await;
    }
}
