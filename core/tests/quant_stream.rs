//! The streaming entry points (`write_gguf`, `write_nf4`) over an in-memory tensor source:
//! the same bytes as the directory converters, deterministic, and clear errors when the
//! source misbehaves.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use adapter_core::merge::{MergeError, TensorSource};
use adapter_core::model::{Hashing, ModelDir};
use adapter_core::quant::convert::{to_gguf, to_nf4};
use adapter_core::quant::gguf::{MetaValue, read_gguf};
use adapter_core::quant::{GgmlType, ModelInput, Options, QuantError, write_gguf, write_nf4};
use adapter_core::safetensors::{Limits, TensorFile, TensorInfo};
use serde_json::Value;

fn tiny() -> ModelDir {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tiny-llama");
    ModelDir::open(&dir, Hashing::HeadersOnly).unwrap()
}

/// What a misbehaving source does to one named tensor.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    Short,
    Long,
    Fails,
    Refuses,
}

/// Every tensor's bytes in memory, as a blob store would serve them.
struct MemSource {
    bytes: BTreeMap<String, Vec<u8>>,
    fault: (String, Fault),
    reads: usize,
}

impl MemSource {
    fn of(model: &ModelDir) -> Self {
        let mut bytes = BTreeMap::new();
        for (name, t) in &model.tensors {
            let mut f = TensorFile::open(&model.root.join(&t.file), &Limits::REFERENCE).unwrap();
            bytes.insert(name.clone(), f.tensor_bytes(name).unwrap());
        }
        Self {
            bytes,
            fault: (String::new(), Fault::None),
            reads: 0,
        }
    }
}

struct FailingReader;

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "blob store went away",
        ))
    }
}

impl TensorSource for MemSource {
    fn tensor(&mut self, info: &TensorInfo) -> Result<Box<dyn Read + '_>, MergeError> {
        self.reads += 1;
        let data = &self.bytes[&info.name];
        let fault = if self.fault.0 == info.name {
            self.fault.1
        } else {
            Fault::None
        };
        Ok(match fault {
            Fault::None => Box::new(data.as_slice()),
            Fault::Short => Box::new(&data[..data.len() - 3]),
            Fault::Long => Box::new(data.as_slice().chain(&[0u8; 2][..])),
            Fault::Fails => Box::new(data[..10].chain(FailingReader)),
            Fault::Refuses => return Err(MergeError::Input("no such blob".into())),
        })
    }
}

fn input<'a>(model: &ModelDir, src: &'a mut MemSource) -> ModelInput<'a> {
    ModelInput {
        name: "tiny-llama".into(),
        config: model.config.clone(),
        tensors: model.tensor_infos(),
        tokenizer_json: None,
        tokenizer_config: None,
        source_bytes: model.files.iter().map(|f| f.size).sum(),
        source: src,
    }
}

fn opts(threads: usize) -> Options {
    Options {
        threads,
        ..Options::default()
    }
}

#[test]
fn write_gguf_from_memory_matches_to_gguf_of_the_directory() {
    let model = tiny();
    let tmp = tempfile::tempdir().unwrap();
    for ty in [GgmlType::Q8_0, GgmlType::Q4K] {
        let path = tmp.path().join(format!("{ty}.gguf"));
        let from_dir = to_gguf(&model, ty, &path, &opts(2)).unwrap();
        let on_disk = std::fs::read(&path).unwrap();

        let mut src = MemSource::of(&model);
        let mut out = Vec::new();
        let report = write_gguf(&mut input(&model, &mut src), ty, &opts(1), &mut out).unwrap();
        assert!(
            out == on_disk,
            "{ty}: streamed bytes differ from to_gguf's file"
        );
        assert_eq!(report.output, std::path::PathBuf::new());
        assert_eq!(report.output_bytes, out.len() as u64);
        assert_eq!(from_dir.output, path);
        assert_eq!(report.source_bytes, from_dir.source_bytes);
        assert_eq!(report.tensors.len(), from_dir.tensors.len());
        assert_eq!(src.reads, 21, "one read per written tensor");

        // Deterministic: a retried job writes the same bytes (threads do not matter).
        let mut again = Vec::new();
        let mut src = MemSource::of(&model);
        write_gguf(&mut input(&model, &mut src), ty, &opts(3), &mut again).unwrap();
        assert!(again == out, "{ty}: not deterministic");

        let g = read_gguf(out.as_slice()).unwrap();
        assert_eq!(
            g.get("general.name").and_then(MetaValue::as_str),
            Some("tiny-llama")
        );
    }
}

