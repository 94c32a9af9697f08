//! A throw-away S3 bucket per test on the endpoint named by
//! `ADAPTER_REGISTRY_TEST_S3_ENDPOINT` (a moto server: no authentication).

use crate::{ENV_S3_ENDPOINT, HttpResponse, http::http, http::try_http, required_env, unique_name};

/// moto checks no signature, but treats a request without credentials as anonymous (and
/// answers 403 to reads); this header names the access key `test`.
const AUTH: (&str, &str) = (
    "Authorization",
    "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/s3/aws4_request, \
     SignedHeaders=host, Signature=0",
);

/// A fresh bucket with a random lowercase name, made with a plain `PUT /<bucket>`.
///
/// It is not deleted afterwards: moto keeps buckets in memory and `scripts/test` stops
/// moto when the run ends.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    /// The endpoint, e.g. `http://127.0.0.1:5000` (no trailing slash).
    pub endpoint: String,
    /// The bucket's name.
    pub bucket: String,
}

impl S3Bucket {
    /// Creates the bucket.
    ///
    /// # Panics
    /// If `ADAPTER_REGISTRY_TEST_S3_ENDPOINT` is unset or the endpoint does not answer 200.
    pub fn create() -> S3Bucket {
        let endpoint = required_env(ENV_S3_ENDPOINT)
            .trim_end_matches('/')
            .to_string();
        let bucket = unique_name("test", '-');
        let url = format!("{endpoint}/{bucket}");
        match try_http("PUT", &url, &[AUTH], b"") {
            Ok(r) if r.status == 200 => S3Bucket { endpoint, bucket },
            Ok(r) => panic!(
                "cannot create S3 bucket: PUT {url} answered {}: {}",
                r.status,
                r.text()
            ),
            Err(e) => panic!("cannot create S3 bucket: PUT {url} failed: {e} (is moto running?)"),
        }
    }

    /// `s3://<bucket>/<prefix>`, the form the server's `--blob-store` takes.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix.trim_start_matches('/'))
    }

    /// Stores an object directly (e.g. to plant a corrupt blob behind the server's back).
    ///
    /// # Panics
    /// If the endpoint does not answer 200.
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let response = self.request("PUT", key, bytes);
        assert_eq!(response.status, 200, "PUT {key}: {}", response.text());
    }

    /// An object's bytes, or `None` if there is no such key.
    ///
    /// # Panics
    /// On any answer other than 200 and 404.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let response = self.request("GET", key, b"");
        match response.status {
            200 => Some(response.body),
            404 => None,
            other => panic!("GET {key}: {other} {}", response.text()),
        }
    }

    /// Every key starting with `prefix`, sorted (e.g. `keys("blobs/")` to check that a
    /// failed upload left nothing visible).
    ///
    /// # Panics
    /// If listing fails.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = format!("?list-type=2&prefix={}", encode(prefix));
            if let Some(t) = &token {
                query.push_str(&format!("&continuation-token={}", encode(t)));
            }
            let url = format!("{}/{}{query}", self.endpoint, self.bucket);
            let response = http("GET", &url, &[AUTH], b"");
            assert_eq!(response.status, 200, "list {prefix}: {}", response.text());
            let xml = response.text();
            keys.extend(elements(&xml, "Key"));
            token = elements(&xml, "NextContinuationToken").into_iter().next();
            if token.is_none() {
                keys.sort();
                return keys;
            }
        }
    }

    fn request(&self, method: &str, key: &str, body: &[u8]) -> HttpResponse {
        let url = format!("{}/{}/{}", self.endpoint, self.bucket, encode_path(key));
        http(
            method,
            &url,
            &[AUTH, ("Content-Type", "application/octet-stream")],
            body,
        )
    }
}

/// The text of every `<tag>…</tag>` in `xml`, with the five XML entities decoded.
fn elements(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let Some(end) = rest.find(&close) else { break };
        out.push(
            rest[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &rest[end + close.len()..];
    }
    out
}

/// Percent-encodes everything but unreserved characters (for query values).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// [`encode`] for an object key in a path: `/` stays.
fn encode_path(key: &str) -> String {
    key.split('/').map(encode).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_elements_are_extracted_and_unescaped() {
        let xml = "<R><Key>a&amp;b</Key><Size>1</Size><Key>c&lt;d</Key></R>";
        assert_eq!(elements(xml, "Key"), ["a&b", "c<d"]);
        assert!(elements(xml, "Missing").is_empty());
        assert_eq!(encode_path("a b/c&d"), "a%20b/c%26d");
    }

    /// Creates a bucket, stores and reads back an object through the raw S3 API.
    /// Needs `ADAPTER_REGISTRY_TEST_S3_ENDPOINT`; skipped with a note (or failed, under
    /// `ADAPTER_REGISTRY_REQUIRE_SERVICES=1`) without it.
    #[test]
    fn create_gives_a_usable_bucket() {
        if crate::service_for_test(ENV_S3_ENDPOINT).is_none() {
            return;
        }
        let a = S3Bucket::create();
        let b = S3Bucket::create();
        assert_ne!(a.bucket, b.bucket);
        assert_eq!(a.url("/blobs"), format!("s3://{}/blobs", a.bucket));
        a.put("blobs/x y&z.bin", b"hi there");
        a.put("blobs/a.bin", b"");
        a.put("other/c.bin", b"c");
        assert_eq!(
            a.get("blobs/x y&z.bin").as_deref(),
            Some(b"hi there".as_slice())
        );
        assert_eq!(a.keys("blobs/"), ["blobs/a.bin", "blobs/x y&z.bin"]);
        assert_eq!(b.get("blobs/x y&z.bin"), None, "buckets are separate");
        assert!(b.keys("").is_empty());
    }
}
