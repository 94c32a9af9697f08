//! Catalogue search input: refused filters, labels checked at publish, facts backfilled at
//! startup for versions that lack them.

mod common;
mod seed;

use common::{TestServer, stacks};
use seed::{Spec, catalogue, find, publish, try_publish};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_input_and_labels_at_publish() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        publish(
            &s,
            "acme/one",
            "1.0.0",
            &Spec::lora("b", 8, &["q_proj"]),
            json!({}),
        )
        .await;
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
            ("base=a%00b", "invalid_query"),
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
            let e = s
                .get(&format!("/v1/adapters?{query}"))
                .await
                .error(400, code);
            if code == "invalid_filter" {
                assert!(e["details"]["param"].is_string(), "{stack}: {query}: {e}");
            }
        }
        let long = "x".repeat(300);
        s.get(&format!("/v1/adapters?q={long}"))
            .await
            .error(400, "invalid_filter");
        let many: String = (0..17).map(|i| format!("target=m{i}&")).collect();
        s.get(&format!("/v1/adapters?{many}"))
            .await
            .error(400, "invalid_query");

        // Labels are checked at publish; a refused version leaves nothing behind.
        for labels in [
            json!({"Team": "x"}),
            json!({"team": 1}),
            json!({"team": "x".repeat(257)}),
            json!(["team"]),
            json!({"a b": "x"}),
        ] {
            let r = try_publish(
                &s,
                "acme/two",
                "1.0.0",
                &Spec::lora("b", 8, &["q_proj"]),
                json!({"labels": labels}),
            )
            .await;
            r.error(400, "invalid_label");
        }
        s.get("/v1/adapters/acme/two")
            .await
            .error(404, "repository_not_found");
        assert_eq!(find(&s, "").await, ["acme/one@1.0.0"]);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn facts_are_backfilled_at_startup() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        catalogue(&s).await;
        let before = find(&s, "rank_min=32&variant=rslora&base=org/base-b").await;
        assert_eq!(before, ["acme/gamma@1.0.0"]);
        // Forget every fact, and make gamma's summary predate rank_min / rank_max.
        let db = &s.state.db.pool;
        for table in [
            "version_targets",
            "version_labels",
            "lineage",
            "version_facts",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(db)
                .await
                .unwrap();
        }
        let id = seed::version_id(&s, "adapter", "acme/gamma", "1.0.0").await;
        let row = sqlx::query("SELECT summary FROM versions WHERE id = $1")
            .bind(id)
            .fetch_one(db)
            .await
            .unwrap();
        let mut summary: Value =
            serde_json::from_str(&sqlx::Row::get::<String, _>(&row, 0)).unwrap();
        summary.as_object_mut().unwrap().remove("rank_min");
        summary.as_object_mut().unwrap().remove("rank_max");
        sqlx::query("UPDATE versions SET summary = $1 WHERE id = $2")
            .bind(summary.to_string())
            .bind(id)
            .execute(db)
            .await
            .unwrap();
        assert_eq!(
            find(&s, "target=k_proj").await,
            Vec::<String>::new(),
            "{stack}: no facts, no hits"
        );

        // A restart backfills (and a second run finds nothing to do).
        let config = common::config(&backend);
        s.stop().await;
        let s = TestServer::start_with(&backend, config).await;
        assert_eq!(
            adapter_registry::publish::facts::backfill(&s.state)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            find(&s, "rank_min=32&variant=rslora&base=org/base-b").await,
            before,
            "{stack}"
        );
        let v = s.get("/v1/adapters?q=gamma").await.json();
        assert_eq!(
            v["repositories"][0]["matched"]["facts"]["rank_max"], 64,
            "{stack}: read back from the stored config"
        );
        assert_eq!(
            find(&s, "label=team=search&base=acme/llama").await,
            ["acme/alpha@1.1.0"]
        );
        assert_eq!(find(&s, "").await.len(), 5);
        s.stop().await;
    }
}
