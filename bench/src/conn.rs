//! What the HTTP benchmarks share: the stack to run on and a release server started on it
//! with its admin token, a `PUT` that must succeed, one keep-alive connection that asks with
//! a bearer token and reads whole answers, and the example adapter's files stored to seed with.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use adapter_core::digest::Digest;
use adapter_testkit::{Backend, ServerProcess, Stack, http};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// `--stack embedded|scaleout` (the scale-out stack reads the tests' service variables).
pub fn stack_arg(v: &str) -> Result<Stack> {
    Ok(match v {
        "embedded" => Stack::Embedded,
        "scaleout" => Stack::Scaleout,
        other => bail!("--stack embedded|scaleout, not {other}"),
    })
}

/// The server on `stack`, without job workers and with quiet logs, and its admin token.
pub fn start_server(stack: &Stack) -> Result<(Backend, ServerProcess, String)> {
    let backend = Backend::new(stack);
    let server = ServerProcess::start_with(&backend, &["--workers", "0"], &[("RUST_LOG", "warn")]);
    let token = server.admin_token.clone().context("no admin token")?;
    Ok((backend, server, token))
}

/// `PUT path` with `body` as the admin; anything but a 2xx is an error.
pub fn put(server: &ServerProcess, token: &str, path: &str, body: &[u8]) -> Result<()> {
    let auth = format!("Bearer {token}");
    let r = http(
        "PUT",
        &format!("{}{path}", server.url),
        &[("authorization", &auth)],
        body,
    );
    if !(200..300).contains(&r.status) {
        bail!("PUT {path}: {} {}", r.status, r.text());
    }
    Ok(())
}

/// One keep-alive connection: `GET path` with the token (and `Accept: text/html`, which the
/// JSON routes ignore and the pages answer), the whole answer read.
#[derive(Debug)]
pub struct Conn {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    auth: String,
}

impl Conn {
    pub fn open(addr: &str, token: &str) -> Result<Self> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
            auth: format!("Bearer {token}"),
        })
    }

    /// The status and body of `GET path`.
    pub fn get(&mut self, path: &str) -> Result<(u16, Vec<u8>)> {
        write!(
            self.writer,
            "GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/html\r\nAuthorization: {}\r\n\r\n",
            self.auth
        )?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = None;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let length = length.context("no Content-Length")?;
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

/// A file of the example adapter (`examples/tiny-llama-lora`).
fn example(file: &str) -> Result<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tiny-llama-lora");
    std::fs::read(root.join(file)).with_context(|| format!("reading the example {file}"))
}

/// `bytes` stored as a blob; its manifest entry at `path`.
pub fn put_file(server: &ServerProcess, token: &str, path: &str, bytes: &[u8]) -> Result<Value> {
    let d = Digest::of_bytes(bytes);
    put(server, token, &format!("/v1/blobs/{d}"), bytes)?;
    Ok(json!({"path": path, "size": bytes.len(), "digest": d.to_string()}))
}

/// The example adapter's two files stored as blobs; their manifest entries.
pub fn put_example_adapter(server: &ServerProcess, token: &str) -> Result<Vec<Value>> {
    ["adapter_config.json", "adapter_model.safetensors"]
        .into_iter()
        .map(|f| put_file(server, token, f, &example(f)?))
        .collect()
}
