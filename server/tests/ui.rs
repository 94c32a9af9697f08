//! The pages over plain HTTP: the catalogue shows the data (bases, ranks, targets, aliases,
//! yanked state, evals, a chart per metric, a version's files, digests, "use it" commands
//! and the forgetting flag), escapes hostile input, uses no external URL, and keeps the
//! API's error shape for API clients (`ui/session.rs`: signing in, the cookie and who sees
//! what; `ui/hostile.rs`: errors as pages, hostile paths, paging). The browser drives them
//! in `ui_browser.rs`.

mod common;
#[path = "ui/hostile.rs"]
mod hostile;
mod seed;
#[path = "ui/session.rs"]
mod session;

use common::{TestServer, stacks, tiny_model};
use seed::{Spec, alias, eval, publish, yank};
use serde_json::json;

const HOSTILE: &str = "<script>alert(1)</script>";

pub(crate) async fn html(s: &TestServer, path: &str) -> String {
    let r = s.get(path).await;
    assert_eq!(
        r.status,
        200,
        "{}: {path}: {}",
        s.stack,
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        r.header("content-type")
    );
    String::from_utf8(r.body).unwrap()
}

/// Every `src="…"` / `href="…"` value.
pub(crate) fn links(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = page;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].to_owned());
        }
    }
    out
}

