//! GGUF and NF4 files written from examples/tiny-llama, re-read by our own readers.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use adapter_core::model::{Hashing, ModelDir};
use adapter_core::quant::convert::{Options, to_f32, to_gguf, to_nf4};
use adapter_core::quant::gguf::{GgufWriter, MetaValue, read_gguf};
use adapter_core::quant::llama::permute_rows;
use adapter_core::quant::nf4::{NF4_CODE, dequantize_nf4};
use adapter_core::quant::nf4_state::nf4_quant_state;
use adapter_core::quant::{GgmlType, decode, relative_rmse};
use adapter_core::safetensors::{Dtype, Limits, TensorFile};
use serde_json::{Value, json};

fn tiny() -> ModelDir {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tiny-llama");
    ModelDir::open(&dir, Hashing::HeadersOnly).unwrap()
}

fn source(model: &ModelDir, name: &str) -> Vec<f32> {
    let t = &model.tensors[name];
    let mut f = TensorFile::open(&model.root.join(&t.file), &Limits::REFERENCE).unwrap();
    to_f32(t.info.dtype, &f.tensor_bytes(name).unwrap()).unwrap()
}

fn gguf_data(path: &Path, data_start: u64, offset: u64, len: u64) -> Vec<u8> {
    let mut f = File::open(path).unwrap();
    f.seek(SeekFrom::Start(data_start + offset)).unwrap();
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf).unwrap();
    buf
}

fn opts() -> Options {
    Options {
        threads: 2,
        lineage: vec![(
            "adapter_registry.source.shape_fingerprint".into(),
            "sha256:00".into(),
        )],
        double_quant: false,
    }
}

#[test]
fn gguf_header_metadata_tensor_infos_and_alignment() {
    let model = tiny();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.gguf");
    let report = to_gguf(&model, GgmlType::Q8_0, &out, &opts()).unwrap();
    let len = std::fs::metadata(&out).unwrap().len();
    assert_eq!(report.output_bytes, len);
    let g = read_gguf(File::open(&out).unwrap()).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.alignment, 32);
    assert_eq!(g.data_start % 32, 0);
    let s = |k: &str| g.get(k).and_then(MetaValue::as_str).map(str::to_owned);
    let u = |k: &str| g.get(k).and_then(MetaValue::as_u32);
    assert_eq!(s("general.architecture").as_deref(), Some("llama"));
    assert_eq!(s("general.name").as_deref(), Some("tiny-llama"));
    assert_eq!(u("general.file_type"), Some(7));
    assert_eq!(u("general.quantization_version"), Some(2));
    assert_eq!(u("llama.context_length"), Some(256));
    assert_eq!(u("llama.embedding_length"), Some(64));
    assert_eq!(u("llama.block_count"), Some(2));
    assert_eq!(u("llama.feed_forward_length"), Some(172));
    assert_eq!(u("llama.attention.head_count"), Some(4));
    assert_eq!(u("llama.attention.head_count_kv"), Some(2));
    assert_eq!(u("llama.rope.dimension_count"), Some(16));
    assert_eq!(u("llama.vocab_size"), Some(256));
    assert_eq!(
        g.get("llama.rope.freq_base"),
        Some(&MetaValue::F32(10000.0))
    );
    assert_eq!(
        g.get("llama.attention.layer_norm_rms_epsilon"),
        Some(&MetaValue::F32(1e-5))
    );
    assert_eq!(
        s("adapter_registry.source.shape_fingerprint").as_deref(),
        Some("sha256:00")
    );

    // 2 layers × 9 tensors + token_embd, output_norm, output.
    assert_eq!(g.tensors.len(), 21);
    let t = |n: &str| g.tensor(n).unwrap_or_else(|| panic!("no {n}"));
    assert_eq!(t("token_embd.weight").dims, vec![64, 256]);
    assert_eq!(t("token_embd.weight").ty, GgmlType::Q8_0);
    assert_eq!(t("output.weight").dims, vec![64, 256]);
    assert_eq!(t("output_norm.weight").ty, GgmlType::F32);
    assert_eq!(t("blk.1.attn_norm.weight").dims, vec![64]);
    assert_eq!(t("blk.1.ffn_norm.weight").ty, GgmlType::F32);
    assert_eq!(t("blk.0.attn_k.weight").dims, vec![64, 32]); // 2 kv heads × 16
    assert_eq!(t("blk.0.ffn_gate.weight").dims, vec![64, 172]);
    assert_eq!(t("blk.0.ffn_gate.weight").ty, GgmlType::Q8_0);
    // ffn_down rows are 172 long: not a multiple of 32 → F16, and the report says so.
    assert_eq!(t("blk.0.ffn_down.weight").dims, vec![172, 64]);
    assert_eq!(t("blk.0.ffn_down.weight").ty, GgmlType::F16);
    let down = report
        .tensors
        .iter()
        .find(|r| r.output_name == "blk.0.ffn_down.weight")
        .unwrap();
    assert!(down.fallback.as_deref().unwrap().contains("172"));
    assert_eq!(
        report
            .tensors
            .iter()
            .filter(|r| r.fallback.is_some())
            .count(),
        2
    );

    // Offsets: aligned, in order, tightly packed up to padding; the file ends after the last.
    let mut expect = 0u64;
    for t in &g.tensors {
        assert_eq!(t.offset % 32, 0, "{}", t.name);
        assert_eq!(t.offset, expect, "{}", t.name);
        expect = (t.offset + t.byte_len()).div_ceil(32) * 32;
    }
    assert_eq!(g.data_start + expect, len);

    // Data: norms exact; q rows permuted as llama.cpp does; quantised within bounds.
    let norm = t("blk.1.attn_norm.weight");
    let bytes = gguf_data(&out, g.data_start, norm.offset, norm.byte_len());
    assert_eq!(
        decode(GgmlType::F32, &bytes),
        source(&model, "model.layers.1.input_layernorm.weight")
    );
    for (hf, gg, heads) in [
        (
            "model.layers.0.self_attn.q_proj.weight",
            "blk.0.attn_q.weight",
            4,
        ),
        (
            "model.layers.0.self_attn.k_proj.weight",
            "blk.0.attn_k.weight",
            2,
        ),
    ] {
        let t = t(gg);
        let back = decode(t.ty, &gguf_data(&out, g.data_start, t.offset, t.byte_len()));
        let src = source(&model, hf);
        let rows = t.dims[1] as usize;
        let permuted = permute_rows(&src, rows, 64, heads).unwrap();
        assert!(relative_rmse(&permuted, &back) < 0.01, "{gg}");
        assert!(relative_rmse(&src, &back) > 0.5, "{gg}: not permuted?");
    }
}

