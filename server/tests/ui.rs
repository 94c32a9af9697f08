//! The HTML catalogue: shows the data (bases, ranks, targets, aliases, yanked state,
//! evals, a chart per metric), escapes hostile input, uses no external URL, and keeps the
//! API's error shape.

mod common;
mod seed;

use common::{TestServer, stacks, tiny_model};
use seed::{Spec, alias, eval, publish, yank};
use serde_json::json;

const HOSTILE: &str = "<script>alert(1)</script>";

async fn html(s: &TestServer, path: &str) -> String {
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
fn links(page: &str) -> Vec<String> {
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

fn assert_self_contained(page: &str, stack: &impl std::fmt::Display) {
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{stack}: external URL in the page"
    );
    assert!(
        !page.contains("<script"),
        "{stack}: a script element (hostile input not escaped?)"
    );
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

        // The index: namespaces → repositories, with the latest version's facts.
        let index = html(&s, "/").await;
        assert_self_contained(&index, &stack);
        for needle in [
            "id=\"ns-acme\"",
            "id=\"ns-zeta\"",
            "href=\"/ui/adapters/acme/alpha\"",
            "href=\"/ui/models/acme/llama\"",
            "href=\"/ui/adapters/zeta/other\"",
            "acme/llama@1.0.0",
            "prod → 1.1.0",
            "mmlu:acc = 0.6125",
            "org/base-b",
            "o_proj",
        ] {
            assert!(index.contains(needle), "{stack}: index lacks {needle}");
        }
        assert!(
            index.contains("<span class=\"tag yanked\">1.2.0</span>"),
            "{stack}: yanked version marked"
        );

        // The repository page: every version, charts, escaped user input.
        let page = html(&s, "/ui/adapters/acme/alpha").await;
        assert_self_contained(&page, &stack);
        for needle in [
            "<b>1.1.0</b>",
            "<b>1.0.0</b>",
            "<b>1.2.0</b>",
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

        let model = html(&s, "/ui/models/acme/llama").await;
        assert!(model.contains("<b>1.0.0</b>"), "{stack}");

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
