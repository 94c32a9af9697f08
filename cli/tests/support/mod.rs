//! Shared helpers for the end-to-end tests: a real `adapter-registry` per stack, the real
//! `adapterctl` with its own HOME/cache/config, example directories and blob tampering.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use adapter_core::digest::Digest;
use adapter_testkit::{Backend, ServerProcess, Stack};
use serde_json::Value;
use tempfile::TempDir;

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The bundled example adapter directory, as an argument.
pub fn lora() -> String {
    examples().join("tiny-llama-lora").display().to_string()
}

/// One server on one stack, and an isolated home for adapterctl.
pub struct Env {
    pub stack: Stack,
    pub server: ServerProcess,
    pub backend: Backend,
    pub home: TempDir,
}

impl Env {
    pub fn new(stack: &Stack) -> Self {
        let backend = Backend::new(stack);
        let server = ServerProcess::start(&backend);
        let home = tempfile::tempdir().unwrap();
        Self {
            stack: stack.clone(),
            server,
            backend,
            home,
        }
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.home.path().join("cache/adapterctl")
    }

    /// A scratch path inside the home.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    /// Run adapterctl against this server with a private HOME, cache and config.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_adapterctl"));
        cmd.arg("--url").arg(&self.server.url).args(args);
        isolate(&mut cmd, self.home.path());
        if let Some(token) = &self.server.admin_token {
            cmd.env("ADAPTERCTL_TOKEN", token);
        }
        cmd.output().expect("run adapterctl")
    }

    /// Run adapterctl with a private HOME but no token and no `--url` (what the config file
    /// says applies).
    pub fn ctl_bare(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_adapterctl"));
        cmd.args(args);
        isolate(&mut cmd, self.home.path());
        cmd.output().expect("run adapterctl")
    }

    /// Run with `--json`, expecting `code`, and parse stdout.
    pub fn ctl_json(&self, args: &[&str], code: i32) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ctl(&all);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}: adapterctl {args:?}\nstdout: {}\nstderr: {}\nserver:\n{}",
            self.stack,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server.logs()
        );
        json_of(&out)
    }

    /// Corrupt the stored bytes of a blob (same length, first byte flipped).
    pub fn tamper(&self, digest: &Digest) {
        self.tamper_at(digest, 0);
    }

    /// Flip the bits of the stored byte at `offset` of a blob.
    pub fn tamper_at(&self, digest: &Digest, offset: usize) {
        let hex = digest.hex();
        if let Some(s3) = self.backend.s3() {
            let key = s3
                .keys("")
                .into_iter()
                .find(|k| k.ends_with(&hex))
                .unwrap_or_else(|| panic!("no S3 key for {digest}"));
            let mut bytes = s3.get(&key).unwrap();
            bytes[offset] ^= 0xff;
            s3.put(&key, &bytes);
            return;
        }
        let path = find_file(self.backend.data_dir(), &hex)
            .unwrap_or_else(|| panic!("no stored file for {digest}"));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        use std::io::{Read, Seek, SeekFrom};
        let mut byte = [0u8];
        f.seek(SeekFrom::Start(offset as u64)).unwrap();
        f.read_exact(&mut byte).unwrap();
        byte[0] ^= 0xff;
        f.seek(SeekFrom::Start(offset as u64)).unwrap();
        f.write_all(&byte).unwrap();
    }

    /// Open an upload session (`start` is the `POST /v1/uploads` body) and send the first
    /// `len` bytes of `file` in one `PATCH`, as a push that died there would have; the id.
    pub fn upload_prefix(&self, start: &Value, file: &Path, len: u64) -> String {
        let auth = self.server.auth();
        let started = adapter_testkit::http(
            "POST",
            &format!("{}/v1/uploads", self.server.url),
            &[("content-type", "application/json"), (auth.0, &auth.1)],
            start.to_string().as_bytes(),
        );
        assert_eq!(started.status, 201, "{}", started.text());
        let id = started.json()["id"].as_str().unwrap().to_owned();
        let mut first = vec![0u8; usize::try_from(len).unwrap()];
        {
            use std::io::Read;
            std::fs::File::open(file)
                .unwrap()
                .read_exact(&mut first)
                .unwrap();
        }
        let patched = adapter_testkit::http(
            "PATCH",
            &format!("{}/v1/uploads/{id}", self.server.url),
            &[
                ("upload-offset", "0"),
                ("content-type", "application/octet-stream"),
                (auth.0, &auth.1),
            ],
            &first,
        );
        assert_eq!(patched.status, 202, "{}", patched.text());
        id
    }

    /// Every object key in the blob store (files below the data dir's `blobs/`, or the
    /// bucket's keys), sorted.
    pub fn stored_keys(&self) -> Vec<String> {
        if let Some(s3) = self.backend.s3() {
            let mut keys = s3.keys("");
            keys.sort();
            return keys;
        }
        let mut out = Vec::new();
        let mut stack = vec![self.backend.data_dir().join("blobs")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                } else {
                    out.push(entry.path().display().to_string());
                }
            }
        }
        out.sort();
        out
    }
}

