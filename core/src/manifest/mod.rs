//! Version manifests: the list of files (path, size, digest) plus declared metadata.
//!
//! The JSON form (docs/FORMATS.md, "Manifests"):
//!
//! ```json
//! {"schema": "adapter-registry.manifest.v1", "kind": "adapter",
//!  "files": [{"path": "adapter_config.json", "size": 412, "digest": "sha256:…"}],
//!  "metadata": {"base_model": {…}, "peft": {…}, "training": {…}}}
//! ```
//!
//! [`Manifest::from_json`] is the entry point for untrusted bytes: duplicate keys, unknown
//! top-level or file-entry fields and any other schema are refused. Files are kept sorted by
//! the bytes of their path; two paths equal when ASCII case is ignored are refused (they
//! would overwrite each other on a case-insensitive file system), and so is a file that
//! another path uses as a directory. The manifest digest is the sha256 of
//! [`Manifest::canonical_bytes`], never of the bytes a client happened to send.

mod path;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::json::{canonical, parse_strict};

pub use path::{FilePath, FilePathError, MAX_PATH_LEN};

/// The value of the `schema` field of every version-1 manifest.
pub const SCHEMA: &str = "adapter-registry.manifest.v1";

/// What a repository holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Adapter,
    Model,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adapter => "adapter",
            Self::Model => "model",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = ManifestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "adapter" => Ok(Self::Adapter),
            "model" => Ok(Self::Model),
            other => Err(ManifestError::Invalid(format!(
                "unknown kind {other:?}; expected \"adapter\" or \"model\""
            ))),
        }
    }
}

/// One file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative `/`-separated path (the path rules are in docs/FORMATS.md).
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "adapter_config.json"))]
    pub path: FilePath,
    pub size: u64,
    pub digest: Digest,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("manifest has no `schema` field (expected \"{SCHEMA}\")")]
    MissingSchema,
    #[error("unsupported manifest schema {0}; expected \"{SCHEMA}\"")]
    UnsupportedSchema(String),
    #[error("invalid manifest: {0}")]
    Invalid(String),
    #[error("a manifest lists at least one file")]
    NoFiles,
    #[error("file `{0}` is listed twice")]
    DuplicatePath(FilePath),
    #[error("files `{first}` and `{second}` differ only in letter case")]
    CaseCollision { first: FilePath, second: FilePath },
    #[error("`{file}` is a file, but `{nested}` needs it to be a directory")]
    FileDirConflict { file: FilePath, nested: FilePath },
}

/// A validated manifest. Files are sorted by path bytes; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    kind: Kind,
    files: Vec<FileEntry>,
    metadata: Map<String, Value>,
}

impl Manifest {
    /// Validate and build; `files` may come in any order.
    pub fn new(
        kind: Kind,
        mut files: Vec<FileEntry>,
        metadata: Map<String, Value>,
    ) -> Result<Self, ManifestError> {
        if files.is_empty() {
            return Err(ManifestError::NoFiles);
        }
        files.sort_by(|a, b| a.path.as_str().as_bytes().cmp(b.path.as_str().as_bytes()));
        check_paths(&files)?;
        Ok(Self {
            kind,
            files,
            metadata,
        })
    }

    /// Parse untrusted JSON bytes (strict: see the module docs).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let value = parse_strict(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        Self::from_value(value)
    }

    /// Build from an already parsed JSON value (checks the schema field first).
    pub fn from_value(value: Value) -> Result<Self, ManifestError> {
        let Value::Object(obj) = value else {
            return Err(ManifestError::Invalid("a manifest is a JSON object".into()));
        };
        match obj.get("schema") {
            None => return Err(ManifestError::MissingSchema),
            Some(Value::String(s)) if s == SCHEMA => {}
            Some(other) => return Err(ManifestError::UnsupportedSchema(other.to_string())),
        }
        let mut kind = None;
        let mut files = None;
        let mut metadata = Map::new();
        for (key, v) in obj {
            match key.as_str() {
                "schema" => {}
                "kind" => kind = Some(field::<Kind>("kind", v)?),
                "files" => files = Some(file_entries(v)?),
                "metadata" => match v {
                    Value::Object(m) => metadata = m,
                    other => return Err(invalid("metadata", "must be a JSON object", &other)),
                },
                other => {
                    return Err(ManifestError::Invalid(format!(
                        "unknown field `{}`; expected schema, kind, files, metadata",
                        other.escape_debug()
                    )));
                }
            }
        }
        let kind = kind.ok_or_else(|| ManifestError::Invalid("missing field `kind`".into()))?;
        let files = files.ok_or_else(|| ManifestError::Invalid("missing field `files`".into()))?;
        Self::new(kind, files, metadata)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The files, sorted by the bytes of their path.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// The entry for `path`, if listed (exact match).
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_str().as_bytes().cmp(path.as_bytes()))
            .ok()
            .map(|i| &self.files[i])
    }

    /// Sum of the file sizes (saturating).
    pub fn total_size(&self) -> u64 {
        self.files
            .iter()
            .fold(0u64, |acc, f| acc.saturating_add(f.size))
    }

    pub fn into_parts(self) -> (Kind, Vec<FileEntry>, Map<String, Value>) {
        (self.kind, self.files, self.metadata)
    }

    /// The JSON form, with the `schema` field.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("schema".into(), Value::String(SCHEMA.into()));
        obj.insert("kind".into(), Value::String(self.kind.as_str().into()));
        let files = self
            .files
            .iter()
            .map(|f| {
                let mut e = Map::new();
                e.insert("path".into(), Value::String(f.path.to_string()));
                e.insert("size".into(), Value::from(f.size));
                e.insert("digest".into(), Value::String(f.digest.to_string()));
                Value::Object(e)
            })
            .collect();
        obj.insert("files".into(), Value::Array(files));
        obj.insert("metadata".into(), Value::Object(self.metadata.clone()));
        Value::Object(obj)
    }

    /// The canonical bytes: [`crate::json::canonical`] of [`Manifest::to_value`].
    pub fn canonical_bytes(&self) -> Vec<u8> {
        canonical(&self.to_value())
    }

    /// The manifest digest: sha256 of the canonical bytes.
    pub fn digest(&self) -> Digest {
        Digest::of_bytes(&self.canonical_bytes())
    }
}

