//! Base model directories: tensor manifest, content digest and shape fingerprint.
//!
//! A model directory holds `config.json` and its weights as one `model.safetensors` or as
//! shards listed by `model.safetensors.index.json`. Two identities (docs/FORMATS.md):
//! * the **content digest**: sha256 over the canonical list of weight files (path, size,
//!   sha256) — the exact weights;
//! * the **shape fingerprint**: sha256 over the canonical list of tensors (name, dtype,
//!   shape) — what an adapter's compatibility depends on. Headers only: it costs the same
//!   for a 1 GB and a 100 GB model.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use crate::digest::{Digest, sha256_file};
use crate::json::{canonical, parse_strict};
use crate::manifest::Kind;
use crate::safetensors::{Dtype, Header, Limits, SafetensorsError, TensorInfo, read_header_file};

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";
pub const CONFIG_FILE: &str = "config.json";
/// The files whose presence makes a set of files a model (when it is not an adapter).
pub const MODEL_MARKERS: [&str; 3] = [CONFIG_FILE, SINGLE_FILE, INDEX_FILE];
/// Extensions of pickle checkpoints: never pushed (loading one can run arbitrary code).
const PICKLE_EXTENSIONS: &[&str] = &["bin", "pt", "pth", "pkl", "pickle", "ckpt"];
const CONTENT_SCHEMA: &str = "adapter-registry.model-content.v1";
const FINGERPRINT_SCHEMA: &str = "adapter-registry.shape-fingerprint.v1";

/// What a set of files is (`has` says whether a top-level file exists): an adapter when
/// `adapter_config.json` is one of them, else a model when one of [`MODEL_MARKERS`] is;
/// `None` for neither. `adapterctl push` and the Hub protocol's commits decide alike.
pub fn kind_of(has: impl Fn(&str) -> bool) -> Option<Kind> {
    if has(crate::peft::CONFIG_FILE) {
        Some(Kind::Adapter)
    } else if MODEL_MARKERS.iter().any(|f| has(f)) {
        Some(Kind::Model)
    } else {
        None
    }
}

/// Is `path` (a file name or a `/`-separated path) a pickle checkpoint by its extension?
pub fn is_pickle(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|ext| PICKLE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// Why a model directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Safetensors {
        path: PathBuf,
        source: SafetensorsError,
    },
    #[error("{0}: no `{SINGLE_FILE}` and no `{INDEX_FILE}`{1}")]
    NoWeights(PathBuf, &'static str),
    #[error("{INDEX_FILE}: {0}")]
    BadIndex(String),
    #[error("{CONFIG_FILE}: {0}")]
    BadConfig(String),
    #[error("tensor `{tensor}` is in both `{first}` and `{second}`")]
    DuplicateTensor {
        tensor: String,
        first: String,
        second: String,
    },
    #[error("{INDEX_FILE} maps `{tensor}` to `{indexed}`, but {actual}")]
    IndexMismatch {
        tensor: String,
        indexed: String,
        actual: String,
    },
    #[error("tensor `{tensor}` in `{file}` is missing from {INDEX_FILE}")]
    NotInIndex { tensor: String, file: String },
}

impl ModelError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> ModelError + '_ {
        move |source| ModelError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// One weights file of the model.
#[derive(Debug, Clone, Serialize)]
pub struct WeightFile {
    /// File name relative to the model directory.
    pub path: String,
    pub size: u64,
    /// `None` when the directory was opened headers-only.
    pub digest: Option<Digest>,
    #[serde(skip)]
    pub header: Header,
}

/// A tensor of the model and the file that holds it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelTensor {
    pub file: String,
    #[serde(flatten)]
    pub info: TensorInfo,
}

/// A model directory read from disk.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub root: PathBuf,
    /// `config.json`, when present.
    pub config: Option<Value>,
    /// Weights files, sorted by path.
    pub files: Vec<WeightFile>,
    /// Every tensor by name, across shards.
    pub tensors: BTreeMap<String, ModelTensor>,
}

