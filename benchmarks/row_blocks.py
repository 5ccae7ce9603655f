"""Headroom for a gradient that reads X once (issue 20, not built): the logistic
gradient ``-X^T (y sigmoid(-y X theta))`` as two products, each a pass over X (as
einderiv's jax code does), against the same chain in blocks of rows inside one
``lax.fori_loop`` (each block's ``X_b theta``, element-wise step and ``r_b^T X_b``
while the block is in cache: X read once), and ``jax.jit(jax.grad)`` of the loss.

Hand-written JAX, not einderiv's code: it measures whether the jax dialect should
write such chains blocked. Run ``python benchmarks/row_blocks.py`` (one thread, as
the other benchmarks) and ``python benchmarks/row_blocks.py --threads all`` (XLA's
default thread pool); ``--sizes 1000x100,50000x100`` and ``--block-kib`` choose.
Interleaved rounds, the minimum of samples, ratios printed (blocked speed-up =
two-pass time / blocked time). Results: docs/benchmarks.md, issue 20's findings.
"""

import argparse
import os
import sys
import time

_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
if _threads == "1":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import one_thread  # noqa: F401  (sets the environment before jax loads)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_enable_async_dispatch", False)


def loss(theta, X, y):
    return jnp.sum(jnp.logaddexp(0.0, -y * (X @ theta)))


def sigmoid(u):
    return 1.0 / (1.0 + jnp.exp(-u))  # as einderiv writes it (jax.nn.sigmoid: slower here)


@jax.jit
def two_pass(X, y, theta):
    r = -y * sigmoid(-y * (X @ theta))
    return r @ X  # not X.T @ r: XLA on CPU copies X.T into a loop fusion (4x slower)


def blocked(rows: int):
    """The chain per block of ``rows`` rows, the blocks in a fori_loop, the remainder
    rows after it."""
    @jax.jit
    def run(X, y, theta):
        n = X.shape[0]
        full = n // rows

        def block(Xb, yb):
            return (-yb * sigmoid(-yb * (Xb @ theta))) @ Xb

        def body(k, acc):
            start = k * rows
            return acc + block(lax.dynamic_slice_in_dim(X, start, rows),
                               lax.dynamic_slice_in_dim(y, start, rows))
        acc = lax.fori_loop(0, full, body, jnp.zeros(X.shape[1], X.dtype))
        if n % rows:
            acc = acc + block(X[full * rows:], y[full * rows:])
        return acc
    return run


def sample(fn, seconds: float) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if time.perf_counter() - t0 > seconds:
            return (time.perf_counter() - t0) / n


def measure(n: int, d: int, rows: int, rng: np.random.Generator, rounds: int,
            seconds: float) -> dict[str, float]:
    """The best time of each method, checked against jax.grad first."""
    X = jnp.asarray(rng.normal(size=(n, d)))
    y = jnp.asarray(np.where(rng.random(n) < 0.5, -1.0, 1.0))
    theta = jnp.asarray(0.1 * rng.normal(size=d))
    fns = {"grad": jax.jit(jax.grad(loss)), "two-pass": two_pass, "blocked": blocked(rows)}
    args = {"grad": (theta, X, y), "two-pass": (X, y, theta), "blocked": (X, y, theta)}
    want = np.asarray(fns["grad"](*args["grad"]))
    for k in ("two-pass", "blocked"):
        np.testing.assert_allclose(np.asarray(fns[k](*args[k])), want, rtol=1e-9,
                                   atol=1e-9 * np.abs(want).max())
    best = {k: float("inf") for k in fns}
    for r in range(rounds):
        for k in list(fns)[r % 3:] + list(fns)[:r % 3]:
            best[k] = min(best[k], sample(lambda k=k: fns[k](*args[k]).block_until_ready(),
                                          seconds))
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1", choices=["1", "all"])
    p.add_argument("--sizes", default="1000x100,10000x500,50000x100,100000x100")
    p.add_argument("--block-kib", type=int, default=1024, help="bytes of X per block")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--sample-ms", type=float, default=50.0)
    args = p.parse_args()
    rng = np.random.default_rng(20)
    print(f"threads: {args.threads}; blocks of ~{args.block_kib} KiB of X; float64")
    print(f"{'n x d':>12} {'X MiB':>7} {'rows/block':>10} {'grad':>10} {'two-pass':>10} "
          f"{'blocked':>10} {'blocked speed-up':>17} {'vs grad':>8}")
    for size in args.sizes.split(","):
        n, d = map(int, size.split("x"))
        rows = min(n, max(8, args.block_kib * 1024 // (8 * d)))
        best = measure(n, d, rows, rng, args.rounds, args.sample_ms / 1000)
        print(f"{size:>12} {n * d * 8 / 2**20:7.1f} {rows:>10} "
              + " ".join(f"{best[k] * 1e3:8.3f}ms" for k in best)
              + f" {best['two-pass'] / best['blocked']:16.2f}x"
              + f" {best['grad'] / best['blocked']:7.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
