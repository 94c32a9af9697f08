//! Errors are pages for browsers (same style, the API's status and code, strict security
//! headers) and JSON for API clients; hostile path segments and queries (traversal, markup)
//! are never reflected unescaped; the index pages through every repository once.

use adapter_testkit::Backend;
use serde_json::json;

use crate::common::{Reply, TestServer, stacks};
use crate::seed::{Spec, publish};
use crate::{OUR_SCRIPT, browser};

/// Markup that would run or load something if it reached the page unescaped (escaped, as
/// text, it is harmless).
const MARKUP: &[&str] = &["<script>alert", "<img src=x", "<svg onload"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_are_pages_for_browsers_and_nothing_hostile_is_reflected() {
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
        let b = browser(Some(&s.admin_token));
        // (path, status, code: `None` when any 4xx code will do)
        let cases: &[(&str, u16, Option<&str>)] = &[
            ("/ui/adapters/acme/nope", 404, Some("repository_not_found")),
            (
                "/ui/adapters/acme/alpha/9.9.9",
                404,
                Some("version_not_found"),
            ),
            ("/ui/nowhere", 404, Some("not_found")),
            ("/ui/widgets/acme/alpha", 404, Some("not_found")),
            (
                "/ui/jobs/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
                404,
                Some("job_not_found"),
            ),
            (
                "/ui/adapters/%3Cscript%3Ealert(1)%3C%2Fscript%3E/x",
                400,
                Some("invalid_name"),
            ),
            (
                "/ui/adapters/acme/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
                400,
                Some("invalid_name"),
            ),
            (
                "/ui/adapters/acme/alpha/%3Csvg%20onload%3Dalert(1)%3E",
                400,
                None,
            ),
            ("/ui/adapters/acme/alpha/..%2F..%2Fetc%2Fpasswd", 400, None),
            (
                "/ui/adapters/..%2F..%2Fetc/passwd",
                400,
                Some("invalid_name"),
            ),
            (
                "/ui/adapters/acme/alpha/1.0.0/files/..%2F..%2Fetc%2Fpasswd",
                404,
                Some("not_found"),
            ),
            (
                "/ui/adapters/acme/alpha/1.0.0/files/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
                404,
                Some("not_found"),
            ),
            (
                "/?label=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
                400,
                Some("invalid_filter"),
            ),
            (
                "/?sort=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
                400,
                Some("invalid_sort"),
            ),
            ("/?q=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E", 200, None),
            (
                "/ui/sign-in?next=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
                200,
                None,
            ),
        ];
        for (path, status, code) in cases {
            let r = b.get(s.u(path)).send().await.unwrap();
            let at = format!("{stack}: {path}");
            assert_eq!(r.status().as_u16(), *status, "{at}");
            let h = r.headers().clone();
            assert!(
                h["content-type"].to_str().unwrap().starts_with("text/html"),
                "{at}: {:?}",
                h["content-type"]
            );
            let csp = h["content-security-policy"].to_str().unwrap();
            assert!(
                csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
                "{at}"
            );
            assert_eq!(h["x-content-type-options"], "nosniff", "{at}");
            let page = r.text().await.unwrap();
            for m in MARKUP {
                assert!(!page.contains(m), "{at}: `{m}` reflected: {page}");
            }
            assert_eq!(page.matches("<script").count(), 1, "{at}");
            assert!(page.contains(OUR_SCRIPT), "{at}");
            assert!(
                page.contains("<title>") && page.contains("aria-label=\"breadcrumb\""),
                "{at}"
            );
            if path.starts_with("/?q=") {
                assert!(
                    page.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""),
                    "{at}"
                );
            }
            if let Some(code) = code {
                assert!(
                    page.contains(&format!("<code>{code}</code>")),
                    "{at}: {page}"
                );
            }
        }
        // The same addresses keep the API's JSON for API clients.
        let api = reqwest::Client::new();
        let r = api
            .get(s.u("/ui/adapters/acme/nope"))
            .bearer_auth(&s.admin_token)
            .send()
            .await
            .unwrap();
        Reply::of(r).await.error(404, "repository_not_found");
        s.stop().await;
    }
}

/// `href="…"` of the element with `id="next"`, unescaped.
fn next_link(page: &str) -> Option<String> {
    let at = page.find("id=\"next\"")?;
    let start = page[..at].rfind("href=\"")? + "href=\"".len();
    let end = start + page[start..].find('"')?;
    Some(page[start..end].replace("&amp;", "&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_index_pages_through_every_repository_once() {
    let backend = Backend::new(&stacks()[0]);
    let s = TestServer::start(&backend).await;
    for i in 0..12 {
        let repo = format!("team-{}/bot-{i:02}", i % 3);
        publish(
            &s,
            &repo,
            "1.0.0",
            &Spec::lora("b", 4, &["q_proj"]),
            json!({}),
        )
        .await;
    }
    let b = browser(Some(&s.admin_token));
    let mut next = Some("/?limit=5&q=bot".to_owned());
    let (mut seen, mut pages) = (Vec::new(), 0);
    while let Some(path) = next {
        let page = b
            .get(s.u(&path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        pages += 1;
        for part in page.split("class=\"repo\">").skip(1) {
            seen.push(part.split('<').next().unwrap().to_owned());
        }
        next = next_link(&page);
        assert!(pages <= 3, "more pages than repositories: {path}");
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((pages, seen.len(), sorted.len()), (3, 12, 12), "{seen:?}");
    assert_eq!(seen, sorted, "by name, as the API sorts");
    s.stop().await;
}
