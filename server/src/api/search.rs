//! `GET /v1/{kind}` query parsing: filters, sort, and signed cursors.
//!
//! Repeatable parameters (`target`, `label`, `eval`) cannot go through serde's
//! urlencoded, so the raw query is parsed here; unknown parameters are refused (a typo
//! must not silently widen a search).

use adapter_core::digest::Digest;
use serde_json::{Value, json};

use crate::db::search::{After, BaseFilter, CmpOp, EvalCond, SearchFilter, Sort, SortKey};
use crate::error::{ApiError, ApiResult};
use crate::extract::page_limit;
use crate::extract::parse_name;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 100;
/// Longest accepted value of any parameter, in characters.
pub const MAX_VALUE: usize = 256;
/// Most conditions of one repeatable parameter.
pub const MAX_REPEAT: usize = 16;
/// Name of the secret that signs cursors (`registry_secrets`).
pub const CURSOR_SECRET: &str = "search-cursor";

/// A parsed search request.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub filter: SearchFilter,
    pub sort: Sort,
    pub cursor: Option<String>,
    pub limit: u32,
    /// The parameters that define the result set (cursors are bound to it).
    fingerprint: String,
}

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::with_details("invalid_filter", message, json!({ "param": param }))
}

fn invalid_query(message: impl Into<String>) -> ApiError {
    ApiError::new("invalid_query", message)
}

/// Parse the raw query string of `GET /v1/{kind}`.
pub fn parse(raw: Option<&str>) -> ApiResult<SearchRequest> {
    let mut req = SearchRequest {
        filter: SearchFilter::default(),
        sort: Sort {
            key: SortKey::Name,
            descending: false,
        },
        cursor: None,
        limit: DEFAULT_LIMIT,
        fingerprint: String::new(),
    };
    let mut seen: Vec<String> = Vec::new();
    let mut defining: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let (k, v) = (k.into_owned(), v.into_owned());
        // Characters, as the spec's `maxLength` counts them (at most 1 KiB of UTF-8).
        if v.chars().count() > MAX_VALUE {
            return Err(bad(&k, format!("`{k}` is at most {MAX_VALUE} characters")));
        }
        let repeatable = matches!(k.as_str(), "target" | "label" | "eval");
        if !repeatable && seen.contains(&k) {
            return Err(invalid_query(format!("`{}` given twice", k.escape_debug())));
        }
        seen.push(k.clone());
        if repeatable && seen.iter().filter(|s| **s == k).count() > MAX_REPEAT {
            return Err(invalid_query(format!(
                "at most {MAX_REPEAT} `{k}` conditions"
            )));
        }
        if !matches!(k.as_str(), "cursor" | "limit") {
            defining.push((k.clone(), v.clone()));
        }
        if v.is_empty() && !repeatable {
            continue; // `?q=` is "no condition", as before
        }
        let f = &mut req.filter;
        match k.as_str() {
            "namespace" => f.namespace = Some(parse_name("namespace", &v)?.into()),
            "q" => f.q = Some(v.to_lowercase()),
            "base" => f.base = Some(parse_base(&v)?),
            "compatible_with" => f.compatible_with = Some(parse_compatible_with(&v)?),
            "target" => f.targets.push(parse_target(&v)?),
            "rank_min" => f.rank_min = Some(parse_rank("rank_min", &v)?),
            "rank_max" => f.rank_max = Some(parse_rank("rank_max", &v)?),
            "variant" => f.variant = Some(parse_variant(&v)?),
            "label" => f.labels.push(parse_label(&v)?),
            "eval" => f.evals.push(parse_eval(&v)?),
            "sort" => req.sort = parse_sort(&v)?,
            "cursor" => req.cursor = Some(v),
            "limit" => {
                // Not a number counts as out of range: one message for both.
                req.limit = page_limit(Some(v.parse::<u32>().unwrap_or(0)), 0, MAX_LIMIT)?;
            }
            other => {
                return Err(invalid_query(format!(
                    "unknown parameter `{}`",
                    other.escape_debug()
                )));
            }
        }
    }
    if let (Some(a), Some(b)) = (req.filter.rank_min, req.filter.rank_max)
        && a > b
    {
        return Err(bad(
            "rank_min",
            format!("rank_min {a} is above rank_max {b}"),
        ));
    }
    defining.sort();
    req.fingerprint = Digest::of_bytes(json!(defining).to_string().as_bytes()).hex();
    Ok(req)
}

