//! Yank: ranges and "latest" skip a yanked version; exact versions, aliases and digests still
//! resolve it, flagged with the reason; un-yank restores it; bad input changes nothing.

mod common;

use common::{Reply, TestServer, stacks, tiny_adapter};
use serde_json::{Value, json};

const REPO: &str = "/v1/adapters/acme/bot";

async fn yank(s: &TestServer, version: &str, body: &str) -> Reply {
    let r = s
        .http
        .post(s.u(&format!("{REPO}/versions/{version}/yank")))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    Reply::of(r).await
}

async fn unyank(s: &TestServer, version: &str) -> Reply {
    let r = s
        .http
        .delete(s.u(&format!("{REPO}/versions/{version}/yank")))
        .send()
        .await
        .unwrap();
    Reply::of(r).await
}

/// `(version, yanked, yank_reason)` of a resolution.
async fn resolved(s: &TestServer, selector: Option<&str>) -> (Value, Value, Value) {
    let path = match selector {
        Some(sel) => format!("{REPO}/resolve/{sel}"),
        None => format!("{REPO}/resolve"),
    };
    let r = s.get(&path).await;
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    (
        v["version"].clone(),
        v["yanked"].clone(),
        v["yank_reason"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn yanked_versions_leave_ranges_and_latest_but_pins_still_resolve() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let mut digests = Vec::new();
        for v in ["1.0.0", "1.1.0", "1.2.0"] {
            let m = tiny_adapter(&s, json!({ "build": v })).await;
            let r = s.publish("adapters", "acme/bot", v, &m).await;
            assert_eq!(r.status, 201, "{stack}");
            digests.push(r.json()["manifest_digest"].as_str().unwrap().to_owned());
        }
        let r = s
            .http
            .put(s.u(&format!("{REPO}/aliases/prod")))
            .body(json!({"version": "1.2.0"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);

        let r = yank(&s, "1.2.0", r#"{"reason": "regressed on support tone"}"#).await;
        assert_eq!(
            r.status,
            200,
            "{stack}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let state = r.json();
        assert_eq!(state["yanked"], true);
        assert_eq!(state["yank_reason"], "regressed on support tone");
        assert_eq!(state["yanked_by"], s.admin_actor);
        assert!(state["yanked_at"].as_i64().unwrap() > 0);

        let reason = json!("regressed on support tone");
        let (no, yes) = (json!(false), json!(true));
        assert_eq!(
            resolved(&s, None).await,
            (json!("1.1.0"), no.clone(), Value::Null),
            "{stack}: latest skips it"
        );
        assert_eq!(
            resolved(&s, Some("^1")).await.0,
            "1.1.0",
            "{stack}: ranges skip it"
        );
        s.get(&format!("{REPO}/resolve/%3E=1.2.0"))
            .await
            .error(404, "no_match");
        let pinned = (json!("1.2.0"), yes.clone(), reason.clone());
        assert_eq!(resolved(&s, Some("1.2.0")).await, pinned, "{stack}: exact");
        assert_eq!(resolved(&s, Some("prod")).await, pinned, "{stack}: alias");
        assert_eq!(
            resolved(&s, Some(&digests[2])).await,
            pinned,
            "{stack}: digest"
        );
        let info = s.get(REPO).await.json();
        assert_eq!(info["latest"], "1.1.0", "{info}");
        let v = s.get(&format!("{REPO}/versions/1.2.0")).await.json();
        assert_eq!((&v["yanked"], &v["yank_reason"]), (&yes, &reason), "{v}");
        assert_eq!(v["yanked_by"], s.admin_actor);
        let list = s.get(&format!("{REPO}/versions")).await.json();
        let flags: Vec<&Value> = list["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| &v["yanked"])
            .collect();
        assert_eq!(flags, vec![&yes, &no, &no], "{list}");

        // Yanking again replaces the reason.
        let r = yank(&s, "1.2.0", r#"{"reason": "and leaks prompts"}"#).await;
        assert_eq!(r.json()["yank_reason"], "and leaks prompts");

        // Un-yank: back in ranges and latest, no reason left.
        let r = unyank(&s, "1.2.0").await;
        assert_eq!(r.status, 200, "{stack}");
        assert_eq!(r.json(), json!({"version": "1.2.0", "yanked": false}));
        assert_eq!(
            resolved(&s, None).await,
            (json!("1.2.0"), no.clone(), Value::Null)
        );
        assert_eq!(resolved(&s, Some("^1")).await.0, "1.2.0");
        let v = s.get(&format!("{REPO}/versions/1.2.0")).await.json();
        assert!(v.get("yank_reason").is_none() && v["yanked"] == no, "{v}");
        assert_eq!(
            unyank(&s, "1.2.0").await.status,
            200,
            "un-yank is idempotent"
        );

        // Every version yanked: nothing is "latest", pins still work.
        for v in ["1.0.0", "1.1.0", "1.2.0"] {
            assert_eq!(yank(&s, v, r#"{"reason": "recall"}"#).await.status, 200);
        }
        s.get(&format!("{REPO}/resolve"))
            .await
            .error(404, "no_match");
        assert!(s.get(REPO).await.json().get("latest").is_none());
        assert_eq!(resolved(&s, Some("1.0.0")).await.1, yes);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_yank_requests_change_nothing() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let m = tiny_adapter(&s, json!({})).await;
        assert_eq!(
            s.publish("adapters", "acme/bot", "1.0.0", &m).await.status,
            201
        );
        let long = format!(r#"{{"reason": "{}"}}"#, "x".repeat(1025));
        for (version, body, status, code) in [
            ("1.0.0", r#"{"reason": ""}"#, 400, "invalid_reason"),
            ("1.0.0", r#"{"reason": "   "}"#, 400, "invalid_reason"),
            ("1.0.0", long.as_str(), 400, "invalid_reason"),
            ("1.0.0", r#"{"reason": "a\u0001b"}"#, 400, "invalid_reason"),
            ("1.0.0", "{}", 400, "invalid_json"),
            ("1.0.0", "", 400, "invalid_json"),
            (
                "1.0.0",
                r#"{"reason": "x", "why": "y"}"#,
                400,
                "invalid_json",
            ),
            ("1.0.0", r#"{"reason": 7}"#, 400, "invalid_json"),
            ("one", r#"{"reason": "x"}"#, 400, "invalid_version"),
            ("2.0.0", r#"{"reason": "x"}"#, 404, "version_not_found"),
        ] {
            yank(&s, version, body).await.error(status, code);
        }
        let r = s
            .http
            .post(s.u("/v1/adapters/acme/nobody/versions/1.0.0/yank"))
            .body(r#"{"reason": "x"}"#)
            .send()
            .await
            .unwrap();
        Reply::of(r).await.error(404, "repository_not_found");
        unyank(&s, "2.0.0").await.error(404, "version_not_found");
        let v = s.get(&format!("{REPO}/versions/1.0.0")).await.json();
        assert_eq!(v["yanked"], false, "{stack}: {v}");
        assert_eq!(s.get(REPO).await.json()["latest"], "1.0.0");
        s.stop().await;
    }
}
