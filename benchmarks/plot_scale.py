"""Time ``einderiv.plot`` on a large Jacobian (issue 18): ``d(A X)/dX`` with ``A`` and
``X`` of ``N x N``, a tensor of ``N**4`` entries (10^8 for N = 100), drawn and saved as
a PNG. Prints the seconds per stage (evaluate is included in ``plot``) and, with
``--json``, writes them there.

Run: python benchmarks/plot_scale.py [--n 100] [--repeats 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np

import einderiv

matplotlib.use("Agg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    n = args.n
    rng = np.random.default_rng(0)
    A, X = rng.normal(size=(n, n + 1)), rng.normal(size=(n + 1, n))
    d = einderiv.diff("A[i,k]*X[k,j]", "X")
    t0 = time.perf_counter()
    d.evaluate(A=A, X=X)
    evaluate_s = time.perf_counter() - t0
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            einderiv.plot(d, "X", path=Path(tmp) / "big.png", A=A, X=X)
            times.append(time.perf_counter() - t0)
    entries = A.shape[0] * X.size * X.shape[1]
    result = {"n": n, "entries": entries, "evaluate_s": round(evaluate_s, 3),
              "plot_s": [round(t, 3) for t in times], "plot_best_s": round(min(times), 3)}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