/// `ns/name` or `ns/name@VERSION` (an exact version) of a model.
fn parse_compatible_with(v: &str) -> ApiResult<(String, String, Option<String>)> {
    let invalid = || {
        bad(
            "compatible_with",
            "compatible_with is a model `namespace/name` or `namespace/name@VERSION`",
        )
    };
    let (repo, version) = match v.split_once('@') {
        Some((r, ver)) => (r, Some(ver)),
        None => (v, None),
    };
    let (ns, name) = repo.split_once('/').ok_or_else(invalid)?;
    let ns = parse_name("namespace", ns)?;
    let name = parse_name("name", name)?;
    let version = version
        .map(|ver| {
            crate::extract::parse_version(ver)
                .map(|v| v.to_string())
                .map_err(|_| invalid())
        })
        .transpose()?;
    Ok((ns.into(), name.into(), version))
}

fn parse_base(v: &str) -> ApiResult<BaseFilter> {
    if v.starts_with("sha256:") {
        let d: Digest = v.parse().map_err(|_| {
            bad(
                "base",
                "a base digest is `sha256:` and 64 lowercase hex digits",
            )
        })?;
        return Ok(BaseFilter::Digest(d.to_string()));
    }
    if v.chars().any(char::is_control) {
        return Err(bad("base", "a base name has no control characters"));
    }
    Ok(BaseFilter::Name(v.to_owned()))
}

fn parse_target(v: &str) -> ApiResult<String> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(bad(
            "target",
            "a target module is 1..=128 of [A-Za-z0-9_.-] (e.g. q_proj)",
        ));
    }
    Ok(v.to_owned())
}

fn parse_rank(param: &str, v: &str) -> ApiResult<i64> {
    v.parse::<u32>()
        .ok()
        .filter(|n| *n >= 1)
        .map(i64::from)
        .ok_or_else(|| bad(param, format!("{param} is a positive integer")))
}

/// `lora`, `dora`, `rslora`, `rslora+dora` (also `dora+rslora`; a `+` that arrived as a
/// space from form encoding is accepted).
fn parse_variant(v: &str) -> ApiResult<String> {
    let v = v.to_ascii_lowercase().replace(' ', "+");
    Ok(match v.as_str() {
        "lora" | "dora" | "rslora" => v,
        "rslora+dora" | "dora+rslora" => "rslora+dora".into(),
        _ => {
            return Err(bad(
                "variant",
                "variant is one of lora, dora, rslora, rslora+dora",
            ));
        }
    })
}

fn parse_label(v: &str) -> ApiResult<(String, Option<String>)> {
    let (key, value) = match v.split_once('=') {
        Some((k, val)) => (k, Some(val.to_owned())),
        None => (v, None),
    };
    if !adapter_core::api::catalog::is_label_key(key) {
        return Err(bad(
            "label",
            "label is `key=value` (or `key`), key [a-z0-9][a-z0-9._-]{0,62}",
        ));
    }
    Ok((key.to_owned(), value))
}

/// A benchmark or metric name: printable, no `:` and no comparison characters.
fn eval_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !matches!(c, ':' | '<' | '>' | '='))
}

