"""Issue 18: the gradients of one loss by several variables, compiled as one plan
(``einderiv.compile_expr([gW1, gb1, gW2])``, common work once) against three plans
called one after the other. Prints the step counts and the time ratio (one plan /
three plans; lower is better), median of interleaved rounds; also float32 against
float64 for the one plan. One BLAS thread (threadpoolctl, of the ``bench`` extra,
where installed; else set OMP_NUM_THREADS=1), as ``run.py``. Writes
``results/several_gradients.json``.

    python benchmarks/several_gradients.py [--batch 2000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import einderiv

NET = ("(W2[o,h]*tanh(W1[h,i]*X[i,b] + b1[h]) - T[o,b])*"
       "(W2[o,g]*tanh(W1[g,j]*X[j,b] + b1[g]) - T[o,b])")


def _time(fn, seconds: float = 0.05) -> float:
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed > seconds:
            return elapsed / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover - optional
        pass
    rng = np.random.default_rng(0)
    h, i, o, b = args.hidden, 32, 10, args.batch
    v = {"W1": rng.normal(size=(h, i)), "b1": rng.normal(size=h), "W2": rng.normal(size=(o, h)),
         "X": rng.normal(size=(i, b)), "T": rng.normal(size=(o, b))}
    v32 = {k: a.astype(np.float32) for k, a in v.items()}
    grads = einderiv.diff(NET, ["W1", "b1", "W2"])
    together = einderiv.compile_expr(grads)
    alone = [einderiv.compile_expr(g) for g in grads]
    for f in (together, *alone):   # plan once
        f(**v)
    together(**v32)
    rounds: dict[str, list[float]] = {"one plan": [], "three plans": [], "one plan float32": []}
    for _ in range(args.repeats):
        rounds["one plan"].append(_time(lambda: together(**v)))
        rounds["three plans"].append(_time(lambda: [f(**v) for f in alone]))
        rounds["one plan float32"].append(_time(lambda: together(**v32)))
    median = {k: statistics.median(t) for k, t in rounds.items()}
    report = {
        "sizes": {k: list(a.shape) for k, a in v.items()},
        "steps": {"one plan": len(together.program.steps),
                  "three plans": sum(len(f.program.steps) for f in alone)},
        "median_seconds": median,
        "ratio one/three": median["one plan"] / median["three plans"],
        "ratio float32/float64": median["one plan float32"] / median["one plan"],
    }
    print(json.dumps(report, indent=2))
    out = Path(__file__).parent / "results" / "several_gradients.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
