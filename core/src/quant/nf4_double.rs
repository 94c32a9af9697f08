//! NF4 double quantisation (bitsandbytes `bnb_4bit_use_double_quant=True`, i.e.
//! `quantize_4bit(..., compress_statistics=True)` in bitsandbytes/functional.py):
//!
//! ```text
//! offset = absmax.mean()
//! absmax -= offset
//! qabsmax, state2 = quantize_blockwise(absmax, blocksize=256)   # code = create_dynamic_map()
//! ```
//!
//! `quantize_blockwise` is the `kQuantizeBlockwise` kernel (csrc/kernels.cu): per block of 256
//! the largest magnitude `m` (stored as `nested_absmax`), then each value times `1.0f / m` goes
//! to `dQuantize`'s code (a binary search of the sorted 256-entry map, then the nearer
//! neighbour by midpoint). Decoding (`dequantize_blockwise` + offset):
//! `absmax[i] = code[qabsmax[i]] · nested_absmax[i / 256] + offset`.

use super::nf4::{NF4_BLOCK, NF4_CODE};

/// Values per nested (absmax) block.
pub const NESTED_BLOCK: usize = 256;

/// bitsandbytes `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)`: for
/// exponent group `i` in 0..7, `2^i` means of neighbouring points of `linspace(0.1, 1, 2^i + 1)`
/// times `10^(i − 6)`, with both signs; plus 0 and 1; sorted. Computed in f32 as torch does
/// (scalar `linspace`: `start + step·k` below the halfway index, `end − step·(steps − k − 1)`
/// from it). Entry 127 is 0, entry 255 is 1. The map is stored in the checkpoint
/// (`nested_quant_map`) and bitsandbytes decodes with the stored map.
pub fn dynamic_map() -> [f32; 256] {
    let mut data: Vec<f32> = Vec::with_capacity(256);
    for i in 0..7i32 {
        let steps = (1i64 << i) + 1;
        let (start, end) = (0.1f32, 1.0f32);
        let step = (end - start) / (steps - 1) as f32;
        let half = steps / 2;
        let b: Vec<f32> = (0..steps)
            .map(|k| {
                if k < half {
                    start + step * k as f32
                } else {
                    end - step * (steps - k - 1) as f32
                }
            })
            .collect();
        let scale = 10f64.powi(i - 6) as f32;
        for w in b.windows(2) {
            let mean = (w[0] + w[1]) / 2.0;
            data.push(scale * mean);
            data.push(-scale * mean);
        }
    }
    data.push(0.0);
    data.push(1.0);
    data.sort_by(f32::total_cmp);
    let mut out = [0f32; 256];
    out.copy_from_slice(&data);
    out
}

/// `dQuantize<0>` (csrc/kernels.cu): the code of `x` (already divided by the block's absmax)
/// in the sorted 256-entry `code`. NaN gives 0, as in the kernel.
pub fn dynamic_code(code: &[f32; 256], x: f32) -> u8 {
    let mut pivot = 127usize;
    let (mut upper_pivot, mut lower_pivot) = (255usize, 0usize);
    let (mut lower, mut upper) = (-1.0f32, 1.0f32);
    let mut val = code[pivot];
    let mut i = 64;
    while i > 0 {
        if x > val {
            lower_pivot = pivot;
            lower = val;
            pivot += i;
        } else {
            upper_pivot = pivot;
            upper = val;
            pivot -= i;
        }
        val = code[pivot];
        i >>= 1;
    }
    if upper_pivot == 255 {
        upper = code[upper_pivot];
    }
    if lower_pivot == 0 {
        lower = code[lower_pivot];
    }
    let pick = if x > val {
        if x > (upper + val) * 0.5 {
            upper_pivot
        } else {
            pivot
        }
    } else if x < (lower + val) * 0.5 {
        lower_pivot
    } else {
        pivot
    };
    pick as u8
}

/// The absmax values of one NF4 tensor, double-quantised.
#[derive(Debug, Clone, PartialEq)]
pub struct NestedAbsmax {
    /// One 8-bit code per NF4 block (`P.weight.absmax`, U8).
    pub codes: Vec<u8>,
    /// The largest |absmax − offset| per 256 codes (`P.weight.nested_absmax`, F32).
    pub absmax: Vec<f32>,
    /// The mean of the absmax values (`nested_offset` in the quant state).
    pub offset: f32,
}

