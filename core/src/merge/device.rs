//! Where a merge computes the LoRA products B @ A: on the CPU (our own kernel, the default and
//! the only choice in a build without candle), or through candle-core on a CUDA GPU (the
//! `cuda` feature) or on candle's CPU backend (the `candle` feature, which tests the same
//! code path without a GPU). Only the product moves: the scale and the addition to the base
//! weight stay on the CPU in the kernel's order (`W + (B @ A) · s`), and DoRA's norms and
//! `lora_bias` are CPU work in every case, so a GPU merge differs from a CPU one only by the
//! order of the sums inside the product.

use std::fmt;

use super::MergeError;
use super::kernel::{Matrix, add_delta};

/// A compute device for [`Device::add_delta`].
#[derive(Clone, Default)]
pub enum Device {
    /// Our kernel on the CPU threads.
    #[default]
    Cpu,
    /// candle-core: a CUDA device (`cuda` feature) or candle's own CPU backend.
    #[cfg(feature = "candle")]
    Candle(candle_core::Device),
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Whether this build can use a CUDA GPU (`cuda` feature).
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// A device name, parsed: `auto`, `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
enum Choice {
    Auto,
    Cpu,
    Cuda(u32),
}

impl Choice {
    /// Parse `name`; `cuda` names are refused by a build without the `cuda` feature.
    fn parse(name: &str) -> Result<Self, MergeError> {
        let ordinal = match name {
            "auto" => return Ok(Self::Auto),
            "cpu" => return Ok(Self::Cpu),
            "cuda" => Some(0),
            _ => name
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<u32>().ok()),
        };
        match ordinal {
            None => Err(MergeError::Usage(format!(
                "device `{}`: expected auto, cpu or cuda:N",
                name.escape_debug()
            ))),
            Some(_) if !CUDA_BUILT => Err(MergeError::Usage(format!(
                "device `{name}`: this build has no CUDA support (build with `--features \
                 cuda`); use auto or cpu"
            ))),
            Some(n) => Ok(Self::Cuda(n)),
        }
    }
}

/// Check a device name without opening anything (see [`Device::open`]); returns the
/// canonical name: `auto`, `cpu` or `cuda:N`.
pub fn check_device_name(name: &str) -> Result<String, MergeError> {
    Ok(match Choice::parse(name)? {
        Choice::Auto => "auto".into(),
        Choice::Cpu => "cpu".into(),
        Choice::Cuda(n) => format!("cuda:{n}"),
    })
}

impl Device {
    /// Open a device by name: `auto` is the first CUDA GPU when this build has CUDA support
    /// and one is present, else the CPU; `cpu`; `cuda[:N]` (refused by a build without CUDA).
    pub fn open(name: &str) -> Result<Self, MergeError> {
        match Choice::parse(name)? {
            Choice::Cpu => Ok(Self::Cpu),
            Choice::Auto => Ok(Self::auto()),
            Choice::Cuda(n) => Self::cuda(n),
        }
    }

    #[cfg(feature = "cuda")]
    fn auto() -> Self {
        Self::cuda(0).unwrap_or(Self::Cpu)
    }

    #[cfg(not(feature = "cuda"))]
    fn auto() -> Self {
        Self::Cpu
    }

    #[cfg(feature = "cuda")]
    fn cuda(n: u32) -> Result<Self, MergeError> {
        candle_core::Device::new_cuda(n as usize)
            .map(Self::Candle)
            .map_err(|e| MergeError::Device(format!("cuda:{n}: {}", plain(e))))
    }

    /// Unreachable: [`Choice::parse`] refuses `cuda` names in a build without CUDA.
    #[cfg(not(feature = "cuda"))]
    fn cuda(n: u32) -> Result<Self, MergeError> {
        Err(MergeError::Usage(format!(
            "device `cuda:{n}`: this build has no CUDA support"
        )))
    }

    /// `cpu`, `cuda:N`, or `candle-cpu` (candle's CPU backend).
    pub fn name(&self) -> String {
        match self {
            Self::Cpu => "cpu".into(),
            #[cfg(feature = "candle")]
            Self::Candle(d) => match d.location() {
                candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
                candle_core::DeviceLocation::Cpu => "candle-cpu".into(),
                other => format!("{other:?}"),
            },
        }
    }

