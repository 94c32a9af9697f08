//! Who may call which route: the one table, keyed by the matched route template.
//!
//! * health, `/metrics`, the spec and the API browser are public;
//! * reads (`GET`/`HEAD`) of a repository need `read` on its namespace; other methods on it
//!   need `write` there;
//! * blobs, uploads, jobs and catalogue-wide lists need `read` (or `write` to change
//!   something) on any namespace; what the caller then sees of them is filtered to its
//!   namespaces (`walls.rs`: jobs by the namespaces they touch, blobs by the versions that
//!   list them);
//! * the Hugging Face Hub protocol under `/hf` reads one repository (`read` on its
//!   namespace) or pushes to it (`write` there); its LFS upload URLs are their own credential;
//! * the HTML pages (`ui`, signed in by cookie or bearer token) read like the API: a page of
//!   one repository needs `read` on its namespace; the index, search and jobs need `read` on
//!   any namespace and show only what the token covers; sign-in, sign-out, the page assets
//!   and the favicon are public;
//! * tokens and the audit log need `admin` over all namespaces;
//! * a route this table does not know needs `admin` (deny by default).
//!
//! Anonymous callers may read (what `read` on all namespaces may) only when the server runs
//! with `--public-read`.

use adapter_core::api::{Scope, TokenInfo};
use axum::http::Method;

/// What a route needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Public,
    Scope(Scope, Namespaces),
}

/// Which namespaces the token must cover for a [`Requirement::Scope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// This one.
    One(String),
    /// At least one (the data is filtered or shared).
    Any,
    /// All of them (the token must not be namespace-limited).
    All,
}

/// Why a caller is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No usable credentials: 401.
    Unauthenticated,
    /// Valid credentials that do not cover this: 403.
    Forbidden,
}

/// A method that changes nothing (what `read` allows; not audited).
pub fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The requirement of `method` on the route `template` (axum's matched path); `path` is the
/// request path, from which the namespace segment is taken (percent-decoded as the handlers
/// decode it).
pub fn requirement(method: &Method, template: &str, path: &str) -> Requirement {
    let need = |ns| {
        if is_read(method) {
            Requirement::Scope(Scope::Read, ns)
        } else {
            Requirement::Scope(Scope::Write, ns)
        }
    };
    let segments: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz" | "readyz" | "openapi.json" | "metrics"] | ["docs", ..] | ["v1", "whoami"] => {
            Requirement::Public
        }
        ["v1", "tokens" | "audit", ..] => Requirement::Scope(Scope::Admin, Namespaces::All),
        ["v1", "blobs", "check"] => Requirement::Scope(Scope::Read, Namespaces::Any),
        ["v1", "blobs" | "uploads" | "jobs", ..] => need(Namespaces::Any),
        ["v1", "adapters" | "models"] => need(Namespaces::Any),
        ["v1", "adapters" | "models", "{ns}", ..] => one(need, path, 2),
        // The Hugging Face Hub protocol (`hf/`): reads of one repository (`paths-info` is a
        // POST that only reads), and the push path: commits, preuploads, branches and the
        // LFS batch API write to one repository; `repos/create` names its namespace in the
        // body (the handler checks it); a card's YAML check reads nothing; an LFS upload URL
        // is its own credential (a session opened by a token with `write`: `hf::lfs`).
        ["hf", "api", "models", "{ns}", "{name}", "paths-info", ..] => {
            one(|ns| Requirement::Scope(Scope::Read, ns), path, 3)
        }
        ["hf", "api", "models", "{ns}", ..] => one(need, path, 3),
        ["hf", "api", "repos", "create"] => need(Namespaces::Any),
        ["hf", "api", "validate-yaml"] => Requirement::Scope(Scope::Read, Namespaces::Any),
        ["hf", "lfs", "{id}"] => Requirement::Public,
        ["hf", "{ns}", "{name}", "resolve", ..] | ["hf", "{ns}", "{repo}", "info", "lfs", ..] => {
            one(need, path, 1)
        }
        ["ui", "sign-in" | "sign-out" | "assets", ..] | ["favicon.ico"] => Requirement::Public,
        ["ui", "{kind}", "{ns}", ..] => one(|ns| Requirement::Scope(Scope::Read, ns), path, 2),
        [""] | ["ui", ..] => Requirement::Scope(Scope::Read, Namespaces::Any),
        _ => Requirement::Scope(Scope::Admin, Namespaces::All),
    }
}