fn parse_eval(v: &str) -> ApiResult<EvalCond> {
    let usage = || {
        bad(
            "eval",
            "eval is `benchmark:metric` OP number, OP one of >= > <= < =",
        )
    };
    let pos = v.find(['<', '>', '=']).ok_or_else(usage)?;
    let (name, rest) = v.split_at(pos);
    let (op, num) = [
        (">=", CmpOp::Ge),
        ("<=", CmpOp::Le),
        (">", CmpOp::Gt),
        ("<", CmpOp::Lt),
        ("=", CmpOp::Eq),
    ]
    .into_iter()
    .find_map(|(s, op)| rest.strip_prefix(s).map(|n| (op, n)))
    .ok_or_else(usage)?;
    let (benchmark, metric) = name.split_once(':').ok_or_else(usage)?;
    if !eval_name(benchmark) || !eval_name(metric) {
        return Err(usage());
    }
    let value: f64 = num.parse().map_err(|_| usage())?;
    if !value.is_finite() {
        return Err(usage());
    }
    Ok(EvalCond {
        benchmark: benchmark.to_owned(),
        metric: metric.to_owned(),
        op,
        value,
    })
}

fn parse_sort(v: &str) -> ApiResult<Sort> {
    let (descending, key) = match v.strip_prefix('-') {
        Some(k) => (true, k),
        None => (false, v),
    };
    let key = match key {
        "name" => SortKey::Name,
        "created" => SortKey::Created,
        other => {
            let spec = other.strip_prefix("eval:").and_then(|s| s.split_once(':'));
            match spec {
                Some((b, m)) if eval_name(b) && eval_name(m) => SortKey::Eval {
                    benchmark: b.to_owned(),
                    metric: m.to_owned(),
                },
                _ => {
                    return Err(ApiError::with_details(
                        "invalid_sort",
                        "sort is one of created, -created, name, -name, \
                         eval:BENCHMARK:METRIC, -eval:BENCHMARK:METRIC",
                        json!({ "param": "sort" }),
                    ));
                }
            }
        }
    };
    Ok(Sort { key, descending })
}

// ---- cursors ----

/// The search cursors' MAC: HMAC-SHA256, truncated to its first 16 bytes.
type CursorMac = hmac::Hmac<sha2::Sha256>;
const MAC_LEN: usize = 16;

fn cursor_mac(secret: &str, payload: &[u8]) -> CursorMac {
    // HMAC takes a key of any length.
    let mut mac = <CursorMac as hmac::KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    hmac::Mac::update(&mut mac, payload);
    mac
}

fn after_json(a: &After) -> Value {
    match a {
        After::Name { namespace, name } => json!(["name", namespace, name]),
        After::Created {
            created_at,
            version_id,
        } => json!(["created", created_at, version_id]),
        After::Eval {
            value,
            namespace,
            name,
        } => json!(["eval", value, namespace, name]),
    }
}

fn after_of(v: &Value) -> Option<After> {
    let a = v.as_array()?;
    let s = |i: usize| a.get(i).and_then(Value::as_str).map(str::to_owned);
    Some(match (a.first()?.as_str()?, a.len()) {
        ("name", 3) => After::Name {
            namespace: s(1)?,
            name: s(2)?,
        },
        ("created", 3) => After::Created {
            created_at: a[1].as_i64()?,
            version_id: a[2].as_i64()?,
        },
        ("eval", 4) => After::Eval {
            value: if a[1].is_null() {
                None
            } else {
                Some(a[1].as_f64()?)
            },
            namespace: s(2)?,
            name: s(3)?,
        },
        _ => return None,
    })
}

impl SearchRequest {
    /// An opaque cursor: the position and this request's fingerprint, signed with the
    /// server's secret.
    pub fn encode_cursor(&self, secret: &str, after: &After) -> String {
        let payload = json!({ "f": self.fingerprint, "a": after_json(after) }).to_string();
        let tag = hmac::Mac::finalize(cursor_mac(secret, payload.as_bytes())).into_bytes();
        format!("{}.{}", hex::encode(payload), hex::encode(&tag[..MAC_LEN]))
    }

