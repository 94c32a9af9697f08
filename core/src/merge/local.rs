//! Merging local directories: an adapter directory and a base model directory into a new
//! model directory, written into a temporary sibling and renamed into place.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::MergeError;
use super::plan::{MergeOptions, ModuleScaleUsed, plan};
use super::write::{Progress, TensorSource, write_shard};
use crate::compat::{AdapterFacts, BaseFacts};
use crate::model::{Hashing, INDEX_FILE, ModelDir};
use crate::peft::{CONFIG_FILE, PeftError, WEIGHTS_FILE};
use crate::safetensors::{Limits, TensorFile, TensorInfo};

/// Files copied from the base when present: what `from_pretrained` needs beside the weights.
const COPIED: &[&str] = &[
    "config.json",
    "generation_config.json",
    "special_tokens_map.json",
];

/// Whether a merged model takes this top-level file of its base as it is (configs and
/// tokenizer files).
pub fn is_copied_file(name: &str) -> bool {
    COPIED.contains(&name) || (name.starts_with("tokenizer") && !name.contains('/'))
}

/// A base model directory read one tensor at a time (shard files opened on first use).
#[derive(Debug)]
pub struct DirSource {
    root: PathBuf,
    file_of: HashMap<String, String>,
    open: HashMap<String, TensorFile<File>>,
}

impl DirSource {
    pub fn new(model: &ModelDir) -> Self {
        Self {
            root: model.root.clone(),
            file_of: model
                .tensors
                .iter()
                .map(|(k, v)| (k.clone(), v.file.clone()))
                .collect(),
            open: HashMap::new(),
        }
    }
}

impl DirSource {
    /// The open shard file that holds `info`, checked to describe it as `info` does.
    fn file_of(&mut self, info: &TensorInfo) -> Result<&mut TensorFile<File>, MergeError> {
        let file = self
            .file_of
            .get(&info.name)
            .ok_or_else(|| MergeError::Input(format!("the base has no tensor {}", info.name)))?
            .clone();
        if !self.open.contains_key(&file) {
            let path = self.root.join(&file);
            let opened = TensorFile::open(&path, &Limits::REFERENCE)
                .map_err(|source| crate::model::ModelError::Safetensors { path, source })?;
            self.open.insert(file.clone(), opened);
        }
        Ok(self.open.get_mut(&file).expect("inserted above"))
    }
}

impl TensorSource for DirSource {
    fn tensor(&mut self, info: &TensorInfo) -> Result<Box<dyn Read + '_>, MergeError> {
        tensor_of(self.file_of(info)?, info)
    }

    fn file_at(&mut self, info: &TensorInfo) -> Result<Option<(File, u64)>, MergeError> {
        let tf = self.file_of(info)?;
        same_tensor(tf, info)?;
        let at = tf
            .tensor_at(&info.name)
            .map_err(|e| MergeError::Input(e.to_string()))?;
        Ok(Some(at))
    }
}

/// `tf` describes `info` as the plan saw it.
fn same_tensor<R: Read + std::io::Seek>(
    tf: &TensorFile<R>,
    info: &TensorInfo,
) -> Result<(), MergeError> {
    let have = tf
        .info(&info.name)
        .map_err(|e| MergeError::Input(e.to_string()))?;
    if have != info {
        return Err(MergeError::Input(format!(
            "{}: the file changed since the merge was planned",
            info.name
        )));
    }
    Ok(())
}

fn tensor_of<'a, R: Read + std::io::Seek>(
    tf: &'a mut TensorFile<R>,
    info: &TensorInfo,
) -> Result<Box<dyn Read + 'a>, MergeError> {
    same_tensor(tf, info)?;
    let reader = tf
        .tensor_reader(&info.name)
        .map_err(|e| MergeError::Input(e.to_string()))?;
    Ok(Box::new(reader))
}

impl<R: Read + std::io::Seek> TensorSource for TensorFile<R> {
    fn tensor(&mut self, info: &TensorInfo) -> Result<Box<dyn Read + '_>, MergeError> {
        tensor_of(self, info)
    }
}

/// One written file.
#[derive(Debug, Clone, Serialize)]
pub struct OutputFile {
    pub path: String,
    pub size: u64,
}

