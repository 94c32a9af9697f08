//! Block encoders: hand-checked bytes following ggml's reference algorithms, and round-trip
//! error bounds on random data for every format.

use adapter_core::floats::{f16_to_f32, f32_to_f16};
use adapter_core::quant::nf4::{NF4_CODE, dequantize_nf4, quantize_nf4};
use adapter_core::quant::{GgmlType, decode, encode, relative_rmse};

/// Deterministic pseudo-normal values (sum of uniforms), with a few outliers.
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|i| {
            let g = (0..4).map(|_| next()).sum::<f32>() - 2.0;
            if i % 997 == 0 { g * 0.2 } else { g * 0.05 }
        })
        .collect()
}

#[test]
fn q8_0_hand_checked_block() {
    // amax 127 → d = 127/127 = 1.0 (f16 0x3c00), id = 1; q = roundf(x): half away from zero.
    let mut x = vec![0.0f32; 32];
    x[0] = -127.0;
    x[1] = 0.5; // → 1 (ties-to-even would give 0)
    x[2] = 1.5; // → 2
    x[3] = -0.5; // → -1
    x[4] = 2.5; // → 3
    x[5] = 126.4; // → 126
    x[6] = -0.49; // → 0
    let bytes = encode(GgmlType::Q8_0, &x, 32, 1);
    let mut want = vec![0x00, 0x3c, (-127i8) as u8, 1, 2, (-1i8) as u8, 3, 126, 0];
    want.resize(34, 0);
    assert_eq!(bytes, want);
    // A zero block: d = 0, id = 0, every q = 0.
    assert_eq!(encode(GgmlType::Q8_0, &[0.0; 32], 32, 1), vec![0u8; 34]);
}

#[test]
fn q4_0_hand_checked_blocks() {
    // Largest magnitude −8 → d = −8/−8 = 1.0 (0x3c00), id = 1; q = MIN(15, (int8)(x + 8.5)).
    let mut x = vec![0.0f32; 32];
    x[0] = -8.0; // 0
    x[1] = 7.0; // 15
    x[2] = 7.9; // (int8)16.4 = 16 → 15
    x[3] = 0.5; // (int8)9.0 = 9
    x[4] = -0.5; // 8
    x[5] = 0.49; // (int8)8.99 = 8
    x[16] = -7.6; // (int8)0.9 = 0   (high nibble of byte 0)
    x[17] = 3.0; // 11                (high nibble of byte 1)
    let bytes = encode(GgmlType::Q4_0, &x, 32, 1);
    let mut want = vec![0x00, 0x3c, 0x00, 0xbf, 0x8f, 0x89, 0x88, 0x88];
    want.resize(18, 0x88);
    assert_eq!(bytes, want);

    // Largest magnitude +8 → d = 8/−8 = −1.0 (0xbc00), id = −1: +8 → 0, −8 → 15.
    let mut y = vec![0.0f32; 32];
    y[0] = 8.0;
    y[1] = -8.0;
    let bytes = encode(GgmlType::Q4_0, &y, 32, 1);
    assert_eq!(&bytes[..4], &[0x00, 0xbc, 0x80, 0x8f]);
    let back = decode(GgmlType::Q4_0, &bytes);
    assert_eq!(back[0], 8.0);
    assert_eq!(back[1], -7.0); // (15 − 8)·(−1): Q4_0 cannot hold −8·d on the other side
}

#[test]
fn q4_k_hand_checked_constant_block() {
    // x ≡ 1: min clamps to 0, every sub-block scale is 1/15 and min 0 (make_qkx2_quants finds
    // no D > 0 alternative), so ls = 63, lm = 0: scales[0..4] = 63 | (63>>4)<<6 = 0xff,
    // scales[4..8] = 0, scales[8..12] = 63 & 0xf = 0x0f; d = f16(1/15/63) = 0x1456,
    // dmin = 0; requantised q = nearest(1/(f16(d)·63)) = 15 → qs bytes 0xff.
    let bytes = encode(GgmlType::Q4K, &[1.0; 256], 256, 1);
    let mut want = vec![0x56, 0x14, 0x00, 0x00];
    want.extend([0xff; 4]);
    want.extend([0x00; 4]);
    want.extend([0x0f; 4]);
    want.extend([0xff; 128]);
    assert_eq!(bytes, want);
    assert_eq!(f16_to_f32(0x1456), 1.083_984_4 / 1024.0);
    // All zero: every field zero.
    assert_eq!(encode(GgmlType::Q4K, &[0.0; 256], 256, 1), vec![0u8; 144]);
}

