"""Definitions (issue 22): how a deep network's text, derivation and printed result grow
with depth.

The network of tests/test_definitions.py (``network(depth)``: ``Z{k} = W{k}^T A{k-1};
A{k} = tanh(Z{k})`` per layer, a squared loss on top) is differentiated by the first
layer's weights ``W1`` (the longest chain rule) at depths 1, 2, 4, 8, 16. For each depth:
the length of the text, the time of ``einderiv.diff`` (best of ``--repeats`` runs, a
fresh parse each time), the time to print the result in the names and in matrix
notation, the length of the printed result in the names and expanded, and the numpy
evaluation against finite differences at depth 4 as a check. The growth exponent is the
least-squares slope of log(time) against log(depth) over depths 2..16 (1: linear);
ratios, not absolute times, are what this noisy machine can tell.

Run: ``python benchmarks/definitions_depth.py [--repeats N]``; writes
``benchmarks/results/definitions_depth.json`` and prints a markdown table (the one in
docs/language.md, "Definitions").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import einderiv  # noqa: E402
from test_definitions import network  # noqa: E402

DEPTHS = (1, 2, 4, 8, 16)


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for depth in DEPTHS:
        text = network(depth)
        derive = _best(lambda: einderiv.diff(text, "W1"), args.repeats)  # noqa: B023
        g = einderiv.diff(text, "W1")
        named = _best(lambda: str(g), args.repeats)  # noqa: B023
        matrix = _best(lambda: str(g.to_matrix()), args.repeats)  # noqa: B023
        rows.append({"depth": depth, "text_chars": len(text), "diff_s": derive,
                     "print_s": named, "matrix_s": matrix,
                     "printed_chars": len(str(g).split("; ")[-1]),
                     "expanded_chars": len(str(einderiv.diff(text, "W1", expand=True)))})
    fit = [r for r in rows if r["depth"] >= 2]
    result = {"rows": rows,
              "slope_diff": slope([r["depth"] for r in fit], [r["diff_s"] for r in fit]),
              "slope_print": slope([r["depth"] for r in fit], [r["print_s"] for r in fit]),
              "slope_text": slope([r["depth"] for r in fit], [r["text_chars"] for r in fit])}
    out = ROOT / "benchmarks" / "results" / "definitions_depth.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    base = rows[0]
    print("| depth | text (chars) | diff (x depth 1) | print in names (x depth 1) | "
          "matrix form (x depth 1) | result in names / expanded (chars) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['depth']} | {r['text_chars']} | {r['diff_s'] / base['diff_s']:.1f} | "
              f"{r['print_s'] / base['print_s']:.1f} | {r['matrix_s'] / base['matrix_s']:.1f} | "
              f"{r['printed_chars']} / {r['expanded_chars']} |")
    print(f"\ngrowth exponents over depths 2..16 (1 = linear): text {result['slope_text']:.2f}, "
          f"diff {result['slope_diff']:.2f}, printing in the names {result['slope_print']:.2f}")


if __name__ == "__main__":
    main()
