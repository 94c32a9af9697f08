//! The policy of docs/API.md as data: every route, what it needs, and what each caller must get.

/// A token's scope: `read` ⊂ `write` ⊂ `admin` (docs/API.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Level {
    Read,
    Write,
    Admin,
}

/// Which namespaces a token must cover.
#[derive(Debug, Clone, Copy)]
pub(super) enum On {
    /// `acme`, the namespace the request names (path, or body where the handler checks it).
    Acme,
    /// At least one ("on any namespace").
    Any,
    /// All of them ("over all namespaces": a namespace-limited token never does).
    All,
}

/// What a route needs (the right-hand column of the policy table).
#[derive(Debug, Clone, Copy)]
pub(super) enum Need {
    Nothing,
    Scope(Level, On),
}

pub(super) use Level::{Admin, Read, Write};
pub(super) use Need::{Nothing, Scope};
pub(super) use On::{Acme, All, Any};

/// A request body (placeholders are filled as in paths).
#[derive(Debug, Clone, Copy)]
pub(super) enum Body {
    Empty,
    Json(&'static str),
    Form(&'static str),
    Ndjson(&'static str),
    /// The bytes of [`GRID_BLOB`].
    GridBlob,
    /// The bytes of the LFS object the fixture's upload URL was opened for.
    LfsObject,
}

/// One row of the grid.
#[derive(Debug, Clone, Copy)]
pub(super) struct Route {
    pub(super) method: &'static str,
    /// The template as the router registers it (the spec's for `/v1`); `{kind}` stands for
    /// both `adapters` and `models`.
    pub(super) template: &'static str,
    /// Placeholder → value (itself a placeholder, or literal) where the default is not it.
    pub(super) fill: &'static [(&'static str, &'static str)],
    pub(super) query: &'static str,
    pub(super) headers: &'static [(&'static str, &'static str)],
    pub(super) body: Body,
    pub(super) need: Need,
    /// A caller that is allowed and may read `acme` gets a 2xx (the request is one that
    /// succeeds on the fixture, also when sent again).
    pub(super) ok: bool,
}

pub(super) const fn route(method: &'static str, template: &'static str, need: Need) -> Route {
    Route {
        method,
        template,
        fill: &[],
        query: "",
        headers: &[],
        body: Body::Empty,
        need,
        ok: false,
    }
}

impl Route {
    pub(super) const fn ok(self) -> Self {
        Self { ok: true, ..self }
    }
    pub(super) const fn fill(self, fill: &'static [(&'static str, &'static str)]) -> Self {
        Self { fill, ..self }
    }
    pub(super) const fn query(self, query: &'static str) -> Self {
        Self { query, ..self }
    }
    pub(super) const fn headers(self, headers: &'static [(&'static str, &'static str)]) -> Self {
        Self { headers, ..self }
    }
    pub(super) const fn body(self, body: Body) -> Self {
        Self { body, ..self }
    }
}

pub(super) const GRID_BLOB: &[u8] = b"a blob the authorization grid uploads";
pub(super) const LFS_OBJECT: &[u8] = b"an object pushed through an LFS upload URL";

/// The policy of docs/API.md, "Authentication and authorization", one row per route and
/// method, in the order they are called (reads first, then changes, a session's `PATCH`
/// before its finish, an alias's move before its deletion).
pub(super) const GRID: &[Route] = &[
    // | `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`, `GET /v1/whoami` | nothing |
    route("GET", "/healthz", Nothing).ok(),
    route("GET", "/readyz", Nothing).ok(),
    route("GET", "/metrics", Nothing).ok(),
    route("GET", "/openapi.json", Nothing).ok(),
    route("GET", "/docs", Nothing).ok(),
    route("GET", "/docs/", Nothing).ok(),
    route("GET", "/v1/whoami", Nothing).ok(),
    // | `GET /v1/{kind}` (search) | `read` on any namespace |
    route("GET", "/v1/{kind}", Scope(Read, Any)).ok(),
    // | `GET`/`HEAD` under `/v1/{kind}/{ns}/…` | `read` on `{ns}` |
    route("GET", "/v1/{kind}/{ns}/{name}", Scope(Read, Acme)).ok(),
    route("GET", "/v1/{kind}/{ns}/{name}/versions", Scope(Read, Acme)).ok(),
    route("GET", "/v1/{kind}/{ns}/{name}/versions/{version}", Scope(Read, Acme)).ok(),
    route("GET", "/v1/{kind}/{ns}/{name}/versions/{version}/evals", Scope(Read, Acme)).ok(),
    route("GET", "/v1/{kind}/{ns}/{name}/versions/{version}/lineage", Scope(Read, Acme)).ok(),
    route("GET", "/v1/{kind}/{ns}/{name}/versions/{version}/validations", Scope(Read, Acme)).ok(),
    route("GET", "/v1/{kind}/{ns}/{name}/resolve", Scope(Read, Acme)).ok(),
    route("GET", "/v1/{kind}/{ns}/{name}/resolve/{selector}", Scope(Read, Acme)).ok(),
    route("GET", "/v1/{kind}/{ns}/{name}/aliases", Scope(Read, Acme)).ok(),
    route("GET", "/v1/{kind}/{ns}/{name}/aliases/{alias}", Scope(Read, Acme)).ok(),
    route("GET", "/v1/{kind}/{ns}/{name}/aliases/{alias}/history", Scope(Read, Acme)).ok(),
    route("GET", "/v1/{kind}/{ns}/{name}/aliases/{alias}/gate", Scope(Read, Acme)).ok(),
    // | `/v1/blobs…`, `/v1/uploads…` | `read` (`GET`, `HEAD`, `POST /v1/blobs/check`) or
    // `write` (uploads) on any namespace |
    route("GET", "/v1/blobs/{digest}", Scope(Read, Any)).ok(),
    route("HEAD", "/v1/blobs/{digest}", Scope(Read, Any)).ok(),
    route("POST", "/v1/blobs/check", Scope(Read, Any))
        .body(Body::Json(r#"{"digests": ["{digest}"]}"#))
        .ok(),
    route("GET", "/v1/uploads/{id}", Scope(Read, Any))
        .fill(&[("id", "{upload}")])
        .ok(),
    // | `/v1/jobs…` | `read` (`GET`) or `write` (`POST /v1/jobs`, `…/cancel`) on any
    // namespace | (a job is visible only to callers who may read every namespace it touches)
    route("GET", "/v1/jobs", Scope(Read, Any)).ok(),
    route("GET", "/v1/jobs/{id}", Scope(Read, Any))
        .fill(&[("id", "{job}")])
        .ok(),
    route("GET", "/v1/jobs/{id}/logs", Scope(Read, Any))
        .fill(&[("id", "{job}")])
        .ok(),
    route("GET", "/v1/jobs/{id}/events", Scope(Read, Any))
        .fill(&[("id", "{job}")])
        .ok(),
    // | `/v1/tokens…`, `/v1/audit` | `admin` over all namespaces |
    route("GET", "/v1/tokens", Scope(Admin, All)).ok(),
    route("GET", "/v1/audit", Scope(Admin, All)).ok(),
    // | `/` (search), `/ui/jobs…` (the pages: what the token may read) | `read` on any
    // namespace |
    route("GET", "/", Scope(Read, Any)).ok(),
    route("GET", "/ui/jobs", Scope(Read, Any)).ok(),
    route("GET", "/ui/jobs/{id}", Scope(Read, Any))
        .fill(&[("id", "{job}")])
        .ok(),
    // | `/ui/{kind}/{ns}/…` (a repository's pages) | `read` on `{ns}` |
    route("GET", "/ui/{kind}/{ns}/{name}", Scope(Read, Acme)).ok(),
    route("GET", "/ui/{kind}/{ns}/{name}/{selector}", Scope(Read, Acme)).ok(),
    route(
        "GET",
        "/ui/{kind}/{ns}/{name}/{selector}/files/{*path}",
        Scope(Read, Acme),
    ),
    // | `/ui/sign-in`, `/ui/sign-out`, `/ui/assets/…`, `/favicon.ico` | nothing |
    route("GET", "/ui/sign-in", Nothing).ok(),
    route("GET", "/ui/assets/ui.js", Nothing).ok(),
    route("GET", "/favicon.ico", Nothing).ok(),
    route("POST", "/ui/sign-in", Nothing).body(Body::Form("token=art_unknown")),
    route("POST", "/ui/sign-out", Nothing),
    // | `/hf/{ns}/…`, `/hf/api/models/{ns}/…` | `read` on `{ns}` for reads (`GET`, `HEAD`,
    // `POST …/paths-info`) |
    route("GET", "/hf/{ns}/{name}/resolve/{revision}/{*path}", Scope(Read, Acme)).ok(),
    route("GET", "/hf/api/models/{ns}/{name}", Scope(Read, Acme)).ok(),
    route("GET", "/hf/api/models/{ns}/{name}/revision/{revision}", Scope(Read, Acme)).ok(),
    route("GET", "/hf/api/models/{ns}/{name}/tree/{revision}", Scope(Read, Acme)).ok(),
    route("GET", "/hf/api/models/{ns}/{name}/tree/{revision}/{*path}", Scope(Read, Acme)),
    route("POST", "/hf/api/models/{ns}/{name}/paths-info/{revision}", Scope(Read, Acme))
        .body(Body::Form("paths=adapter_config.json&paths=README.md"))
        .ok(),
    // (docs/HF.md: a Xet token is 501 `xet_unsupported` for whoever may ask.)
    route("GET", "/hf/api/models/{ns}/{name}/xet-read-token/{revision}", Scope(Read, Acme)),
    route("GET", "/hf/api/models/{ns}/{name}/xet-write-token/{revision}", Scope(Read, Acme)),
    // | `POST /hf/api/validate-yaml` | `read` on any namespace |
    route("POST", "/hf/api/validate-yaml", Scope(Read, Any))
        .body(Body::Json(r#"{"content": "---\nlicense: mit\n---\n# A card\n"}"#))
        .ok(),
    // Changes from here on.
    route("PUT", "/v1/blobs/{digest}", Scope(Write, Any))
        .fill(&[("digest", "{grid_digest}")])
        .body(Body::GridBlob)
        .ok(),
    route("POST", "/v1/uploads", Scope(Write, Any)).ok(),
    route("PATCH", "/v1/uploads/{id}", Scope(Write, Any))
        .fill(&[("id", "{upload}")])
        .headers(&[("upload-offset", "0")])
        .ok(),
    // The first allowed caller finishes the session; the others find none (404).
    route("PUT", "/v1/uploads/{id}", Scope(Write, Any))
        .fill(&[("id", "{upload}")])
        .query("digest={empty_digest}"),
    route("DELETE", "/v1/uploads/{id}", Scope(Write, Any)).fill(&[("id", "{upload2}")]),
    // "Submitting needs the token to cover every input's and the output's namespace": the
    // inputs are in `acme`, so the route's `write` on any namespace becomes `write` on acme.
    route("POST", "/v1/jobs", Scope(Write, Acme))
        .body(Body::Json(
            r#"{"kind": "validate", "inputs": {"adapter": "acme/bot@1.0.0", "base": "acme/llama@1.0.0"}}"#,
        ))
        .ok(),
    route("POST", "/v1/jobs/{id}/cancel", Scope(Write, Any))
        .fill(&[("id", "{job}")])
        .ok(),
    // | other methods under `/v1/{kind}/{ns}/…` | `write` on `{ns}` |
    route("PUT", "/v1/{kind}/{ns}/{name}/versions/{version}", Scope(Write, Acme))
        .body(Body::Json("{manifest}"))
        .ok(),
    route("POST", "/v1/{kind}/{ns}/{name}/versions/{version}/evals", Scope(Write, Acme))
        .body(Body::Json(r#"{"results": [{"benchmark": "grid", "metric": "acc", "value": 0.5}]}"#))
        .ok(),
    route("PUT", "/v1/{kind}/{ns}/{name}/aliases/{alias}", Scope(Write, Acme))
        .body(Body::Json(r#"{"version": "1.0.0", "expect": "1.0.0"}"#))
        .ok(),
    route("PUT", "/v1/{kind}/{ns}/{name}/aliases/{alias}/gate", Scope(Write, Acme))
        .body(Body::Json(r#"{"conditions": [{"not_yanked": true}]}"#))
        .ok(),
    route("POST", "/v1/{kind}/{ns}/{name}/versions/{version}/yank", Scope(Write, Acme))
        .body(Body::Json(r#"{"reason": "the authorization grid"}"#))
        .ok(),
    route("DELETE", "/v1/{kind}/{ns}/{name}/versions/{version}/yank", Scope(Write, Acme)).ok(),
    // The first allowed caller deletes; the others find nothing (404).
    route("DELETE", "/v1/{kind}/{ns}/{name}/aliases/{alias}/gate", Scope(Write, Acme)),
    route("DELETE", "/v1/{kind}/{ns}/{name}/aliases/{alias}", Scope(Write, Acme))
        .query("expect=1.0.0"),
    route("POST", "/v1/tokens", Scope(Admin, All))
        .body(Body::Json(r#"{"name": "grid-made", "scope": "read", "namespaces": ["acme"]}"#))
        .ok(),
    route("DELETE", "/v1/tokens/{id}", Scope(Admin, All))
        .fill(&[("id", "{victim}")])
        .ok(),
    // | `POST /hf/api/repos/create` | `write` on any namespace; the handler checks the
    // body's `organization` against the token | (acme here: `write` on acme)
    route("POST", "/hf/api/repos/create", Scope(Write, Acme))
        .body(Body::Json(r#"{"name": "bot", "organization": "acme", "type": "model"}"#))
        .ok(),
    // | `/hf/{ns}/…`, `/hf/api/models/{ns}/…` | `write` on `{ns}` for the push path
    // (`…/commit/…`, `…/preupload/…`, `…/branch/…`, `POST /hf/{ns}/{name}.git/info/lfs/objects/batch`) |
    route("POST", "/hf/api/models/{ns}/{name}/branch/{branch}", Scope(Write, Acme)).ok(),
    route("POST", "/hf/api/models/{ns}/{name}/preupload/{revision}", Scope(Write, Acme))
        .fill(&[("revision", "main")])
        .body(Body::Json(
            r#"{"files": [{"path": "README.md", "size": 12, "sample": "IyBBIGNhcmQK"}]}"#,
        ))
        .ok(),
    route("POST", "/hf/{ns}/{repo}/info/lfs/objects/batch", Scope(Write, Acme))
        .body(Body::Json(
            r#"{"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
                "objects": [{"oid": "{grid_hex}", "size": {grid_size}}], "ref": {"name": "main"}}"#,
        ))
        .ok(),
    route("POST", "/hf/api/models/{ns}/{name}/commit/{revision}", Scope(Write, Acme))
        .fill(&[("revision", "main")])
        .body(Body::Ndjson(concat!(
            r#"{"key": "header", "value": {"summary": "grid", "description": "from the grid"}}"#,
            "\n",
            r#"{"key": "file", "value": {"path": "README.md", "content": "IyBBIGNhcmQK", "encoding": "base64"}}"#,
            "\n",
        )))
        .ok(),
    // | `PUT /hf/lfs/{id}` | nothing: the URL is the credential | (the first caller that
    // is let in uploads the object; the session is then gone: 404 for the others)
    route("PUT", "/hf/lfs/{id}", Nothing)
        .fill(&[("id", "{lfs}")])
        .body(Body::LfsObject),
];

/// Who calls.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cred {
    Anonymous,
    /// A well-formed secret the registry never issued, or one it revoked.
    Rejected,
    Token(Level, Option<&'static [&'static str]>),
}

pub(super) struct Caller {
    pub(super) name: &'static str,
    pub(super) cred: Cred,
    pub(super) http: reqwest::Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    Allowed,
    /// 401 `unauthenticated`.
    Unauthenticated,
    /// 403 `forbidden`.
    Forbidden,
}

/// The policy's answer for `cred` on a route that needs `need` (docs/API.md: "Anonymous
/// callers get 401 … A token that is unknown, revoked, expired or malformed is 401
/// `unauthenticated` on every route; a valid token whose scope or namespaces do not cover
/// the request is 403 `forbidden`").
pub(super) fn expect(need: Need, cred: Cred) -> Expect {
    match (need, cred) {
        (_, Cred::Rejected) => Expect::Unauthenticated,
        (Nothing, _) => Expect::Allowed,
        (Scope(..), Cred::Anonymous) => Expect::Unauthenticated,
        (Scope(level, on), Cred::Token(have, namespaces)) => {
            let covered = match (on, namespaces) {
                (_, None) | (Any, Some(_)) => true,
                (Acme, Some(ns)) => ns.contains(&"acme"),
                (All, Some(_)) => false,
            };
            if have >= level && covered {
                Expect::Allowed
            } else {
                Expect::Forbidden
            }
        }
    }
}

/// May this caller read `acme` (so reads there succeed rather than find nothing)?
pub(super) fn reads_acme(cred: Cred) -> bool {
    matches!(cred, Cred::Token(_, None))
        || matches!(cred, Cred::Token(_, Some(ns)) if ns.contains(&"acme"))
}

/// The routes as called: `{kind}` expanded, `GET` rows also as `HEAD` (axum answers `HEAD`
/// with the `GET` handler; the policy treats them alike).
pub(super) fn expanded() -> Vec<(Route, &'static str)> {
    let mut out = Vec::new();
    for r in GRID {
        let kinds: &[&str] = if r.template.contains("{kind}") {
            &["adapters", "models"]
        } else {
            &[""]
        };
        for kind in kinds {
            out.push((*r, *kind));
            let head_listed = GRID
                .iter()
                .any(|h| h.method == "HEAD" && h.template == r.template);
            if r.method == "GET" && !head_listed {
                out.push((
                    Route {
                        method: "HEAD",
                        ..*r
                    },
                    *kind,
                ));
            }
        }
    }
    out
}