#[test]
fn write_nf4_from_memory_matches_to_nf4_of_the_directory() {
    let model = tiny();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nf4");
    to_nf4(&model, &dir, &opts(2)).unwrap();
    let on_disk = std::fs::read(dir.join("model.safetensors")).unwrap();
    let config: Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();

    let mut src = MemSource::of(&model);
    let mut out = Vec::new();
    let (report, cfg) = write_nf4(&mut input(&model, &mut src), &opts(1), &mut out).unwrap();
    assert!(
        out == on_disk,
        "streamed NF4 bytes differ from to_nf4's file"
    );
    assert_eq!(report.output_bytes, out.len() as u64);
    assert_eq!(report.output, std::path::PathBuf::new());
    assert_eq!(cfg, config);
    assert_eq!(cfg["quantization_config"]["bnb_4bit_quant_type"], "nf4");
    // The input config itself is untouched.
    assert!(model.config.as_ref().unwrap()["quantization_config"].is_null());
    // The output parses as safetensors.
    let path = tmp.path().join("streamed.safetensors");
    std::fs::write(&path, &out).unwrap();
    TensorFile::open(&path, &Limits::REFERENCE).unwrap();
}

fn fault_error(fault: Fault, nf4: bool) -> QuantError {
    let model = tiny();
    let name = "model.layers.1.mlp.up_proj.weight";
    let mut src = MemSource::of(&model);
    src.fault = (name.into(), fault);
    let mut out = Vec::new();
    let mut inp = input(&model, &mut src);
    let err = if nf4 {
        write_nf4(&mut inp, &opts(1), &mut out)
            .map(|_| ())
            .unwrap_err()
    } else {
        write_gguf(&mut inp, GgmlType::Q8_0, &opts(1), &mut out)
            .map(|_| ())
            .unwrap_err()
    };
    let text = err.to_string();
    assert!(text.contains(name), "{text}");
    err
}

#[test]
fn a_source_that_yields_short_long_or_failing_data_is_named() {
    for nf4 in [false, true] {
        let err = fault_error(Fault::Short, nf4);
        assert!(matches!(err, QuantError::Source { .. }), "{err:?}");
        assert!(err.to_string().contains("yielded"), "{err}");

        let err = fault_error(Fault::Long, nf4);
        assert!(err.to_string().contains("more than"), "{err}");

        let err = fault_error(Fault::Fails, nf4);
        assert!(err.to_string().contains("blob store went away"), "{err}");
        let QuantError::Source { source, .. } = err else {
            panic!("not a source error")
        };
        assert!(matches!(*source, MergeError::Io(_)));

        let err = fault_error(Fault::Refuses, nf4);
        assert!(err.to_string().contains("no such blob"), "{err}");
    }
}

#[test]
fn inconsistent_tensor_infos_are_refused_before_reading() {
    let model = tiny();
    let mut src = MemSource::of(&model);
    let mut inp = input(&model, &mut src);
    let name = "model.norm.weight";
    inp.tensors.get_mut(name).unwrap().data_offsets.1 += 4;
    let err = write_gguf(&mut inp, GgmlType::Q8_0, &opts(1), &mut Vec::new()).unwrap_err();
    assert!(
        err.to_string().contains(name) && err.to_string().contains("bytes for shape"),
        "{err}"
    );
    inp.tensors.get_mut(name).unwrap().data_offsets.1 -= 4;
    inp.tensors.get_mut(name).unwrap().name = "other".into();
    let err = write_nf4(&mut inp, &opts(1), &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("names `other`"), "{err}");
    inp.config = None;
    let err = write_gguf(&mut inp, GgmlType::Q8_0, &opts(1), &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
    drop(inp);
    assert_eq!(src.reads, 0);
}

#[test]
fn the_dir_converter_reports_a_missing_shard_by_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tiny-llama");
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    let model = ModelDir::open(tmp.path(), Hashing::HeadersOnly).unwrap();
    // Truncate the second shard after the headers were read.
    let shard = tmp.path().join("model-00002-of-00002.safetensors");
    let len = std::fs::metadata(&shard).unwrap().len();
    File::options()
        .write(true)
        .open(&shard)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let out = tmp.path().join("x.gguf");
    let err = to_gguf(&model, GgmlType::Q8_0, &out, &opts(1)).unwrap_err();
    assert!(matches!(err, QuantError::Source { .. }), "{err:?}");
    assert!(!out.exists());
    assert!(!tmp.path().join("x.gguf.partial").exists());
}
