//! In-process harness: a real `App` (SQLite + files, or PostgreSQL + S3 when the testkit's
//! scale-out stack is configured) served on 127.0.0.1:0, driven with reqwest.

#![allow(dead_code)]

pub mod jobs;

use std::path::PathBuf;
use std::time::Duration;

use adapter_core::digest::Digest;
use adapter_registry::app::AppState;
use adapter_registry::config::{BlobStoreConfig, Config, S3Config};
use adapter_testkit::{Backend, Stack};
use serde_json::{Value, json};

pub use adapter_testkit::stacks;

/// The server configuration for a testkit backend.
pub fn config(backend: &Backend) -> Config {
    let blob_store = match backend.s3() {
        None => BlobStoreConfig::Local(backend.data_dir().join("blobs")),
        Some(s3) => {
            let env: std::collections::HashMap<String, String> =
                backend.server_env().into_iter().collect();
            S3Config {
                bucket: s3.bucket.clone(),
                prefix: "blobs".into(),
                endpoint: Some(s3.endpoint.clone()),
                region: "us-east-1".into(),
                access_key_id: env.get("AWS_ACCESS_KEY_ID").cloned(),
                secret_access_key: env.get("AWS_SECRET_ACCESS_KEY").cloned(),
                session_token: None,
            }
            .into()
        }
    };
    Config {
        database_url: backend.database_url(),
        db_acquire_timeout: Duration::from_secs(30),
        data_dir: backend.data_dir().to_owned(),
        public_read: false,
        public_url: None,
        blob_store,
        upload_ttl: Duration::from_secs(3600),
        gc_interval: Duration::from_secs(3600),
        jobs: Default::default(),
        http: Default::default(),
    }
}

/// A reqwest client that sends `Authorization: Bearer TOKEN` with every request.
pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}")
            .parse()
            .expect("token is header-safe"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("building the HTTP client")
}

/// A running in-process server.
pub struct TestServer {
    pub url: String,
    /// A client that sends an admin token (`admin_token`) with every request.
    pub http: reqwest::Client,
    pub admin_token: String,
    /// What history and audit records say of requests made with `admin_token`.
    pub admin_actor: String,
    pub state: AppState,
    pub stack: Stack,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(backend: &Backend) -> Self {
        Self::start_with(backend, config(backend)).await
    }

    pub async fn start_with(backend: &Backend, config: Config) -> Self {
        let state = adapter_registry::serve::open(config)
            .await
            .expect("building the app");
        let (admin_token, admin) = adapter_registry::auth::create_token(
            &state.db,
            "test-admin",
            adapter_core::api::Scope::Admin,
            None,
            None,
            "test harness",
        )
        .await
        .expect("creating the test admin token");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(adapter_registry::serve::serve(
            state.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            url,
            http: client_with_token(&admin_token),
            admin_token,
            admin_actor: adapter_registry::auth::actor_of(&admin),
            state,
            stack: backend.stack().clone(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stop serving and close the database pool.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.state.db.pool.close().await;
    }

    pub fn u(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `PUT /v1/blobs/{digest}` of `bytes`; returns the digest.
    pub async fn upload(&self, bytes: &[u8]) -> Digest {
        let d = Digest::of_bytes(bytes);
        let r = self
            .http
            .put(self.u(&format!("/v1/blobs/{d}")))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "{}: upload: {}",
            self.stack,
            r.status()
        );
        d
    }

    pub async fn publish(&self, kind: &str, repo: &str, version: &str, manifest: &Value) -> Reply {
        let r = self
            .http
            .put(self.u(&format!("/v1/{kind}/{repo}/versions/{version}")))
            .body(manifest.to_string())
            .send()
            .await
            .unwrap();
        Reply::of(r).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::of(self.http.get(self.u(path)).send().await.unwrap()).await
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub async fn of(r: reqwest::Response) -> Self {
        Self {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.bytes().await.unwrap().to_vec(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Assert the status and the one error shape; returns the error object.
    /// Assert the status (with the body in the message when it differs); the body as JSON.
    pub fn expect(&self, status: u16, at: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "{at}: {}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }

    /// Assert an error in the Hub protocol's shape (`/hf`): `{"error": message, "code",
    /// "details"}` with `X-Error-Code: code` and `X-Error-Message`; returns the body.
    pub fn hub_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            (self.status, self.header("x-error-code")),
            (status, Some(code)),
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert!(
            self.header("x-error-message")
                .is_some_and(|m| !m.is_empty()),
            "no X-Error-Message"
        );
        let v = self.json();
        assert!(v["error"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert_eq!(v["code"], code, "{v}");
        v
    }

    pub fn error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "expected {status} {code}, got {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        let e = v
            .get("error")
            .unwrap_or_else(|| panic!("no error object: {v}"));
        assert_eq!(e["code"], code, "{v}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert_eq!(
            v.as_object().unwrap().len(),
            1,
            "only `error` at the top: {v}"
        );
        e.clone()
    }
}

pub fn examples_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// Upload every file of an example directory; returns manifest file entries.
pub async fn upload_dir(s: &TestServer, name: &str, files: &[&str]) -> Vec<Value> {
    let mut entries = Vec::new();
    for f in files {
        let bytes = std::fs::read(examples_dir(name).join(f)).unwrap();
        let d = s.upload(&bytes).await;
        entries.push(json!({ "path": f, "size": bytes.len(), "digest": d.to_string() }));
    }
    entries
}

pub fn manifest(kind: &str, files: Vec<Value>, metadata: Value) -> Value {
    json!({
        "schema": "adapter-registry.manifest.v1",
        "kind": kind,
        "files": files,
        "metadata": metadata,
    })
}

/// `POST /v1/jobs` with `body`, sent by `client` (`s.http` for the admin).
pub async fn post_job(client: &reqwest::Client, s: &TestServer, body: &Value) -> Reply {
    Reply::of(
        client
            .post(s.u("/v1/jobs"))
            .body(body.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Create a token through the API (as the admin); its secret.
pub async fn token(s: &TestServer, name: &str, scope: &str, namespaces: Option<&[&str]>) -> String {
    let r = Reply::of(
        s.http
            .post(s.u("/v1/tokens"))
            .json(&json!({"name": name, "scope": scope, "namespaces": namespaces}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["token"].as_str().unwrap().to_owned()
}

/// The tiny-llama-lora adapter, uploaded; its manifest.
pub async fn tiny_adapter(s: &TestServer, metadata: Value) -> Value {
    let files = upload_dir(
        s,
        "tiny-llama-lora",
        &["adapter_config.json", "adapter_model.safetensors"],
    )
    .await;
    manifest("adapter", files, metadata)
}

/// The tiny-llama base model published as `repo@1.0.0` (201 asserted).
pub async fn publish_tiny_model(s: &TestServer, repo: &str) {
    let model = tiny_model(s).await;
    let r = s.publish("models", repo, "1.0.0", &model).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

/// The tiny-llama base model, uploaded; its manifest.
pub async fn tiny_model(s: &TestServer) -> Value {
    let files = upload_dir(
        s,
        "tiny-llama",
        &[
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
        ],
    )
    .await;
    manifest("model", files, json!({}))
}