    /// The position a cursor names; refused unless this server signed it for this very
    /// search (same filters and sort).
    pub fn decode_cursor(&self, secret: &str, cursor: &str) -> ApiResult<After> {
        let invalid = || {
            ApiError::new(
                "invalid_cursor",
                "the cursor is not one this server issued for this search",
            )
        };
        let (payload, mac) = cursor.split_once('.').ok_or_else(invalid)?;
        let payload = hex::decode(payload).map_err(|_| invalid())?;
        let mac = hex::decode(mac).map_err(|_| invalid())?;
        // Constant-time comparison of the truncated tag.
        if mac.len() != MAC_LEN
            || hmac::Mac::verify_truncated_left(cursor_mac(secret, &payload), &mac).is_err()
        {
            return Err(invalid());
        }
        let v: Value = serde_json::from_slice(&payload).map_err(|_| invalid())?;
        if v.get("f").and_then(Value::as_str) != Some(self.fingerprint.as_str()) {
            return Err(invalid());
        }
        let after = v.get("a").and_then(after_of).ok_or_else(invalid)?;
        let kind_matches = matches!(
            (&after, &self.sort.key),
            (After::Name { .. }, SortKey::Name)
                | (After::Created { .. }, SortKey::Created)
                | (After::Eval { .. }, SortKey::Eval { .. })
        );
        if !kind_matches {
            return Err(invalid());
        }
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_mac_is_hmac_sha256_rfc4231_case_2() {
        let tag = hmac::Mac::finalize(cursor_mac("Jefe", b"what do ya want for nothing?"));
        assert_eq!(
            hex::encode(tag.into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn cursors_verify_and_refuse_tampering() {
        let req = parse(Some("q=bot")).unwrap();
        let after = After::Name {
            namespace: "acme".into(),
            name: "bot".into(),
        };
        let c = req.encode_cursor("secret", &after);
        assert!(matches!(
            req.decode_cursor("secret", &c),
            Ok(After::Name { .. })
        ));
        assert!(req.decode_cursor("other secret", &c).is_err());
        let (payload, tag) = c.split_once('.').unwrap();
        let mut bad = tag.to_owned().into_bytes();
        bad[0] = if bad[0] == b'0' { b'1' } else { b'0' };
        let bad = format!("{payload}.{}", String::from_utf8(bad).unwrap());
        assert!(req.decode_cursor("secret", &bad).is_err());
        // A full-length (untruncated) tag is not accepted either.
        assert!(req.decode_cursor("secret", &format!("{c}00")).is_err());
        // Another search (other filters) cannot use it.
        let other = parse(Some("q=other")).unwrap();
        assert!(other.decode_cursor("secret", &c).is_err());
    }

    #[test]
    fn evals_and_sorts() {
        let e = parse_eval("mmlu:acc>=0.6").unwrap();
        assert_eq!((e.op, e.value), (CmpOp::Ge, 0.6));
        assert_eq!(parse_eval("a:b<1").unwrap().op, CmpOp::Lt);
        assert_eq!(parse_eval("a:b=1e-3").unwrap().value, 0.001);
        for bad in [
            "mmlu>=0.6",
            "mmlu:acc",
            "mmlu:acc>=x",
            "mmlu:acc=>1",
            ":acc>1",
            "a:b>=inf",
            "a:b>=NaN",
        ] {
            assert!(parse_eval(bad).is_err(), "{bad}");
        }
        assert!(parse_sort("-created").unwrap().descending);
        assert!(parse_sort("eval:mmlu").is_err());
        assert!(parse_sort("size").is_err());
        assert_eq!(parse_variant("DoRA rsLoRA").unwrap(), "rslora+dora");
    }

    #[test]
    fn cursors_are_bound_to_their_search_and_signed() {
        let a = parse(Some("sort=name&label=team=x")).unwrap();
        let b = parse(Some("sort=name&label=team=y")).unwrap();
        let pos = After::Name {
            namespace: "acme".into(),
            name: "bot".into(),
        };
        let c = a.encode_cursor("k", &pos);
        assert_eq!(a.decode_cursor("k", &c).unwrap(), pos);
        assert!(b.decode_cursor("k", &c).is_err(), "other filters");
        assert!(a.decode_cursor("other key", &c).is_err(), "other key");
        let (payload, mac) = c.split_once('.').unwrap();
        let forged = hex::encode(
            String::from_utf8(hex::decode(payload).unwrap())
                .unwrap()
                .replace("bot", "bou"),
        );
        assert!(a.decode_cursor("k", &format!("{forged}.{mac}")).is_err());
    }
}
