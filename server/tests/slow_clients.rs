//! Slow clients against the real server binary: connections that trickle their headers
//! (slowloris) are closed after `--header-timeout` while others are served, and a body that
//! stalls is answered 408 `request_timeout` after `--body-idle-timeout`, keeping what
//! arrived of an upload chunk so the client can resume.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use adapter_core::digest::Digest;
use adapter_testkit::{Backend, ServerProcess, Stack, http, stacks};

const LIMITS: [&str; 4] = ["--header-timeout", "2s", "--body-idle-timeout", "2s"];

fn host_port(url: &str) -> &str {
    url.strip_prefix("http://").expect("an http URL")
}

/// Has the server closed `conn`? Reads until end of stream or an error (a reset), within
/// `deadline` (a liveness bound, far above the configured timeouts).
fn closed_by_server(conn: &mut TcpStream, deadline: Duration) -> bool {
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + deadline;
    let mut buf = [0u8; 1024];
    while Instant::now() < end {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {} // an answer (e.g. 408) before the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn slowloris_connections_are_closed_and_others_are_served() {
    let backend = Backend::new(&Stack::Embedded);
    let server = ServerProcess::start_with(&backend, &LIMITS, &[]);
    let addr = host_port(&server.url);
    // 200 connections that never finish their headers: one header line now, more later.
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            c
        })
        .collect();
    for (i, c) in slow.iter_mut().enumerate() {
        c.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
            .unwrap();
    }
    // Meanwhile the registry serves everyone else.
    let auth = server.auth();
    let h = [(auth.0, auth.1.as_str())];
    for _ in 0..20 {
        let r = http("GET", &format!("{}/v1/adapters", server.url), &h, b"");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Every slow connection is closed by the server (not by us), trickling or not.
    for (i, c) in slow.iter_mut().enumerate() {
        let _ = c.write_all(b"X-More: 1\r\n");
        assert!(
            closed_by_server(c, Duration::from_secs(30)),
            "slow connection {i} is still open\n{}",
            server.logs()
        );
    }
    let r = http("GET", &format!("{}/healthz", server.url), &[], b"");
    assert_eq!(r.status, 200);
}

/// Send the head of a request announcing `declared` body bytes and `first` of them, then
/// stall; the whole answer the server sends before closing.
fn stalled_request(addr: &str, head: &str, declared: usize, first: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(
        format!("{head}Content-Length: {declared}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    c.write_all(first).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_stalled_body_is_answered_408_and_an_upload_resumes_from_what_arrived() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let server = ServerProcess::start_with(&backend, &LIMITS, &[]);
        let addr = host_port(&server.url).to_owned();
        let auth = server.auth();
        let h = [(auth.0, auth.1.as_str())];
        let authz = format!("{}: {}\r\n", auth.0, auth.1);

        // A JSON body (a manifest) that stalls: 408, nothing published.
        let head = format!(
            "PUT /v1/adapters/slow/bot/versions/1.0.0 HTTP/1.1\r\nHost: x\r\n{authz}\
             Content-Type: application/json\r\n"
        );
        let answer = stalled_request(&addr, &head, 4096, b"{\"schema\": ");
        assert!(answer.starts_with("HTTP/1.1 408"), "{stack}: {answer}");
        assert!(answer.contains("\"request_timeout\""), "{stack}: {answer}");
        let r = http(
            "GET",
            &format!("{}/v1/adapters/slow/bot/versions", server.url),
            &h,
            b"",
        );
        assert_eq!(r.status, 404, "{stack}: {}", r.text());

        // An upload chunk that stalls: 408; the session keeps what arrived, and the client
        // resumes from the offset the server reports.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let digest = Digest::of_bytes(&data);
        let r = http("POST", &format!("{}/v1/uploads", server.url), &h, b"");
        assert_eq!(r.status, 201, "{stack}: {}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let head = format!(
            "PATCH /v1/uploads/{id} HTTP/1.1\r\nHost: x\r\n{authz}Upload-Offset: 0\r\n\
             Content-Type: application/octet-stream\r\n"
        );
        let answer = stalled_request(&addr, &head, data.len(), &data[..100_000]);
        assert!(answer.starts_with("HTTP/1.1 408"), "{stack}: {answer}");
        assert!(answer.contains("\"request_timeout\""), "{stack}: {answer}");
        let url = format!("{}/v1/uploads/{id}", server.url);
        let status = http("GET", &url, &h, b"");
        assert_eq!(status.status, 200, "{stack}: {}", status.text());
        let kept = status.json()["offset"].as_u64().unwrap() as usize;
        assert!(
            kept <= 100_000,
            "{stack}: kept {kept} bytes of 100,000 sent"
        );
        let offset = kept.to_string();
        let r = http(
            "PATCH",
            &url,
            &[("Upload-Offset", &offset), h[0]],
            &data[kept..],
        );
        assert_eq!(r.status, 202, "{stack}: {}", r.text());
        let r = http("PUT", &format!("{url}?digest={digest}"), &h, b"");
        assert_eq!(r.status, 201, "{stack}: {}", r.text());
        let blob = http("GET", &format!("{}/v1/blobs/{digest}", server.url), &h, b"");
        assert!(blob.body == data, "{stack}: the resumed blob differs");
    }
}
