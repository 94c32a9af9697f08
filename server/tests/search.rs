//! Catalogue search over a seeded catalogue (`seed::catalogue`: adapters on two bases,
//! ranks with a rank_pattern, DoRA / rsLoRA variants, labels, append-only evals, a yanked
//! version): every filter, every sort, cursor paging and tampering.

mod common;
mod seed;

use common::{TestServer, stacks};
use seed::{catalogue, find, hits};
use serde_json::{Value, json};

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
                assert_eq!(
                    page.len(),
                    limit,
                    "{}: {url}: a page before the last is full",
                    s.stack
                );
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
        let seeded = catalogue(&s).await;
        let all = [
            "acme/alpha@1.1.0",
            "acme/beta@1.0.0",
            "acme/gamma@1.0.0",
            "other/delta@1.0.0",
            "other/eps@1.1.0",
        ];
        // No filter: the newest non-yanked version of each repository.
        assert_eq!(find(&s, "").await, all, "{stack}");
        assert_eq!(
            find(&s, "namespace=other").await,
            ["other/delta@1.0.0", "other/eps@1.1.0"]
        );
        assert_eq!(find(&s, "q=GAM").await, ["acme/gamma@1.0.0"], "{stack}");
        assert_eq!(
            find(&s, "q=base-b").await,
            ["acme/gamma@1.0.0", "other/delta@1.0.0", "other/eps@1.1.0"],
            "{stack}: q matches the base name"
        );

        // Base: by registered reference (with or without version), digest, fingerprint, name.
        let on_llama = ["acme/alpha@1.1.0", "acme/beta@1.0.0"];
        assert_eq!(find(&s, "base=acme/llama").await, on_llama, "{stack}");
        assert_eq!(find(&s, "base=acme/llama@1.0.0").await, on_llama, "{stack}");
        assert_eq!(
            find(&s, &format!("base={}", seeded.model_content)).await,
            on_llama,
            "{stack}"
        );
        assert_eq!(
            find(&s, &format!("base={}", seeded.model_shape)).await,
            on_llama,
            "{stack}"
        );
        assert_eq!(
            find(&s, "base=org/base-b").await,
            ["acme/gamma@1.0.0", "other/delta@1.0.0", "other/eps@1.1.0"]
        );
        assert_eq!(
            find(&s, &format!("base=sha256:{}", "0".repeat(64))).await,
            Vec::<String>::new()
        );

        // Targets (repeatable: all must be adapted).
        assert_eq!(find(&s, "target=k_proj").await, on_llama, "{stack}");
        assert_eq!(
            find(&s, "target=o_proj").await,
            ["acme/beta@1.0.0", "other/delta@1.0.0"]
        );
        assert_eq!(
            find(&s, "target=k_proj&target=o_proj").await,
            ["acme/beta@1.0.0"]
        );

        // Rank range: rank_pattern counts (gamma is 32..64); a match may be an older version.
        assert_eq!(
            find(&s, "rank_min=16").await,
            ["acme/alpha@1.1.0", "acme/gamma@1.0.0"],
            "{stack}"
        );
        assert_eq!(
            find(&s, "rank_max=8").await,
            [
                "acme/alpha@1.0.0",
                "acme/beta@1.0.0",
                "other/delta@1.0.0",
                "other/eps@1.1.0"
            ],
            "{stack}"
        );
        assert_eq!(
            find(&s, "rank_min=33").await,
            Vec::<String>::new(),
            "{stack}: gamma's smallest rank is 32"
        );
        assert_eq!(
            find(&s, "rank_min=64&rank_max=64").await,
            Vec::<String>::new()
        );
        assert_eq!(
            find(&s, "rank_min=32&rank_max=64").await,
            ["acme/gamma@1.0.0"]
        );
        // The yanked delta@2.0.0 (rank 2) never matches.
        assert_eq!(
            find(&s, "rank_max=2").await,
            Vec::<String>::new(),
            "{stack}"
        );

        // Variants (`+` as %2B, as a form-encoded space, and in either order).
        assert_eq!(find(&s, "variant=dora").await, ["acme/beta@1.0.0"]);
        assert_eq!(find(&s, "variant=rslora").await, ["acme/gamma@1.0.0"]);
        assert_eq!(
            find(&s, "variant=rslora%2Bdora").await,
            ["other/delta@1.0.0"]
        );
        assert_eq!(find(&s, "variant=dora+rslora").await, ["other/delta@1.0.0"]);
        assert_eq!(
            find(&s, "variant=lora").await,
            ["acme/alpha@1.1.0", "other/eps@1.1.0"]
        );

        // Labels.
        assert_eq!(find(&s, "label=team=search").await, ["acme/alpha@1.1.0"]);
        assert_eq!(find(&s, "label=team").await, on_llama);
        assert_eq!(
            find(&s, "label=team=search&label=team=infra").await,
            Vec::<String>::new()
        );
        assert_eq!(find(&s, "label=stage=prod").await, ["other/eps@1.1.0"]);

        // Evals: over the latest value per benchmark:metric.
        assert_eq!(
            find(&s, "eval=mmlu:acc%3E%3D0.6").await,
            on_llama,
            "{stack}"
        );
        assert_eq!(find(&s, "eval=mmlu:acc>=0.6").await, on_llama, "{stack}");
        assert_eq!(
            find(&s, "eval=mmlu:acc<0.6").await,
            ["acme/alpha@1.0.0", "acme/gamma@1.0.0"],
            "{stack}"
        );
        assert_eq!(
            find(&s, "eval=mmlu:acc>0.85").await,
            Vec::<String>::new(),
            "{stack}: 0.9 is not gamma's latest"
        );
        assert_eq!(find(&s, "eval=mmlu:acc=0.7").await, ["acme/beta@1.0.0"]);
        assert_eq!(
            find(&s, "eval=mmlu:acc<=0.64").await,
            ["acme/alpha@1.1.0", "acme/gamma@1.0.0"]
        );
        assert_eq!(
            find(&s, "eval=mmlu:acc>=0.6&eval=task:f1>0.5").await,
            ["acme/alpha@1.1.0"]
        );

        // Combined.
        assert_eq!(
            find(&s, "namespace=acme&variant=lora&rank_max=8").await,
            ["acme/alpha@1.0.0"]
        );

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
        assert_eq!(
            m["evals"],
            json!([{"benchmark": "mmlu", "metric": "acc", "value": 0.58, "higher_is_better": true, "created_at": 1_700_000_000}])
        );
        let v = s.get("/v1/adapters?q=alpha").await.json();
        let m = &v["repositories"][0]["matched"];
        assert_eq!(m["labels"], json!({"team": "search"}));
        assert_eq!(m["facts"]["base"]["reference"], "acme/llama@1.0.0");
        assert_eq!(
            m["facts"]["base"]["content_digest"],
            seeded.model_content.as_str()
        );
        let evals: Vec<(String, f64)> = m["evals"]
            .as_array()
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
            .collect();
        assert_eq!(
            evals,
            [("mmlu:acc".to_owned(), 0.64), ("task:f1".to_owned(), 0.8)]
        );

        // Models: their own identities.
        let models = s.get("/v1/models").await.json();
        assert_eq!(hits(&models), ["acme/llama@1.0.0"]);
        assert_eq!(
            models["repositories"][0]["matched"]["facts"]["content_digest"],
            seeded.model_content.as_str()
        );
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sorts_and_paging() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        catalogue(&s).await;
        let by_name = [
            "acme/alpha@1.1.0",
            "acme/beta@1.0.0",
            "acme/gamma@1.0.0",
            "other/delta@1.0.0",
            "other/eps@1.1.0",
        ];
        let reversed: Vec<&str> = by_name.iter().rev().copied().collect();
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("sort=name", by_name.to_vec()),
            ("sort=-name", reversed.clone()),
            // Publication order of the matched versions (eps@1.1.0 was published last).
            (
                "sort=created",
                vec![
                    "acme/alpha@1.1.0",
                    "acme/beta@1.0.0",
                    "acme/gamma@1.0.0",
                    "other/delta@1.0.0",
                    "other/eps@1.1.0",
                ],
            ),
            ("sort=-created", reversed),
            // Versions without the metric come last in both directions.
            (
                "sort=-eval:mmlu:acc",
                vec![
                    "acme/beta@1.0.0",
                    "acme/alpha@1.1.0",
                    "acme/gamma@1.0.0",
                    "other/eps@1.1.0",
                    "other/delta@1.0.0",
                ],
            ),
            (
                "sort=eval:mmlu:acc",
                vec![
                    "acme/gamma@1.0.0",
                    "acme/alpha@1.1.0",
                    "acme/beta@1.0.0",
                    "other/delta@1.0.0",
                    "other/eps@1.1.0",
                ],
            ),
            (
                "sort=-eval:task:f1",
                vec![
                    "acme/alpha@1.1.0",
                    "other/eps@1.1.0",
                    "other/delta@1.0.0",
                    "acme/gamma@1.0.0",
                    "acme/beta@1.0.0",
                ],
            ),
        ];
        for (query, expected) in &cases {
            let got = find(&s, query).await;
            assert_eq!(got, *expected, "{stack}: {query}");
            // Paging in any page size gives the same rows: no duplicate, no gap.
            for limit in [1, 2, 3] {
                assert_eq!(
                    walk(&s, query, limit).await,
                    got,
                    "{stack}: {query} by {limit}"
                );
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
        s.get(&format!(
            "/v1/adapters?sort=name&namespace=acme&limit=2&cursor={c}"
        ))
        .await
        .error(400, "invalid_cursor");
        // The same search with another page size may go on from it.
        let next = s
            .get(&format!("/v1/adapters?sort=name&limit=5&cursor={c}"))
            .await;
        assert_eq!(
            hits(&next.json()),
            ["acme/gamma@1.0.0", "other/delta@1.0.0", "other/eps@1.1.0"]
        );
        s.stop().await;
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
