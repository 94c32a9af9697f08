//! Checks on the tensor values: NaN / Inf anywhere, and an adapter that was never trained.

use std::io::{Read, Seek};

use super::mapping::{self, Mapped, Role};
use crate::diag::{Finding, Findings};
use crate::safetensors::{SafetensorsError, TensorFile};

/// Scan every tensor of an adapter file (streaming, one tensor at a time).
///
/// * NaN or Inf in any tensor → error `nan_in_tensor` / `inf_in_tensor` with the count.
/// * Every `lora_B` / `lora_embedding_B` entirely zero → warning `untrained_adapter`: PEFT
///   initialises B to zero (`src/peft/tuners/lora/layer.py`, `reset_lora_parameters`), so
///   such an adapter is exactly the base model.
///
/// Tensors whose dtype has no NaN/Inf or is not decoded are skipped.
pub fn check_data<R: Read + Seek>(file: &mut TensorFile<R>) -> Result<Findings, SafetensorsError> {
    let mut f = Findings::default();
    let tensors = file.header().tensors.clone();
    let mut b_seen = 0usize;
    let mut b_zero = 0usize;
    for t in &tensors {
        let Some(stats) = file.float_stats(t)? else {
            continue;
        };
        if stats.nan > 0 {
            f.error(
                Finding::new(
                    "nan_in_tensor",
                    format!(
                        "{} has {} NaN value(s) among {} elements",
                        t.name, stats.nan, stats.elements
                    ),
                )
                .about(t.name.clone()),
            );
        }
        if stats.inf > 0 {
            f.error(
                Finding::new(
                    "inf_in_tensor",
                    format!(
                        "{} has {} infinite value(s) among {} elements",
                        t.name, stats.inf, stats.elements
                    ),
                )
                .about(t.name.clone()),
            );
        }
        let is_b = matches!(
            mapping::classify(&t.name, &[], super::values::Bias::None, |_| false),
            Ok(Mapped::Lora {
                role: Role::LoraB | Role::EmbeddingB,
                ..
            })
        );
        if is_b {
            b_seen += 1;
            if stats.zeros == stats.elements {
                b_zero += 1;
            }
        }
    }
    if b_seen > 0 && b_zero == b_seen {
        f.warn(Finding::new(
            "untrained_adapter",
            format!(
                "all {b_seen} lora_B tensors are entirely zero: the adapter does nothing \
                 (it was saved before any training step)"
            ),
        ));
    }
    Ok(f)
}
