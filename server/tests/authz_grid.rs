//! The authorization grid, on both stacks: every route of the server (the `/v1` API as its
//! OpenAPI spec lists it, the Hub protocol's `/hf` routes of docs/HF.md and
//! `server/src/hf/mod.rs`, the catalogue pages, health, `/metrics`, the spec and its browser)
//! × anonymous / an unknown token / a revoked token / reader of `acme` / writer of `other` /
//! writer of `acme` / admin of `acme` only / admin over all namespaces, `GET` routes also as
//! `HEAD`. What each cell must answer is derived from the policy table of docs/API.md
//! ("Authentication and authorization"), kept below as data ([`GRID`]); the routes are called
//! on a registry holding `acme/bot` (an adapter) and `acme/llama` (a model) with an alias, a
//! gate, an eval, a job and upload sessions, so reads can succeed.
//!
//! * a refused caller gets exactly 401 `unauthenticated` (with `WWW-Authenticate: Bearer`)
//!   when it sent no token or one the registry does not accept (unknown, revoked), else 403
//!   `forbidden`, in the route's error shape (`/hf`: the Hub's, elsewhere the API's);
//! * an allowed caller never gets 401, 403 or 500, and a caller allowed to read `acme` gets
//!   a 2xx where the request is one that succeeds ([`Route::ok`]);
//! * the grid covers every route: a route added to the spec, to the Hub router or to the
//!   pages without a row here fails [`the_grid_lists_every_route`].

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use adapter_core::digest::Digest;
use adapter_testkit::Backend;
use common::{Reply, TestServer, client_with_token, publish_tiny_model, stacks, tiny_adapter};
use serde_json::{Value, json};

#[path = "authz_grid/grid.rs"]
mod grid;

use grid::*;

/// Replace each `{placeholder}` of `text` by its value (values may name placeholders too).
fn fill(text: &str, values: &HashMap<&str, String>) -> String {
    let mut out = text.to_owned();
    for _ in 0..3 {
        for (k, v) in values {
            out = out.replace(&format!("{{{k}}}"), v);
        }
    }
    out
}

struct Fixture {
    values: HashMap<&'static str, String>,
}

impl Fixture {
    /// The values of one row's placeholders, for `kind`.
    fn values_for(&self, r: &Route, kind: &str) -> HashMap<&str, String> {
        let mut v = self.values.clone();
        if !kind.is_empty() {
            v.insert("kind", kind.to_owned());
            let (name, manifest) = match kind {
                "adapters" => ("bot", "manifest_adapter"),
                _ => ("llama", "manifest_model"),
            };
            v.insert("name", name.to_owned());
            v.insert("manifest", self.values[manifest].clone());
        }
        for (k, value) in r.fill {
            v.insert(k, (*value).to_owned());
        }
        v
    }
}

fn digest_of(bytes: &[u8]) -> Digest {
    Digest::of_bytes(bytes)
}

