//! A minimal HTTP/1.1 client over `std::net::TcpStream`, for tests that send requests the
//! CLI never sends (bad headers, wrong offsets, hostile paths) and for readiness polling.
//!
//! One request per connection (`Connection: close`); the response is read to the end.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long one read or write may block before the request fails.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    /// Headers in the order received; names as sent by the server.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when the server used chunked encoding.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    /// If the body is not JSON; the message shows the status and the body.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): status {} body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request and returns the response.
///
/// `url` is `http://host:port/path?query`. `Host` and `Connection: close` are always sent;
/// `Content-Length: body.len()` is added unless `headers` already has `Content-Length` or
/// `Transfer-Encoding` (so a test can lie about the length) or the request is a bodiless
/// `GET`/`HEAD`/`DELETE`.
///
/// # Panics
/// If the connection fails; use [`try_http`] to handle that.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    try_http(method, url, headers, body).unwrap_or_else(|e| panic!("{method} {url} failed: {e}"))
}

/// [`http`], returning connection and protocol errors instead of panicking.
pub fn try_http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let (authority, path) = split_url(url)?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let has_framing = headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    });
    let bodiless = body.is_empty() && matches!(method, "GET" | "HEAD" | "DELETE");
    if !has_framing && !bodiless {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");

    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(head.as_bytes())?;
    // A server may answer (e.g. 413) and close before reading the whole body; the
    // response is still what the test wants to see.
    let write_result = stream.write_all(body).and_then(|()| stream.flush());
    let mut raw = Vec::new();
    let read_result = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        write_result?;
        read_result?;
    }
    parse_response(&raw, method == "HEAD")
}

/// Splits `http://authority/path` into (`authority`, `/path`).
fn split_url(url: &str) -> io::Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("only http:// URLs are supported: {url}")))?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

/// Parses a full response read until the connection closed. Informational (1xx)
/// responses before the final one are skipped.
fn parse_response(mut raw: &[u8], head_request: bool) -> io::Result<HttpResponse> {
    loop {
        let end = find(raw, b"\r\n\r\n")
            .ok_or_else(|| invalid(format!("incomplete response head: {:?}", lossy(raw))))?;
        let head = std::str::from_utf8(&raw[..end])
            .map_err(|_| invalid("response head is not UTF-8".into()))?;
        let rest = &raw[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line: {status_line:?}")))?;
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header line: {line:?}")))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        if (100..200).contains(&status) {
            raw = rest;
            continue;
        }
        let mut response = HttpResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || status == 204 || status == 304 {
            return Ok(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        response.body = if chunked {
            dechunk(rest)?
        } else if let Some(len) = response.header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| invalid(format!("bad Content-Length {len:?}")))?;
            if rest.len() < len {
                return Err(invalid(format!(
                    "body truncated: {} of {len} bytes",
                    rest.len()
                )));
            }
            rest[..len].to_vec()
        } else {
            rest.to_vec()
        };
        return Ok(response);
    }
}

/// Decodes a chunked body (trailers are ignored).
fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or_else(|| invalid("truncated chunk size".into()))?;
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap_or_default();
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(invalid("truncated chunk".into()));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned()
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::thread::JoinHandle;

    /// Serves one connection with a canned `reply`, returning the request it received.
    fn serve_once(reply: &'static [u8]) -> (String, JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut request = Vec::new();
            let mut content_length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    content_length = v.trim().parse().unwrap();
                }
                request.extend_from_slice(line.as_bytes());
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body).unwrap();
            request.extend_from_slice(&body);
            reader.get_mut().write_all(reply).unwrap();
            request
        });
        (url, handle)
    }

    #[test]
    fn sends_method_path_headers_and_body_and_reads_a_sized_response() {
        let (url, server) = serve_once(
            b"HTTP/1.1 201 Created\r\nContent-Length: 11\r\nX-Thing: a b\r\n\r\n{\"ok\":true}",
        );
        let response = http(
            "PUT",
            &format!("{url}/v1/x?y=1"),
            &[("X-Test", "1")],
            b"hello",
        );
        let request = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(
            request.starts_with("PUT /v1/x?y=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nX-Test: 1\r\n"), "{request}");
        assert!(request.contains("\r\nContent-Length: 5\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\nhello"), "{request}");
        assert_eq!(response.status, 201);
        assert_eq!(response.header("x-thing"), Some("a b"));
        assert_eq!(response.json()["ok"], true);
    }

    #[test]
    fn decodes_a_chunked_body_after_an_interim_response() {
        let (url, server) = serve_once(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n",
        );
        let response = http("GET", &url, &[], b"");
        let request = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(!request.contains("Content-Length"), "{request}");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello, world");
    }

    #[test]
    fn a_test_can_lie_about_the_content_length() {
        let (url, server) = serve_once(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        let response = http("POST", &url, &[("Content-Length", "3")], b"abc");
        let request = String::from_utf8(server.join().unwrap()).unwrap();
        assert_eq!(request.matches("Content-Length").count(), 1, "{request}");
        assert_eq!(response.status, 400);
        assert!(response.body.is_empty());
    }

    #[test]
    fn truncated_and_garbled_responses_are_errors() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", false).is_err());
        assert!(parse_response(b"garbage\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n", false).is_err());
        let head = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true).unwrap();
        assert!(head.body.is_empty());
    }

    #[test]
    fn connection_refused_is_an_error_not_a_panic() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(try_http("GET", &format!("http://127.0.0.1:{port}/"), &[], b"").is_err());
        assert!(try_http("GET", "https://example.invalid/", &[], b"").is_err());
    }
}
