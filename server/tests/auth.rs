//! Tokens, the authorization policy and the audit log.
//!
//! The grid takes every route from the OpenAPI spec (so a new route cannot escape it) and
//! calls it as anonymous, a reader, a writer of another namespace, a writer and an admin,
//! checking each answer against the policy written out independently below.

mod common;

use adapter_registry::api::openapi;
use adapter_testkit::Backend;
use common::{Reply, TestServer, client_with_token, stacks, tiny_adapter, token};
use reqwest::Method;
use serde_json::{Value, json};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// `read` on `team-a`.
    Reader,
    /// `write` on `team-b` only.
    OtherWriter,
    /// `write` on `team-a`.
    Writer,
    Admin,
}

const EVERYONE: [Who; 5] = [
    Who::Anonymous,
    Who::Reader,
    Who::OtherWriter,
    Who::Writer,
    Who::Admin,
];

/// The policy (docs/API.md, "Authentication and authorization"), for a route template.
fn allowed(who: Who, method: &Method, route: &str, public_read: bool) -> bool {
    let read = matches!(*method, Method::GET | Method::HEAD);
    let public = ["/healthz", "/readyz", "/v1/whoami"].contains(&route);
    let admin_only = route.starts_with("/v1/tokens") || route.starts_with("/v1/audit");
    let namespaced = route.contains("{ns}");
    let read_like = read || route == "/v1/blobs/check";
    if public {
        return true;
    }
    if admin_only {
        return who == Who::Admin;
    }
    match who {
        Who::Anonymous => public_read && read_like,
        Who::Admin => true,
        Who::Writer => true,
        Who::Reader => read_like,
        Who::OtherWriter => !namespaced,
    }
}

/// A concrete path for a template (the repository is `team-a/bot`).
fn concrete(route: &str) -> String {
    let zero = format!("sha256:{}", "0".repeat(64));
    route
        .replace("{ns}", "team-a")
        .replace("{name}", "bot")
        .replace("{version}", "1.0.0")
        .replace("{selector}", "1.0.0")
        .replace("{alias}", "prod")
        .replace("{digest}", &zero)
        .replace("{id}", "nope")
}

/// Every (method, route) of the spec.
fn operations() -> Vec<(Method, String)> {
    let spec = serde_json::to_value(openapi()).unwrap();
    let mut out = Vec::new();
    for (route, item) in spec["paths"].as_object().unwrap() {
        for m in ["get", "head", "put", "post", "patch", "delete"] {
            if item.get(m).is_some() {
                out.push((
                    Method::from_bytes(m.to_uppercase().as_bytes()).unwrap(),
                    route.clone(),
                ));
            }
        }
    }
    assert!(out.len() >= 20, "the spec lists only {out:?}");
    out
}

async fn clients(s: &TestServer) -> Vec<(Who, reqwest::Client)> {
    let reader = token(s, "reader", "read", Some(&["team-a"])).await;
    let other = token(s, "other-writer", "write", Some(&["team-b"])).await;
    let writer = token(s, "writer", "write", Some(&["team-a"])).await;
    vec![
        (Who::Anonymous, reqwest::Client::new()),
        (Who::Reader, client_with_token(&reader)),
        (Who::OtherWriter, client_with_token(&other)),
        (Who::Writer, client_with_token(&writer)),
        (Who::Admin, s.http.clone()),
    ]
}

