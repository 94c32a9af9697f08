#!/usr/bin/env bash
# The merge's GPU check (docs/MERGE.md "Devices"), for a machine with an NVIDIA GPU: merges the
# merge benchmark's ~0.67B Llama-shaped model (F32 and BF16, LoRA r=16 on q,k,v,o) on the CPU
# and on cuda:0, prints both times and how far the GPU's output is from the CPU's (target:
# f32 within 1e-6 of each tensor's largest value, bf16 within one ulp), and exits 1 when the
# outputs disagree beyond that. Figures go to docs/BENCHMARKS.md.
#
# That machine has no cargo: build here (CUDA 13.0 from PyPI wheels, ~8 minutes) and carry
# the compressed binary in .gpu/ (ignored by git):
#
#   ../shared/gpu/setup-cuda13.sh /var/tmp/cuda13 && source /var/tmp/cuda13/env.sh
#   cargo build --release -p adapter-bench --bin merge-bench --features adapter-core/cuda
#   mkdir -p .gpu && xz -T2 -c target/release/merge-bench > .gpu/merge-bench.xz
#
# then run `bash scripts/gpu-check.sh` there with `.gpu` carried (about 3 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

# The machine's own CUDA 13 libraries (PyTorch's nvidia wheels, /usr/local/cuda): the binary
# links libcuda, libcudart, libcublas and libcurand (../shared/gpu/gpu-env.sh does the same).
NV=$(python3 -c 'import nvidia,os;print(os.path.join(list(nvidia.__path__)[0],"cu13","lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH=${NV:+$NV:}/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}

bin=/tmp/merge-bench
python3 -c 'import lzma,sys;open(sys.argv[2],"wb").write(lzma.open(sys.argv[1]).read())' \
    .gpu/merge-bench.xz "$bin"
chmod +x "$bin"
if ldd "$bin" | grep 'not found'; then
    echo "gpu-check: missing libraries (above)" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nproc
# The first CUDA call compiles candle's PTX for this GPU: the bench's GPU time includes it
# once (F32 runs first); BF16's GPU merge runs warm.
TMPDIR=${TMPDIR:-/tmp} "$bin" --size full --device cuda:0
