#!/usr/bin/env python
"""Extreme inputs: each must work within a few seconds or raise an ``EinderivError``
that says which limit was hit -- never a RecursionError, a MemoryError, another
exception, or a hang.

Usage::

    python benchmarks/extremes.py                 # every case, a table of timings
    python benchmarks/extremes.py --limit 10      # seconds allowed per case (default 10)
    python benchmarks/extremes.py --case deep_parens_5000 --case sum_20000_terms_diff

Each case runs in a child process (a hang inside C code cannot be interrupted
otherwise) with a timer signal as a second guard. The exit status is 1 if any case
failed. The test suite runs the same cases (tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from typing import Any, Callable

N_DEEP = 5000
N_TERMS = 20000
LONG = 200
RANK = 10

CASES: dict[str, Callable[[], Any]] = {}


def case(fn: Callable[[], Any]) -> Callable[[], Any]:
    CASES[fn.__name__] = fn
    return fn


def _np():
    import numpy as np
    return np


def _ed():
    import einderiv
    return einderiv


# ------------------------------------------------------------------- nesting depth

@case
def deep_parens_5000():
    return _ed().parse("(" * N_DEEP + "x" + ")" * N_DEEP)


@case
def deep_functions_5000():
    return _ed().parse("exp(" * N_DEEP + "x" + ")" * N_DEEP)


@case
def deep_signs_5000():
    return _ed().parse("-" * N_DEEP + "x")


@case
def deep_power_tower_5000():
    return _ed().parse("x**" * N_DEEP + "x")


@case
def deep_sum_over_5000():
    return _ed().parse("sum[i](" * N_DEEP + "x[i]" + ")" * N_DEEP)


@case
def deep_neg_parens_5000():
    return _ed().parse("-(" * N_DEEP + "x" + ")" * N_DEEP)


@case
def deep_inv_5000():
    return _ed().parse("inv(" * N_DEEP + "M" + ")[i,j]" * N_DEEP)


@case
def deep_diff_5000():
    return _ed().diff("tanh(" * N_DEEP + "x[i]" + ")" * N_DEEP, "x")


@case
def deep_cli_5000():
    import contextlib
    import io
    from einderiv.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["diff", "(" * N_DEEP + "x" + ")" * N_DEEP, "--wrt", "x"])
    if rc != 2:
        raise AssertionError(f"exit status {rc}: {err.getvalue()[:200]}")
    return err.getvalue().strip().splitlines()[0]


def _max_depth() -> int:
    from einderiv.symbolic import syntax
    return syntax.MAX_DEPTH


@case
def deep_signs_times_parens():
    """Signs and parentheses each within the limit, multiplied."""
    n = _max_depth() - 1
    return _ed().parse(("-" * n + "(") * n + "x" + ")" * n)


@case
def deep_tanh_at_limit_diff():
    n = _max_depth() - 1
    d = _ed().diff("tanh(" * n + "x[i]" + ")" * n, "x")
    np = _np()
    return d.evaluate(x=np.linspace(-1, 1, 3)).shape


@case
def deep_tanh_at_limit_hessian():
    n = _max_depth() - 2
    ed = _ed()
    g = ed.diff("sum[i](" + "tanh(" * n + "x[i]" + ")" * n + ")", "x")
    h = ed.diff(g, "x[q]")
    return h.evaluate(x=_np().linspace(-1, 1, 3)).shape


@case
def deep_nested_sum_product_diff():
    """((x+y)*x+y)*x ... at the depth limit: each level one sum and one product."""
    n = _max_depth() - 1
    d = _ed().diff("(" * n + "x" + "+y)*x" * n, "x")
    return d.evaluate(x=0.5, y=0.25)


@case
def deep_power_chain_at_limit_diff():
    n = _max_depth() - 1
    d = _ed().diff("(" * n + "x" + ")**2" * n, "x")
    return str(d)[:40]


# ---------------------------------------------------------------------- width

def _sum_text(term: Callable[[int], str]) -> str:
    return " + ".join(term(k) for k in range(N_TERMS))


@case
def sum_20000_equal_terms():
    return str(_ed().parse(_sum_text(lambda k: "x[i]")))


@case
def sum_20000_terms_parse_print():
    e = _ed().parse(_sum_text(lambda k: f"x{k}[i]"))
    return len(str(e))


@case
def sum_20000_terms_diff():
    """20,000 terms, each with a different coefficient variable: 20,000 derivative terms."""
    d = _ed().diff(_sum_text(lambda k: f"c{k}*x[i]"), "x")
    return len(str(d))


@case
def sum_20000_terms_evaluate():
    np = _np()
    e = _ed().parse(_sum_text(lambda k: f"x{k}[i]"))
    return e.evaluate(**{f"x{k}": np.full(3, k) for k in range(N_TERMS)}).tolist()


@case
def product_20000_factors():
    e = _ed().parse("*".join(["x[i]"] * N_TERMS))
    return e.evaluate(x=_np().ones(3)).tolist()


@case
def product_20000_scalars_diff():
    return str(_ed().diff("*".join(f"s{k}" for k in range(N_TERMS)), "s7"))[:40]


@case
def sum_20000_terms_cli():
    import contextlib
    import io
    from einderiv.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["diff", _sum_text(lambda k: f"x{k}[i]"), "--wrt", "x3"])
    if rc != 0:
        raise AssertionError(f"exit status {rc}")
    return len(out.getvalue())


# ----------------------------------------------------------------------- names

@case
def index_names_200_chars():
    np = _np()
    a, b = "i" * LONG, "j" * LONG
    ed = _ed()
    d = ed.diff(f"x[{a}]*A[{a},{b}]*x[{b}]", "x")
    text = str(d)
    again = ed.parse(text)
    v = d.evaluate(x=np.arange(3.0), A=np.eye(3))
    return len(text), again == d, v.tolist(), len(d.to_latex())


@case
def variable_names_200_chars():
    np = _np()
    v = "v" * LONG
    ed = _ed()
    d = ed.diff(f"{v}[i]*{v}[i]", f"{v}[{'q' * LONG}]")
    return d.evaluate(**{v: np.arange(3.0)}).tolist(), len(str(d)), len(d.to_latex())


@case
def names_100000_chars():
    ed = _ed()
    e = ed.parse("v" * 100000 + "[" + "i" * 100000 + "]")
    return len(str(e)), len(e.to_latex())


@case
def long_name_error_message():
    """A parse error in a 100,000-character input: the message stays short."""
    try:
        _ed().parse("x" * 100000 + " +")
    except _ed().ParseError as exc:
        return len(str(exc))
    raise AssertionError("no error")


# ------------------------------------------------------------------------ rank

_IDX = ",".join("abcdefghij"[:RANK])
_IDX2 = ",".join("klmnopqrst"[:RANK])


@case
def rank_10_diff_evaluate():
    np = _np()
    d = _ed().diff(f"T[{_IDX}]*T[{_IDX}]", "T")
    return d.evaluate(T=np.ones((2,) * RANK)).shape


@case
def rank_10_jacobian_20_axes():
    np = _np()
    d = _ed().diff(f"T[{_IDX}]", "T")
    return d.evaluate(T=np.ones((2,) * RANK)).shape


@case
def rank_10_hessian():
    np = _np()
    ed = _ed()
    h = ed.diff(ed.diff(f"T[{_IDX}]*T[{_IDX}]", "T"), "T[" + ",".join(f"h{k}" for k in range(RANK)) + "]")
    return h.evaluate(T=np.ones((2,) * RANK)).shape


@case
def rank_10_jacobian_too_big():
    """4**20 entries (8.8 TB): must be refused with a LimitError, not a MemoryError."""
    np = _np()
    d = _ed().diff(f"T[{_IDX}]", "T")
    return d.evaluate(T=np.ones((4,) * RANK)).shape


@case
def outer_product_too_big():
    np = _np()
    e = _ed().parse("a[i]*b[j]*c[k]*d[l]*e[m]")
    return e.evaluate(**{n: np.ones(1000) for n in "abcde"}).shape


@case
def rank_30_jacobian():
    """60 distinct indices in one product: more than numpy.einsum's 52 letters."""
    np = _np()
    idx = ",".join(f"i{k}" for k in range(30))
    d = _ed().diff(f"T[{idx}]", "T")
    return d.evaluate(T=np.ones((1,) * 30)).shape


