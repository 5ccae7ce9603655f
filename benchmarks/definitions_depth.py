"""Definitions (issue 22): how a deep network's text, derivation and printed result grow
with depth.

Two networks of the tests: the chain ``network(depth)`` of tests/test_definitions.py
(``Z{k} = W{k}^T A{k-1}; A{k} = tanh(Z{k})`` per layer, a squared loss on top) and the
residual ``residual(depth)`` of tests/test_named.py (``A{k} = A{k-1} + tanh(W{k}
A{k-1})``: each layer uses the one before twice, so its text written out doubles per
layer). Each is differentiated by the first layer's weights ``W1`` (the longest chain
rule) at depths 1, 2, 4, ..., 64. For each depth: the length of the text, the time of
``einderiv.diff`` from the text (best of ``--repeats`` runs, a fresh parse each time;
parsing alone beside it), the time to print the result in the names and in matrix
notation, and the length of the printed result. The growth exponent is the
least-squares slope of log(time) against log(depth) over depths 4..64 (1: linear);
ratios, not absolute times, are what this noisy machine can tell. The expanded result
(``expand=True``) is measured up to depth 8 only: it is quadratic in depth for the
chain and exponential for the residual network.

Run: ``python benchmarks/definitions_depth.py [--repeats N]``; writes
``benchmarks/results/definitions_depth.json`` and prints the markdown tables of
docs/language.md, "Definitions".
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
from test_named import residual  # noqa: E402

DEPTHS = (1, 2, 4, 8, 16, 32, 64)
FIT_FROM = 4
EXPANDED_UP_TO = 8


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


def measure(make, repeats: int) -> dict:
    rows = []
    for depth in DEPTHS:
        text = make(depth)
        parse = _best(lambda: einderiv.parse(text), repeats)  # noqa: B023
        derive = _best(lambda: einderiv.diff(text, "W1"), repeats)  # noqa: B023
        g = einderiv.diff(text, "W1")
        named = _best(lambda: str(g), repeats)  # noqa: B023
        matrix = _best(lambda: str(g.to_matrix()), repeats)  # noqa: B023
        expanded = len(str(einderiv.diff(text, "W1", expand=True))) \
            if depth <= EXPANDED_UP_TO else None
        rows.append({"depth": depth, "text_chars": len(text), "parse_s": parse,
                     "diff_s": derive, "print_s": named, "matrix_s": matrix,
                     "printed_chars": len(str(g)), "expanded_chars": expanded})
    fit = [r for r in rows if r["depth"] >= FIT_FROM]
    depths = [r["depth"] for r in fit]
    return {"rows": rows, **{f"slope_{k}": slope(depths, [r[f"{k}_s"] for r in fit])
                             for k in ("parse", "diff", "print", "matrix")},
            "slope_text": slope(depths, [r["text_chars"] for r in fit]),
            "slope_printed": slope(depths, [r["printed_chars"] for r in fit])}


def table(name: str, result: dict) -> str:
    rows = result["rows"]
    base = rows[0]
    lines = [f"{name}:", "",
             "| depth | text (chars) | parse (x depth 1) | diff by W1 (x depth 1) | "
             "print in names (x depth 1) | matrix form (x depth 1) | "
             "result in names / expanded (chars) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        expanded = r["expanded_chars"] if r["expanded_chars"] is not None else "-"
        lines.append(
            f"| {r['depth']} | {r['text_chars']} | {r['parse_s'] / base['parse_s']:.1f} | "
            f"{r['diff_s'] / base['diff_s']:.1f} | {r['print_s'] / base['print_s']:.1f} | "
            f"{r['matrix_s'] / base['matrix_s']:.1f} | {r['printed_chars']} / {expanded} |")
    lines.append("")
    lines.append(f"growth exponents over depths {FIT_FROM}..{DEPTHS[-1]} (1 = linear): text "
                 f"{result['slope_text']:.2f}, parse {result['slope_parse']:.2f}, diff "
                 f"{result['slope_diff']:.2f}, printing in the names "
                 f"{result['slope_print']:.2f}, matrix form {result['slope_matrix']:.2f}, "
                 f"printed result {result['slope_printed']:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = {"chain": measure(network, args.repeats),
              "residual": measure(residual, args.repeats)}
    out = ROOT / "benchmarks" / "results" / "definitions_depth.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table("Chain network (Z = W^T A; A = tanh(Z) per layer)", result["chain"]))
    print()
    print(table("Residual network (A = A + tanh(W A) per layer)", result["residual"]))


if __name__ == "__main__":
    main()
