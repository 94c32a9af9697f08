//! What a browser gets from the HTML routes (`/`, `/ui/…`), put in front of them by `serve`
//! (outside the auth layer, so its refusals pass here too):
//!
//! * an error answered to a browser (`Accept: text/html`) becomes a page in the same style,
//!   with the API's status and code; `unauthenticated` sends it to the sign-in page instead
//!   (a `303` carrying where it was going, never a token);
//! * API clients (no `text/html` in `Accept`) keep the JSON error shape and the `401`;
//! * every HTML answer carries a strict Content-Security-Policy (scripts only from
//!   `/ui/assets/`, no inline script, no frames, forms only to this origin), `nosniff` and
//!   `no-referrer`, and is not cached (pages show what a token may read).

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::html::{esc, page, seg};
use crate::error::ErrorCode;

/// Largest error body read back to turn it into a page (ours are far smaller).
const MAX_ERROR_BODY: usize = 64 * 1024;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; \
connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
base-uri 'none'";

/// Is `path` one of the HTML pages?
pub fn is_html_path(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// Does the request ask for HTML (a browser navigating)?
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

/// The middleware (see the module docs).
pub async fn pages(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if !is_html_path(&path) {
        return next.run(req).await;
    }
    let html = wants_html(req.headers());
    let here = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    let mut res = if html && (res.status().is_client_error() || res.status().is_server_error()) {
        as_page(res, &here).await
    } else {
        res
    };
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Where a browser that must sign in goes: the sign-in page, told where to come back to.
pub fn to_sign_in(back_to: &str) -> Response {
    let target = if back_to == "/" || back_to.starts_with("/ui/sign-") {
        "/ui/sign-in".to_owned()
    } else {
        format!("/ui/sign-in?next={}", seg(back_to))
    };
    Redirect::to(&target).into_response()
}

/// An error answer as a page: status kept, the code and message shown (escaped); an
/// `unauthenticated` one as a redirect to sign in.
async fn as_page(res: Response, here: &str) -> Response {
    let status = res.status();
    let code = res.extensions().get::<ErrorCode>().map(|c| c.0);
    if code == Some("unauthenticated") {
        return to_sign_in(here);
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return res; // already a page (or a body we do not reshape)
    }
    let (parts, body) = res.into_parts();
    let bytes = to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let code = v["error"]["code"]
        .as_str()
        .or(code)
        .unwrap_or("error")
        .to_owned();
    let message = v["error"]["message"].as_str().unwrap_or("").to_owned();
    let mut out = error_page(status, &code, &message);
    // Keep what the API said for machines (the code header, `Allow`, the code extension).
    for name in [header::ALLOW, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    for (k, v) in &parts.headers {
        if k.as_str().starts_with("x-error-") {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    if let Some(c) = parts.extensions.get::<ErrorCode>() {
        out.extensions_mut().insert(*c);
    }
    out
}

/// A page for an error: what happened for people, and the API's code.
pub fn error_page(status: StatusCode, code: &str, message: &str) -> Response {
    let (title, hint) = match status.as_u16() {
        403 => (
            "Not allowed",
            "The token you signed in with does not cover this. <a href=\"/ui/sign-in\">Sign in</a> with another one.",
        ),
        404 => (
            "Not found",
            "Nothing here. Search the <a href=\"/\">catalogue</a>.",
        ),
        410 => ("Gone", "This version cannot be served."),
        s if s >= 500 => (
            "Something went wrong",
            "The registry could not answer; the cause is in its log.",
        ),
        _ => ("Bad request", "The page could not use what was asked."),
    };
    let body = format!(
        "<h1>{title}</h1><p class=\"bad\">{} <code>{}</code></p><p>{}</p><p>{hint}</p>",
        status.as_u16(),
        esc(code),
        esc(message),
    );
    let html = page(title, &[super::html::Crumb::here(title)], None, &body);
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Body::from(html),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_paths_and_accept() {
        assert!(is_html_path("/") && is_html_path("/ui/jobs"));
        assert!(!is_html_path("/v1/adapters") && !is_html_path("/uix") && !is_html_path("/hf"));
        let mut h = HeaderMap::new();
        assert!(!wants_html(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert!(wants_html(&h));
    }

    #[test]
    fn sign_in_redirect_keeps_the_path_escaped() {
        let r = to_sign_in("/ui/adapters/a/b?x=<y>");
        let loc = r.headers()[header::LOCATION].to_str().unwrap();
        assert_eq!(
            loc,
            "/ui/sign-in?next=%2Fui%2Fadapters%2Fa%2Fb%3Fx%3D%3Cy%3E"
        );
        let r = to_sign_in("/");
        assert_eq!(r.headers()[header::LOCATION], "/ui/sign-in");
    }
}