    /// `w += scale · (B @ A)` (or its transpose for a stored `[in, out]` weight), as
    /// [`add_delta`] does, with the product computed on this device.
    pub fn add_delta(
        &self,
        w: &mut [f32],
        a: Matrix<'_>,
        b: Matrix<'_>,
        scale: f32,
        transposed: bool,
    ) -> Result<(), MergeError> {
        match self {
            Self::Cpu => add_delta(w, a, b, scale, transposed),
            #[cfg(feature = "candle")]
            Self::Candle(d) => {
                super::kernel::update_dims(w.len(), a, b, transposed)?;
                let product = candle_product(d, a, b, transposed)
                    .map_err(|e| MergeError::Device(format!("{}: {}", self.name(), plain(e))))?;
                for (x, p) in w.iter_mut().zip(&product) {
                    *x += p * scale;
                }
                Ok(())
            }
        }
    }
}

/// candle's message without the backtrace it attaches when `RUST_BACKTRACE` is set (a user
/// wants one line).
#[cfg(feature = "candle")]
fn plain(e: candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => plain(*inner),
        other => other.to_string(),
    }
}

/// B @ A (or (B @ A)ᵀ) in f32 on `device`, back in host memory, row-major.
#[cfg(feature = "candle")]
fn candle_product(
    device: &candle_core::Device,
    a: Matrix<'_>,
    b: Matrix<'_>,
    transposed: bool,
) -> candle_core::Result<Vec<f32>> {
    use candle_core::Tensor;
    let ta = Tensor::from_slice(a.data, (a.rows, a.cols), device)?;
    let tb = Tensor::from_slice(b.data, (b.rows, b.cols), device)?;
    let mut p = tb.matmul(&ta)?;
    if transposed {
        p = p.t()?.contiguous()?;
    }
    p.flatten_all()?.to_vec1::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_without_a_device() {
        assert_eq!(check_device_name("auto").unwrap(), "auto");
        assert_eq!(check_device_name("cpu").unwrap(), "cpu");
        for bad in ["gpu", "cuda:", "cuda:x", "cuda0", "CPU", ""] {
            let e = check_device_name(bad).unwrap_err();
            assert!(
                e.to_string().contains("expected auto, cpu or cuda:N"),
                "{bad}: {e}"
            );
        }
        for cuda in ["cuda", "cuda:1"] {
            match check_device_name(cuda) {
                Ok(n) => assert!(CUDA_BUILT && n.starts_with("cuda:")),
                Err(e) => assert!(!CUDA_BUILT && e.to_string().contains("no CUDA support")),
            }
        }
        assert_eq!(Device::open("cpu").unwrap().name(), "cpu");
        if !CUDA_BUILT {
            assert_eq!(Device::open("auto").unwrap().name(), "cpu");
            assert!(Device::open("cuda:0").is_err());
        }
    }

    /// candle's path (here on its CPU backend; on a GPU with `cuda`) gives our kernel's
    /// result within f32 rounding of the product: the tolerance, relative 1e-6 of
    /// the tensor's largest value, for plain and transposed updates and every shape check.
    #[cfg(feature = "candle")]
    #[test]
    fn candle_products_agree_with_the_kernel() {
        let mut s = 11u64;
        let mut rand = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
                })
                .collect()
        };
        let candle = Device::Candle(candle_core::Device::Cpu);
        assert_eq!(candle.name(), "candle-cpu");
        for (out, inp, r, transposed) in [(96, 80, 8, false), (80, 96, 16, true), (33, 7, 1, false)]
        {
            let (a, b) = (rand(r * inp), rand(out * r));
            let base = rand(out * inp);
            let am = Matrix {
                rows: r,
                cols: inp,
                data: &a,
            };
            let bm = Matrix {
                rows: out,
                cols: r,
                data: &b,
            };
            let (mut ours, mut theirs) = (base.clone(), base.clone());
            Device::Cpu
                .add_delta(&mut ours, am, bm, 2.0, transposed)
                .unwrap();
            candle
                .add_delta(&mut theirs, am, bm, 2.0, transposed)
                .unwrap();
            let max = ours.iter().fold(0f32, |m, x| m.max(x.abs()));
            let worst = ours
                .iter()
                .zip(&theirs)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                worst <= 1e-6 * max,
                "{out}x{inp} r{r}: {worst} vs max {max}"
            );
            assert!(ours != base, "the update changed nothing");
            // Shapes that do not fit are refused before anything is computed.
            let wrong = Matrix {
                rows: out + 1,
                cols: r,
                data: &b,
            };
            assert!(
                candle
                    .add_delta(&mut theirs, am, wrong, 2.0, transposed)
                    .is_err()
            );
        }
    }
}
