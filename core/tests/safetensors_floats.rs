//! `TensorFile::float_stats`: NaN / Inf / zero counts per dtype, streamed in chunks.

use std::io::Cursor;

use adapter_core::safetensors::{
    Dtype, FloatStats, Limits, SafetensorsError, TensorFile, TensorInfo,
};
use safetensors::tensor::TensorView;

/// A one-tensor file written by the reference crate.
fn one_tensor(dtype: safetensors::Dtype, shape: Vec<usize>, data: &[u8]) -> Vec<u8> {
    let view = TensorView::new(dtype, shape, data).unwrap();
    safetensors::serialize([("x", view)], None).unwrap()
}

fn stats(dtype: safetensors::Dtype, shape: Vec<usize>, data: &[u8]) -> Option<FloatStats> {
    let bytes = one_tensor(dtype, shape, data);
    let mut file = TensorFile::new(Cursor::new(bytes), &Limits::SERVER).unwrap();
    let info = file.header().tensor("x").unwrap().clone();
    file.float_stats(&info).unwrap()
}

fn expect(elements: u64, nan: u64, inf: u64, zeros: u64) -> Option<FloatStats> {
    Some(FloatStats {
        elements,
        nan,
        inf,
        zeros,
    })
}

fn le16(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn f32_counts_nan_inf_and_signed_zeros() {
    let values = [
        1.0f32,
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        f32::MIN_POSITIVE / 2.0,
    ];
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(
        stats(safetensors::Dtype::F32, vec![2, 4], &data),
        expect(8, 2, 2, 2)
    );
}

#[test]
fn f64_counts() {
    let values = [f64::NAN, 0.0, 3.5, f64::INFINITY];
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(
        stats(safetensors::Dtype::F64, vec![4], &data),
        expect(4, 1, 1, 1)
    );
}

#[test]
fn f16_counts() {
    // 1.0, +inf, -inf, qNaN, sNaN-ish (mantissa 1), +0, -0, smallest subnormal, 65504.
    let data = le16(&[
        0x3C00, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x0000, 0x8000, 0x0001, 0x7BFF,
    ]);
    assert_eq!(
        stats(safetensors::Dtype::F16, vec![9], &data),
        expect(9, 2, 2, 2)
    );
}

#[test]
fn bf16_counts() {
    // 1.0, +inf, NaN, -NaN, -0, +0, 0x7F7F (largest finite), 0x0001 (subnormal).
    let data = le16(&[
        0x3F80, 0x7F80, 0x7FC0, 0xFFC1, 0x8000, 0x0000, 0x7F7F, 0x0001,
    ]);
    assert_eq!(
        stats(safetensors::Dtype::BF16, vec![8], &data),
        expect(8, 2, 1, 2)
    );
}

#[test]
fn c64_counts_each_component() {
    let parts = [1.0f32, f32::NAN, 0.0, f32::INFINITY, -0.0, -0.0];
    let data: Vec<u8> = parts.iter().flat_map(|v| v.to_le_bytes()).collect();
    // Three complex elements are six values.
    assert_eq!(
        stats(safetensors::Dtype::C64, vec![3], &data),
        expect(6, 1, 1, 3)
    );
}

#[test]
fn f8_e5m2_is_ieee_like() {
    // +inf 0x7C, -inf 0xFC, NaN 0x7D/0x7F/0xFE, +0, -0, finite 0x7B, 0x3C.
    let data = [0x7C, 0xFC, 0x7D, 0x7F, 0xFE, 0x00, 0x80, 0x7B, 0x3C];
    assert_eq!(
        stats(safetensors::Dtype::F8_E5M2, vec![9], &data),
        expect(9, 3, 2, 2)
    );
}

#[test]
fn f8_e4m3_has_no_inf_and_two_nans() {
    // 0x7F/0xFF NaN; 0x78 and 0x7E (exponent all ones) are finite; 0x00/0x80 zero.
    let data = [0x7F, 0xFF, 0x78, 0x7E, 0xF8, 0x00, 0x80, 0x38];
    assert_eq!(
        stats(safetensors::Dtype::F8_E4M3, vec![8], &data),
        expect(8, 2, 0, 2)
    );
}

#[test]
fn f8_fnuz_nan_is_0x80_and_zero_is_unsigned() {
    let data = [0x80, 0x00, 0x7F, 0xFF, 0x7C, 0xFC, 0x01];
    let expected = expect(7, 1, 0, 1);
    assert_eq!(
        stats(safetensors::Dtype::F8_E4M3FNUZ, vec![7], &data),
        expected
    );
    assert_eq!(
        stats(safetensors::Dtype::F8_E5M2FNUZ, vec![7], &data),
        expected
    );
}

#[test]
fn f8_e8m0_has_nan_but_no_zero() {
    let data = [0xFF, 0x00, 0x7F, 0xFE];
    assert_eq!(
        stats(safetensors::Dtype::F8_E8M0, vec![4], &data),
        expect(4, 1, 0, 0)
    );
}

#[test]
fn integers_bool_and_sub_byte_floats_have_no_stats() {
    for (dtype, shape, len) in [
        (safetensors::Dtype::I32, vec![2], 8),
        (safetensors::Dtype::U8, vec![3], 3),
        (safetensors::Dtype::BOOL, vec![1], 1),
        (safetensors::Dtype::F4, vec![2], 1),
        (safetensors::Dtype::F6_E3M2, vec![4], 3),
    ] {
        assert_eq!(stats(dtype, shape, &vec![0xFF; len]), None, "{dtype:?}");
    }
}

#[test]
fn empty_and_rank0_tensors() {
    assert_eq!(
        stats(safetensors::Dtype::F32, vec![0, 3], &[]),
        expect(0, 0, 0, 0)
    );
    assert_eq!(
        stats(safetensors::Dtype::F16, vec![], &le16(&[0x7E00])),
        expect(1, 1, 0, 0)
    );
}

#[test]
fn streams_tensors_larger_than_one_chunk() {
    // 1 MiB chunks: 300,000 f32 values span two chunks and a partial third.
    let n = 300_000usize;
    let mut values = vec![1.5f32; n];
    for i in (0..n).step_by(1000) {
        values[i] = f32::NAN;
    }
    values[n - 1] = f32::INFINITY;
    values[262_143] = 0.0; // the last value of the first chunk
    values[262_144] = -0.0; // the first value of the second chunk
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(
        stats(safetensors::Dtype::F32, vec![n], &data),
        expect(n as u64, 300, 1, 2)
    );
}

#[test]
fn float_stats_only_reads_this_files_tensors() {
    let bytes = one_tensor(safetensors::Dtype::F32, vec![1], &[0; 4]);
    let mut file = TensorFile::new(Cursor::new(bytes), &Limits::SERVER).unwrap();
    let forged = TensorInfo {
        name: "x".to_owned(),
        dtype: Dtype::F32,
        shape: vec![1_000],
        data_offsets: (0, 4_000),
    };
    let err = file.float_stats(&forged).unwrap_err();
    assert!(
        matches!(err, SafetensorsError::TensorNotFound { .. }),
        "{err}"
    );
}