#[test]
fn permutation_pairs_the_rotary_halves_of_each_head() {
    // 8 rows, 2 heads of 4: within a head row j·2 + i moves to 2·i + j.
    let x: Vec<f32> = (0..8).map(|r| r as f32).collect();
    assert_eq!(
        permute_rows(&x, 8, 1, 2).unwrap(),
        vec![0., 2., 1., 3., 4., 6., 5., 7.]
    );
    assert!(permute_rows(&x, 8, 1, 3).is_err());
}

#[test]
fn every_type_round_trips_through_the_file() {
    let model = tiny();
    let tmp = tempfile::tempdir().unwrap();
    for ty in GgmlType::QUANTISED {
        let out = tmp.path().join(format!("{ty}.gguf"));
        let report = to_gguf(&model, ty, &out, &opts()).unwrap();
        let g = read_gguf(File::open(&out).unwrap()).unwrap();
        assert_eq!(
            g.get("general.file_type").and_then(MetaValue::as_u32),
            Some(ty.file_type())
        );
        let v = g.tensor("blk.0.attn_v.weight").unwrap();
        // Rows of 64: K-quants (256) fall back to Q8_0.
        let want = if ty.block_size() == 256 {
            GgmlType::Q8_0
        } else {
            ty
        };
        assert_eq!(v.ty, want, "{ty}");
        let back = decode(v.ty, &gguf_data(&out, g.data_start, v.offset, v.byte_len()));
        let err = relative_rmse(
            &source(&model, "model.layers.0.self_attn.v_proj.weight"),
            &back,
        );
        assert!(err < 0.15, "{ty}: {err}");
        let reported = report
            .tensors
            .iter()
            .find(|r| r.output_name == "blk.0.attn_v.weight")
            .unwrap();
        assert!((reported.relative_rmse - err).abs() < 1e-9);
    }
}

#[test]
fn reader_refuses_broken_headers() {
    let meta = vec![("general.alignment".to_owned(), MetaValue::U32(32))];
    let tensors = vec![("a".to_owned(), vec![32u64, 2], GgmlType::Q8_0)];
    let mut w = GgufWriter::start(Vec::new(), &meta, &tensors).unwrap();
    assert!(w.write_tensor(&[0u8; 10]).is_err(), "wrong length accepted");
    w.write_tensor(&[0u8; 68]).unwrap();
    let (good, _) = w.finish().unwrap();
    assert!(read_gguf(good.as_slice()).is_ok());

    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(
        read_gguf(bad.as_slice())
            .unwrap_err()
            .to_string()
            .contains("magic")
    );
    let mut bad = good.clone();
    bad[4] = 2; // version 2
    assert!(
        read_gguf(bad.as_slice())
            .unwrap_err()
            .to_string()
            .contains("version")
    );
    // A string length of 2^62 must be refused, not allocated.
    let mut bad = good.clone();
    bad[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(read_gguf(bad.as_slice()).is_err());
    // Truncated header.
    assert!(read_gguf(&good[..40]).is_err());
    // A row length that is not a multiple of the block is refused by the writer.
    let odd = vec![("b".to_owned(), vec![48u64], GgmlType::Q8_0)];
    assert!(GgufWriter::start(Vec::new(), &[], &odd).is_err());
}

/// A GGUF header with no metadata and one tensor `h` (the layout of gguf.rs's reader).
fn one_tensor_gguf(dims: &[u64], ggml_type: u32, offset: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes()); // tensors
    b.extend(0u64.to_le_bytes()); // metadata keys
    b.extend(1u64.to_le_bytes());
    b.push(b'h');
    b.extend((dims.len() as u32).to_le_bytes());
    dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
    b.extend(ggml_type.to_le_bytes());
    b.extend(offset.to_le_bytes());
    b.resize(b.len().next_multiple_of(32), 0);
    b
}

