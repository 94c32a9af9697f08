//! Model directory → quantised model files: GGUF (Llama family) or NF4 safetensors
//! (bitsandbytes layout), through the streaming writers of [`super::stream`] (one tensor at a
//! time; peak memory about one tensor in f32 plus its output), written to a `.partial` sibling,
//! synced and renamed into place.

use std::fs::{self, File};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::gguf::read_gguf;
use super::stream::{ModelInput, write_gguf, write_nf4};
use super::tokenizer::MAX_TOKENIZER_JSON;
use super::{GgmlType, QuantError};
use crate::digest::{Digest, sha256_file};
use crate::floats::{decode, width};
use crate::merge::{DirSource, TensorSource};
use crate::model::{ModelDir, content_digest};
use crate::safetensors::Dtype;

// Also reachable here (`quant::convert::Options`), the path adapterctl and the benches use.
pub use super::report::{Options, QuantReport, TensorReport};

/// Decode F32 / F16 / BF16 little-endian bytes.
pub fn to_f32(dtype: Dtype, raw: &[u8]) -> Option<Vec<f32>> {
    let mut out = Vec::with_capacity(raw.len() / width(dtype)?);
    decode(dtype, raw, &mut out);
    Some(out)
}

fn model_name(model: &ModelDir) -> String {
    model
        .config
        .as_ref()
        .and_then(|c| c["_name_or_path"].as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            model
                .root
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        })
        .unwrap_or_else(|| "model".into())
}

/// The bytes of `root/name` when it is a file, refusing more than `limit` bytes.
fn read_side_file(root: &Path, name: &str, limit: u64) -> Result<Option<Vec<u8>>, QuantError> {
    let path = root.join(name);
    if !path.is_file() {
        return Ok(None);
    }
    let file = File::open(&path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(QuantError::Invalid(format!(
            "{}: larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(Some(bytes))
}

/// A model directory as a [`ModelInput`] read through `source` (normally a
/// [`DirSource`] of the same directory): config, tensors, tokenizer files (bounded:
/// tokenizer.json [`MAX_TOKENIZER_JSON`], tokenizer_config.json 4 MiB).
pub fn model_input<'a>(
    model: &ModelDir,
    source: &'a mut dyn TensorSource,
) -> Result<ModelInput<'a>, QuantError> {
    let mut input = weights_input(model, source);
    input.tokenizer_json =
        read_side_file(&model.root, "tokenizer.json", MAX_TOKENIZER_JSON as u64)?;
    input.tokenizer_config = read_side_file(&model.root, "tokenizer_config.json", 4 << 20)?
        .map(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| QuantError::Invalid(format!("tokenizer_config.json: {e}")))
        })
        .transpose()?;
    Ok(input)
}

/// The model without its tokenizer files (NF4 copies them unread).
fn weights_input<'a>(model: &ModelDir, source: &'a mut dyn TensorSource) -> ModelInput<'a> {
    ModelInput {
        name: model_name(model),
        config: model.config.clone(),
        tensors: model.tensor_infos(),
        tokenizer_json: None,
        tokenizer_config: None,
        source_bytes: model.files.iter().map(|f| f.size).sum(),
        source,
    }
}

/// Write `model` as a llama GGUF of `ty` (Q8_0, Q4_0, Q4_K, Q6_K, F16, F32) to `out`
/// (written to `out.partial`, synced and renamed when complete).
pub fn to_gguf(
    model: &ModelDir,
    ty: GgmlType,
    out: &Path,
    opts: &Options,
) -> Result<QuantReport, QuantError> {
    let mut source = DirSource::new(model);
    let mut input = model_input(model, &mut source)?;
    let partial = partial_path(out);
    let result = (|| {
        let mut file = File::create(&partial)?;
        let report = write_gguf(&mut input, ty, opts, &mut file)?;
        file.sync_all()?;
        Ok(report)
    })();
    let mut report = finish(result, &partial, out)?;
    report.output = out.to_owned();
    Ok(report)
}

/// The lineage key of the source's content digest.
pub const CONTENT_DIGEST_KEY: &str = "adapter_registry.source.content_digest";

