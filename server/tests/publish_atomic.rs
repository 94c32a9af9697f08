//! A publish and the validation job it asks for are one transaction, on both stacks: a
//! failure right after the insert (the fail point `publish.after_insert`: the process dies
//! or the database connection drops before the answer) still leaves the version with its
//! job queued; a failure before the commit (`publish.before_commit`) leaves neither.
//! Fail points are global to the process: this file holds one test, so nothing else runs
//! beside it.

mod common;

use common::{TestServer, publish_tiny_model, stacks, tiny_adapter};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_validation_job_is_queued_with_the_version_or_not_at_all() {
    let scenario = fail::FailScenario::setup();
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        publish_tiny_model(&s, "acme/llama").await;
        let a = tiny_adapter(&s, json!({"base": {"reference": "acme/llama@^1"}})).await;

        // Before the commit: nothing is visible, no job.
        fail::cfg("publish.before_commit", "return").unwrap();
        let r = s.publish("adapters", "acme/bot", "1.0.0", &a).await;
        fail::remove("publish.before_commit");
        r.error(500, "internal");
        s.get("/v1/adapters/acme/bot/versions/1.0.0")
            .await
            .error(404, "repository_not_found");
        let listed = s.get("/v1/jobs?kind=validate").await.json();
        assert_eq!(listed["jobs"], json!([]), "{stack}: {listed}");

        // Right after the insert: the caller sees a failure, but the version and its job
        // were committed together.
        fail::cfg("publish.after_insert", "return").unwrap();
        let r = s.publish("adapters", "acme/bot", "1.0.0", &a).await;
        fail::remove("publish.after_insert");
        r.error(500, "internal");
        let v = s
            .get("/v1/adapters/acme/bot/versions/1.0.0")
            .await
            .expect(200, &stack.to_string());
        let listed = s.get("/v1/jobs?kind=validate").await.json();
        let jobs = listed["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 1, "{stack}: {listed}");
        assert_eq!(jobs[0]["state"], "queued");
        assert_eq!(jobs[0]["submitter"], "registry (on publish)");
        assert_eq!(jobs[0]["inputs"]["adapter"]["reference"], "acme/bot@1.0.0");
        assert_eq!(
            jobs[0]["inputs"]["adapter"]["manifest_digest"],
            v["manifest_digest"]
        );
        assert_eq!(jobs[0]["inputs"]["base"]["reference"], "acme/llama@1.0.0");

        // The retry is idempotent: the same version, still one job.
        s.publish("adapters", "acme/bot", "1.0.0", &a)
            .await
            .expect(200, &stack.to_string());
        let listed = s.get("/v1/jobs?kind=validate").await.json();
        assert_eq!(listed["jobs"].as_array().unwrap().len(), 1, "{stack}");
        s.stop().await;
    }
    scenario.teardown();
}