/// Found by the `gguf` fuzz target (fuzz/): dimensions whose element count fits 64 bits but
/// whose byte length does not (F32 `[2^62, 1]`: 2^64 bytes), or an offset that overflows
/// once the tensor's length is added, panicked with an arithmetic overflow. Refused now.
#[test]
fn reader_refuses_sizes_and_offsets_that_overflow() {
    let f32_id = 0;
    let fine = one_tensor_gguf(&[32, 2], f32_id, 0);
    assert_eq!(
        read_gguf(fine.as_slice()).unwrap().tensors[0].byte_len(),
        256
    );
    // The crashing input, byte for byte.
    let crash = one_tensor_gguf(&[1 << 62, 1], f32_id, 0);
    assert_eq!(crash.len(), 96);
    let err = read_gguf(crash.as_slice()).unwrap_err().to_string();
    assert!(err.contains("bad dimensions"), "{err}");
    let crash = one_tensor_gguf(&[1 << 32, 1 << 32], f32_id, 0);
    assert!(read_gguf(crash.as_slice()).is_err());
    let at_the_end = u64::MAX - 31; // a multiple of the alignment
    let crash = one_tensor_gguf(&[32], f32_id, at_the_end);
    let err = read_gguf(crash.as_slice()).unwrap_err().to_string();
    assert!(err.contains("overflows"), "{err}");
}

/// The writer laid out a header the reader accepted (one tensor whose data ends just short
/// of 2^64 bytes) and panicked adding the padding after it (the gguf fuzz target's crash).
/// It refuses such a layout now.
#[test]
fn writer_refuses_a_data_section_past_2_64_bytes() {
    let q8_0 = GgmlType::Q8_0;
    // 2^59 rows of 32 values: 34 bytes each, 2^64 + 2^60 bytes in all.
    let huge = vec![("t".to_owned(), vec![32u64, 1 << 59], q8_0)];
    let err = GgufWriter::start(Vec::new(), &[], &huge).err().unwrap();
    assert!(err.to_string().contains("past 2^64"), "{err}");
    // The fuzzer's input, byte for byte: the reader takes it, the writer must not panic.
    let crash: [u8; 65] = [
        0x47, 0x47, 0x55, 0x46, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x68, 0x02, 0x00, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    let file = read_gguf(crash.as_slice()).unwrap();
    let tensors: Vec<_> = file
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.dims.clone(), t.ty))
        .collect();
    let err = GgufWriter::start(Vec::new(), &file.metadata, &tensors)
        .err()
        .unwrap();
    assert!(err.to_string().contains("past 2^64"), "{err}");
}

#[test]
fn gguf_refuses_non_llama_models() {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tiny-llama");
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    let cfg = tmp.path().join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["model_type"] = json!("gpt2");
    v["architectures"] = json!(["GPT2LMHeadModel"]);
    std::fs::write(&cfg, v.to_string()).unwrap();
    let model = ModelDir::open(tmp.path(), Hashing::HeadersOnly).unwrap();
    let out = tmp.path().join("x.gguf");
    let err = to_gguf(&model, GgmlType::Q8_0, &out, &opts()).unwrap_err();
    assert!(err.to_string().contains("Llama"), "{err}");
    assert!(!out.exists());
    assert!(!PathBuf::from(format!("{}.partial", out.display())).exists());
}

