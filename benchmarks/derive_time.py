"""Derivation time of the linear-regression gradient and Hessian (issue 2).

Measures, with time.perf_counter over many repeats, the median time of
(1) ``diff(text, "theta")`` from the expression text (parse + derive + simplify),
(2) ``diff(expr, "theta")`` from a parsed expression, and
(3) the Hessian ``diff(diff(expr, "theta"), "theta")``.

Run: ``python benchmarks/derive_time.py [--repeats 300]``. Writes
benchmarks/results/derive_time.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import einderiv

TEXT = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"


def median_ms(fn, repeats: int) -> float:
    fn()  # warm up imports and caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    expr = einderiv.parse(TEXT)
    cases = {
        "gradient from text (parse + diff)": lambda: einderiv.diff(TEXT, "theta"),
        "gradient from parsed expression": lambda: einderiv.diff(expr, "theta"),
        "Hessian from parsed expression": lambda: einderiv.diff(einderiv.diff(expr, "theta"), "theta"),
    }
    results = {name: median_ms(fn, args.repeats) for name, fn in cases.items()}
    print(f"{'case':40s} median ms")
    for name, ms in results.items():
        print(f"{name:40s} {ms:8.3f}")
    out = Path(__file__).parent / "results" / "derive_time.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "repeats": args.repeats,
        "median_ms": results,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
