//! Catalogue bodies: search hits with a version's searchable facts and latest evals,
//! labels, and the lineage view of one version. Routes: docs/API.md ("Catalogue").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::BaseModelRef;
use crate::digest::Digest;
use crate::manifest::Kind;

/// Manifest `metadata` key holding a version's labels (an object of string → string).
pub const LABELS: &str = "labels";
/// Most labels one version may carry.
pub const MAX_LABELS: usize = 64;
/// Longest label key (`[a-z0-9][a-z0-9._-]{0,62}`).
pub const MAX_LABEL_KEY: usize = 63;
/// Longest label value, in characters.
pub const MAX_LABEL_VALUE: usize = 256;

/// Why a label is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("metadata.labels must be an object of string values")]
    NotAnObject,
    #[error("at most {MAX_LABELS} labels")]
    TooMany,
    #[error("label key `{0}` must match [a-z0-9][a-z0-9._-]{{0,62}}")]
    Key(String),
    #[error("label `{0}` must have a string value of at most {MAX_LABEL_VALUE} characters")]
    Value(String),
}

/// Whether `key` is a valid label key.
pub fn is_label_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL_KEY
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

/// The labels of a manifest's `metadata.labels` (absent or `null`: none), checked.
pub fn parse_labels(v: Option<&Value>) -> Result<BTreeMap<String, String>, LabelError> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(LabelError::NotAnObject),
    };
    if obj.len() > MAX_LABELS {
        return Err(LabelError::TooMany);
    }
    let mut out = BTreeMap::new();
    for (k, v) in obj {
        if !is_label_key(k) {
            return Err(LabelError::Key(k.escape_debug().to_string()));
        }
        match v {
            Value::String(s) if s.chars().count() <= MAX_LABEL_VALUE => {
                out.insert(k.clone(), s.clone());
            }
            _ => return Err(LabelError::Value(k.clone())),
        }
    }
    Ok(out)
}

/// What the catalogue knows about a version, derived from its summary at publish.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionFacts {
    /// Adapters: `LORA`, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peft_type: Option<String>,
    /// Adapters: `lora`, `dora`, `rslora` or `rslora+dora`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Adapters: smallest and largest rank over the adapted modules (`rank_pattern` included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_max: Option<u64>,
    /// Adapters: target modules as configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Adapters: the base model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseModelRef>,
    /// Models: their own content digest and shape fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape_fingerprint: Option<Digest>,
}

/// The latest value of one `benchmark:metric` of a version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatestEval {
    pub benchmark: String,
    pub metric: String,
    pub value: f64,
    pub higher_is_better: bool,
    /// Unix time (seconds) the value was recorded.
    pub created_at: i64,
}

/// The version a search matched in a repository: the newest non-yanked version that
/// passes every filter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MatchedVersion {
    pub version: String,
    pub manifest_digest: Digest,
    pub created_at: i64,
    pub facts: VersionFacts,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Latest value per `benchmark:metric`, sorted by benchmark then metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evals: Vec<LatestEval>,
}

/// One end of a lineage edge. Fields the row does not know are absent; `namespace`, `name`
/// and `version` are present when the other end is a version registered here.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineageNode {
    /// `base` (an adapter's base model), `input` (what a derived version was made from),
    /// or `self` (the first step of a chain).
    pub relation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The reference as recorded (`ns/name@version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape_fingerprint: Option<String>,
    /// For derived versions: the job kind and parameters that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked: Option<bool>,
}

/// `GET /v1/{kind}/{ns}/{name}/versions/{version}/lineage`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineageView {
    /// What this version was made from (its lineage rows).
    pub parents: Vec<LineageNode>,
    /// Registered versions made from this one: adapters on this model (by reference,
    /// manifest digest or content digest), versions with an `input` pointing here.
    pub children: Vec<LineageNode>,
    /// This version, then its base (or first model input), then that one's, … as far as
    /// the registry knows (the last step may be unregistered).
    pub chain: Vec<LineageNode>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_rules() {
        assert!(is_label_key("team"));
        assert!(is_label_key("0a.b_c-d"));
        assert!(is_label_key(&"a".repeat(63)));
        assert!(!is_label_key(&"a".repeat(64)));
        for bad in ["", "Team", "-x", ".x", "a b", "a/b", "é"] {
            assert!(!is_label_key(bad), "{bad}");
        }
        let ok = parse_labels(Some(&json!({"team": "search", "task": "x".repeat(256)}))).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(parse_labels(None).unwrap().len(), 0);
        assert_eq!(
            parse_labels(Some(&json!(["a"]))),
            Err(LabelError::NotAnObject)
        );
        assert!(matches!(
            parse_labels(Some(&json!({"t": "x".repeat(257)}))),
            Err(LabelError::Value(_))
        ));
        assert!(matches!(
            parse_labels(Some(&json!({"t": 1}))),
            Err(LabelError::Value(_))
        ));
        assert!(matches!(
            parse_labels(Some(&json!({"Bad": "x"}))),
            Err(LabelError::Key(_))
        ));
        let many: serde_json::Map<String, Value> =
            (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            parse_labels(Some(&Value::Object(many))),
            Err(LabelError::TooMany)
        );
    }
}
