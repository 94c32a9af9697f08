//! The per-process caches (version, resolve and search answers; tokens) never serve what a
//! write through another server changed: two real servers over one database (on SQLite,
//! two processes sharing the file; on PostgreSQL + S3, two stateless servers). Each read
//! through B is warmed first, then a write goes through A, then B must show it at once.

use adapter_testkit::{Backend, HttpResponse, ServerProcess, http, stacks};
use proc::{adapter_manifest, get, try_move_alias, try_publish};
use serde_json::{Value, json};

mod proc;

fn send(server: &ServerProcess, method: &str, path: &str, body: &Value) -> HttpResponse {
    let (name, value) = server.auth();
    http(
        method,
        &format!("{}{path}", server.url),
        &[(name, &value), ("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// `GET path` through `server` twice (the second from its cache when it keeps one): both
/// answers, which must agree.
fn read_twice(server: &ServerProcess, path: &str) -> Value {
    let first = get(server, path);
    let second = get(server, path);
    assert_eq!(first.status, second.status, "{path}");
    assert_eq!(first.body, second.body, "{path}: a cached answer differs");
    assert_eq!(first.status, 200, "{path}: {}", first.text());
    first.json()
}

#[test]
fn a_write_through_one_server_is_read_through_the_other_at_once() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let a = ServerProcess::start_with(&backend, &["--workers", "0"], &[]);
        let b = ServerProcess::start_with(&backend, &["--workers", "0"], &[]);
        let v1 = adapter_manifest(&a, b"one");
        assert_eq!(
            try_publish(&a, "cache/bot", "1.0.0", &v1).unwrap().status,
            201
        );

        let version = "/v1/adapters/cache/bot/versions/1.0.0";
        let latest = "/v1/adapters/cache/bot/resolve";
        let caret = "/v1/adapters/cache/bot/resolve/%5E1";
        let search = "/v1/adapters?q=cache";
        assert_eq!(read_twice(&b, latest)["version"], "1.0.0", "{stack}");
        assert_eq!(read_twice(&b, caret)["version"], "1.0.0");
        let page = read_twice(&b, search);
        assert_eq!(page["repositories"][0]["matched"]["version"], "1.0.0");
        assert_eq!(read_twice(&b, version)["evals"], json!([]));

        // A new version.
        let v2 = adapter_manifest(&a, b"two");
        assert_eq!(
            try_publish(&a, "cache/bot", "1.1.0", &v2).unwrap().status,
            201
        );
        assert_eq!(read_twice(&b, latest)["version"], "1.1.0", "{stack}");
        assert_eq!(read_twice(&b, caret)["version"], "1.1.0");
        let page = read_twice(&b, search);
        assert_eq!(page["repositories"][0]["matched"]["version"], "1.1.0");

        // A yank.
        let yank = "/v1/adapters/cache/bot/versions/1.1.0/yank";
        let r = send(&a, "POST", yank, &json!({"reason": "broken"}));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(read_twice(&b, latest)["version"], "1.0.0", "{stack}");
        let page = read_twice(&b, search);
        assert_eq!(page["repositories"][0]["matched"]["version"], "1.0.0");
        let yanked = read_twice(&b, "/v1/adapters/cache/bot/versions/1.1.0");
        assert_eq!(yanked["yanked"], true);

        // An eval result.
        let evals = "/v1/adapters/cache/bot/versions/1.0.0/evals";
        let result = json!({"results": [{"benchmark": "mmlu", "metric": "acc", "value": 0.5}]});
        assert_eq!(send(&a, "POST", evals, &result).status, 201);
        assert_eq!(read_twice(&b, version)["evals"][0]["value"], 0.5, "{stack}");

        // An alias move.
        let alias = "/v1/adapters/cache/bot/resolve/prod";
        let r = try_move_alias(&a, "cache/bot", "prod", "1.0.0", None).unwrap();
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(read_twice(&b, alias)["version"], "1.0.0");
        let r = try_move_alias(&a, "cache/bot", "prod", "1.1.0", Some("1.0.0")).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(read_twice(&b, alias)["version"], "1.1.0", "{stack}");

        // A token used through B, revoked through A: B refuses it at once.
        let created = send(
            &a,
            "POST",
            "/v1/tokens",
            &json!({"name": "ci", "scope": "read"}),
        );
        assert_eq!(created.status, 201, "{}", created.text());
        let secret = created.json()["token"].as_str().unwrap().to_owned();
        let id = created.json()["info"]["id"].as_str().unwrap().to_owned();
        let bearer = format!("Bearer {secret}");
        let with = |server: &ServerProcess| {
            http(
                "GET",
                &format!("{}{version}", server.url),
                &[("Authorization", &bearer)],
                b"",
            )
            .status
        };
        assert_eq!((with(&b), with(&b)), (200, 200));
        let (name, value) = a.auth();
        let revoke = format!("{}/v1/tokens/{id}", a.url);
        let r = http("DELETE", &revoke, &[(name, &value)], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            with(&b),
            401,
            "{stack}: a revoked token still works through B"
        );
    }
}