fn invalid(at: &str, what: &str, v: &Value) -> ManifestError {
    let shown = v.to_string();
    let shown: String = shown.chars().take(80).collect();
    ManifestError::Invalid(format!("{at}: {what}, not {shown}"))
}

fn field<T: serde::de::DeserializeOwned>(at: &str, v: Value) -> Result<T, ManifestError> {
    serde_json::from_value(v).map_err(|e| ManifestError::Invalid(format!("{at}: {e}")))
}

fn file_entries(v: Value) -> Result<Vec<FileEntry>, ManifestError> {
    let Value::Array(items) = v else {
        return Err(invalid("files", "must be an array", &v));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| field(&format!("files[{i}]"), item))
        .collect()
}

fn check_paths(files: &[FileEntry]) -> Result<(), ManifestError> {
    for pair in files.windows(2) {
        if pair[0].path == pair[1].path {
            return Err(ManifestError::DuplicatePath(pair[0].path.clone()));
        }
    }
    let mut by_key: HashMap<String, &FilePath> = HashMap::with_capacity(files.len());
    for f in files {
        if let Some(first) = by_key.insert(f.path.case_key(), &f.path) {
            return Err(ManifestError::CaseCollision {
                first: first.clone(),
                second: f.path.clone(),
            });
        }
    }
    for f in files {
        let key = f.path.case_key();
        for (i, _) in key.match_indices('/') {
            if let Some(file) = by_key.get(&key[..i]) {
                return Err(ManifestError::FileDirConflict {
                    file: (*file).clone(),
                    nested: f.path.clone(),
                });
            }
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    schema: String,
    kind: Kind,
    files: Vec<FileEntry>,
    #[serde(default)]
    metadata: Map<String, Value>,
}

impl RawManifest {
    fn validate(self) -> Result<Manifest, ManifestError> {
        if self.schema != SCHEMA {
            return Err(ManifestError::UnsupportedSchema(
                Value::String(self.schema).to_string(),
            ));
        }
        Manifest::new(self.kind, self.files, self.metadata)
    }
}

// The wire shape of a `Manifest` (what `to_value` writes and `from_json` reads) for the
// OpenAPI spec: `Manifest` itself has hand-written serde and private fields.
/// A version's manifest (docs/FORMATS.md). Its digest is the sha256 of its canonical JSON.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(as = Manifest)]
#[allow(dead_code)]
struct ManifestSchema {
    /// Always `adapter-registry.manifest.v1`.
    #[schema(
        example = "adapter-registry.manifest.v1",
        pattern = "^adapter-registry\\.manifest\\.v1$"
    )]
    schema: String,
    kind: Kind,
    /// At least one file; paths unique (also ignoring letter case).
    files: Vec<FileEntry>,
    /// Free-form; keys the registry understands: `adapter_core::api::metadata`.
    #[schema(required = false)]
    metadata: Map<String, Value>,
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Manifest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <ManifestSchema as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Manifest {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Manifest")
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <ManifestSchema as utoipa::ToSchema>::schemas(schemas);
    }
}

impl Serialize for Manifest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Manifest {
    /// Validates like [`Manifest::from_value`]; for untrusted bytes prefer
    /// [`Manifest::from_json`], which also refuses duplicate keys inside `metadata`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawManifest::deserialize(d)?
            .validate()
            .map_err(serde::de::Error::custom)
    }
}
