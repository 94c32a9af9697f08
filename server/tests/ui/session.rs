//! Signing in to the pages: browsers are sent to the sign-in page and API clients keep the
//! JSON 401; the cookie is HttpOnly, SameSite=Strict (Secure behind TLS or with an https
//! `--public-url`), honoured by the pages only (never by `/v1` or `/hf`); a reader sees its
//! namespaces and nothing of the others; tokens appear in no URL and no log line.

use adapter_testkit::{Backend, ServerProcess, http};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::common::{self, Reply, TestServer, stacks, token};
use crate::seed::{Spec, publish};
use crate::{browser, links};

async fn sign_in(
    s: &TestServer,
    secret: &str,
    next: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = browser(None)
        .post(s.u("/ui/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("token", secret)
                .append_pair("next", next)
                .finish(),
        );
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn location(r: &reqwest::Response) -> &str {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cookie_is_strict_and_only_the_pages_honour_it() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        publish(
            &s,
            "acme/alpha",
            "1.0.0",
            &Spec::lora("b", 8, &["q_proj"]),
            json!({}),
        )
        .await;
        publish(
            &s,
            "zeta/secret-thing",
            "1.0.0",
            &Spec::lora("b", 8, &["q_proj"]),
            json!({}),
        )
        .await;
        let reader = token(&s, "reader", "read", Some(&["acme"])).await;
        let b = browser(None);

        // Without a session: a browser goes to sign in (told where it was going), an API
        // client gets the JSON 401, and /v1 never redirects.
        let r = b.get(s.u("/")).send().await.unwrap();
        assert_eq!(
            (r.status().as_u16(), location(&r)),
            (303, "/ui/sign-in"),
            "{stack}"
        );
        let r = b
            .get(s.u("/ui/adapters/acme/alpha?x=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            location(&r),
            "/ui/sign-in?next=%2Fui%2Fadapters%2Facme%2Falpha%3Fx%3D1",
            "{stack}"
        );
        let api = reqwest::Client::new();
        Reply::of(api.get(s.u("/")).send().await.unwrap())
            .await
            .error(401, "unauthenticated");
        Reply::of(b.get(s.u("/v1/adapters")).send().await.unwrap())
            .await
            .error(401, "unauthenticated");
        let form = b
            .get(s.u("/ui/sign-in?next=%2Fui%2Fjobs"))
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 200, "{stack}");
        let form = form.text().await.unwrap();
        assert!(form.contains("type=\"password\" name=\"token\""), "{stack}");
        assert!(form.contains("name=\"next\" value=\"/ui/jobs\""), "{stack}");

        // Refused sign-ins set nothing.
        let r = sign_in(&s, &format!("art_{}", "0".repeat(64)), "/", &[]).await;
        assert_eq!(r.status(), 422, "{stack}");
        assert!(r.headers().get(SET_COOKIE).is_none(), "{stack}");
        let r = sign_in(&s, &reader, "/", &[("origin", "http://evil.example")]).await;
        assert_eq!(r.status(), 403, "{stack}: a form posted from another site");
        assert!(r.headers().get(SET_COOKIE).is_none(), "{stack}");

        // Signing in: back where the browser was going; the cookie's flags.
        let r = sign_in(&s, &reader, "/ui/adapters/acme/alpha", &[]).await;
        assert_eq!(
            (r.status().as_u16(), location(&r)),
            (303, "/ui/adapters/acme/alpha"),
            "{stack}"
        );
        let set = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        for flag in [
            format!("registry_session={reader}"),
            "HttpOnly".into(),
            "SameSite=Strict".into(),
            "Path=/".into(),
        ] {
            assert!(set.contains(&flag), "{stack}: {set} lacks {flag}");
        }
        assert!(!set.contains("Secure"), "{stack}: plain HTTP: {set}");
        let r = sign_in(
            &s,
            &reader,
            "//evil.example/",
            &[("x-forwarded-proto", "https")],
        )
        .await;
        assert_eq!(location(&r), "/", "{stack}: no open redirect");
        assert!(
            r.headers()[SET_COOKIE]
                .to_str()
                .unwrap()
                .contains("; Secure"),
            "{stack}: behind TLS"
        );

        // The pages act with the cookie's token: its namespaces only, no names or counts
        // of the others.
        let cookie = format!("registry_session={reader}");
        let page = b
            .get(s.u("/"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{stack}");
        let page = page.text().await.unwrap();
        assert!(page.contains(">acme/alpha<"), "{stack}");
        assert!(page.contains("signed in as <b>reader</b>"), "{stack}");
        assert!(page.contains("1 adapters on this page"), "{stack}");
        assert!(
            !page.contains("zeta") && !page.contains("secret-thing"),
            "{stack}"
        );
        let other = b
            .get(s.u("/?namespace=zeta"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            other.contains("Nothing matches") && !other.contains("secret-thing"),
            "{stack}"
        );
        let r = b
            .get(s.u("/ui/adapters/zeta/secret-thing"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{stack}");
        assert!(
            r.text().await.unwrap().contains("<code>forbidden</code>"),
            "{stack}"
        );
        // Never by the API or the Hub protocol.
        for path in ["/v1/adapters", "/v1/adapters/acme/alpha", "/v1/whoami"] {
            let r = api
                .get(s.u(path))
                .header(COOKIE, &cookie)
                .send()
                .await
                .unwrap();
            if path == "/v1/whoami" {
                let me: serde_json::Value = r.json().await.unwrap();
                assert!(
                    me["token"].is_null(),
                    "{stack}: whoami saw the cookie: {me}"
                );
            } else {
                Reply::of(r).await.error(401, "unauthenticated");
            }
        }
        Reply::of(
            api.get(s.u("/hf/api/models/acme/alpha"))
                .header(COOKIE, &cookie)
                .send()
                .await
                .unwrap(),
        )
        .await
        .hub_error(401, "unauthenticated");

        // A cookie the registry does not know is no session.
        let r = b
            .get(s.u("/"))
            .header(COOKIE, "registry_session=art_nope")
            .send()
            .await
            .unwrap();
        assert_eq!(location(&r), "/ui/sign-in", "{stack}");
        // Signing out clears it.
        let r = b
            .post(s.u("/ui/sign-out"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), location(&r)),
            (303, "/ui/sign-in"),
            "{stack}"
        );
        let set = r.headers()[SET_COOKIE].to_str().unwrap();
        assert!(
            set.starts_with("registry_session=;") && set.contains("Max-Age=0"),
            "{stack}: {set}"
        );
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_https_public_url_makes_the_cookie_secure_and_names_the_commands() {
    let backend = Backend::new(&stacks()[0]);
    let mut config = common::config(&backend);
    config.public_url = Some("https://registry.example".into());
    let s = TestServer::start_with(&backend, config).await;
    publish(
        &s,
        "acme/alpha",
        "1.0.0",
        &Spec::lora("b", 8, &["q_proj"]),
        json!({}),
    )
    .await;
    let r = sign_in(&s, &s.admin_token, "/", &[]).await;
    assert!(
        r.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
    let page = browser(Some(&s.admin_token))
        .get(s.u("/ui/adapters/acme/alpha/1.0.0"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("HF_ENDPOINT=https://registry.example/hf"),
        "{page}"
    );
    s.stop().await;
}

/// The real server with debug logs: a session from sign-in to sign-out leaves the token in
/// no URL (redirects, links, forms) and in no log line.
#[test]
fn tokens_appear_in_no_url_and_no_log_line() {
    let backend = Backend::new(&stacks()[0]);
    let server = ServerProcess::start_with(&backend, &["--workers", "0"], &[("RUST_LOG", "debug")]);
    let (k, v) = server.auth();
    let created = http(
        "POST",
        &format!("{}/v1/tokens", server.url),
        &[(k, v.as_str()), ("content-type", "application/json")],
        br#"{"name": "browser", "scope": "read"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let secret = created.json()["token"].as_str().unwrap().to_owned();
    let body = format!("token={secret}&next=%2Fui%2Fjobs");
    let r = http(
        "POST",
        &format!("{}/ui/sign-in", server.url),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "text/html"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/ui/jobs"));
    let cookie = format!("registry_session={secret}");
    let headers = [("cookie", cookie.as_str()), ("accept", "text/html")];
    for path in [
        "/",
        "/?q=x",
        "/ui/jobs",
        "/ui/adapters/acme/none",
        "/ui/nowhere",
    ] {
        let r = http("GET", &format!("{}{path}", server.url), &headers, b"");
        let page = r.text();
        assert!(!page.contains(&secret), "{path}: the page holds the token");
        for l in links(&page) {
            assert!(!l.contains(&secret), "{path}: a link holds the token");
        }
        assert!(
            r.header("location").is_none_or(|l| !l.contains(&secret)),
            "{path}"
        );
    }
    let out = http(
        "POST",
        &format!("{}/ui/sign-out", server.url),
        &headers,
        b"",
    );
    assert_eq!(out.status, 303);
    let logs = server.logs();
    assert!(
        logs.contains("/ui/sign-in"),
        "debug logs name the routes: {logs}"
    );
    assert!(!logs.contains(&secret), "a log line holds the token");
    assert!(
        !logs.contains(&secret["art_".len()..]),
        "a log line holds the token's digits"
    );
}
