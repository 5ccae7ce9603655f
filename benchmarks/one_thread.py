"""The benchmarks' protocol, part 1: one thread everywhere, set before numpy (or any
framework) loads. ``import one_thread`` first thing in a benchmark script
(benchmarks/run.py, benchmarks/backends.py); importing it sets the environment."""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NPROC"):
    os.environ[_var] = "1"
os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"   # idle OpenBLAS threads sleep, not spin
os.environ["OMP_WAIT_POLICY"] = "PASSIVE"     # idle OpenMP threads sleep, not spin
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["JAX_ENABLE_X64"] = "1"
_xla = os.environ.get("XLA_FLAGS", "")
for _flag in ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"):
    if _flag.split("=")[0] not in _xla:
        _xla = f"{_xla} {_flag}".strip()
os.environ["XLA_FLAGS"] = _xla