/// What [`merge_dir`] did.
#[derive(Debug, Clone, Serialize)]
pub struct MergeSummary {
    pub output: PathBuf,
    pub files: Vec<OutputFile>,
    pub tensors: usize,
    /// Tensors that received a low-rank update (or DoRA, or a lora_bias).
    pub merged: usize,
    /// Tensors replaced by the adapter's saved copies (modules_to_save, trained biases).
    pub replaced: usize,
    pub copied: usize,
    pub scales: Vec<ModuleScaleUsed>,
    pub warnings: Vec<String>,
    /// Where the LoRA products were computed (`cpu`, `cuda:N`).
    pub device: String,
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> MergeError + '_ {
    move |source| MergeError::Path {
        path: path.to_owned(),
        source,
    }
}

/// Merge the adapter in `adapter_dir` into the base in `base_dir`, writing `out_dir` (which
/// must not exist). Nothing appears at `out_dir` unless the whole merge succeeded.
pub fn merge_dir(
    adapter_dir: &Path,
    base_dir: &Path,
    out_dir: &Path,
    options: &MergeOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<MergeSummary, MergeError> {
    if out_dir.exists() {
        return Err(MergeError::Usage(format!(
            "{} exists already; choose a new output directory",
            out_dir.display()
        )));
    }
    let config_path = adapter_dir.join(CONFIG_FILE);
    let config_json = std::fs::read(&config_path).map_err(io_at(&config_path))?;
    let weights = adapter_dir.join(WEIGHTS_FILE);
    let mut adapter = TensorFile::open(&weights, &Limits::default()).map_err(|source| {
        PeftError::Safetensors {
            path: weights.clone(),
            source,
        }
    })?;
    let base = ModelDir::open(base_dir, Hashing::HeadersOnly)?;
    let facts = (
        AdapterFacts {
            config_json,
            tensors: adapter.header().tensors.clone(),
            recorded_base: None,
        },
        BaseFacts {
            tensors: base.tensor_infos(),
            config: base.config.clone(),
            content_digest: None,
            shape_fingerprint: base.shape_fingerprint(),
        },
    );
    let planned = plan(&facts.0, &facts.1, options)?;

    let name = out_dir
        .file_name()
        .ok_or_else(|| MergeError::Usage(format!("{}: not a directory name", out_dir.display())))?;
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let tmp = parent.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::create_dir_all(&tmp).map_err(io_at(&tmp))?;
    let result = (|| {
        let mut source = DirSource::new(&base);
        let mut files = Vec::new();
        for shard in &planned.shards {
            let path = tmp.join(&shard.file_name);
            let file = File::create(&path).map_err(io_at(&path))?;
            let mut out = BufWriter::with_capacity(8 << 20, file);
            write_shard(
                shard,
                &options.device,
                &mut source,
                &mut adapter,
                &mut out,
                progress,
            )?;
            let file = out
                .into_inner()
                .map_err(|e| MergeError::Io(e.into_error()))?;
            file.sync_all().map_err(io_at(&path))?;
            files.push(OutputFile {
                path: shard.file_name.clone(),
                size: shard.len(),
            });
        }
        if let Some(index) = planned.index_json() {
            let path = tmp.join(INDEX_FILE);
            std::fs::write(&path, &index).map_err(io_at(&path))?;
            files.push(OutputFile {
                path: INDEX_FILE.to_owned(),
                size: index.len() as u64,
            });
        }
        for entry in std::fs::read_dir(base_dir).map_err(io_at(base_dir))? {
            let entry = entry.map_err(io_at(base_dir))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if is_copied_file(&file_name) && entry.file_type().map_err(io_at(base_dir))?.is_file() {
                let to = tmp.join(&file_name);
                let size = std::fs::copy(entry.path(), &to).map_err(io_at(&to))?;
                files.push(OutputFile {
                    path: file_name,
                    size,
                });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        std::fs::rename(&tmp, out_dir).map_err(io_at(out_dir))?;
        Ok(files)
    })();
    let files = match result {
        Ok(files) => files,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let (merged, replaced, copied) = planned.counts();
    Ok(MergeSummary {
        output: out_dir.to_owned(),
        files,
        tensors: planned.tensor_count(),
        merged,
        replaced,
        copied,
        scales: planned.scales,
        warnings: planned.warnings,
        device: options.device.name(),
    })
}
