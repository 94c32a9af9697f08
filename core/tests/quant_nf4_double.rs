//! NF4 double quantisation (bitsandbytes `compress_statistics`): the nested absmax against a
//! plain re-implementation of bitsandbytes' formulas, and the checkpoint layout.

use std::path::Path;

use adapter_core::model::{Hashing, ModelDir};
use adapter_core::quant::convert::{Options, to_f32, to_nf4};
use adapter_core::quant::nf4::{NF4_BLOCK, NF4_CODE, dequantize_nf4, quantize_nf4};
use adapter_core::quant::nf4_double::{
    NESTED_BLOCK, compress_absmax, decompress_absmax, dequantize_nf4_nested, dynamic_map,
};
use adapter_core::quant::relative_rmse;
use adapter_core::safetensors::{Dtype, Limits, TensorFile};
use serde_json::Value;

fn gaussian(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (next(), next());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos() * 0.02) as f32
        })
        .collect()
}

/// bitsandbytes' dequantisation, written out: `dequantize_blockwise(qabsmax, state2) + offset`
/// (code[q] · absmax2[block of 256]), then `dDequantizeNF4(q) · absmax[block of 64]` with the
/// even element in the high nibble.
fn bnb_dequant(
    packed: &[u8],
    qabsmax: &[u8],
    absmax2: &[f32],
    code2: &[f32],
    offset: f32,
    n: usize,
) -> Vec<f32> {
    let mut absmax = vec![0f32; qabsmax.len()];
    for (i, a) in absmax.iter_mut().enumerate() {
        let v = code2[qabsmax[i] as usize] * absmax2[i / 256];
        *a = v + offset;
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let nibble = if i % 2 == 0 {
            packed[i / 2] >> 4
        } else {
            packed[i / 2] & 15
        };
        out.push(NF4_CODE[nibble as usize] * absmax[i / 64]);
    }
    out
}

#[test]
fn nested_absmax_decodes_as_bitsandbytes_does() {
    let map = dynamic_map();
    // 600 NF4 blocks → 3 nested blocks, the last one short; an odd length.
    for n in [64 * 600 + 17, 64 * 3, 1] {
        let x = gaussian(n, n as u64);
        let (codes, absmax) = quantize_nf4(&x);
        let nested = compress_absmax(&absmax, &map);
        assert_eq!(nested.codes.len(), absmax.len());
        assert_eq!(nested.absmax.len(), absmax.len().div_ceil(NESTED_BLOCK));
        let mean = absmax.iter().map(|&v| f64::from(v)).sum::<f64>() / absmax.len() as f64;
        assert_eq!(nested.offset, mean as f32);
        // Each nested absmax is its block's largest |absmax − offset|, and each code is a
        // nearest map entry to (absmax − offset) / that.
        for (b, chunk) in absmax.chunks(NESTED_BLOCK).enumerate() {
            let m = chunk
                .iter()
                .map(|a| (a - nested.offset).abs())
                .fold(0f32, f32::max);
            assert_eq!(nested.absmax[b], m);
            for (j, a) in chunk.iter().enumerate() {
                if m == 0.0 {
                    continue;
                }
                let v = (a - nested.offset) / m;
                let q = nested.codes[b * NESTED_BLOCK + j] as usize;
                let best = map
                    .iter()
                    .map(|c| (c - v).abs())
                    .fold(f32::INFINITY, f32::min);
                assert!((map[q] - v).abs() <= best + 1e-6, "block {b} item {j}");
            }
        }
        let ours = dequantize_nf4_nested(&codes, &nested, &map, n);
        let theirs = bnb_dequant(
            &codes,
            &nested.codes,
            &nested.absmax,
            &map,
            nested.offset,
            n,
        );
        assert!(
            ours.iter()
                .zip(&theirs)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "decoders differ (n = {n})"
        );
        // The 8-bit absmax costs little: within 1% of the max deviation per value, and the
        // tensor error stays close to plain NF4's.
        let back = decompress_absmax(&nested, &map);
        let dev = nested.absmax.iter().fold(0f32, |a, &b| a.max(b));
        for (a, b) in absmax.iter().zip(&back) {
            assert!((a - b).abs() <= 0.01 * dev + 1e-9, "{a} vs {b}");
        }
        let plain = relative_rmse(&x, &dequantize_nf4(&codes, &absmax, n));
        let double = relative_rmse(&x, &ours);
        assert!(double < plain * 1.05 + 1e-3, "{double} vs {plain}");
    }
}