/// [`to_gguf`] of a model opened headers-only, with the model's content digest
/// ([`ModelDir::content_digest`]: sha256 of every weight file) first in the lineage, as
/// `adapterctl quantise --local` writes it. Hashing reads every byte of the weights, as the
/// quantisation does, so the files are hashed on a thread of their own while the model is
/// quantised: the header is written with a placeholder of the digest's length, overwritten
/// with the digest before the file is synced and renamed. The bytes are those of hashing
/// first. Returns the report, the content digest and each weight file's digest (in
/// `model.files` order, for a digest cache).
pub fn to_gguf_hashing(
    model: &ModelDir,
    ty: GgmlType,
    out: &Path,
    opts: &Options,
) -> Result<(QuantReport, Digest, Vec<Digest>), QuantError> {
    let placeholder = Digest::of_bytes(b"").to_string();
    let mut opts = opts.clone();
    opts.lineage
        .insert(0, (CONTENT_DIGEST_KEY.into(), placeholder.clone()));
    let mut source = DirSource::new(model);
    let mut input = model_input(model, &mut source)?;
    let partial = partial_path(out);
    let result = std::thread::scope(|s| {
        let hashing = s.spawn(|| file_digests(model));
        let written = (|| -> Result<_, QuantError> {
            let mut file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&partial)?;
            let report = write_gguf(&mut input, ty, &opts, &mut file)?;
            Ok((file, report))
        })();
        let digest = hashing
            .join()
            .map_err(|_| QuantError::Invalid("the hashing thread panicked".into()))?;
        let (mut file, report) = written?;
        let files = digest?;
        let digest = content_digest(
            &model
                .files
                .iter()
                .zip(&files)
                .map(|(f, d)| (f.path.as_str(), f.size, *d))
                .collect::<Vec<_>>(),
        );
        let needle = [
            &(CONTENT_DIGEST_KEY.len() as u64).to_le_bytes()[..],
            CONTENT_DIGEST_KEY.as_bytes(),
            &8u32.to_le_bytes(), // GGUF string
            &(placeholder.len() as u64).to_le_bytes(),
            placeholder.as_bytes(),
        ]
        .concat();
        let at = header_position(&mut file, &needle)? + (needle.len() - placeholder.len()) as u64;
        file.seek(SeekFrom::Start(at))?;
        file.write_all(digest.to_string().as_bytes())?;
        file.sync_all()?;
        Ok((report, digest, files))
    });
    let (mut report, digest, files) = finish(result, &partial, out)?;
    report.output = out.to_owned();
    Ok((report, digest, files))
}

/// The digest of each of `model`'s weight files, each hashed in full.
fn file_digests(model: &ModelDir) -> Result<Vec<Digest>, QuantError> {
    let digests = model
        .files
        .iter()
        .map(|f| Ok(sha256_file(&model.root.join(&f.path))?.0))
        .collect::<Result<Vec<_>, std::io::Error>>()?;
    Ok(digests)
}

/// Where `needle` starts in the header of the GGUF `file` (it must occur exactly once).
fn header_position(file: &mut File, needle: &[u8]) -> Result<u64, QuantError> {
    file.seek(SeekFrom::Start(0))?;
    let header = read_gguf(BufReader::new(&mut *file))?;
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    (&mut *file)
        .take(header.data_start)
        .read_to_end(&mut bytes)?;
    let mut found = memchr::memmem::find_iter(&bytes, needle);
    match (found.next(), found.next()) {
        (Some(at), None) => Ok(at as u64),
        _ => Err(QuantError::Invalid(
            "the content digest's place in the header is not unique".into(),
        )),
    }
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

fn finish<T>(result: Result<T, QuantError>, partial: &Path, out: &Path) -> Result<T, QuantError> {
    match result {
        Ok(v) => {
            fs::rename(partial, out)?;
            Ok(v)
        }
        Err(e) => {
            let _ = fs::remove_file(partial);
            Err(e)
        }
    }
}

/// Files copied unchanged next to an NF4 checkpoint when present.
const SIDE_FILES: [&str; 5] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "generation_config.json",
];

/// Write `model` as a bitsandbytes NF4 checkpoint into the directory `out` (created; must
/// not exist): `model.safetensors`, `config.json` with `quantization_config`, and the
/// tokenizer files when present.
pub fn to_nf4(model: &ModelDir, out: &Path, opts: &Options) -> Result<QuantReport, QuantError> {
    if model.config.is_none() {
        return Err(QuantError::Invalid(
            "the model directory has no config.json".into(),
        ));
    }
    if out.exists() {
        return Err(QuantError::Invalid(format!(
            "{}: already exists",
            out.display()
        )));
    }
    let mut source = DirSource::new(model);
    let mut input = weights_input(model, &mut source);
    let partial = partial_path(out);
    let _ = fs::remove_dir_all(&partial);
    let result = (|| {
        fs::create_dir_all(&partial)?;
        let mut file = File::create(partial.join("model.safetensors"))?;
        let (report, config) = write_nf4(&mut input, opts, &mut file)?;
        file.sync_all()?;
        let text = serde_json::to_string_pretty(&config).expect("config serialises");
        fs::write(partial.join("config.json"), text + "\n")?;
        for f in SIDE_FILES {
            let p = model.root.join(f);
            if p.is_file() {
                fs::copy(&p, partial.join(f))?;
            }
        }
        Ok(report)
    })();
    let mut report = match result {
        Ok(r) => {
            fs::rename(&partial, out)?;
            r
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    report.output = out.to_owned();
    Ok(report)
}
