"""Derivation time of the linear-regression gradient and Hessian (issue 2).

Measures, with time.perf_counter over many repeats, the median time of
(1) ``diff(text, "theta")`` from the expression text (parse + derive + simplify),
(2) ``diff(expr, "theta")`` from a parsed expression, and
(3) the Hessian ``diff(diff(expr, "theta"), "theta")``, and
(4) for each standard loss of tests/test_textbook_losses.py (``LOSSES``, issue 15),
``diff(text, wrt)`` from the text (``diff(diff(...))`` for its Hessian entry): the
median wall time and the median thread CPU time (on a shared machine the wall time of
a call of a few ms comes in steps of the scheduler's time slice). Goal: under 5 ms each.

Run: ``python benchmarks/derive_time.py [--repeats 300]``. Writes
benchmarks/results/derive_time.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import einderiv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_textbook_losses import LOSSES, derivative  # noqa: E402

TEXT = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"


def median_ms(fn, repeats: int) -> float:
    fn()  # warm up imports and caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def median_wall_cpu_ms(fn, repeats: int) -> dict[str, float]:
    """Median wall (perf_counter) and thread CPU (thread_time) milliseconds of fn()."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        t1, c1 = time.perf_counter(), time.thread_time()
        wall.append(t1 - t0)
        cpu.append(c1 - c0)
    return {"wall_ms": statistics.median(wall) * 1e3, "cpu_ms": statistics.median(cpu) * 1e3}


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
    losses = {loss.name: median_wall_cpu_ms(lambda loss=loss: derivative(loss), args.repeats)
              for loss in LOSSES}
    print(f"\n{'standard loss: diff(text, wrt)':40s} median ms (wall, thread CPU)")
    for name, t in losses.items():
        print(f"{name:40s} {t['wall_ms']:8.3f} {t['cpu_ms']:8.3f}")
    slowest = max(losses, key=lambda n: losses[n]["cpu_ms"])
    print(f"slowest: {slowest}, {losses[slowest]['cpu_ms']:.3f} ms CPU (goal: under 5 ms)")
    out = Path(__file__).parent / "results" / "derive_time.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "repeats": args.repeats,
        "median_ms": results,
        "loss_gradients_ms": losses,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
