//! The pages in a real headless Chromium (Debian's `chromium` + `chromedriver`, driven
//! through WebDriver with `fantoccini`), against the real server binary (SQLite, its own job
//! workers) filled by the real `adapterctl`: sign in with a reader token of one namespace and
//! see only that namespace; search by base and by target; open a version by alias and check
//! its files, digests, lineage links (after a merge job) and validation verdict; run its
//! "use it" command with `adapterctl` and get the same bytes; the jobs page; an error page and
//! a hostile path (no script runs); sign out and be sent to sign in. A screenshot of each page
//! kind is written under the target directory (`ui-screenshots/`); with `UPDATE_SCREENSHOTS=1`
//! the version page's is also written to docs/img/ for the README.
//!
//! Needs `chromedriver` on the PATH (or `CHROMEDRIVER`): scripts/test installs it. Without it
//! this test fails; it never skips.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use adapter_testkit::{Backend, ServerProcess, Stack, bin, http};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// `chromedriver` on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        let exe = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&exe)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{exe}` ({e}): install chromium and chromium-driver (scripts/test does)")
            });
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1400", "--force-prefers-reduced-motion"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium")
}

/// Where screenshots go: `<target>/ui-screenshots/`.
fn shots_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/<profile>/deps/ui_browser-…
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(shots_dir().join(format!("{name}.png")), &png).unwrap();
}

/// adapterctl against `server` with `token`, in a private HOME.
fn ctl(server: &ServerProcess, token: &str, home: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin("adapterctl"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ADAPTERCTL_") {
            cmd.env_remove(&k);
        }
    }
    let out = cmd
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("ADAPTERCTL_URL", &server.url)
        .env("ADAPTERCTL_TOKEN", token)
        .current_dir(home)
        .output()
        .expect("running adapterctl");
    assert!(
        out.status.success(),
        "adapterctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .display()
        .to_string()
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
        .text()
        .await
        .unwrap()
}

async fn path_of(c: &Client) -> String {
    let u = c.current_url().await.unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    }
}