/// `acme/llama@1.0.0` (a model), `acme/bot@1.0.0` (an adapter on it, whose validation job
/// is queued: nothing runs jobs here), alias `prod` with a gate and an eval on both, two
/// upload sessions, a token to revoke and an LFS upload URL opened by a writer of acme.
async fn fixture(s: &TestServer, writer: &reqwest::Client) -> Fixture {
    publish_tiny_model(s, "acme/llama").await;
    let adapter = tiny_adapter(s, json!({"base": {"reference": "acme/llama@1.0.0"}})).await;
    s.publish("adapters", "acme/bot", "1.0.0", &adapter)
        .await
        .expect(201, "publishing acme/bot");
    let model = s.get("/v1/models/acme/llama/versions/1.0.0").await.json()["manifest"].clone();
    for repo in ["adapters/acme/bot", "models/acme/llama"] {
        let put = |path: String, body: Value| {
            let req = s.http.put(s.u(&path)).json(&body);
            async move { Reply::of(req.send().await.unwrap()).await }
        };
        put(
            format!("/v1/{repo}/aliases/prod"),
            json!({"version": "1.0.0"}),
        )
        .await
        .expect(201, "alias");
        put(
            format!("/v1/{repo}/aliases/prod/gate"),
            json!({"conditions": [{"not_yanked": true}]}),
        )
        .await
        .expect(200, "gate");
        Reply::of(
            s.http
                .post(s.u(&format!("/v1/{repo}/versions/1.0.0/evals")))
                .json(&json!({"results": [{"benchmark": "mmlu", "metric": "acc", "value": 0.6}]}))
                .send()
                .await
                .unwrap(),
        )
        .await
        .expect(201, "eval");
    }
    let jobs = s.get("/v1/jobs?kind=validate").await.expect(200, "jobs");
    let job = jobs["jobs"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("publishing acme/bot queued no validation: {jobs}"))
        .to_owned();
    let mut uploads = Vec::new();
    for _ in 0..2 {
        let r = Reply::of(s.http.post(s.u("/v1/uploads")).send().await.unwrap()).await;
        uploads.push(
            r.expect(201, "upload session")["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let victim = Reply::of(
        s.http
            .post(s.u("/v1/tokens"))
            .json(&json!({"name": "grid-victim", "scope": "read", "namespaces": ["acme"]}))
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(201, "token")["info"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let batch = Reply::of(
        writer
            .post(s.u("/hf/acme/bot.git/info/lfs/objects/batch"))
            .json(&json!({"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
                          "objects": [{"oid": digest_of(LFS_OBJECT).hex(), "size": LFS_OBJECT.len()}]}))
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(200, "LFS batch");
    let href = batch["objects"][0]["actions"]["upload"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("no upload URL: {batch}"));
    let lfs = href.rsplit('/').next().unwrap().to_owned();

    let acme_blob = adapter["files"][0]["digest"].as_str().unwrap().to_owned();
    let values = HashMap::from([
        ("ns", "acme".to_owned()),
        ("version", "1.0.0".to_owned()),
        ("selector", "1.0.0".to_owned()),
        ("alias", "prod".to_owned()),
        ("revision", "1.0.0".to_owned()),
        ("branch", "main".to_owned()),
        ("*path", "adapter_config.json".to_owned()),
        ("repo", "bot.git".to_owned()),
        ("name", "bot".to_owned()),
        ("digest", acme_blob),
        ("grid_digest", digest_of(GRID_BLOB).to_string()),
        ("grid_hex", digest_of(GRID_BLOB).hex()),
        ("grid_size", GRID_BLOB.len().to_string()),
        ("empty_digest", digest_of(b"").to_string()),
        ("upload", uploads[0].clone()),
        ("upload2", uploads[1].clone()),
        ("job", job),
        ("victim", victim),
        ("lfs", lfs),
        ("manifest_adapter", adapter.to_string()),
        ("manifest_model", model.to_string()),
    ]);
    Fixture { values }
}

/// The secret of a token that was created, then revoked.
async fn revoked_token(s: &TestServer) -> String {
    let created = Reply::of(
        s.http
            .post(s.u("/v1/tokens"))
            .json(&json!({"name": "revoked", "scope": "admin"}))
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(201, "token");
    let id = created["info"]["id"].as_str().unwrap();
    let r = Reply::of(
        s.http
            .delete(s.u(&format!("/v1/tokens/{id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.expect(200, "revoking");
    created["token"].as_str().unwrap().to_owned()
}

/// A response; the body is left unread for an allowed event stream (it stays open while
/// the job is queued).
async fn call(c: &reqwest::Client, url: &str, r: &Route, values: &HashMap<&str, String>) -> Reply {
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
    let mut req = c.request(method, url);
    for (k, v) in r.headers {
        req = req.header(*k, *v);
    }
    req = match r.body {
        Body::Empty => req,
        Body::Json(t) => req
            .header("content-type", "application/json")
            .body(fill(t, values)),
        Body::Form(t) => req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(fill(t, values)),
        Body::Ndjson(t) => req
            .header("content-type", "application/x-ndjson")
            .body(fill(t, values)),
        Body::GridBlob => req.body(GRID_BLOB),
        Body::LfsObject => req.body(LFS_OBJECT),
    };
    let res = req.send().await.unwrap();
    let streaming = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if res.status().is_success() && streaming {
        return Reply {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: Vec::new(),
        };
    }
    tokio::time::timeout(Duration::from_secs(30), Reply::of(res))
        .await
        .unwrap_or_else(|_| panic!("{} {url}: the body never ended", r.method))
}

/// Assert a refusal: `status` and `code`, in the route's error shape.
fn refused(reply: &Reply, status: u16, code: &str, hub: bool, head: bool, at: &str) {
    assert_eq!(
        reply.status,
        status,
        "{at}: expected {status} {code}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    if status == 401 {
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer"),
            "{at}: a 401 says how to authenticate"
        );
    }
    if head {
        // No body to a HEAD; the Hub's clients read the code from the header.
        if hub {
            assert_eq!(reply.header("x-error-code"), Some(code), "{at}");
        }
    } else if hub {
        reply.hub_error(status, code);
    } else {
        reply.error(status, code);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_for_every_caller() {
    for stack in stacks() {
        let started = std::time::Instant::now();
        let backend = Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let token = |name: &'static str, scope: &'static str, ns: &'static [&'static str]| {
            common::token(&s, name, scope, Some(ns))
        };
        let reader = token("reader-of-acme", "read", &["acme"]).await;
        let other = token("writer-of-other", "write", &["other"]).await;
        let writer = token("writer-of-acme", "write", &["acme"]).await;
        let admin_of_acme = token("admin-of-acme", "admin", &["acme"]).await;
        let revoked = revoked_token(&s).await;
        let callers = [
            Caller {
                name: "anonymous",
                cred: Cred::Anonymous,
                http: reqwest::Client::new(),
            },
            Caller {
                name: "unknown token",
                cred: Cred::Rejected,
                http: client_with_token(&format!("art_{}", "0".repeat(64))),
            },
            Caller {
                name: "revoked token",
                cred: Cred::Rejected,
                http: client_with_token(&revoked),
            },
            Caller {
                name: "reader of acme",
                cred: Cred::Token(Read, Some(&["acme"])),
                http: client_with_token(&reader),
            },
            Caller {
                name: "writer of other",
                cred: Cred::Token(Write, Some(&["other"])),
                http: client_with_token(&other),
            },
            Caller {
                name: "writer of acme",
                cred: Cred::Token(Write, Some(&["acme"])),
                http: client_with_token(&writer),
            },
            Caller {
                name: "admin of acme",
                cred: Cred::Token(Admin, Some(&["acme"])),
                http: client_with_token(&admin_of_acme),
            },
            Caller {
                name: "admin",
                cred: Cred::Token(Admin, None),
                http: s.http.clone(),
            },
        ];
        let fx = fixture(&s, &client_with_token(&writer)).await;

        let mut cells = 0;
        let rows = expanded();
        for (r, kind) in &rows {
            let values = fx.values_for(r, kind);
            let mut path = fill(r.template, &values);
            if !r.query.is_empty() {
                path = format!("{path}?{}", fill(r.query, &values));
            }
            let hub = path.starts_with("/hf/");
            let head = r.method == "HEAD";
            for who in &callers {
                let at = format!("{stack}: {} {path} as {}", r.method, who.name);
                let reply = call(&who.http, &s.u(&path), r, &values).await;
                match expect(r.need, who.cred) {
                    Expect::Unauthenticated => {
                        refused(&reply, 401, "unauthenticated", hub, head, &at);
                    }
                    Expect::Forbidden => refused(&reply, 403, "forbidden", hub, head, &at),
                    Expect::Allowed => {
                        let body = String::from_utf8_lossy(&reply.body);
                        assert!(
                            !matches!(reply.status, 401 | 403 | 500),
                            "{at}: allowed, answered {}: {body}",
                            reply.status
                        );
                        if r.ok && (reads_acme(who.cred) || matches!(r.need, Nothing)) {
                            assert!(
                                (200..300).contains(&reply.status),
                                "{at}: expected a 2xx, got {}: {body}",
                                reply.status
                            );
                        }
                    }
                }
                cells += 1;
            }
        }
        eprintln!(
            "{stack}: {} routes × {} callers = {cells} cells in {:.1?}",
            rows.len(),
            callers.len(),
            started.elapsed()
        );
        s.stop().await;
    }
}

/// The rows of the grid, as `METHOD template` with `{kind}` expanded.
fn grid_routes() -> BTreeSet<String> {
    expanded()
        .iter()
        .filter(|(r, _)| {
            r.method != "HEAD"
                || GRID
                    .iter()
                    .any(|g| g.method == "HEAD" && g.template == r.template)
        })
        .map(|(r, kind)| {
            let t = if kind.is_empty() {
                r.template.to_owned()
            } else {
                r.template.replace("{kind}", kind)
            };
            format!("{} {t}", r.method)
        })
        .collect()
}

/// The route templates registered with `.route("…"` in a source file of the server.
fn routes_in_source(file: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    text.split(".route(")
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start().strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

#[test]
fn the_grid_lists_every_route() {
    let grid = grid_routes();
    // Every operation of the spec, and no `/v1` row that is not one.
    let spec = serde_json::to_value(adapter_registry::api::openapi()).unwrap();
    let mut in_spec = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "head", "patch", "options"] {
            if item.get(method).is_some() {
                in_spec.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let missing: Vec<_> = in_spec.difference(&grid).collect();
    assert!(
        missing.is_empty(),
        "routes of the spec without a grid row: {missing:?}"
    );
    let extra: Vec<_> = grid
        .iter()
        .filter(|r| r.contains(" /v1/") && !in_spec.contains(*r))
        .collect();
    assert!(
        extra.is_empty(),
        "grid rows that are not in the spec: {extra:?}"
    );
    // The Hub protocol's routes, the pages and `/metrics`.
    let templates: BTreeSet<&str> = GRID.iter().map(|r| r.template).collect();
    for file in ["src/hf/mod.rs", "src/ui/mod.rs", "src/serve.rs"] {
        let found = routes_in_source(file);
        assert!(!found.is_empty(), "no routes found in {file}");
        for t in found {
            assert!(
                templates.contains(t.as_str()),
                "{file}: `{t}` has no grid row"
            );
        }
    }
}

#[test]
fn the_policy_reads_as_documented() {
    // Spot checks of `expect` against sentences of docs/API.md.
    let reader = Cred::Token(Read, Some(&["acme"]));
    let admin_of_acme = Cred::Token(Admin, Some(&["acme"]));
    assert_eq!(expect(Nothing, Cred::Rejected), Expect::Unauthenticated);
    assert_eq!(expect(Nothing, Cred::Anonymous), Expect::Allowed);
    assert_eq!(expect(Scope(Read, Acme), reader), Expect::Allowed);
    assert_eq!(expect(Scope(Write, Acme), reader), Expect::Forbidden);
    assert_eq!(
        expect(Scope(Read, Any), Cred::Token(Read, Some(&["other"]))),
        Expect::Allowed
    );
    assert_eq!(expect(Scope(Admin, All), admin_of_acme), Expect::Forbidden);
    assert_eq!(expect(Scope(Read, All), reader), Expect::Forbidden);
    assert_eq!(
        expect(Scope(Read, All), Cred::Token(Read, None)),
        Expect::Allowed
    );
}