/// A client that does not follow redirects, sends `Accept: text/html` like a browser
/// navigating, and (with `token`) `Authorization: Bearer`.
pub(crate) fn browser(token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "accept",
        "text/html,application/xhtml+xml,*/*;q=0.8".parse().unwrap(),
    );
    if let Some(t) = token {
        headers.insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The one script element every page has (the pages' own, from this registry).
pub(crate) const OUR_SCRIPT: &str = "<script src=\"/ui/assets/ui.js\" defer></script>";

pub(crate) fn assert_self_contained(page: &str, stack: &impl std::fmt::Display) {
    // A version page's "use it" commands name this registry's own address; nothing else
    // may point outside.
    let outside = page
        .split("<pre")
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part
            } else {
                part.split_once("</pre>").map_or("", |p| p.1)
            }
        })
        .any(|rest| rest.contains("http://") || rest.contains("https://"));
    assert!(!outside, "{stack}: external URL in the page");
    assert_eq!(
        page.matches("<script").count(),
        1,
        "{stack}: a script element besides ours (hostile input not escaped?)"
    );
    assert!(page.contains(OUR_SCRIPT), "{stack}: our script is missing");
    assert!(
        !page.contains("<img"),
        "{stack}: an img element (hostile input not escaped?)"
    );
    for l in links(page) {
        assert!(
            l.starts_with('/') || l.starts_with('#'),
            "{stack}: link {l}"
        );
        assert!(!l.starts_with("//"), "{stack}: protocol-relative link {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalogue_pages_show_the_data_and_escape_it() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let empty = html(&s, "/").await;
        assert!(empty.contains("No repositories yet"), "{stack}");

        let m = tiny_model(&s).await;
        assert_eq!(
            s.publish("models", "acme/llama", "1.0.0", &m).await.status,
            201
        );
        let on_llama =
            |labels| json!({"base": {"reference": "acme/llama@1.0.0"}, "labels": labels});
        publish(
            &s,
            "acme/alpha",
            "1.0.0",
            &Spec::lora("example/tiny-llama", 8, &["q_proj", "v_proj"]),
            on_llama(json!({"team": HOSTILE})),
        )
        .await;
        let mut dora = Spec::lora("example/tiny-llama", 16, &["q_proj", "k_proj", "v_proj"]);
        dora.dora = true;
        dora.rank_pattern = vec![("model.layers.1.self_attn.q_proj", 32)];
        publish(
            &s,
            "acme/alpha",
            "1.1.0",
            &dora,
            on_llama(json!({"team": "search"})),
        )
        .await;
        publish(
            &s,
            "acme/alpha",
            "1.2.0",
            &Spec::lora("example/tiny-llama", 8, &["q_proj"]),
            on_llama(json!({})),
        )
        .await;
        yank(
            &s,
            "adapter",
            "acme/alpha",
            "1.2.0",
            "regressed <b>badly</b>",
        )
        .await;
        eval(&s, "acme/alpha", "1.0.0", "mmlu", "acc", 0.55).await;
        eval(&s, "acme/alpha", "1.1.0", "mmlu", "acc", 0.6125).await;
        eval(
            &s,
            "acme/alpha",
            "1.1.0",
            "<img src=x onerror=alert(1)>",
            "f1",
            0.5,
        )
        .await;
        alias(&s, "adapter", "acme/alpha", "prod", "1.1.0").await;
        publish(
            &s,
            "zeta/other",
            "0.1.0",
            &Spec::lora("org/base-b", 4, &["o_proj"]),
            json!({}),
        )
        .await;

        // The index: a search over adapters (the API's), with the matched version's facts.
        let index = html(&s, "/").await;
        assert_self_contained(&index, &stack);
        for needle in [
            "href=\"/ui/adapters/acme/alpha\"",
            "href=\"/ui/adapters/acme/alpha/1.1.0\"",
            "href=\"/ui/adapters/zeta/other\"",
            "href=\"/ui/models/acme/llama/1.0.0\"",
            "acme/llama@1.0.0",
            "prod → 1.1.0",
            "mmlu:acc = 0.6125",
            "org/base-b",
            "o_proj",
            "team=search",
        ] {
            assert!(index.contains(needle), "{stack}: index lacks {needle}");
        }
        // The matched version is the newest that is not yanked.
        assert!(
            !index.contains("href=\"/ui/adapters/acme/alpha/1.2.0\""),
            "{stack}"
        );
        let models = html(&s, "/?kind=models").await;
        assert!(models.contains("href=\"/ui/models/acme/llama\""), "{stack}");
        assert!(!models.contains("acme/alpha"), "{stack}");
        // Filters: the same semantics as `GET /v1/adapters`.
        let by_target = html(&s, "/?target=o_proj").await;
        assert!(
            by_target.contains("zeta/other") && !by_target.contains(">acme/alpha<"),
            "{stack}"
        );
        let by_base = html(&s, "/?base=acme%2Fllama").await;
        assert!(
            by_base.contains(">acme/alpha<") && !by_base.contains("zeta/other"),
            "{stack}"
        );
        let by_eval = html(&s, "/?eval=mmlu%3Aacc%3E%3D0.6&sort=-eval%3Ammlu%3Aacc").await;
        assert!(by_eval.contains(">acme/alpha<"), "{stack}");
        let nothing = html(&s, "/?q=no-such-thing&variant=dora").await;
        assert!(nothing.contains("Nothing matches this search"), "{stack}");
        // A bad filter is the API's error.
        s.get("/?rank_min=x").await.error(400, "invalid_filter");

        // The repository page: every version, charts, escaped user input.
        let page = html(&s, "/ui/adapters/acme/alpha").await;
        assert_self_contained(&page, &stack);
        for needle in [
            "href=\"/ui/adapters/acme/alpha/1.1.0\"><b>1.1.0</b>",
            "<b>1.0.0</b>",
            "<b>1.2.0</b>",
            "id=\"aliases\"",
            "yanked: regressed &lt;b&gt;badly&lt;/b&gt;",
            "16–32 <span class=\"tag\">dora</span>",
            "k_proj",
            "team=&lt;script&gt;alert(1)&lt;/script&gt;",
            "team=search",
            "<span class=\"tag alias\">prod</span>",
            "acme/llama@1.0.0",
            "&lt;img src=x onerror=alert(1)&gt;:f1",
            "Evals across versions",
        ] {
            assert!(
                page.contains(needle),
                "{stack}: repository page lacks {needle}"
            );
        }
        // One chart per benchmark:metric, with a point per version that has it.
        assert_eq!(page.matches("<svg").count(), 2, "{stack}");
        let mmlu = page.split("<svg").find(|c| c.contains("mmlu:acc")).unwrap();
        assert_eq!(
            mmlu.split("</svg>")
                .next()
                .unwrap()
                .matches("<circle")
                .count(),
            2,
            "{stack}"
        );
        // Newest first: 1.2.0 before 1.1.0 before 1.0.0.
        let at = |v: &str| page.find(&format!("<b>{v}</b>")).unwrap();
        assert!(
            at("1.2.0") < at("1.1.0") && at("1.1.0") < at("1.0.0"),
            "{stack}"
        );

        // A version page: summary, base, files with digests, "use it", evals against the
        // previous version with the forgetting flag (mmlu fell 0.6125 → 0.5 here).
        eval(&s, "acme/alpha", "1.2.0", "mmlu", "acc", 0.5).await;
        let v = html(&s, "/ui/adapters/acme/alpha/1.2.0").await;
        assert_self_contained(&v, &stack);
        let info = s.get("/v1/adapters/acme/alpha/versions/1.2.0").await.json();
        for f in info["manifest"]["files"].as_array().unwrap() {
            let path = f["path"].as_str().unwrap();
            assert!(
                v.contains(&format!(
                    "href=\"/ui/adapters/acme/alpha/1.2.0/files/{path}\""
                )),
                "{stack}: {path}"
            );
            assert!(
                v.contains(f["digest"].as_str().unwrap()),
                "{stack}: digest of {path}"
            );
        }
        let digest = info["manifest_digest"].as_str().unwrap();
        for needle in [
            "id=\"yanked\"",
            "regressed &lt;b&gt;badly&lt;/b&gt;",
            "adapterctl pull acme/alpha@1.2.0 -o alpha",
            &format!("adapterctl pull acme/alpha@{digest} -o alpha"),
            &format!("manifest_digest = &quot;{digest}&quot;"),
            "HF_ENDPOINT=",
            "PeftModel.from_pretrained(base, &quot;acme/alpha&quot;, revision=&quot;1.2.0&quot;)",
            "--enable-lora --max-lora-rank 8",
            "class=\"flag forgetting\"",
            "href=\"/ui/adapters/acme/alpha/1.1.0\">1.1.0</a>",
            "href=\"/ui/models/acme/llama/1.0.0\"",
        ] {
            assert!(v.contains(needle), "{stack}: version page lacks {needle}");
        }
        // A file downloads with its bytes.
        let cfg = info["manifest"]["files"][0].clone();
        let r = s
            .get(&format!(
                "/ui/adapters/acme/alpha/1.2.0/files/{}",
                cfg["path"].as_str().unwrap()
            ))
            .await;
        assert_eq!(r.status, 200, "{stack}");
        assert_eq!(
            r.body.len() as u64,
            cfg["size"].as_u64().unwrap(),
            "{stack}"
        );
        assert!(
            r.header("content-disposition")
                .is_some_and(|d| d.starts_with("attachment")),
            "{stack}"
        );
        s.get("/ui/adapters/acme/alpha/1.2.0/files/nope.bin")
            .await
            .error(404, "not_found");
        // By alias, range and digest: redirected to the version's own page.
        let plain = browser(Some(&s.admin_token));
        for (selector, to) in [("prod", "1.1.0"), ("%5E1", "1.1.0"), (digest, "1.2.0")] {
            let r = plain
                .get(s.u(&format!("/ui/adapters/acme/alpha/{selector}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 303, "{stack}: {selector}");
            assert_eq!(
                r.headers()["location"],
                format!("/ui/adapters/acme/alpha/{to}").as_str(),
                "{stack}: {selector}"
            );
        }
        s.get("/ui/adapters/acme/alpha/9.9.9")
            .await
            .error(404, "version_not_found");

        let model = html(&s, "/ui/models/acme/llama").await;
        assert!(model.contains("<b>1.0.0</b>"), "{stack}");
        let model = html(&s, "/ui/models/acme/llama/1.0.0").await;
        assert!(
            model.contains("id=\"lineage\"")
                && model.contains("href=\"/ui/adapters/acme/alpha/1.1.0\""),
            "{stack}: adapters on the base"
        );

        // Errors keep the API's shape.
        s.get("/ui/adapters/acme/nope")
            .await
            .error(404, "repository_not_found");
        s.get("/ui/widgets/acme/alpha")
            .await
            .error(404, "not_found");
        s.get("/ui/adapters/ACME/alpha")
            .await
            .error(400, "invalid_name");
        s.get("/ui/adapters/acme").await.error(404, "not_found");
        s.stop().await;
    }
}
