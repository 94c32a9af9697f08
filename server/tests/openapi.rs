//! The OpenAPI contract: the committed `openapi/openapi.json` is exactly what the routes
//! describe, every route of docs/API.md is in it, and `/openapi.json` and `/docs` (Swagger UI
//! from embedded assets) are served.
//!
//! Regenerate the committed spec after changing a route or an API body:
//! `UPDATE_OPENAPI=1 cargo test -p adapter-registry --test openapi`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use adapter_registry::api::openapi;
use adapter_testkit::Backend;
use common::{TestServer, stacks};
use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn spec_json() -> Value {
    serde_json::to_value(openapi()).expect("the spec serialises")
}

fn pretty(spec: &Value) -> String {
    let mut out = serde_json::to_string_pretty(spec).unwrap();
    out.push('\n');
    out
}

#[test]
fn committed_spec_is_up_to_date() {
    let path = repo_root().join("openapi/openapi.json");
    let generated = pretty(&spec_json());
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is not what the routes describe (or is missing).\n\
         Regenerate it with:\n    UPDATE_OPENAPI=1 cargo test -p adapter-registry --test openapi\n\
         and commit the result (review the diff: it is the API contract)."
    );
}

#[test]
fn spec_is_openapi_31_with_info() {
    let spec = spec_json();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    assert_eq!(spec["info"]["title"], "adapter-registry");
    assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
}

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "head", "patch", "options"];

/// Every operation: a unique id, a tag, a summary, and its error answers in `ErrorBody`.
#[test]
fn every_operation_is_described() {
    let spec = spec_json();
    let mut ids = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let at = format!("{method} {path}");
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: no id"));
            assert!(
                ids.insert(id.to_owned()),
                "{at}: duplicate operationId {id}"
            );
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{at}: no tag"
            );
            assert!(op["summary"].is_string(), "{at}: no summary");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{at}: no success"
            );
            for (status, r) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &r["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/ErrorBody",
                        "{at} {status}: error body"
                    );
                }
            }
        }
    }
    assert!(ids.len() >= 20, "only {} operations", ids.len());
}

/// The routes listed in docs/API.md's tables (`| \`METHOD /path\` |`), `{kind}` expanded.
fn documented_routes() -> BTreeSet<(String, String)> {
    let md = std::fs::read_to_string(repo_root().join("docs/API.md")).unwrap();
    let mut out = BTreeSet::new();
    for line in md.lines() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let Some((route, _)) = rest.split_once('`') else {
            continue;
        };
        let Some((method, path)) = route.split_once(' ') else {
            continue;
        };
        if !method.chars().all(|c| c.is_ascii_uppercase()) {
            continue;
        }
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        if path.starts_with("/hf/") {
            // The Hugging Face Hub protocol: outside the `/v1` spec (docs/HF.md).
            continue;
        }
        for kind in ["adapters", "models"] {
            out.insert((method.to_lowercase(), path.replace("{kind}", kind)));
        }
    }
    out
}

#[test]
fn every_documented_route_is_in_the_spec() {
    let documented = documented_routes();
    assert!(documented.len() >= 20, "parsed only {documented:?}");
    let spec = spec_json();
    let paths = spec["paths"].as_object().unwrap();
    let in_spec: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| ((*m).to_owned(), path.clone()))
        })
        .collect();
    let missing: Vec<_> = documented.difference(&in_spec).collect();
    assert!(
        missing.is_empty(),
        "in docs/API.md but not in the spec: {missing:?}"
    );
    let undocumented: Vec<_> = in_spec.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "in the spec but not in docs/API.md's tables: {undocumented:?}"
    );
}

/// The error-code table in `info.description` agrees with `status_of`.
#[test]
fn described_error_codes_match_the_status_table() {
    let spec = spec_json();
    let description = spec["info"]["description"].as_str().unwrap();
    let mut codes = BTreeMap::new();
    for line in description.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, status, list, _] = cells[..] else {
            continue;
        };
        let Ok(status) = status.parse::<u16>() else {
            continue;
        };
        for code in list.split(',') {
            codes.insert(code.trim().trim_matches('`').to_owned(), status);
        }
    }
    assert!(codes.len() >= 30, "parsed only {codes:?}");
    for (code, status) in codes {
        assert_eq!(
            adapter_registry::error::status_of(&code).as_u16(),
            status,
            "`{code}`"
        );
    }
}

/// The served spec is the built one, and Swagger UI comes from the binary (no CDN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_json_and_swagger_ui_are_served() {
    // Storage does not matter here: the first stack (always the embedded one) is enough.
    let backend = Backend::new(&stacks()[0]);
    let s = TestServer::start(&backend).await;

    let res = s.http.get(s.u("/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let served: Value = res.json().await.unwrap();
    assert_eq!(served, spec_json());

    // reqwest follows the redirect `/docs` → `/docs/`.
    let res = s.http.get(s.u("/docs")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let page = res.url().clone();
    let html = res.text().await.unwrap();
    assert!(html.contains("swagger"), "{html}");
    let mut scripts = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            let target = &rest[..rest.find('"').unwrap()];
            assert!(
                !target.contains("://") && !target.starts_with("//"),
                "/docs references a remote asset: {target}"
            );
            if target.ends_with(".js") {
                scripts.push(page.join(target).unwrap());
            }
        }
    }
    let script = scripts.first().expect("/docs loads a script");
    let res = s.http.get(script.clone()).send().await.unwrap();
    assert_eq!(res.status(), 200, "{script}");
    assert!(!res.bytes().await.unwrap().is_empty());

    // The initializer points at our spec, not at a remote example.
    let init = s
        .http
        .get(page.join("swagger-initializer.js").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    let init = init.text().await.unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    assert!(!init.contains("https://"), "{init}");
    assert!(init.contains(r#""validatorUrl": "none""#), "{init}");
    s.stop().await;
}