/// Wait until the browser is at `path` (a click starts a navigation; it may not have ended
/// when the click returns).
async fn wait_path(c: &Client, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = path_of(c).await;
        if now == path {
            return;
        }
        assert!(Instant::now() < deadline, "at {now}, not {path}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until the element at `css` says `text` (the page's script updates it).
async fn wait_text(c: &Client, css: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if now == text {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{css}` says {now:?}, not {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn search(c: &Client, url: &str, field: &str, value: &str) -> String {
    c.goto(&format!("{url}/")).await.unwrap();
    let input = c
        .find(Locator::Css(&format!("form.search [name={field}]")))
        .await
        .unwrap();
    input.send_keys(value).await.unwrap();
    c.find(Locator::Id("search"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path_of(c)
        .await
        .contains(&format!("{field}={}", value.replace('/', "%2F")))
    {
        assert!(Instant::now() < deadline, "the search did not load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.source().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_browses_signs_in_and_out_in_chromium() {
    let backend = Backend::new(&Stack::Embedded);
    // Test-only job kinds: `test.block` runs until a file appears (the live jobs page).
    let server = ServerProcess::start_with(&backend, &["--enable-test-jobs"], &[]);
    let admin = server.token().to_owned();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    // The catalogue, filled with adapterctl: a base, an adapter on it (its validation job
    // runs), an alias, a merge job; and a namespace the reader must not see.
    let push = |dir: &str, repo: &str, extra: &[&str]| {
        let dir = example(dir);
        let mut args = vec!["push", &dir, "--name", repo, "--version", "1.0.0"];
        args.extend_from_slice(extra);
        ctl(&server, &admin, h, &args);
    };
    push("tiny-llama", "acme/llama", &[]);
    let on_llama = ["--base", "acme/llama@1.0.0", "--eval", "mmlu:acc=0.61"];
    push(
        "tiny-llama-lora",
        "acme/bot",
        &[&on_llama[..], &["--label", "team=search"]].concat(),
    );
    push("tiny-llama-lora", "zeta/hidden", &[]);
    ctl(&server, &admin, h, &["tag", "acme/bot@1.0.0", "prod"]);
    ctl(
        &server,
        &admin,
        h,
        &[
            "merge",
            "acme/bot@1.0.0",
            "--as",
            "acme/bot-merged@1.0.0",
            "--wait",
        ],
    );
    let (k, v) = server.auth();
    let auth = [(k, v.as_str()), ("content-type", "application/json")];
    let r = http(
        "POST",
        &format!("{}/v1/tokens", server.url),
        &auth,
        br#"{"name": "acme-reader", "scope": "read", "namespaces": ["acme"]}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let reader = r.json()["token"].as_str().unwrap().to_owned();
    // The validation the publish asked for has run.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http(
            "GET",
            &format!(
                "{}/v1/adapters/acme/bot/versions/1.0.0/validations",
                server.url
            ),
            &auth,
            b"",
        );
        if r.json()["validations"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
        {
            break;
        }
        assert!(Instant::now() < deadline, "no validation: {}", r.text());
        std::thread::sleep(Duration::from_millis(200));
    }

    let driver = Driver::start();
    let c = browser(&driver).await;
    let url = server.url.clone();

    // Not signed in: sent to the sign-in page.
    c.goto(&format!("{url}/")).await.unwrap();
    assert_eq!(path_of(&c).await, "/ui/sign-in");
    shot(&c, "sign-in").await;
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(&reader)
        .await
        .unwrap();
    c.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&c, "/").await;
    let index = c.source().await.unwrap();
    assert!(
        index.contains("acme/bot") && index.contains("acme-reader"),
        "{index}"
    );
    assert!(
        !index.contains("zeta") && !index.contains("hidden"),
        "another namespace leaked"
    );
    let cookie = c.get_named_cookie("registry_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert!(!c.current_url().await.unwrap().as_str().contains(&reader));
    shot(&c, "index").await;

    // Search by base and by target, through the form.
    let by_base = search(&c, &url, "base", "acme/llama").await;
    assert!(by_base.contains(">acme/bot<"), "{by_base}");
    let by_target = search(&c, &url, "target", "q_proj").await;
    assert!(by_target.contains(">acme/bot<"), "{by_target}");
    shot(&c, "search").await;
    let none = search(&c, &url, "target", "gate_proj").await;
    assert!(none.contains("Nothing matches"), "{none}");
    c.goto(&format!("{url}/?kind=models")).await.unwrap();
    assert!(c.source().await.unwrap().contains(">acme/bot-merged<"));

    // A version by alias: files, digests, verdict, lineage.
    c.goto(&format!("{url}/ui/adapters/acme/bot/prod"))
        .await
        .unwrap();
    assert_eq!(path_of(&c).await, "/ui/adapters/acme/bot/1.0.0");
    let info = http(
        "GET",
        &format!("{url}/v1/adapters/acme/bot/versions/1.0.0"),
        &auth,
        b"",
    )
    .json();
    let files = text(&c, "#files").await;
    for f in info["manifest"]["files"].as_array().unwrap() {
        assert!(files.contains(f["path"].as_str().unwrap()), "{files}");
        assert!(files.contains(f["digest"].as_str().unwrap()), "{files}");
    }
    let verdict = text(&c, "#validations .verdict").await;
    assert!(verdict.starts_with("compatible"), "{verdict}");
    let derived = text(&c, "#derived").await;
    assert!(derived.contains("acme/bot-merged@1.0.0"), "{derived}");
    let from = text(&c, "#derived-from").await;
    assert!(from.contains("acme/llama@1.0.0"), "{from}");
    assert!(text(&c, "#trail").await.contains("merge job"));
    let pinned = text(&c, "#pull-pinned").await;
    shot(&c, "version").await;
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img");
        std::fs::create_dir_all(&dir).unwrap();
        c.set_window_size(1000, 1250).await.unwrap();
        std::fs::write(dir.join("version-page.png"), c.screenshot().await.unwrap()).unwrap();
        c.set_window_size(1280, 1400).await.unwrap();
    }

    // The "use it" command, run with the real adapterctl (as the reader): the same bytes.
    let args: Vec<&str> = pinned.split_whitespace().collect();
    assert_eq!(args[..2], ["adapterctl", "pull"], "{pinned}");
    assert!(args[2].starts_with("acme/bot@sha256:"), "{pinned}");
    ctl(&server, &reader, h, &args[1..]);
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        let pulled = std::fs::read(h.join("bot").join(f)).unwrap();
        let original = std::fs::read(Path::new(&example("tiny-llama-lora")).join(f)).unwrap();
        assert!(pulled == original, "{f} differs");
    }

    // Along the lineage to the merged model, which links back to both inputs.
    c.find(Locator::Css("#derived a.lineage-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&c, "/ui/models/acme/bot-merged/1.0.0").await;
    let from = text(&c, "#derived-from").await;
    assert!(
        from.contains("acme/bot@1.0.0") && from.contains("acme/llama@1.0.0"),
        "{from}"
    );
    shot(&c, "model-version").await;
    c.goto(&format!("{url}/ui/adapters/acme/bot"))
        .await
        .unwrap();
    assert!(text(&c, "#aliases").await.contains("prod"));
    shot(&c, "repository").await;

    // Jobs: the merge and the validation, linked.
    c.goto(&format!("{url}/ui/jobs")).await.unwrap();
    let jobs = text(&c, "#jobs").await;
    assert!(
        jobs.contains("merge") && jobs.contains("validate") && jobs.contains("succeeded"),
        "{jobs}"
    );
    shot(&c, "jobs").await;

    // A running job's progress updates without a reload: the row goes from running to
    // succeeded while a marker set in the page survives (no navigation happened).
    let (record, release) = (h.join("record"), h.join("release"));
    let body = json!({"kind": "test.block", "inputs": {},
        "params": {"record": record.display().to_string(), "release": release.display().to_string()}});
    let r = http(
        "POST",
        &format!("{url}/v1/jobs"),
        &auth,
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    c.goto(&format!("{url}/ui/jobs/{id}")).await.unwrap();
    let state = format!("#{id} .state");
    wait_text(&c, &state, "running").await;
    c.execute("window.stillHere = true;", vec![]).await.unwrap();
    std::fs::write(&release, b"").unwrap();
    wait_text(&c, &state, "succeeded").await;
    let kept = c
        .execute("return window.stillHere === true;", vec![])
        .await
        .unwrap();
    assert_eq!(kept, json!(true), "the page was reloaded");

    // Another namespace: a 403 page in the same style. A hostile path: escaped, no script.
    c.goto(&format!("{url}/ui/adapters/zeta/hidden"))
        .await
        .unwrap();
    assert!(c.source().await.unwrap().contains("<code>forbidden</code>"));
    shot(&c, "error").await;
    c.goto(&format!(
        "{url}/ui/adapters/acme/%3Cimg%20src%3Dx%20onerror%3D%22document.title%3D'pwned'%22%3E"
    ))
    .await
    .unwrap();
    let title = c.title().await.unwrap();
    assert_ne!(title, "pwned", "a hostile path ran a script");
    let scripts: Value = c
        .execute(
            "return Array.from(document.scripts).map(s => s.src);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(scripts, json!([format!("{url}/ui/assets/ui.js")]));

    // Sign out: back to sign in, and the pages ask again.
    c.goto(&format!("{url}/")).await.unwrap();
    c.find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&c, "/ui/sign-in").await;
    c.goto(&format!("{url}/ui/adapters/acme/bot"))
        .await
        .unwrap();
    assert_eq!(
        path_of(&c).await,
        "/ui/sign-in?next=%2Fui%2Fadapters%2Facme%2Fbot"
    );
    c.close().await.unwrap();
}
