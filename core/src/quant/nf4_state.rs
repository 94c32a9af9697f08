//! The bitsandbytes bookkeeping around NF4 weights: which tensors transformers quantises, and
//! the quant-state JSON stored beside each quantised tensor.

use super::nf4::NF4_BLOCK;
use super::nf4_double::{MAX_FLOAT_REPR, NESTED_BLOCK, py_float};
use crate::safetensors::Dtype;

/// Whether bitsandbytes (through transformers) would quantise this tensor: the weight of a
/// Linear layer — a 2-D `*.weight` — except the output head and embeddings.
pub fn nf4_quantises(name: &str, shape: &[u64]) -> bool {
    shape.len() == 2
        && name.ends_with(".weight")
        && !name.starts_with("lm_head.")
        && !name.contains("embed")
}

fn torch_dtype(d: Dtype) -> &'static str {
    match d {
        Dtype::F16 => "float16",
        Dtype::BF16 => "bfloat16",
        _ => "float32",
    }
}

/// The JSON bitsandbytes packs into `<P>.weight.quant_state.bitsandbytes__nf4`
/// (`QuantState.as_dict(packed=True)`: `json.dumps` of the non-tensor entries).
pub fn nf4_quant_state(dtype: Dtype, shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!(
        "{{\"quant_type\": \"nf4\", \"blocksize\": {NF4_BLOCK}, \"dtype\": \"{}\", \"shape\": [{}]}}",
        torch_dtype(dtype),
        dims.join(", ")
    )
}

/// The quant state JSON of a double-quantised tensor: [`nf4_quant_state`]'s keys, then
/// `nested_blocksize` 256, `nested_dtype` `float32`, `nested_offset` (a Python float), in the
/// order of `QuantState.as_dict(packed=True)`.
pub fn nf4_quant_state_nested(dtype: Dtype, shape: &[u64], offset: f32) -> String {
    let mut s = nf4_quant_state(dtype, shape);
    s.pop();
    format!(
        "{s}, \"nested_blocksize\": {NESTED_BLOCK}, \"nested_dtype\": \"float32\", \"nested_offset\": {}}}",
        py_float(f64::from(offset))
    )
}

/// The bytes declared for a double-quantised tensor's quant state: the JSON with the longest
/// offset. The offset is known only once the tensor is read, after the header is written, so
/// [`nf4_quant_state_nested`] is padded with trailing spaces to this length (`json.loads`,
/// which bitsandbytes' `unpack_tensor_to_dict` uses, ignores them).
pub fn nf4_quant_state_nested_len(dtype: Dtype, shape: &[u64]) -> usize {
    nf4_quant_state_nested(dtype, shape, 0.0).len() - "0.0".len() + MAX_FLOAT_REPR
}
