//! The summary of a model version: identities and counts from the safetensors headers of
//! its weight files (uploaded, or headers-only with declared per-file digests).

use std::collections::{BTreeMap, BTreeSet};

use adapter_core::api::{HeadersOnlyWeight, ModelSummary, Summary, metadata};
use adapter_core::digest::Digest;
use adapter_core::json::parse_strict;
use adapter_core::manifest::{FileEntry, FilePath, Manifest};
use adapter_core::model::{CONFIG_FILE, content_digest, shape_fingerprint};
use adapter_core::quant::gguf::read_gguf;
use adapter_core::safetensors::{Limits, TensorInfo};
use serde_json::{Value, json};

use super::read::{safetensors_header, small_file};
use crate::app::AppState;
use crate::blobs::blob_key;
use crate::error::{ApiError, ApiResult};

const CODE: &str = "invalid_model";

/// One weights file: where its header is stored and what the whole file is.
#[derive(Debug, Clone)]
pub struct Weight {
    pub path: String,
    pub size: u64,
    pub sha256: Digest,
    /// Blob holding (at least) the header.
    pub header_blob: Digest,
}

/// `metadata.headers_only`.
pub fn is_headers_only(manifest: &Manifest) -> ApiResult<bool> {
    match manifest.metadata().get(metadata::HEADERS_ONLY) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::new(
            "invalid_manifest",
            "metadata.headers_only must be true or false",
        )),
    }
}

/// The weight files of a model version.
pub fn weights(manifest: &Manifest) -> ApiResult<Vec<Weight>> {
    if !is_headers_only(manifest)? {
        return Ok(manifest
            .files()
            .iter()
            .filter(|f| f.path.as_str().ends_with(".safetensors"))
            .map(|f| Weight {
                path: f.path.to_string(),
                size: f.size,
                sha256: f.digest,
                header_blob: f.digest,
            })
            .collect());
    }
    let invalid = |m: String| ApiError::new("invalid_manifest", format!("metadata.weights: {m}"));
    let raw = manifest
        .metadata()
        .get(metadata::WEIGHTS)
        .cloned()
        .ok_or_else(|| invalid("required when headers_only is true".into()))?;
    let list: Vec<HeadersOnlyWeight> =
        serde_json::from_value(raw).map_err(|e| invalid(e.to_string()))?;
    let mut seen = BTreeSet::new();
    list.into_iter()
        .map(|w| {
            let path =
                FilePath::new(w.path.clone()).map_err(|e| invalid(format!("{}: {e}", w.path)))?;
            if !path.as_str().ends_with(".safetensors") {
                return Err(invalid(format!("{path}: not a .safetensors file")));
            }
            if !seen.insert(path.case_key()) || manifest.file(path.as_str()).is_some() {
                return Err(invalid(format!("{path} is listed twice")));
            }
            Ok(Weight {
                path: w.path,
                size: w.size,
                sha256: w.sha256,
                header_blob: w.header_blob,
            })
        })
        .collect()
}