#[test]
fn nf4_checkpoint_has_the_bitsandbytes_layout() {
    let model = tiny();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nf4");
    let report = to_nf4(&model, &out, &opts()).unwrap();
    let mut f = TensorFile::open(&out.join("model.safetensors"), &Limits::REFERENCE).unwrap();
    let p = "model.layers.0.self_attn.q_proj.weight";
    let info = f.info(p).unwrap().clone();
    assert_eq!(
        (info.dtype, info.shape.clone()),
        (Dtype::U8, vec![64 * 64 / 2, 1])
    );
    let absmax = f.info(&format!("{p}.absmax")).unwrap().clone();
    assert_eq!((absmax.dtype, absmax.shape.clone()), (Dtype::F32, vec![64]));
    let qmap = to_f32(
        Dtype::F32,
        &f.tensor_bytes(&format!("{p}.quant_map")).unwrap(),
    )
    .unwrap();
    assert_eq!(qmap, NF4_CODE.to_vec());
    let state = f
        .tensor_bytes(&format!("{p}.quant_state.bitsandbytes__nf4"))
        .unwrap();
    let state_json: Value = serde_json::from_slice(&state).unwrap();
    assert_eq!(
        state_json,
        json!({"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [64, 64]})
    );
    assert_eq!(
        String::from_utf8(state).unwrap(),
        nf4_quant_state(Dtype::BF16, &[64, 64])
    );

    // Decoding with the bitsandbytes formula gets back close to the source.
    let codes = f.tensor_bytes(p).unwrap();
    let am = to_f32(Dtype::F32, &f.tensor_bytes(&format!("{p}.absmax")).unwrap()).unwrap();
    let back = dequantize_nf4(&codes, &am, 64 * 64);
    let src = source(&model, p);
    let err = relative_rmse(&src, &back);
    assert!(err < 0.15 && err > 0.0, "{err}");
    // absmax is the block's largest magnitude.
    assert_eq!(am[0], src[..64].iter().fold(0f32, |a, v| a.max(v.abs())));

    // Not quantised: embeddings, lm_head, norms — same dtype, shape and bytes.
    for name in [
        "model.embed_tokens.weight",
        "lm_head.weight",
        "model.norm.weight",
    ] {
        let t = &model.tensors[name];
        let got = f.info(name).unwrap().clone();
        assert_eq!(
            (got.dtype, &got.shape),
            (t.info.dtype, &t.info.shape),
            "{name}"
        );
        let mut sf = TensorFile::open(&model.root.join(&t.file), &Limits::REFERENCE).unwrap();
        assert_eq!(
            f.tensor_bytes(name).unwrap(),
            sf.tensor_bytes(name).unwrap()
        );
        assert!(f.info(&format!("{name}.absmax")).is_err());
    }
    let quantised = report
        .tensors
        .iter()
        .filter(|t| t.stored_as == "nf4")
        .count();
    assert_eq!(quantised, 14); // 7 linear layers × 2 blocks

    let cfg: Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    let q = &cfg["quantization_config"];
    assert_eq!(q["quant_method"], "bitsandbytes");
    assert_eq!(q["load_in_4bit"], true);
    assert_eq!(q["bnb_4bit_quant_type"], "nf4");
    assert_eq!(q["bnb_4bit_compute_dtype"], "bfloat16");
    assert_eq!(cfg["hidden_size"], 64);

    // An existing output is refused.
    assert!(to_nf4(&model, &out, &opts()).is_err());
}

/// `adapterctl quantise --local` hashes the weights while it quantises them: the file has the
/// bytes of hashing first (the digest in place of the placeholder), and no `.partial` stays.
#[test]
fn hashing_while_quantising_writes_the_bytes_of_hashing_first() {
    use adapter_core::quant::convert::{CONTENT_DIGEST_KEY, to_gguf_hashing};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tiny-llama");
    let full = ModelDir::open(&dir, Hashing::Full).unwrap();
    let digest = full.content_digest().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for ty in [GgmlType::Q8_0, GgmlType::Q4K] {
        let (first, during) = (
            tmp.path().join("first.gguf"),
            tmp.path().join("during.gguf"),
        );
        let mut hashed_first = opts();
        hashed_first
            .lineage
            .insert(0, (CONTENT_DIGEST_KEY.into(), digest.to_string()));
        to_gguf(&full, ty, &first, &hashed_first).unwrap();
        let (report, got, files) = to_gguf_hashing(&tiny(), ty, &during, &opts()).unwrap();
        assert_eq!(got, digest);
        let each: Vec<_> = full.files.iter().map(|f| f.digest.unwrap()).collect();
        assert_eq!(files, each);
        assert_eq!(report.output, during);
        let bytes = std::fs::read(&during).unwrap();
        assert!(bytes == std::fs::read(&first).unwrap(), "{ty}");
        let g = read_gguf(bytes.as_slice()).unwrap();
        assert_eq!(
            g.get(CONTENT_DIGEST_KEY).and_then(MetaValue::as_str),
            Some(digest.to_string().as_str())
        );
        assert_eq!(
            g.metadata.last().map(|(k, _)| k.as_str()),
            Some("adapter_registry.source.shape_fingerprint")
        );
        assert!(!tmp.path().join("during.gguf.partial").exists());
    }
}