/// adapterctl without the developer's environment: private HOME/XDG dirs, no ADAPTERCTL_*.
pub fn isolate(cmd: &mut Command, home: &Path) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ADAPTERCTL_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env_remove("RUST_BACKTRACE")
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_CONFIG_HOME", home.join("config"));
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if entry.file_name().to_string_lossy() == name {
            return Some(path);
        }
    }
    None
}

/// Run adapterctl offline (no registry involved), without a backtrace environment.
pub fn offline(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    offline_cached(args, cache.path())
}

/// [`offline`] with the client's caches (the digest cache) in `cache`, kept between runs.
pub fn offline_cached(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adapterctl"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("run adapterctl")
}

pub fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Copy a flat directory.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Every regular file under `dir` (relative path → bytes).
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            walk(&entry.path(), &format!("{name}/"), out);
        } else {
            out.push((name, std::fs::read(entry.path()).unwrap()));
        }
    }
}

/// A model directory with one `model.safetensors` holding a single U8 tensor of `len` bytes
/// (content seeded by `seed`), written in bounded memory. Returns the weights' digest.
pub fn big_model(dir: &Path, len: u64, seed: u8) -> Digest {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        br#"{"model_type":"llama","architectures":["LlamaForCausalLM"]}"#,
    )
    .unwrap();
    let mut header =
        format!(r#"{{"w":{{"dtype":"U8","shape":[{len}],"data_offsets":[0,{len}]}}}}"#)
            .into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let path = dir.join("model.safetensors");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&header).unwrap();
    let mut block = vec![0u8; 1 << 20];
    let mut rng = adapter_testkit::Rng::new(u64::from(seed));
    let mut left = len;
    while left > 0 {
        rng.fill(&mut block);
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
    drop(f);
    adapter_core::digest::sha256_file(&path).unwrap().0
}

/// Push the bundled pair: `tiny-llama` as `acme/llama@1.0.0`, and `tiny-llama-lora` as
/// `acme/bot@1.0.0` with that base.
pub fn push_llama_and_bot(env: &Env) {
    let dir = |name: &str| examples().join(name).display().to_string();
    env.ctl_json(
        &[
            "push",
            &dir("tiny-llama"),
            "--name",
            "acme/llama",
            "--version",
            "1.0.0",
        ],
        0,
    );
    env.ctl_json(
        &[
            "push",
            &dir("tiny-llama-lora"),
            "--name",
            "acme/bot",
            "--version",
            "1.0.0",
            "--base",
            "acme/llama@1.0.0",
        ],
        0,
    );
}

/// `merge --local` of the bundled pair into `out` with `shard_size`-byte shards.
pub fn merge_examples_locally(out: &Path, shard_size: &str) {
    let dir = |name: &str| examples().join(name).display().to_string();
    let run = offline(&[
        "merge",
        "--local",
        &dir("tiny-llama-lora"),
        "--base-dir",
        &dir("tiny-llama"),
        "-o",
        out.to_str().unwrap(),
        "--shard-size",
        shard_size,
    ]);
    assert!(run.status.success(), "{run:?}");
}

/// Pull model `reference` into `to` and return its files (without adapterctl's own).
pub fn pull_model_files(env: &Env, reference: &str, to: &Path) -> Vec<(String, Vec<u8>)> {
    env.ctl_json(
        &[
            "pull",
            reference,
            "--kind",
            "model",
            "-o",
            to.to_str().unwrap(),
        ],
        0,
    );
    model_files(to)
}

/// The files of a model directory, without adapterctl's own (`.adapterctl*`).
pub fn model_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    tree(dir)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".adapterctl"))
        .collect()
}
