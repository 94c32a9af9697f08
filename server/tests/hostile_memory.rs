//! Hostile safetensors files and JSON bodies against the real server binary, through the
//! upload and publish path: each is refused with a 4xx in the error shape, and the server's
//! resident memory grows by less than 64 MiB over the whole barrage, at its peak and after
//! (docs/RELIABILITY.md). The slowest refusal is printed, not asserted: timings are noisy
//! here.

use std::time::{Duration, Instant};

use adapter_testkit::{Backend, HttpResponse, ServerProcess, Stack, http};
use proc::{example, put_blob, try_publish};
use serde_json::{Value, json};

mod proc;

/// A memory figure of the server from `/proc/<pid>/status` (`VmHWM`: the peak resident
/// set; `VmRSS`: the resident set now), in bytes.
fn rss(server: &ServerProcess, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// A safetensors file: `prefix` as the length field, `header`, `body` bytes of data.
fn st(prefix: u64, header: &[u8], body: usize) -> Vec<u8> {
    let mut out = prefix.to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.resize(out.len() + body, 0);
    out
}

fn st_ok_prefix(header: &str, body: usize) -> Vec<u8> {
    st(header.len() as u64, header.as_bytes(), body)
}

/// The hostile safetensors files, named.
fn hostile_safetensors() -> Vec<(&'static str, Vec<u8>)> {
    let tensor = |name: &str, begin: u64, end: u64| {
        format!(
            r#""{name}":{{"dtype":"F32","shape":[{}],"data_offsets":[{begin},{end}]}}"#,
            (end - begin) / 4
        )
    };
    let many = |n: u64| {
        let all: Vec<String> = (0..n)
            .map(|i| {
                let name = format!("base_model.model.layers.{i}.lora_A.weight");
                tensor(&name, i * 4, i * 4 + 4)
            })
            .collect();
        format!("{{{}}}", all.join(","))
    };
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut invalid_utf8 = br#"{"base_model.model.q_proj.lora_A.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x"#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, b'"', b':', b'1', b'}']);
    vec![
        ("length prefix 2^64-1", st(u64::MAX, b"{}", 16)),
        ("length prefix past the end", st(1 << 40, b"{}", 16)),
        ("header longer than the file", st(4096, b"{}", 16)),
        (
            "overlapping offsets",
            st_ok_prefix(
                &format!(
                    "{{{},{}}}",
                    tensor("a.lora_A.weight", 0, 8),
                    tensor("a.lora_B.weight", 4, 12)
                ),
                12,
            ),
        ),
        (
            "a gap between tensors",
            st_ok_prefix(
                &format!(
                    "{{{},{}}}",
                    tensor("a.lora_A.weight", 0, 4),
                    tensor("a.lora_B.weight", 8, 12)
                ),
                12,
            ),
        ),
        (
            "trailing bytes",
            st_ok_prefix(&format!("{{{}}}", tensor("a.lora_A.weight", 0, 4)), 4096),
        ),
        (
            "duplicate keys",
            st_ok_prefix(
                &format!(
                    "{{{},{}}}",
                    tensor("a.lora_A.weight", 0, 4),
                    tensor("a.lora_A.weight", 0, 4)
                ),
                4,
            ),
        ),
        // Refused by its count (an adapter may have 20,000), before any per-tensor work.
        ("100,000 tensors", st_ok_prefix(&many(100_000), 100_000 * 4)),
        // Within the count: every tensor is checked (each lacks its lora_B).
        (
            "20,000 broken tensors",
            st_ok_prefix(&many(20_000), 20_000 * 4),
        ),
        ("deeply nested JSON", st_ok_prefix(&nested, 0)),
        (
            "invalid UTF-8",
            st(invalid_utf8.len() as u64, &invalid_utf8, 4),
        ),
    ]
}

/// The hostile JSON bodies for a publish, named.
fn hostile_json() -> Vec<(&'static str, Vec<u8>)> {
    let keys: Vec<String> = (0..100_000).map(|i| format!("\"k{i}\":{i}")).collect();
    vec![
        (
            "deeply nested JSON",
            format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000)).into_bytes(),
        ),
        (
            "100,000 keys",
            format!("{{\"metadata\":{{{}}}}}", keys.join(",")).into_bytes(),
        ),
        ("invalid UTF-8", b"{\"schema\": \"\xff\xfe\"}".to_vec()),
        ("a NUL in a string", b"{\"schema\": \"a\\u0000b\"}".to_vec()),
        (
            "duplicate keys",
            br#"{"schema":"adapter-registry.manifest.v1","schema":"x"}"#.to_vec(),
        ),
        (
            "a huge number",
            format!("{{\"x\": 1{}}}", "0".repeat(100_000)).into_bytes(),
        ),
        ("8 MiB of whitespace", vec![b' '; 8 << 20]),
    ]
}

