#!/usr/bin/env bash
# The llama.cpp peer run (bench/llama_cpp_peer.py): builds llama-cpp-python 0.3.36 (llama.cpp
# from source, native CPU flags; 12 to 40 minutes on 2 busy cores, once) with gguf-py and numpy into
# a venv outside the repository ($LLAMA_CPP_VENV, default /var/tmp/llama-cpp-venv), builds our
# release adapterctl, then runs the script with the arguments given:
#
#   bench/llama_cpp_peer.sh                          # full 0.67B model, 2 threads, 4 types
#   bench/llama_cpp_peer.sh --threads 1 --types q4_k,q6_k --size small
#   bench/llama_cpp_peer.sh --fixtures core/tests/fixtures/gguf --model DIR   # golden files
#
# A benchmark, not a test: CI does not build llama.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LLAMA_CPP_VENV:-/var/tmp/llama-cpp-venv}"
LLAMA_CPP_PYTHON_VERSION=0.3.36
GGUF_PY_VERSION=0.17.1
NUMPY_VERSION=2.4.6
have() {
    "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null
}
[[ -x "$VENV/bin/pip" ]] || python3 -m venv "$VENV"
if ! have gguf "$GGUF_PY_VERSION" || ! have numpy "$NUMPY_VERSION"; then
    "$VENV/bin/pip" install -q "gguf==$GGUF_PY_VERSION" "numpy==$NUMPY_VERSION"
fi
if ! have llama_cpp_python "$LLAMA_CPP_PYTHON_VERSION"; then
    "$VENV/bin/pip" install -q cmake ninja
    # Only libllama and ggml (no multimodal, tools or examples): about 140 build steps. The
    # build tree lives next to the venv (a long build in /tmp can be cleaned away under it).
    mkdir -p "$VENV.build"
    TMPDIR="$VENV.build" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF" \
        nice -n 10 "$VENV/bin/pip" install -q --no-binary llama-cpp-python \
        "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
fi
ADAPTERCTL="${ADAPTERCTL:-}"
if [[ -z "$ADAPTERCTL" ]]; then
    cargo build --release -p adapterctl --quiet
    ADAPTERCTL="${CARGO_TARGET_DIR:-target}/release/adapterctl"
fi
exec "$VENV/bin/python" bench/llama_cpp_peer.py --adapterctl "$ADAPTERCTL" "$@"