async fn grid(s: &TestServer, public_read: bool) -> usize {
    let clients = clients(s).await;
    let mut checked = 0;
    for (method, route) in operations() {
        for (who, client) in &clients {
            let url = s.u(&concrete(&route));
            let mut rb = client.request(method.clone(), &url);
            if !matches!(method, Method::GET | Method::HEAD) {
                rb = rb.header("content-type", "application/json").body("{}");
            }
            let r = Reply::of(rb.send().await.unwrap()).await;
            let expect = allowed(*who, &method, &route, public_read);
            let what = format!(
                "{who:?} {method} {route} (public_read {public_read}) → {}",
                r.status
            );
            if expect {
                assert!(
                    r.status != 401 && r.status != 403,
                    "{what}: should be allowed: {}",
                    String::from_utf8_lossy(&r.body)
                );
            } else if *who == Who::Anonymous {
                assert_eq!(r.status, 401, "{what}");
                assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{what}");
                if method != Method::HEAD {
                    r.error(401, "unauthenticated");
                }
            } else if method == Method::HEAD {
                assert_eq!(r.status, 403, "{what}");
            } else {
                r.error(403, "forbidden");
            }
            assert!(EVERYONE.contains(who));
            checked += 1;
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_for_every_kind_of_caller() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        // Something real behind the repository routes.
        let m = tiny_adapter(&s, json!({})).await;
        assert_eq!(
            s.publish("adapters", "team-a/bot", "1.0.0", &m)
                .await
                .status,
            201
        );
        let checked = grid(&s, false).await;
        assert!(checked >= 100, "{stack}: only {checked} calls");

        // The pages (not in the spec) read like the API: the index with `read` on any
        // namespace (it shows only those), a repository's page with `read` on its own.
        let clients = clients(&s).await;
        for (who, client) in &clients {
            for page in ["/", "/ui/adapters/team-a/bot"] {
                let status = client
                    .get(s.u(page))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                let expect = match (who, page) {
                    (Who::Anonymous, _) => 401,
                    (Who::OtherWriter, "/ui/adapters/team-a/bot") => 403,
                    _ => 200,
                };
                assert_eq!(status, expect, "{stack}: {who:?} GET {page}");
            }
        }
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn public_read_lets_anonymous_callers_read_and_nothing_more() {
    let backend = Backend::new(&stacks()[0]);
    let mut config = common::config(&backend);
    config.public_read = true;
    let s = TestServer::start_with(&backend, config).await;
    let m = tiny_adapter(&s, json!({})).await;
    assert_eq!(
        s.publish("adapters", "team-a/bot", "1.0.0", &m)
            .await
            .status,
        201
    );
    grid(&s, true).await;
    let anon = reqwest::Client::new();
    let page = anon.get(s.u("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("team-a"));
    let me: Value = anon
        .get(s.u("/v1/whoami"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me, json!({"actor": "anonymous", "public_read": true}));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_are_hashed_shown_once_revocable_and_expire() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let secret = token(&s, "ci-bot", "write", Some(&["team-a", "team-a", "team-c"])).await;
        assert!(secret.starts_with("art_") && secret.len() == 68, "{secret}");
        let bot = client_with_token(&secret);
        let me: Value = bot
            .get(s.u("/v1/whoami"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = me["token"]["id"].as_str().unwrap().to_owned();
        assert_eq!(me["actor"], format!("ci-bot ({id})"));
        assert_eq!(me["token"]["scope"], "write");
        assert_eq!(me["token"]["namespaces"], json!(["team-a", "team-c"]));

        // Listed without the secret; the database holds only a hash.
        let listed = s.get("/v1/tokens").await;
        assert_eq!(listed.status, 200);
        assert!(!String::from_utf8_lossy(&listed.body).contains(&secret));
        let rows = sqlx::query_scalar::<_, String>(
            "SELECT id || name || secret_hash || scope || COALESCE(namespaces, '') FROM tokens",
        )
        .fetch_all(&s.state.db.pool)
        .await
        .unwrap();
        assert!(
            rows.iter().all(|r| !r.contains(&secret[4..])),
            "{stack}: a secret is stored"
        );

        // Hostile or malformed requests and headers.
        for body in [
            json!({"name": "", "scope": "read"}),
            json!({"name": "a b", "scope": "read"}),
            json!({"name": "x".repeat(65), "scope": "read"}),
            json!({"name": "x", "scope": "read", "namespaces": []}),
            json!({"name": "x", "scope": "read", "expires_at": 1}),
        ] {
            let r = Reply::of(
                s.http
                    .post(s.u("/v1/tokens"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            r.error(400, "invalid_token_request");
        }
        for body in [
            json!({"name": "x", "scope": "root"}),
            json!({"name": "x", "scope": "read", "extra": 1}),
        ] {
            let r = Reply::of(
                s.http
                    .post(s.u("/v1/tokens"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            r.error(400, "invalid_json");
        }
        let r = Reply::of(
            s.http
                .post(s.u("/v1/tokens"))
                .json(&json!({"name": "x", "scope": "read", "namespaces": ["../etc"]}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.error(400, "invalid_name");
        for header in ["Basic abc", "Bearer", "Bearer art_nope", "bearer  "] {
            let r = Reply::of(
                reqwest::Client::new()
                    .get(s.u("/healthz"))
                    .header("authorization", header)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            r.error(401, "unauthenticated");
        }

        // Revoked: refused at once, everywhere.
        let r = Reply::of(
            s.http
                .delete(s.u(&format!("/v1/tokens/{id}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200);
        assert!(r.json()["revoked_at"].is_i64());
        let r = Reply::of(bot.get(s.u("/v1/whoami")).send().await.unwrap()).await;
        let e = r.error(401, "unauthenticated");
        assert!(e["message"].as_str().unwrap().contains("revoked"), "{e}");
        Reply::of(
            s.http
                .delete(s.u("/v1/tokens/tok_missing"))
                .send()
                .await
                .unwrap(),
        )
        .await
        .error(404, "token_not_found");

        // Expired: made directly in the store (the API refuses past expiry times).
        let (old, _) = adapter_registry::auth::create_token(
            &s.state.db,
            "old",
            adapter_core::api::Scope::Admin,
            None,
            Some(1),
            "test",
        )
        .await
        .unwrap();
        let r = Reply::of(
            client_with_token(&old)
                .get(s.u("/v1/tokens"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let e = r.error(401, "unauthenticated");
        assert!(e["message"].as_str().unwrap().contains("expired"), "{e}");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_mutation_is_audited_with_its_outcome() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let writer = client_with_token(&token(&s, "writer", "write", Some(&["team-a"])).await);
        let m = tiny_adapter(&s, json!({})).await;
        // The writer sends the files itself: blobs another token uploaded are not its to
        // publish (docs/API.md, blobs).
        for f in ["adapter_config.json", "adapter_model.safetensors"] {
            let bytes = std::fs::read(common::examples_dir("tiny-llama-lora").join(f)).unwrap();
            let d = adapter_core::digest::Digest::of_bytes(&bytes);
            let r = writer
                .put(s.u(&format!("/v1/blobs/{d}")))
                .body(bytes)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{stack}");
        }
        let put = |c: &reqwest::Client, repo: &str| {
            c.put(s.u(&format!("/v1/adapters/{repo}/versions/1.0.0")))
                .body(m.to_string())
                .send()
        };
        assert_eq!(put(&writer, "team-a/bot").await.unwrap().status(), 201);
        assert_eq!(put(&writer, "team-b/bot").await.unwrap().status(), 403);
        assert_eq!(put(&writer, "team-a/bot").await.unwrap().status(), 200);

        // Only admins read the log.
        let r = Reply::of(writer.get(s.u("/v1/audit")).send().await.unwrap()).await;
        r.error(403, "forbidden");

        let log = s.get("/v1/audit?action=publish").await.json();
        let entries = log["entries"].as_array().unwrap();
        let seen: Vec<(String, u64, String)> = entries
            .iter()
            .map(|e| {
                (
                    e["target"].as_str().unwrap().to_owned(),
                    e["status"].as_u64().unwrap(),
                    e["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    "/v1/adapters/team-a/bot/versions/1.0.0".into(),
                    200,
                    "ok".into()
                ),
                (
                    "/v1/adapters/team-b/bot/versions/1.0.0".into(),
                    403,
                    "forbidden".into()
                ),
                (
                    "/v1/adapters/team-a/bot/versions/1.0.0".into(),
                    201,
                    "ok".into()
                ),
            ],
            "{stack}"
        );
        let actor = entries[0]["actor"].as_str().unwrap().to_owned();
        assert!(actor.starts_with("writer (tok_"), "{actor}");
        assert!(entries.iter().all(|e| e["method"] == "PUT"));

        // Token creation is audited too, and the log pages with a cursor.
        let all = s.get("/v1/audit?limit=2").await.json();
        assert_eq!(all["entries"].as_array().unwrap().len(), 2);
        let cursor = all["next_cursor"].as_str().unwrap().to_owned();
        let rest = s
            .get(&format!("/v1/audit?limit=1000&cursor={cursor}"))
            .await
            .json();
        let actions: Vec<&str> = rest["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert!(actions.contains(&"token.create"), "{actions:?}");
        assert!(actions.contains(&"blob.put"), "{actions:?}");
        s.get("/v1/audit?cursor=abc")
            .await
            .error(400, "invalid_cursor");
        s.get("/v1/audit?limit=0").await.error(400, "invalid_query");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_namespace_limited_token_finds_only_its_namespaces() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let m = tiny_adapter(&s, json!({})).await;
        for repo in ["team-a/bot", "team-b/bot", "team-c/other"] {
            assert_eq!(s.publish("adapters", repo, "1.0.0", &m).await.status, 201);
        }
        let names = |v: Value| -> Vec<String> {
            v["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    format!(
                        "{}/{}",
                        r["namespace"].as_str().unwrap(),
                        r["name"].as_str().unwrap()
                    )
                })
                .collect()
        };
        let all = names(s.get("/v1/adapters").await.json());
        assert_eq!(all, ["team-a/bot", "team-b/bot", "team-c/other"], "{stack}");
        let reader =
            client_with_token(&token(&s, "reader", "read", Some(&["team-a", "team-c"])).await);
        for query in ["", "?q=bot", "?namespace=team-b"] {
            let r = Reply::of(
                reader
                    .get(s.u(&format!("/v1/adapters{query}")))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(r.status, 200, "{stack}");
            let seen = names(r.json());
            assert!(
                seen.iter()
                    .all(|n| n.starts_with("team-a/") || n.starts_with("team-c/")),
                "{stack} {query}: {seen:?}"
            );
            if query.is_empty() {
                assert_eq!(seen, ["team-a/bot", "team-c/other"], "{stack}");
            }
        }
        s.stop().await;
    }
}