/// `result` is a 4xx in the error shape; the time it took.
fn refused(what: &str, started: Instant, r: &HttpResponse) -> Duration {
    let took = started.elapsed();
    assert!(
        (400..500).contains(&r.status),
        "{what}: {} {}",
        r.status,
        r.text()
    );
    let code = r.json()["error"]["code"].as_str().map(str::to_owned);
    assert!(code.is_some(), "{what}: not the error shape: {}", r.text());
    took
}

#[test]
fn hostile_files_and_bodies_are_refused_in_bounded_memory() {
    let backend = Backend::new(&Stack::Embedded);
    let server = ServerProcess::start(&backend);
    let (name, value) = server.auth();
    let h = [(name, value.as_str()), ("Content-Type", "application/json")];
    let mut config = put_blob(&server, &example("tiny-llama-lora", "adapter_config.json"));
    config["path"] = json!("adapter_config.json");
    // Warm up: one good publish, so the baseline includes a publish's working set.
    let mut weights = put_blob(
        &server,
        &example("tiny-llama-lora", "adapter_model.safetensors"),
    );
    weights["path"] = json!("adapter_model.safetensors");
    let good = json!({"schema": "adapter-registry.manifest.v1", "kind": "adapter",
        "files": [config.clone(), weights]});
    assert_eq!(
        try_publish(&server, "hostile/ok", "1.0.0", &good)
            .unwrap()
            .status,
        201
    );
    let (peak_before, resident_before) = (rss(&server, "VmHWM:"), rss(&server, "VmRSS:"));

    let mut slowest = (Duration::ZERO, "");
    for (i, (what, bytes)) in hostile_safetensors().into_iter().enumerate() {
        let mut weights = put_blob(&server, &bytes);
        weights["path"] = json!("adapter_model.safetensors");
        let manifest: Value = json!({"schema": "adapter-registry.manifest.v1", "kind": "adapter",
            "files": [config.clone(), weights]});
        let started = Instant::now();
        let r = try_publish(&server, "hostile/st", &format!("1.0.{i}"), &manifest).unwrap();
        let took = refused(what, started, &r);
        assert_eq!(r.status, 422, "{what}: {}", r.text());
        slowest = slowest.max((took, what));
    }
    let url = format!("{}/v1/adapters/hostile/json/versions/1.0.0", server.url);
    for (what, body) in hostile_json() {
        let started = Instant::now();
        let r = http("PUT", &url, &h, &body);
        slowest = slowest.max((refused(what, started, &r), what));
    }
    let versions = http(
        "GET",
        &format!("{}/v1/adapters/hostile/st/versions", server.url),
        &h,
        b"",
    );
    assert_eq!(
        versions.status,
        404,
        "a hostile file was published: {}",
        versions.text()
    );
    // What the server keeps once the barrage is over (the allocator returns freed pages
    // after a short delay), and the transient peak, which is reported.
    std::thread::sleep(Duration::from_secs(2));
    let kept = rss(&server, "VmRSS:").saturating_sub(resident_before);
    let peak = rss(&server, "VmHWM:").saturating_sub(peak_before);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "RSS {:.0} MiB before, +{:.1} MiB kept after the barrage (peak +{:.1} MiB); \
         slowest refusal: {} ({:?})",
        mib(resident_before),
        mib(kept),
        mib(peak),
        slowest.1,
        slowest.0
    );
    // The issue's bound. Before the server's runtime workers collected freed memory as they
    // park (server/src/main.rs) the freed memory stayed resident: +78 MiB kept; with the
    // JSON-tree header, +148 MiB.
    assert!(
        kept < 64 << 20,
        "the server kept {:.1} MiB more after the barrage",
        mib(kept)
    );
    assert!(
        peak < 64 << 20,
        "the server's peak grew by {:.1} MiB during the barrage",
        mib(peak)
    );
}
