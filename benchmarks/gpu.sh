#!/usr/bin/env bash
# Issue 20's GPU run, prepared to be one call of a lent GPU machine (the `device` tool's
# `run`, timeout_s 600): the machine's own python3 has jax (CUDA) and torch (CUDA),
# numpy, opt_einsum, pytest and hypothesis, so einderiv runs from the checkout by
# PYTHONPATH, nothing installed. Writes under $OUT (or ./gpu-run): gpu.txt (the card,
# the driver, the versions), tests.txt (the backend tests, on the GPU), log.txt and
# backends.json/.md (the json after each row: a run cut short keeps its rows). Back
# here: `python benchmarks/backends.py --render DIR/backends.json` writes the GPU
# section of docs/benchmarks.md; copy the json to benchmarks/results/backends-gpu.json.
set -o pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-gpu-run}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # torch shares the card
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import jax, torch, numpy, opt_einsum; print('jax', jax.__version__, jax.devices()); \
print('torch', torch.__version__, torch.cuda.is_available(), torch.version.cuda); \
print('numpy', numpy.__version__, 'opt_einsum', opt_einsum.__version__)"
} 2>&1 | tee "$out/gpu.txt"
# correctness first: the backend tests, JAX's arrays on the GPU (its default device
# there), the identities' torch tensors moved to it
EINDERIV_TORCH_DEVICE=cuda timeout 120 python3 -m pytest -q -p no:cacheprovider \
    tests/test_backends.py tests/test_jax_products.py 2>&1 | tail -40 | tee "$out/tests.txt"
timeout "${GPU_RUN_S:-420}" python3 benchmarks/backends.py --device gpu --rounds "${ROUNDS:-3}" \
    --sample-ms "${SAMPLE_MS:-10}" --skip torch.compile --out "$out" "$@" 2>&1 | tee "$out/log.txt"
