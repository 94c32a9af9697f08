//! The arithmetic of one merged tensor, in f32 on values already decoded: ΔW = s·(B@A)
//! (transposed for Conv1D / fan_in_fan_out bases and embeddings), DoRA's row renormalisation,
//! and `lora_bias`. Sources: PEFT `src/peft/tuners/lora/layer.py` (`Linear.merge`,
//! `Linear.get_delta_weight`, `Embedding.get_delta_weight`) and `src/peft/tuners/lora/dora.py`
//! (`DoraLinearLayer.get_weight_norm`).

use super::MergeError;

/// Rows are split across threads when a product has at least this many multiply-adds.
const PARALLEL_WORK: usize = 1 << 22;

/// A row-major matrix view.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [f32],
}

fn transpose(m: Matrix<'_>) -> Vec<f32> {
    let mut out = vec![0f32; m.data.len()];
    for r in 0..m.rows {
        for c in 0..m.cols {
            out[c * m.rows + r] = m.data[r * m.cols + c];
        }
    }
    out
}

/// The stored update's `[rows, cols]` and the rank, checked against the weight's length.
pub(crate) fn update_dims(
    w_len: usize,
    a: Matrix<'_>,
    b: Matrix<'_>,
    transposed: bool,
) -> Result<(usize, usize, usize), MergeError> {
    if b.cols != a.rows || a.data.len() != a.rows * a.cols || b.data.len() != b.rows * b.cols {
        return Err(MergeError::Input(format!(
            "lora_A is [{}, {}] but lora_B is [{}, {}]",
            a.rows, a.cols, b.rows, b.cols
        )));
    }
    let (rows, cols) = if transposed {
        (a.cols, b.rows)
    } else {
        (b.rows, a.cols)
    };
    if rows.checked_mul(cols) != Some(w_len) {
        return Err(MergeError::Input(format!(
            "the update is [{rows}, {cols}] but the weight has {w_len} elements"
        )));
    }
    Ok((rows, cols, a.rows))
}

/// `w += scale · (B @ A)` for a stored `[out, in]` weight, or `w += scale · (B @ A)ᵀ` for a
/// stored `[in, out]` one (`transposed`). `a` is `[r, in]`, `b` is `[out, r]`. The product
/// is accumulated in f32 over k in order, then multiplied by the scale, then added (PEFT's
/// order: `(B @ A) * scaling`, then `W + ΔW`).
pub fn add_delta(
    w: &mut [f32],
    a: Matrix<'_>,
    b: Matrix<'_>,
    scale: f32,
    transposed: bool,
) -> Result<(), MergeError> {
    let (rows, cols, rank) = update_dims(w.len(), a, b, transposed)?;
    if cols == 0 || rows == 0 {
        return Ok(());
    }
    // Stored = L @ R with L [rows, rank] and R [rank, cols].
    let (left, right) = if transposed {
        (transpose(a), transpose(b))
    } else {
        (b.data.to_vec(), a.data.to_vec())
    };
    let work = rows * cols * rank.max(1);
    let threads = if work >= PARALLEL_WORK {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    } else {
        1
    };
    let rows_per = rows.div_ceil(threads);
    let (left, right) = (&left, &right);
    std::thread::scope(|scope| {
        for (i, chunk) in w.chunks_mut(rows_per * cols).enumerate() {
            scope.spawn(move || {
                let mut acc = vec![0f32; cols];
                for (j, wrow) in chunk.chunks_exact_mut(cols).enumerate() {
                    let row = i * rows_per + j;
                    acc.fill(0.0);
                    for k in 0..rank {
                        let l = left[row * rank + k];
                        let rrow = &right[k * cols..(k + 1) * cols];
                        for (x, y) in acc.iter_mut().zip(rrow) {
                            *x += l * y;
                        }
                    }
                    for (x, d) in wrow.iter_mut().zip(&acc) {
                        *x += d * scale;
                    }
                }
            });
        }
    });
    Ok(())
}

/// DoRA: `w` holds V = W + ΔW; replace it with (m / ‖V‖) ⊙ V, the norm taken over each
/// output feature's weights (rows of `[out, in]`, columns of a `transposed` `[in, out]`).
/// The norms are summed in f64 and rounded to f32 (torch reduces with more care than a
/// naive f32 sum); the factor m / n and the product are f32.
pub fn apply_dora(w: &mut [f32], magnitude: &[f32], transposed: bool) -> Result<(), MergeError> {
    let out = magnitude.len();
    if out == 0 || !w.len().is_multiple_of(out) {
        return Err(MergeError::Input(format!(
            "lora_magnitude_vector has {out} values for a weight of {} elements",
            w.len()
        )));
    }
    let inner = w.len() / out;
    let mut sums = vec![0f64; out];
    if transposed {
        for row in w.chunks_exact(out) {
            for (s, x) in sums.iter_mut().zip(row) {
                *s += f64::from(*x) * f64::from(*x);
            }
        }
    } else {
        for (s, row) in sums.iter_mut().zip(w.chunks_exact(inner)) {
            *s = row.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
        }
    }
    #[allow(clippy::cast_possible_truncation)] // rounding the norm to f32 is the point
    let factors: Vec<f32> = sums
        .iter()
        .zip(magnitude)
        .map(|(s, m)| m / (s.sqrt() as f32))
        .collect();
    if transposed {
        for row in w.chunks_exact_mut(out) {
            for (x, f) in row.iter_mut().zip(&factors) {
                *x *= f;
            }
        }
    } else {
        for (row, f) in w.chunks_exact_mut(inner).zip(&factors) {
            row.iter_mut().for_each(|x| *x *= f);
        }
    }
    Ok(())
}

/// `b += scale · lora_B.bias`.
pub fn add_bias(b: &mut [f32], lora_bias: &[f32], scale: f32) -> Result<(), MergeError> {
    if b.len() != lora_bias.len() {
        return Err(MergeError::Input(format!(
            "lora_B.bias has {} values, the base bias {}",
            lora_bias.len(),
            b.len()
        )));
    }
    for (x, y) in b.iter_mut().zip(lora_bias) {
        *x += y * scale;
    }
    Ok(())
}