/// What `need` asks for on the namespace in segment `at` of `path` (`/v1/{kind}/{ns}`: 2),
/// percent-decoded as the handlers decode it; `admin` when it is not UTF-8.
fn one(need: impl Fn(Namespaces) -> Requirement, path: &str, at: usize) -> Requirement {
    match namespace_of(path, at) {
        Some(ns) => need(Namespaces::One(ns)),
        None => Requirement::Scope(Scope::Admin, Namespaces::All),
    }
}

/// Segment `at` of `path`, percent-decoded; `None` if it is not UTF-8.
fn namespace_of(path: &str, at: usize) -> Option<String> {
    let raw = path.trim_start_matches('/').split('/').nth(at)?;
    percent_decode(raw)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// May this caller (`None`: anonymous) do what `req` needs?
pub fn check(
    caller: Option<&TokenInfo>,
    req: &Requirement,
    public_read: bool,
) -> Result<(), Denied> {
    let Requirement::Scope(scope, namespaces) = req else {
        return Ok(());
    };
    let Some(token) = caller else {
        return if public_read && *scope == Scope::Read {
            Ok(())
        } else {
            Err(Denied::Unauthenticated)
        };
    };
    if token.scope < *scope {
        return Err(Denied::Forbidden);
    }
    let covered = match (&token.namespaces, namespaces) {
        (None, _) | (Some(_), Namespaces::Any) => true,
        (Some(mine), Namespaces::One(ns)) => mine.iter().any(|m| m == ns),
        (Some(_), Namespaces::All) => false,
    };
    if covered {
        Ok(())
    } else {
        Err(Denied::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(scope: Scope, namespaces: Option<&[&str]>) -> TokenInfo {
        TokenInfo {
            id: "tok_x".into(),
            name: "t".into(),
            scope,
            namespaces: namespaces.map(|n| n.iter().map(|s| (*s).to_owned()).collect()),
            created_at: 0,
            created_by: None,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        }
    }

    #[test]
    fn namespace_comes_from_the_decoded_path() {
        let r = requirement(
            &Method::PUT,
            "/v1/adapters/{ns}/{name}/versions/{version}",
            "/v1/adapters/team%2Da/x/versions/1.0.0",
        );
        assert_eq!(
            r,
            Requirement::Scope(Scope::Write, Namespaces::One("team-a".into()))
        );
        let bad = requirement(&Method::GET, "/v1/models/{ns}/{name}", "/v1/models/%ff/x");
        assert_eq!(bad, Requirement::Scope(Scope::Admin, Namespaces::All));
    }

    #[test]
    fn unknown_routes_need_admin() {
        assert_eq!(
            requirement(&Method::GET, "/v1/something-new", "/v1/something-new"),
            Requirement::Scope(Scope::Admin, Namespaces::All)
        );
    }

    #[test]
    fn scopes_and_namespaces() {
        let write_a = token(Scope::Write, Some(&["a"]));
        let need = |s, ns: &str| Requirement::Scope(s, Namespaces::One(ns.into()));
        assert_eq!(
            check(Some(&write_a), &need(Scope::Write, "a"), false),
            Ok(())
        );
        assert_eq!(
            check(Some(&write_a), &need(Scope::Read, "a"), false),
            Ok(())
        );
        assert_eq!(
            check(Some(&write_a), &need(Scope::Write, "b"), false),
            Err(Denied::Forbidden)
        );
        let admin_a = token(Scope::Admin, Some(&["a"]));
        let all = Requirement::Scope(Scope::Admin, Namespaces::All);
        assert_eq!(check(Some(&admin_a), &all, false), Err(Denied::Forbidden));
        assert_eq!(check(Some(&token(Scope::Admin, None)), &all, false), Ok(()));
        let read_any = Requirement::Scope(Scope::Read, Namespaces::Any);
        assert_eq!(check(None, &read_any, false), Err(Denied::Unauthenticated));
        assert_eq!(check(None, &read_any, true), Ok(()));
        assert_eq!(
            check(None, &need(Scope::Write, "a"), true),
            Err(Denied::Unauthenticated)
        );
    }
}