#[test]
fn equal_absmax_values_decode_to_the_offset() {
    let map = dynamic_map();
    let x: Vec<f32> = (0..64 * 5)
        .map(|i| if i % 2 == 0 { 0.5 } else { -0.5 })
        .collect();
    let (_, absmax) = quantize_nf4(&x);
    let nested = compress_absmax(&absmax, &map);
    assert_eq!(nested.absmax, vec![0.0]);
    assert_eq!(decompress_absmax(&nested, &map), absmax);
}

fn tiny() -> ModelDir {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tiny-llama");
    ModelDir::open(&dir, Hashing::HeadersOnly).unwrap()
}

#[test]
fn double_quant_checkpoint_has_the_bitsandbytes_layout() {
    let model = tiny();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nf4dq");
    let opts = Options {
        threads: 1,
        double_quant: true,
        ..Options::default()
    };
    let report = to_nf4(&model, &out, &opts).unwrap();
    let mut f = TensorFile::open(&out.join("model.safetensors"), &Limits::REFERENCE).unwrap();
    let p = "model.layers.0.mlp.up_proj.weight"; // [172, 64]: 172 blocks of 64
    let n = 172 * 64;
    let shape = |name: &str| {
        let i = f.info(name).unwrap();
        (i.dtype, i.shape.clone())
    };
    assert_eq!(shape(p), (Dtype::U8, vec![n as u64 / 2, 1]));
    assert_eq!(shape(&format!("{p}.absmax")), (Dtype::U8, vec![172]));
    assert_eq!(shape(&format!("{p}.quant_map")), (Dtype::F32, vec![16]));
    assert_eq!(shape(&format!("{p}.nested_absmax")), (Dtype::F32, vec![1]));
    assert_eq!(
        shape(&format!("{p}.nested_quant_map")),
        (Dtype::F32, vec![256])
    );
    let f32s = |f: &mut TensorFile<std::fs::File>, k: &str| {
        to_f32(Dtype::F32, &f.tensor_bytes(&format!("{p}.{k}")).unwrap()).unwrap()
    };
    let code2 = f32s(&mut f, "nested_quant_map");
    assert_eq!(code2, dynamic_map().to_vec());
    assert_eq!(f32s(&mut f, "quant_map"), NF4_CODE.to_vec());
    let absmax2 = f32s(&mut f, "nested_absmax");

    // The quant state: as_dict(packed=True)'s keys in order, padded with spaces.
    let raw = f
        .tensor_bytes(&format!("{p}.quant_state.bitsandbytes__nf4"))
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let json = text.trim_end_matches(' ');
    assert!(json.ends_with('}'));
    assert!(
        json.starts_with(
            "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \
             \"shape\": [172, 64], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \
             \"nested_offset\": "
        ),
        "{json}"
    );
    let state: Value = serde_json::from_str(&text).unwrap();
    let offset = state["nested_offset"].as_f64().unwrap() as f32;

    // The offset is the mean of the source's absmax values.
    let t = &model.tensors[p];
    let mut sf = TensorFile::open(&model.root.join(&t.file), &Limits::REFERENCE).unwrap();
    let src = to_f32(t.info.dtype, &sf.tensor_bytes(p).unwrap()).unwrap();
    let (_, src_absmax) = quantize_nf4(&src);
    assert_eq!(offset, compress_absmax(&src_absmax, &dynamic_map()).offset);

    // Decoding the file with bitsandbytes' formula gets back close to the source, and is what
    // the report measured.
    let packed = f.tensor_bytes(p).unwrap();
    let qabsmax = f.tensor_bytes(&format!("{p}.absmax")).unwrap();
    let back = bnb_dequant(&packed, &qabsmax, &absmax2, &code2, offset, n);
    let err = relative_rmse(&src, &back);
    assert!(err > 0.0 && err < 0.15, "{err}");
    let reported = report.tensors.iter().find(|r| r.name == p).unwrap();
    assert!((reported.relative_rmse - err).abs() < 1e-9);
    assert_eq!(src_absmax.len(), n / NF4_BLOCK);

    let cfg: Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["quantization_config"]["bnb_4bit_use_double_quant"],
        true
    );

    // Without the option: F32 absmax, no nested tensors, the flag false.
    let plain = tmp.path().join("nf4");
    to_nf4(&model, &plain, &Options::default()).unwrap();
    let mut g = TensorFile::open(&plain.join("model.safetensors"), &Limits::REFERENCE).unwrap();
    assert_eq!(g.info(&format!("{p}.absmax")).unwrap().dtype, Dtype::F32);
    assert!(g.info(&format!("{p}.nested_absmax")).is_err());
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(plain.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["quantization_config"]["bnb_4bit_use_double_quant"],
        false
    );
    let _ = g.tensor_bytes(p).unwrap();
}