/// Whether to hash the weights (needed for the content digest) or read headers only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hashing {
    HeadersOnly,
    Full,
}

impl ModelDir {
    /// Read `root`: config, weights headers (and, with [`Hashing::Full`], file digests).
    pub fn open(root: &Path, hashing: Hashing) -> Result<Self, ModelError> {
        let config = read_config(root)?;
        let names = weight_file_names(root)?;
        let mut files = Vec::with_capacity(names.files.len());
        let mut tensors: BTreeMap<String, ModelTensor> = BTreeMap::new();
        for name in &names.files {
            let path = root.join(name);
            let header = read_header_file(&path, &Limits::REFERENCE).map_err(|source| {
                ModelError::Safetensors {
                    path: path.clone(),
                    source,
                }
            })?;
            let size = header.file_len();
            let digest = match hashing {
                Hashing::HeadersOnly => None,
                Hashing::Full => Some(sha256_file(&path).map_err(ModelError::io(&path))?.0),
            };
            for info in &header.tensors {
                let entry = ModelTensor {
                    file: name.clone(),
                    info: info.clone(),
                };
                if let Some(prev) = tensors.insert(info.name.clone(), entry) {
                    return Err(ModelError::DuplicateTensor {
                        tensor: info.name.clone(),
                        first: prev.file,
                        second: name.clone(),
                    });
                }
            }
            files.push(WeightFile {
                path: name.clone(),
                size,
                digest,
                header,
            });
        }
        if let Some(map) = &names.weight_map {
            check_index(map, &tensors)?;
        }
        Ok(Self {
            root: root.to_owned(),
            config,
            files,
            tensors,
        })
    }

    /// The tensors by name, as the adapter checks take them.
    pub fn tensor_infos(&self) -> BTreeMap<String, TensorInfo> {
        self.tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.info.clone()))
            .collect()
    }

    /// sha256 over the canonical list of weight files; `None` when opened headers-only.
    pub fn content_digest(&self) -> Option<Digest> {
        let files = self
            .files
            .iter()
            .map(|f| Some((f.path.as_str(), f.size, f.digest?)))
            .collect::<Option<Vec<_>>>()?;
        Some(content_digest(&files))
    }

    /// sha256 over the canonical list of tensors (name, dtype, shape).
    pub fn shape_fingerprint(&self) -> Digest {
        shape_fingerprint(
            self.tensors
                .values()
                .map(|t| (t.info.name.as_str(), t.info.dtype, t.info.shape.as_slice())),
        )
    }

    /// Total element count over all tensors.
    pub fn parameters(&self) -> u64 {
        self.tensors.values().map(|t| t.info.num_elements()).sum()
    }

    /// Tensor count per dtype.
    pub fn dtypes(&self) -> BTreeMap<Dtype, usize> {
        let mut out = BTreeMap::new();
        for t in self.tensors.values() {
            *out.entry(t.info.dtype).or_default() += 1;
        }
        out
    }
}

/// The content digest of a set of weight files given as (path, size, sha256).
/// Order of the input does not matter; see docs/FORMATS.md for the canonical form.
pub fn content_digest(files: &[(&str, u64, Digest)]) -> Digest {
    let mut sorted: Vec<_> = files.to_vec();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let files: Vec<Value> = sorted
        .into_iter()
        .map(|(path, size, digest)| json!({"path": path, "size": size, "sha256": digest.to_string()}))
        .collect();
    Digest::of_bytes(&canonical(
        &json!({"schema": CONTENT_SCHEMA, "files": files}),
    ))
}

/// The shape fingerprint of a set of tensors given as (name, dtype, shape).
/// Order of the input does not matter; see docs/FORMATS.md for the canonical form.
pub fn shape_fingerprint<'a>(
    tensors: impl IntoIterator<Item = (&'a str, Dtype, &'a [u64])>,
) -> Digest {
    let mut sorted: Vec<_> = tensors.into_iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let tensors: Vec<Value> = sorted
        .into_iter()
        .map(|(name, dtype, shape)| json!([name, dtype.as_str(), shape]))
        .collect();
    Digest::of_bytes(&canonical(
        &json!({"schema": FINGERPRINT_SCHEMA, "tensors": tensors}),
    ))
}