#[test]
fn q6_k_hand_checked_constant_block() {
    // x ≡ 1: make_qx_quants(16, 32) gives l = −32 and scale −1/32 for every sub-block (no
    // candidate beats it strictly); iscale = −128/(−1/32) = 4096, d = f16(2^-12) = 0x0c00,
    // scales = −128 (0x80), requantised l = −32 → stored 0: ql = qh = 0.
    let bytes = encode(GgmlType::Q6K, &[1.0; 256], 256, 1);
    let mut want = vec![0u8; 128 + 64];
    want.extend([0x80; 16]);
    want.extend([0x00, 0x0c]);
    assert_eq!(bytes, want);
    assert_eq!(decode(GgmlType::Q6K, &bytes), vec![1.0; 256]);
    assert_eq!(encode(GgmlType::Q6K, &[0.0; 256], 256, 1), vec![0u8; 210]);
}

#[test]
fn nf4_hand_checked_codes_and_nibble_order() {
    let x = [1.0f32, -1.0, 0.0, 0.5, 0.3, -0.3, 0.04, 0.0397];
    let (codes, absmax) = quantize_nf4(&x);
    assert_eq!(absmax, vec![1.0]);
    // Even element in the high nibble: (15,0) (7,12) (11,4) (8,7).
    assert_eq!(codes, vec![0xf0, 0x7c, 0xb4, 0x87]);
    let back = dequantize_nf4(&codes, &absmax, x.len());
    assert_eq!(
        back,
        vec![
            1.0,
            -1.0,
            0.0,
            NF4_CODE[12],
            NF4_CODE[11],
            NF4_CODE[4],
            NF4_CODE[8],
            0.0
        ]
    );

    // 65 values: two blocks; an odd count leaves the last low nibble 0.
    let mut y: Vec<f32> = (0..65).map(|i| i as f32 / 64.0).collect();
    y[64] = -2.0;
    let (codes, absmax) = quantize_nf4(&y);
    assert_eq!(absmax, vec![63.0 / 64.0, 2.0]);
    assert_eq!(codes.len(), 33);
    assert_eq!(codes[32], 0x00); // −2/2 = −1 → code 0, padding nibble 0
    let back = dequantize_nf4(&codes, &absmax, 65);
    assert_eq!(back[64], -2.0);
    assert_eq!(back[63], 63.0 / 64.0);
    // The decode formula: code value × block absmax.
    for (i, v) in back.iter().enumerate() {
        let q = if i % 2 == 0 {
            codes[i / 2] >> 4
        } else {
            codes[i / 2] & 0xf
        };
        assert_eq!(*v, NF4_CODE[q as usize] * absmax[i / 64]);
    }
}

#[test]
fn round_trip_error_bounds_per_format() {
    let x = random(256 * 64, 7);
    let cases = [
        (GgmlType::Q8_0, 0.01),
        (GgmlType::Q6K, 0.03),
        (GgmlType::Q4K, 0.1),
        (GgmlType::Q4_0, 0.12),
        (GgmlType::F16, 0.001),
    ];
    for (ty, bound) in cases {
        let bytes = encode(ty, &x, 1024, 1);
        assert_eq!(bytes.len() as u64, ty.row_bytes(1024) * 16, "{ty}");
        let back = decode(ty, &bytes);
        assert_eq!(back.len(), x.len());
        let err = relative_rmse(&x, &back);
        assert!(err < bound, "{ty}: relative RMSE {err} ≥ {bound}");
        assert!(err > 0.0, "{ty}: lossless on random data?");
    }
    let (codes, absmax) = quantize_nf4(&x);
    let err = relative_rmse(&x, &dequantize_nf4(&codes, &absmax, x.len()));
    assert!(err < 0.15 && err > 0.0, "nf4: {err}");
}

#[test]
fn q8_0_error_is_within_half_a_step_per_element() {
    let x = random(32 * 100, 3);
    let back = decode(GgmlType::Q8_0, &encode(GgmlType::Q8_0, &x, 32, 1));
    for (bx, bb) in x.chunks(32).zip(back.chunks(32)) {
        let amax = bx.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = f16_to_f32(f32_to_f16(amax / 127.0));
        for (a, b) in bx.iter().zip(bb) {
            // half a step, plus the f16 rounding of d carried over up to 127 steps
            assert!((a - b).abs() <= 0.5 * d + amax * 1e-3, "{a} vs {b} (d {d})");
        }
    }
}

#[test]
fn threads_do_not_change_the_bytes() {
    let x = random(256 * 512, 11);
    for ty in GgmlType::QUANTISED {
        assert_eq!(encode(ty, &x, 256, 1), encode(ty, &x, 256, 4), "{ty}");
    }
}

#[test]
fn fallback_picks_the_next_finer_type_that_fits() {
    assert_eq!(GgmlType::Q4K.fitting(4096), GgmlType::Q4K);
    assert_eq!(GgmlType::Q4K.fitting(64), GgmlType::Q8_0);
    assert_eq!(GgmlType::Q6K.fitting(96), GgmlType::Q8_0);
    assert_eq!(GgmlType::Q4_0.fitting(688), GgmlType::F16); // 688 = 21.5 × 32
    assert_eq!(GgmlType::Q8_0.fitting(172), GgmlType::F16);
}