@case
def rank_40_hessian_axes():
    """A result with 80 axes: more than an ndarray can have."""
    np = _np()
    idx = ",".join(f"i{k}" for k in range(40))
    ed = _ed()
    d = ed.diff(f"T[{idx}]*T[{idx}]", "T")
    h = ed.diff(d, "T[" + ",".join(f"zz{k}" for k in range(40)) + "]")
    return h.evaluate(T=np.ones((1,) * 40)).shape


# ====================================================================== running


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run_in_process(name: str, limit: float) -> dict:
    """Run one case here; classify the outcome."""
    import einderiv
    fn = CASES[name]
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    t0 = time.perf_counter()
    try:
        value = fn()
        status, detail = "ok", repr(value)[:100]
    except einderiv.EinderivError as exc:
        status = "limit"
        detail = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
    except _Timeout:
        status, detail = "FAIL", f"hang: still running after {limit:.0f} s"
    except BaseException as exc:  # noqa: BLE001 - that is the point
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno} {tb[-1].name}" if tb else ""
        status, detail = "FAIL", f"{type(exc).__name__}: {str(exc)[:160]}{where}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return {"case": name, "status": status, "seconds": round(time.perf_counter() - t0, 3),
            "detail": detail}


def run_case(name: str, limit: float = 10.0) -> dict:
    """Run one case in a child process; a child that does not answer within
    ``limit`` + 15 s (stuck in C code) is killed and reported as a hang."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--limit", str(limit)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit + 15)
    except subprocess.TimeoutExpired:
        return {"case": name, "status": "FAIL", "seconds": round(time.perf_counter() - t0, 3),
                "detail": f"hang: killed after {limit + 15:.0f} s (stuck outside Python code)"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"case": name, "status": "FAIL", "seconds": round(time.perf_counter() - t0, 3),
                "detail": f"child exited with {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="run only these")
    ap.add_argument("--limit", type=float, default=10.0, help="seconds per case (default 10)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(run_in_process(args.child, args.limit)), flush=True)
        return 0
    names = args.case or list(CASES)
    failed = 0
    if not args.json:
        print(f"{'case':<34} {'seconds':>8}  {'outcome':<6} detail")
    for name in names:
        r = run_case(name, args.limit)
        failed += r["status"] == "FAIL"
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"{name:<34} {r['seconds']:>8.2f}  {r['status']:<6} {r['detail']}", flush=True)
    if not args.json:
        print(f"\n{len(names)} cases, {failed} failed (limit {args.limit:.0f} s per case; "
              "'limit' = refused with an EinderivError naming the limit)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
