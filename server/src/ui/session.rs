//! Signing in and out of the pages: `GET /ui/sign-in` (a form that takes a registry token),
//! `POST /ui/sign-in` (checks the token, then sets it as the [`SESSION_COOKIE`]: `HttpOnly`,
//! `SameSite=Strict`, `Path=/`, `Secure` when the request came over TLS (as the proxy in
//! front says with `X-Forwarded-Proto`) or `--public-url` is https), `POST /ui/sign-out`
//! (clears it). The token travels in the form body and the cookie only: never in a URL,
//! never logged. Only the HTML routes read the cookie (`auth::is_html_route`).

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::browser::is_html_path;
use super::html::{Crumb, esc, page};
use crate::app::AppState;
use crate::auth::{Caller, SESSION_COOKIE, token_of_secret};
use crate::extract::LimitedBytes;

/// The longest a sign-in lasts (less when the token expires sooner).
const SESSION_SECONDS: i64 = 12 * 60 * 60;
/// A sign-in form is small.
const FORM_LIMIT: usize = 4096;

/// `next`: a page of this registry to return to (`/` or `/ui/…`), else `/`.
fn local_page(next: Option<&str>) -> String {
    next.filter(|n| {
        let path = n.split(['?', '#']).next().unwrap_or_default();
        is_html_path(path)
            && !n.starts_with("//")
            && !n.contains('\\')
            && !n.chars().any(char::is_control)
            && !path.starts_with("/ui/sign-")
    })
    .unwrap_or("/")
    .to_owned()
}

fn next_of(raw: Option<&str>) -> String {
    let next = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned());
    local_page(next.as_deref())
}

fn form(next: &str, problem: Option<&str>, caller: &Caller) -> String {
    let mut body = String::from("<h1>Sign in</h1>");
    if let Some(t) = &caller.token {
        body.push_str(&format!(
            "<p class=\"ok\">Signed in as <b>{}</b>. Sign in below to use another token.</p>",
            esc(&t.name)
        ));
    }
    if let Some(p) = problem {
        body.push_str(&format!("<p class=\"bad\" id=\"problem\">{}</p>", esc(p)));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/ui/sign-in\" class=\"panel\">\
         <p><label>Registry token<br><input type=\"password\" name=\"token\" id=\"token\" \
         autocomplete=\"off\" required size=\"48\" placeholder=\"art_…\"></label></p>\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <p><button type=\"submit\" id=\"sign-in\">Sign in</button></p></form>\
         <p class=\"muted\">A token from <code>adapter-registry token create</code> or \
         <code>POST /v1/tokens</code>. The pages then show what that token may read; it is kept \
         in an HttpOnly cookie that only these pages honour (the API wants \
         <code>Authorization: Bearer</code>).</p>",
        esc(next)
    ));
    page("Sign in", &[Crumb::here("sign in")], Some(caller), &body)
}

/// `GET /ui/sign-in`.
pub async fn show(Extension(caller): Extension<Caller>, RawQuery(raw): RawQuery) -> Html<String> {
    Html(form(&next_of(raw.as_deref()), None, &caller))
}

/// Was this request made from another site (a form posted there)? Then it changes nothing.
fn cross_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if fetch_site == "cross-site" {
        return true;
    }
    let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    origin != "null" && origin_host != host
}

/// Should the cookie be `Secure`?
fn secure(app: &AppState, headers: &HeaderMap) -> bool {
    let forwarded_tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    forwarded_tls
        || app
            .config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
}

fn cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let v = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&v).expect("a token secret and digits are header-safe")
}

fn refused(status: StatusCode, next: &str, why: &str, caller: &Caller) -> Response {
    (status, Html(form(next, Some(why), caller))).into_response()
}

/// `POST /ui/sign-in` (form fields `token`, `next`).
pub async fn sign_in(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    LimitedBytes(body): LimitedBytes<FORM_LIMIT>,
) -> Response {
    let mut token = String::new();
    let mut next = None;
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "token" => token = v.trim().to_owned(),
            "next" => next = Some(v.into_owned()),
            _ => {}
        }
    }
    let next = local_page(next.as_deref());
    if cross_site(&headers) {
        let why = "Sign-in refused: the form was sent from another site.";
        return refused(StatusCode::FORBIDDEN, &next, why, &caller);
    }
    if token.is_empty() {
        return refused(StatusCode::BAD_REQUEST, &next, "Paste a token.", &caller);
    }
    let info = match token_of_secret(&app.db, &token).await {
        Ok((info, _)) => info,
        Err(e) if e.code() == "unauthenticated" => {
            let why = format!("Sign-in refused: {e}.");
            return refused(StatusCode::UNPROCESSABLE_ENTITY, &next, &why, &caller);
        }
        Err(e) => return e.into_response(),
    };
    let now = crate::db::now();
    let max_age = info
        .expires_at
        .map_or(SESSION_SECONDS, |at| (at - now).clamp(1, SESSION_SECONDS));
    let mut res = Redirect::to(&next).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&token, max_age, secure(&app, &headers)),
    );
    res
}

/// `POST /ui/sign-out`: the cookie cleared, back to the sign-in page.
pub async fn sign_out(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let mut res = Redirect::to("/ui/sign-in").into_response();
    if cross_site(&headers) {
        return (StatusCode::FORBIDDEN, "cross-site sign-out refused").into_response();
    }
    res.headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, secure(&app, &headers)));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_registrys_pages() {
        assert_eq!(local_page(Some("/ui/adapters/a/b")), "/ui/adapters/a/b");
        assert_eq!(local_page(Some("/?q=bot")), "/?q=bot");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/v1/adapters",
            "/ui/sign-in",
            "/ui\\x",
            "javascript:alert(1)",
        ] {
            assert_eq!(local_page(Some(bad)), "/", "{bad}");
        }
        assert_eq!(next_of(Some("next=%2Fui%2Fjobs")), "/ui/jobs");
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("reg:8080"));
        assert!(!cross_site(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://reg:8080"));
        assert!(!cross_site(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil"));
        assert!(cross_site(&h));
    }
}