/// `sizes`: stored size of every blob the manifest needs.
pub async fn summary(
    app: &AppState,
    manifest: &Manifest,
    sizes: &std::collections::HashMap<Digest, u64>,
) -> ApiResult<Summary> {
    let headers_only = is_headers_only(manifest)?;
    let weights = weights(manifest)?;
    let gguf: Vec<&FileEntry> = manifest
        .files()
        .iter()
        .filter(|f| f.path.as_str().ends_with(".gguf"))
        .collect();
    // GGUF models are what quantise jobs make (their manifests carry derived_from, which the
    // API refuses): the reader only ever sees the registry's own files.
    if weights.is_empty() && !gguf.is_empty() && super::facts::derivation(manifest)?.is_some() {
        return gguf_summary(app, &gguf).await;
    }
    if weights.is_empty() {
        return Err(ApiError::new(
            CODE,
            "a model version needs at least one .safetensors weights file",
        ));
    }
    let mut tensors: BTreeMap<String, TensorInfo> = BTreeMap::new();
    for w in &weights {
        let blob_size = sizes.get(&w.header_blob).copied().unwrap_or(0);
        if headers_only && blob_size > 8 + Limits::SERVER.max_header_len {
            return Err(ApiError::with_details(
                CODE,
                format!("{}: header blob is larger than any allowed header", w.path),
                json!({ "file": w.path }),
            ));
        }
        let header = safetensors_header(app, &w.header_blob, blob_size, w.size, Limits::SERVER)
            .await
            .map_err(|e| e.into_api(CODE, &w.path))?;
        for t in header.tensors {
            let name = t.name.clone();
            if tensors.insert(name.clone(), t).is_some() {
                return Err(ApiError::with_details(
                    CODE,
                    format!("tensor `{name}` is in more than one weights file"),
                    json!({ "tensor": name, "file": w.path }),
                ));
            }
        }
    }
    let files: Vec<(&str, u64, Digest)> = weights
        .iter()
        .map(|w| (w.path.as_str(), w.size, w.sha256))
        .collect();
    let mut dtypes: BTreeMap<String, u64> = BTreeMap::new();
    for t in tensors.values() {
        *dtypes.entry(t.dtype.as_str().to_owned()).or_default() += 1;
    }
    let config = model_config(app, manifest).await?;
    Ok(Summary::Model(ModelSummary {
        format: None,
        headers_only,
        content_digest: content_digest(&files),
        shape_fingerprint: Some(shape_fingerprint(
            tensors
                .values()
                .map(|t| (t.name.as_str(), t.dtype, t.shape.as_slice())),
        )),
        weight_files: weights.len() as u64,
        tensor_count: tensors.len() as u64,
        parameters: tensors
            .values()
            .map(TensorInfo::num_elements)
            .fold(0u64, u64::saturating_add),
        dtypes,
        model_type: config_field(config.as_ref(), "model_type"),
        architectures: config_field(config.as_ref(), "architectures"),
        num_hidden_layers: config_field(config.as_ref(), "num_hidden_layers"),
        architecture: None,
        file_type: None,
    }))
}

/// A value copied from config.json, when it has the expected type.
fn config_field<T: serde::de::DeserializeOwned>(config: Option<&Value>, key: &str) -> Option<T> {
    serde_json::from_value(config?.get(key)?.clone()).ok()
}

/// Longest GGUF header (metadata with tokenizer arrays, tensor infos) a summary reads.
const MAX_GGUF_HEADER: u64 = 64 << 20;

/// The summary of a GGUF model: counts, types and architecture from each file's header.
async fn gguf_summary(app: &AppState, files: &[&FileEntry]) -> ApiResult<Summary> {
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    let (mut tensors, mut parameters) = (0u64, 0u64);
    let (mut architecture, mut file_type) = (None, None);
    for f in files {
        let (blobs, key, size) = (app.blobs.clone(), blob_key(&f.digest), f.size);
        let handle = tokio::runtime::Handle::current();
        let path = f.path.to_string();
        let header = tokio::task::spawn_blocking(move || {
            let reader = blobs.blocking_reader(&handle, &key, 0..size.min(MAX_GGUF_HEADER))?;
            read_gguf(reader).map_err(|e| anyhow::anyhow!("{e}"))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            ApiError::with_details(CODE, format!("{path}: {e}"), json!({ "file": path }))
        })?;
        for t in &header.tensors {
            tensors += 1;
            parameters = parameters.saturating_add(t.dims.iter().product());
            *types.entry(t.ty.name().to_owned()).or_default() += 1;
        }
        if let Some(a) = header.get("general.architecture").and_then(|v| v.as_str()) {
            architecture = Some(a.to_owned());
        }
        if let Some(t) = header.get("general.file_type").and_then(|v| v.as_u32()) {
            file_type = Some(t);
        }
    }
    let digests: Vec<(&str, u64, Digest)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.size, f.digest))
        .collect();
    Ok(Summary::Model(ModelSummary {
        format: Some("gguf".to_owned()),
        headers_only: false,
        content_digest: content_digest(&digests),
        shape_fingerprint: None,
        weight_files: files.len() as u64,
        tensor_count: tensors,
        parameters,
        dtypes: types,
        model_type: None,
        architectures: None,
        num_hidden_layers: None,
        architecture,
        file_type,
    }))
}

async fn model_config(app: &AppState, manifest: &Manifest) -> ApiResult<Option<Value>> {
    let Some(entry) = manifest.file(CONFIG_FILE) else {
        return Ok(None);
    };
    let bytes = small_file(app, CODE, CONFIG_FILE, &entry.digest, entry.size).await?;
    let value = parse_strict(&bytes).map_err(|e| {
        ApiError::with_details(
            CODE,
            format!("{CONFIG_FILE}: {e}"),
            json!({ "file": CONFIG_FILE }),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::with_details(
            CODE,
            format!("{CONFIG_FILE} must be a JSON object"),
            json!({ "file": CONFIG_FILE }),
        ));
    }
    Ok(Some(value))
}