/// `offset = mean(absmax)`; `absmax − offset` quantised blockwise (256) with `code`. The mean
/// is accumulated in f64 and rounded to f32 (torch reduces in f32 on the GPU, in its own order:
/// the last bit may differ; the offset used is the one stored).
pub fn compress_absmax(absmax: &[f32], code: &[f32; 256]) -> NestedAbsmax {
    let offset = if absmax.is_empty() {
        0.0
    } else {
        (absmax.iter().map(|&v| f64::from(v)).sum::<f64>() / absmax.len() as f64) as f32
    };
    let centred: Vec<f32> = absmax.iter().map(|&v| v - offset).collect();
    let mut codes = Vec::with_capacity(centred.len());
    let mut nested = Vec::with_capacity(centred.len().div_ceil(NESTED_BLOCK));
    for block in centred.chunks(NESTED_BLOCK) {
        let m = block.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        nested.push(m);
        let inv = 1.0 / m;
        codes.extend(block.iter().map(|&v| dynamic_code(code, v * inv)));
    }
    NestedAbsmax {
        codes,
        absmax: nested,
        offset,
    }
}

/// `dequantize_blockwise(qabsmax, state2) + offset`.
pub fn decompress_absmax(n: &NestedAbsmax, code: &[f32; 256]) -> Vec<f32> {
    n.codes
        .iter()
        .enumerate()
        .map(|(i, &q)| code[usize::from(q)] * n.absmax[i / NESTED_BLOCK] + n.offset)
        .collect()
}

/// Decode `len` values of a double-quantised NF4 tensor.
pub fn dequantize_nf4_nested(
    codes: &[u8],
    nested: &NestedAbsmax,
    code: &[f32; 256],
    len: usize,
) -> Vec<f32> {
    let absmax = decompress_absmax(nested, code);
    (0..len)
        .map(|i| {
            let byte = codes[i / 2];
            let q = if i % 2 == 0 { byte >> 4 } else { byte & 0xf };
            NF4_CODE[usize::from(q)] * absmax[i / NF4_BLOCK]
        })
        .collect()
}

/// The longest Python `repr` of a float (`-1.2345678901234567e-308`).
pub const MAX_FLOAT_REPR: usize = 24;

/// `json.dumps` of a Python float: the shortest repr that round-trips, positional for
/// exponents −4..16, else `d.ddde±XX`; `NaN`, `Infinity`, `-Infinity`.
pub fn py_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sci = format!("{:e}", v.abs()); // shortest round-trip digits: "1.2345e-5"
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if v < 0.0 { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let body = if exp < 0 {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        } else if n > exp + 1 {
            format!(
                "{}.{}",
                &digits[..=exp as usize],
                &digits[exp as usize + 1..]
            )
        } else {
            format!("{digits}{}.0", "0".repeat((exp + 1 - n) as usize))
        };
        format!("{sign}{body}")
    } else {
        let frac = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{frac}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_float_matches_python_repr() {
        for (v, want) in [
            (0.1, "0.1"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (1e-5, "1e-05"),
            (0.00012, "0.00012"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (f64::from(0.1f32), "0.10000000149011612"),
            (f64::from(-3.0517578e-5f32), "-3.0517578125e-05"),
            (0.0, "0.0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(py_float(v), want, "{v:e}");
        }
        assert!(py_float(-f64::from(f32::MIN_POSITIVE) * 1.7).len() <= MAX_FLOAT_REPR);
        assert!(py_float(-1.2345678901234567e-308).len() <= MAX_FLOAT_REPR);
    }

    #[test]
    fn the_dynamic_map_has_the_shape_of_create_dynamic_map() {
        let m = dynamic_map();
        assert!(m.windows(2).all(|w| w[0] < w[1]), "strictly ascending");
        assert_eq!(m[127], 0.0);
        assert_eq!(m[255], 1.0);
        assert_eq!(m.iter().filter(|v| **v < 0.0).count(), 127);
        // The largest group: 64 means of linspace(0.1, 1, 65), spacing 0.9/64.
        assert!((m[254] - (1.0 - 0.9 / 128.0)).abs() < 1e-6, "{}", m[254]);
        assert!((m[0] + (1.0 - 0.9 / 128.0)).abs() < 1e-6);
        // The smallest magnitude: 10^-6 · (0.1 + 1) / 2 (group 0 has one mean).
        assert!((m[128] - 0.55e-6).abs() < 1e-12, "{}", m[128]);
        assert_eq!(m[126], -m[128]);
    }

    #[test]
    fn dynamic_code_picks_the_nearest_entry() {
        let m = dynamic_map();
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let x = (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
            let q = usize::from(dynamic_code(&m, x));
            let best = m
                .iter()
                .map(|c| (c - x).abs())
                .fold(f32::INFINITY, f32::min);
            assert!(
                (m[q] - x).abs() <= best * (1.0 + 1e-6) + 1e-12,
                "{x}: {} vs {best}",
                m[q]
            );
        }
        assert_eq!(dynamic_code(&m, 1.0), 255);
        assert_eq!(dynamic_code(&m, -1.0), 0);
        assert_eq!(dynamic_code(&m, 0.0), 127);
        assert_eq!(dynamic_code(&m, f32::NAN), 0);
    }
}