fn read_config(root: &Path) -> Result<Option<Value>, ModelError> {
    let path = root.join(CONFIG_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let value = parse_strict(&bytes).map_err(|e| ModelError::BadConfig(e.to_string()))?;
            if !value.is_object() {
                return Err(ModelError::BadConfig("must be a JSON object".into()));
            }
            Ok(Some(value))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ModelError::Io { path, source: e }),
    }
}

struct WeightNames {
    files: Vec<String>,
    /// tensor → file, from the index, when the model is sharded.
    weight_map: Option<BTreeMap<String, String>>,
}

fn weight_file_names(root: &Path) -> Result<WeightNames, ModelError> {
    let index_path = root.join(INDEX_FILE);
    match fs::read(&index_path) {
        Ok(bytes) => {
            let weight_map = parse_index(&bytes)?;
            let files: BTreeSet<String> = weight_map.values().cloned().collect();
            Ok(WeightNames {
                files: files.into_iter().collect(),
                weight_map: Some(weight_map),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if root.join(SINGLE_FILE).is_file() {
                Ok(WeightNames {
                    files: vec![SINGLE_FILE.to_owned()],
                    weight_map: None,
                })
            } else {
                let hint = if root.join("pytorch_model.bin").exists()
                    || root.join("pytorch_model.bin.index.json").exists()
                {
                    " (pickle `pytorch_model.bin` weights are not accepted: convert them to safetensors)"
                } else {
                    ""
                };
                Err(ModelError::NoWeights(root.to_owned(), hint))
            }
        }
        Err(e) => Err(ModelError::Io {
            path: index_path,
            source: e,
        }),
    }
}

/// Parse `model.safetensors.index.json`: `{"metadata": {...}, "weight_map": {tensor: file}}`.
/// Shard names must be plain `*.safetensors` file names in the same directory.
fn parse_index(bytes: &[u8]) -> Result<BTreeMap<String, String>, ModelError> {
    let value = parse_strict(bytes).map_err(|e| ModelError::BadIndex(e.to_string()))?;
    let map = value
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ModelError::BadIndex("`weight_map` must be an object of tensor name → file name".into())
        })?;
    if map.is_empty() {
        return Err(ModelError::BadIndex("`weight_map` is empty".into()));
    }
    let mut out = BTreeMap::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| {
            ModelError::BadIndex(format!("`weight_map[{tensor:?}]` must be a string"))
        })?;
        if !is_plain_shard_name(file) {
            return Err(ModelError::BadIndex(format!(
                "`weight_map[{tensor:?}]` = {file:?}: shards must be plain `.safetensors` file names in the model directory"
            )));
        }
        out.insert(tensor.clone(), file.to_owned());
    }
    Ok(out)
}

fn is_plain_shard_name(name: &str) -> bool {
    name.ends_with(".safetensors")
        && name.len() > ".safetensors".len()
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

fn check_index(
    map: &BTreeMap<String, String>,
    tensors: &BTreeMap<String, ModelTensor>,
) -> Result<(), ModelError> {
    for (tensor, indexed) in map {
        match tensors.get(tensor) {
            Some(t) if &t.file == indexed => {}
            Some(t) => {
                return Err(ModelError::IndexMismatch {
                    tensor: tensor.clone(),
                    indexed: indexed.clone(),
                    actual: format!("it is in `{}`", t.file),
                });
            }
            None => {
                return Err(ModelError::IndexMismatch {
                    tensor: tensor.clone(),
                    indexed: indexed.clone(),
                    actual: "that file has no such tensor".into(),
                });
            }
        }
    }
    if let Some((name, t)) = tensors.iter().find(|(name, _)| !map.contains_key(*name)) {
        return Err(ModelError::NotInIndex {
            tensor: name.clone(),
            file: t.file.clone(),
        });
    }
    Ok(())
}
