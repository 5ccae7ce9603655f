"""The benchmark suite of issue 5: einderiv against hand-written numpy, JAX, torch.func
and autograd, plus derivation times and the k-chain.

Run ``python benchmarks/run.py`` (``--quick`` for a smoke test under 2 minutes,
``--cases C1,C3``, ``--repeats N``, ``--out DIR``). Prints a table of ratios and one
of FLOPs (einderiv's plan against the hand-written formula) and writes
``DIR/latest.json`` and ``DIR/latest.md`` (default DIR: benchmarks/results). The
protocol and the columns are described in benchmarks/README.md.
"""

# --- Protocol, part 1: one thread everywhere, set before numpy (or any framework) loads.
import one_thread  # noqa: F401
import os

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases as case_table  # noqa: E402
from cases import Case  # noqa: E402

import einderiv  # noqa: E402
from einderiv.core.ir import Sum  # noqa: E402

HERE = Path(__file__).resolve().parent
COMPETITORS = ("hand", "einderiv", "evaluate", "einderiv-jax", "jax", "torch", "autograd")
TITLES = {
    "hand": "hand-written numpy",
    "einderiv": "einderiv compiled",
    "evaluate": "einderiv evaluate (first result)",
    "einderiv-jax": "einderiv compiled, backend='jax'",
    "jax": "jax.jit",
    "torch": "torch.func",
    "autograd": "autograd",
}
SHORT = {"hand": "hand", "einderiv": "einderiv", "evaluate": "evaluate",
         "einderiv-jax": "einderiv-jax", "jax": "jax.jit",
         "torch": "torch.func", "autograd": "autograd"}
KCHAIN_FULL = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 40, 48, 56, 64)
KCHAIN_QUICK = (1, 2, 4, 8, 16, 32, 64)
KCHAIN_TAIL_FROM = 8   # the slope target is judged on k >= this (asymptotic growth)
KCHAIN_FLOPS_K, KCHAIN_FLOPS_D = 16, 1000   # the k-chain's FLOP comparison (issue 5)
FLOPS_CONVENTION = (
    "FLOPs are counted as opt_einsum counts them: 2 per multiply-add of a contraction "
    "(an (m,k) @ (k,n) product is 2mkn), (operands - 1) per element of a product with "
    "nothing summed, 1 per element of an element-wise step, n d (d+1) for a symmetric "
    "Z^T Z (syrk) with Z n x d; einderiv's number is its compiled plan's estimate "
    "(CompiledExpr.flops), the hand-written one counts the reference formula of "
    "benchmarks/cases.py; ratio = einderiv / hand-written.")
DERIVE_TARGET_MS = 5.0


def log(msg: str = "") -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------ frameworks


class Frameworks:
    """The optional competitors: loaded if installed, skipped (and said so) if not."""

    def __init__(self, skip: set[str]):
        self.jax = self.jnp = self.torch = self.tfunc = self.ag = self.anp = None
        self.missing: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        if "jax" in skip:
            self.missing["jax"] = "skipped by --skip"
        else:
            try:
                import jax
                jax.config.update("jax_enable_x64", True)
                import jax.numpy as jnp
                self.jax, self.jnp = jax, jnp
                self.versions["jax"] = jax.__version__
                self.versions["jaxlib"] = _version("jaxlib")
            except Exception as exc:  # ImportError, or a broken install
                self.missing["jax"] = f"not installed ({type(exc).__name__}: {exc})"
        if "jax" in self.missing or "einderiv-jax" in skip:  # einderiv's plan run by JAX
            self.missing["einderiv-jax"] = self.missing.get("jax", "skipped by --skip")
        if "torch" in skip:
            self.missing["torch"] = "skipped by --skip"
        else:
            try:
                import torch
                import torch.func
                torch.set_num_threads(1)
                try:
                    torch.set_num_interop_threads(1)
                except RuntimeError:  # already set, or parallel work already started
                    pass
                self.torch, self.tfunc = torch, torch.func
                self.versions["torch"] = torch.__version__
            except Exception as exc:
                self.missing["torch"] = f"not installed ({type(exc).__name__}: {exc})"
        if "autograd" in skip:
            self.missing["autograd"] = "skipped by --skip"
        else:
            try:
                import autograd
                import autograd.numpy as anp
                self.ag, self.anp = autograd, anp
                self.versions["autograd"] = _version("autograd")
            except Exception as exc:
                self.missing["autograd"] = f"not installed ({type(exc).__name__}: {exc})"
        for name in ("einderiv", "evaluate"):  # the hand-written baseline always runs
            if name in skip:
                self.missing[name] = "skipped by --skip"

    def warm_up(self) -> None:
        """First use of each transform (lazy imports, dispatcher setup) on a tiny
        problem, so that no case's first call pays for it."""
        x = np.linspace(0.5, 1.5, 3)

        def f(xp, v):
            return xp.sum(xp.tanh(v) * v)

        def g(xp, v):
            return xp.tanh(v)
        if self.jax is not None:
            jnp = self.jnp
            for T, fun in ((self.jax.grad, f), (self.jax.hessian, f), (self.jax.jacrev, g)):
                self.jax.block_until_ready(self.jax.jit(T(lambda v: fun(jnp, v)))(jnp.asarray(x)))
        if self.torch is not None:
            t = self.torch.from_numpy(x)
            for T, fun in ((self.tfunc.grad, f), (self.tfunc.hessian, f), (self.tfunc.jacrev, g)):
                T(lambda v: fun(self.torch, v))(t)
        if self.ag is not None:
            for T, fun in ((self.ag.grad, f), (self.ag.hessian, f), (self.ag.jacobian, g)):
                T(lambda v: fun(self.anp, v))(x)

    def available(self) -> list[str]:
        return [c for c in COMPETITORS if c not in self.missing]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


# --------------------------------------------------------------------- helpers


def clear_einderiv_caches() -> None:
    """Empty every functools cache in einderiv, so an 'uncached first call' is one."""
    for name, mod in list(sys.modules.items()):
        if not (name == "einderiv" or name.startswith("einderiv.")) or mod is None:
            continue
        for obj in list(vars(mod).values()):
            clear = getattr(obj, "cache_clear", None)
            if callable(clear) and getattr(obj, "__module__", "").startswith("einderiv"):
                clear()


def derive(case: Case) -> einderiv.Expr:
    """The derivative einderiv computes for a case (from the text: parse + diff)."""
    e = einderiv.diff(case.expr, case.wrt)
    if case.order == 2:
        e = einderiv.diff(e, case.wrt)
    return e


def to_denominator(result: np.ndarray, case: Case, w: np.ndarray) -> np.ndarray:
    """A framework's Jacobian (output axes first) moved into denominator layout."""
    if case.kind != "jacobian":
        return result
    n_out = result.ndim - np.ndim(w)
    return result.transpose(tuple(range(n_out, result.ndim)) + tuple(range(n_out)))


def matches(result: Any, ref: np.ndarray, rtol: float) -> tuple[bool, str]:
    result = np.asarray(result)
    if result.shape != ref.shape:
        return False, f"shape {result.shape}, expected {ref.shape}"
    if not np.all(np.isfinite(result)):
        return False, "non-finite entries"
    scale = float(np.max(np.abs(ref))) if ref.size else 1.0
    err = float(np.max(np.abs(result - ref))) if ref.size else 0.0
    ok = bool(np.allclose(result, ref, rtol=rtol, atol=1e-8 * max(scale, 1e-300)))
    return ok, f"max abs error {err:.2e} (max |ref| {scale:.2e})"


def short_error(exc: BaseException) -> str:
    text = " / ".join(line for line in f"{type(exc).__name__}: {exc}".splitlines()
                      if line.strip())
    return text if len(text) < 300 else text[:297] + "..."


@dataclass
class Runner:
    """One competitor on one case."""
    key: str
    call: Callable[[], Any]
    to_numpy: Callable[[Any], np.ndarray]
    prepare: Callable[[], None] | None = None   # before every call, outside the timer
    number: int = 1                            # calls per timed sample
    samples: list[float] = field(default_factory=list)
    samples_cpu: list[float] = field(default_factory=list)
    status: str = "ok"          # ok | wrong | error | skipped | missing
    note: str = ""
    check: str = ""
    extra: dict[str, float] = field(default_factory=dict)  # e.g. jax compile seconds
    slow: bool = False          # first call over the limit: that one call is the sample
    max_samples: int = 10**9    # fewer rounds for a slow competitor (--budget-s)

    def timed(self) -> float:
        """One call, its result kept in ``_last``; wall seconds (CPU in ``_last_cpu``)."""
        if self.prepare is not None:
            self.prepare()
        c0, t0 = time.process_time(), time.perf_counter()
        out = self.call()
        t, self._last_cpu = time.perf_counter() - t0, time.process_time() - c0
        self._last = out
        return t

    def sample(self) -> float:
        """One sample: wall time per call (the process CPU time goes to samples_cpu)."""
        gc_was = gc.isenabled()
        gc.disable()
        try:
            n = 1 if self.prepare is not None else self.number
            if self.prepare is not None:
                self.prepare()
            call = self.call
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                call()
            t1, c1 = time.perf_counter(), time.process_time()
            self.samples_cpu.append((c1 - c0) / n)
            return (t1 - t0) / n
        finally:
            if gc_was:
                gc.enable()

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.samples_cpu) if self.samples_cpu else None


# ------------------------------------------------------------ building runners


def build_runners(case: Case, data: dict, fw: Frameworks, args) -> dict[str, Runner]:
    runners: dict[str, Runner] = {}
    ident = lambda r: np.asarray(r)  # noqa: E731
    wrt = case.wrt
    w = data[wrt]
    others = {k: v for k, v in data.items() if k != wrt}
    avail = fw.available()

    runners["hand"] = Runner("hand", lambda: case.reference(data), ident)  # the baseline

    if "einderiv" in avail:
        try:
            t0 = time.perf_counter()
            expr = derive(case)
            t1 = time.perf_counter()
            compiled = expr.compile()
            t2 = time.perf_counter()
            r = Runner("einderiv", lambda: compiled(**data), ident)
            r.extra = {"derive_s": t1 - t0, "compile_s": t2 - t1}
        except Exception as exc:
            r = Runner("einderiv", lambda: None, ident, status="error", note=short_error(exc))
            r.extra["traceback"] = traceback.format_exc()  # type: ignore[assignment]
            log(f"  !!! ERROR: einderiv diff/compile on {case.label}: {r.note}")
        runners["einderiv"] = r

    if "evaluate" in avail:
        runners["evaluate"] = Runner("evaluate", lambda: derive(case).evaluate(**data), ident,
                                     prepare=clear_einderiv_caches)

    if "einderiv-jax" in avail:
        runners["einderiv-jax"] = _einderiv_jax_runner(case, data, fw)
    if fw.jax is not None:
        runners["jax"] = _jax_runner(case, w, others, fw, args)
    if fw.torch is not None:
        runners["torch"] = _torch_runner(case, w, others, fw, args)
    if fw.ag is not None:
        runners["autograd"] = _autograd_runner(case, w, others, fw, args)
    return runners


def _transform(kind: str, grad, hessian, jacobian):
    return {"grad": grad, "hessian": hessian, "jacobian": jacobian}[kind]


def _fresh_fun(case: Case, xp):
    """A new function object each time (so JAX cannot reuse a trace)."""
    wrt, loss = case.wrt, case.loss

    def f(w, others):
        return loss(xp, {**others, wrt: w})
    return f


def _jax_runner(case: Case, w, others, fw: Frameworks, args) -> Runner:
    jax, jnp = fw.jax, fw.jnp
    T = _transform(case.kind, jax.grad, jax.hessian, jax.jacrev)
    wj = jnp.asarray(w)
    oj = {k: (jnp.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in others.items()}
    try:
        compile_times = []
        for _ in range(args.compile_repeats):
            jitted = jax.jit(T(_fresh_fun(case, jnp)))
            t0 = time.perf_counter()
            jitted.lower(wj, oj).compile()
            compile_times.append(time.perf_counter() - t0)
        jitted = jax.jit(T(_fresh_fun(case, jnp)))
        jitted(wj, oj)  # compile for the steady-state calls (not timed)
    except Exception as exc:
        return Runner("jax", lambda: None, np.asarray, status="error", note=short_error(exc))
    block = jax.block_until_ready
    r = Runner("jax", lambda: block(jitted(wj, oj)),
               lambda out: to_denominator(np.asarray(out), case, w))
    r.extra = {"compile_s": statistics.median(compile_times),
               "compile_samples": compile_times}  # type: ignore[dict-item]
    return r


def _einderiv_jax_runner(case: Case, data: dict, fw: Frameworks) -> Runner:
    """einderiv's derivative exported as JAX code and jitted (``compile(backend="jax")``),
    JAX arrays made beforehand; the first call (trace + XLA compile) is not timed."""
    jax, jnp = fw.jax, fw.jnp
    arrays = {k: (jnp.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in data.items()}
    try:
        compiled = derive(case).compile(backend="jax")
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(**arrays))
        first = time.perf_counter() - t0
    except Exception as exc:
        return Runner("einderiv-jax", lambda: None, np.asarray, status="error",
                      note=short_error(exc))
    r = Runner("einderiv-jax", lambda: jax.block_until_ready(compiled(**arrays)), np.asarray)
    r.extra = {"first_call_s": first}
    return r


def _torch_runner(case: Case, w, others, fw: Frameworks, args) -> Runner:
    torch, tf = fw.torch, fw.tfunc
    T = _transform(case.kind, tf.grad, tf.hessian, tf.jacrev)
    wt = torch.from_numpy(np.ascontiguousarray(w))
    ot = {k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v)
          for k, v in others.items()}
    f = _fresh_fun(case, torch)
    fn = T(f)
    r = Runner("torch", lambda: fn(wt, ot),
               lambda out: to_denominator(out.detach().numpy(), case, w))
    if case.kind == "hessian":
        _guard_hessian(r, lambda: tf.grad(f)(wt, ot), np.size(w), args)
    return r


def _autograd_runner(case: Case, w, others, fw: Frameworks, args) -> Runner:
    ag, anp = fw.ag, fw.anp
    f = _fresh_fun(case, anp)
    T = _transform(case.kind, ag.grad, ag.hessian, ag.jacobian)
    fn = T(f)
    r = Runner("autograd", lambda: fn(w, others),
               lambda out: to_denominator(np.asarray(out), case, w))
    if case.kind == "hessian":
        g = ag.grad(f)
        _guard_hessian(r, lambda: g(w, others), np.size(w), args)
    return r


def _guard_hessian(r: Runner, grad_call: Callable[[], Any], entries: int, args) -> None:
    """Skip a framework's Hessian whose estimated cost is over --max-call-s.

    autograd.hessian runs one reverse pass per entry of the variable, and
    torch.func.hessian (jacfwd over jacrev, vmapped) costs about as much on these
    cases: the estimate is the framework's own gradient time x the number of entries,
    measured before committing to a call that could take minutes.
    """
    try:
        grad_call()
        t0 = time.perf_counter()
        grad_call()
        est = (time.perf_counter() - t0) * entries
    except Exception:  # the Hessian call itself will report the problem
        return
    r.extra["estimated_s"] = est
    if est > args.max_call_s:
        r.status = "skipped"
        r.note = (f"too slow: estimated {est:.0f} s per call (its gradient time x "
                  f"{entries} entries) > --max-call-s {args.max_call_s:g}")


# ------------------------------------------------------------------ measuring


def measure_case(case: Case, fw: Frameworks, args) -> dict:
    data = case.make_data()
    ref = case.reference(data)
    runners = build_runners(case, data, fw, args)

    # Correctness, once per competitor before any timing; also the warm-up call.
    for r in runners.values():
        if r.status != "ok":
            continue
        try:
            t_check = r.timed()   # also warms up (lazy imports, first-use setup)
            out = r._last
            r._last = None
            if r.key == "hand":
                r.check = "reference"
            else:
                ok, detail = matches(r.to_numpy(out), ref, case.rtol)
                r.check = detail
                if not ok:
                    r.status = "wrong"
                    log(f"  !!! MISMATCH: {TITLES[r.key]} on {case.label}: {detail}")
            r.extra["check_call_s"] = t_check
            # a second call: the size of a sample, or the only sample if it is slow
            t_warm = r.timed() if t_check <= args.max_call_s else t_check
            if t_warm > args.max_call_s:
                r.slow, r.samples, r.samples_cpu = True, [t_warm], [r._last_cpu]
                r.note = (r.note + "; " if r.note else "") + \
                    f"one call only: a call took {t_warm:.1f} s > --max-call-s"
                continue
            if r.prepare is None:
                r.number = max(1, min(100000, math.ceil(args.sample_s / max(t_warm, 1e-9))))
            # a slow competitor takes fewer rounds: about --budget-s per case, at least 3
            r.max_samples = max(3, int(args.budget_s / max(t_warm * r.number, 1e-9)))
        except Exception as exc:
            r.status, r.note = "error", short_error(exc)
            r.extra["traceback"] = traceback.format_exc()  # type: ignore[assignment]
            log(f"  !!! ERROR: {TITLES[r.key]} on {case.label}: {r.note}")
        finally:
            r._last = None

    # Interleaved, rotated rounds: round k starts with the k-th competitor.
    active = [r for r in runners.values() if r.status in ("ok", "wrong") and not r.slow]
    for k in range(args.repeats):
        gc.collect()
        shift = k % len(active) if active else 0
        for r in active[shift:] + active[:shift]:
            if len(r.samples) < r.max_samples:
                r.samples.append(r.sample())

    hand = runners["hand"].median
    result = {"case": case.id, "name": case.name, "kind": case.kind, "label": case.label,
              "sizes": dict(case.sizes), "expr": case.expr, "wrt": case.wrt,
              "competitors": {}}
    for key in COMPETITORS:
        if key not in runners:
            result["competitors"][key] = {"status": "missing",
                                          "note": fw.missing.get(key, "not installed")}
            continue
        r = runners[key]
        med = r.median
        cpu, hand_cpu = r.cpu_median, runners["hand"].cpu_median
        entry = {"status": r.status, "median_s": med,
                 "ratio": (med / hand) if (med is not None and hand) else None,
                 "cpu_median_s": cpu,
                 "cpu_ratio": (cpu / hand_cpu) if (cpu is not None and hand_cpu) else None,
                 "samples_cpu_s": r.samples_cpu,
                 "samples_s": r.samples, "calls_per_sample": r.number,
                 "check": r.check, "note": r.note, "one_call": r.slow,
                 "samples": len(r.samples)}
        entry.update({k: v for k, v in r.extra.items()})
        result["competitors"][key] = entry
    return result


# ------------------------------------------------------- derivation and k-chain


def time_ms(fn: Callable[[], Any], min_repeats: int, max_repeats: int,
            budget_s: float) -> dict[str, float]:
    """Median wall and thread-CPU milliseconds of ``fn()``, einderiv's caches emptied
    before each call. Pure-Python work of a few ms: on a shared machine the wall time
    is quantized by the scheduler's time slices, the thread's CPU time is not."""
    clear_einderiv_caches()
    fn()  # warm up imports
    wall: list[float] = []
    cpu: list[float] = []
    start = time.perf_counter()
    while len(wall) < max_repeats and (len(wall) < min_repeats
                                       or time.perf_counter() - start < budget_s):
        clear_einderiv_caches()
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        t1, c1 = time.perf_counter(), time.thread_time()
        wall.append(t1 - t0)
        cpu.append(c1 - c0)
    return {"wall_ms": statistics.median(wall) * 1e3, "cpu_ms": statistics.median(cpu) * 1e3,
            "min_wall_ms": min(wall) * 1e3, "repeats": len(wall)}


def derivation_table(selected: list[Case], args) -> list[dict]:
    rows = []
    seen: dict[tuple[str, str], Case] = {}
    kinds: dict[str, set[str]] = {}
    for c in selected:
        seen.setdefault((c.expr, c.wrt), c)
        kinds.setdefault(c.expr + "|" + c.wrt, set()).add(c.kind)
    for (expr, wrt), c in seen.items():
        row: dict[str, Any] = {"cases": sorted({x.id for x in selected
                                                if (x.expr, x.wrt) == (expr, wrt)},
                                               key=lambda s: int(s[1:])),
                               "expr": expr, "wrt": wrt}
        try:
            t = time_ms(lambda: einderiv.diff(expr, wrt), args.derive_repeats // 2,
                        args.derive_repeats, args.derive_budget_s)
            row.update(grad_ms=t["wall_ms"], grad_cpu_ms=t["cpu_ms"], repeats=t["repeats"])
            g = einderiv.diff(expr, wrt)
            row["grad_terms"] = len(g.terms) if isinstance(g, Sum) else 1
            if "hessian" in kinds[expr + "|" + wrt]:
                t = time_ms(lambda: einderiv.diff(einderiv.diff(expr, wrt), wrt),
                            args.derive_repeats // 2, args.derive_repeats, args.derive_budget_s)
                row.update(hessian_ms=t["wall_ms"], hessian_cpu_ms=t["cpu_ms"])
            t = time_ms(lambda: g.compile(), 3, args.derive_repeats, args.derive_budget_s / 2)
            row["compile_ms"] = t["wall_ms"]
            row["ok"] = row["grad_cpu_ms"] < DERIVE_TARGET_MS
        except Exception as exc:
            row["error"] = short_error(exc)
            row["ok"] = False
        rows.append(row)
    return rows


def kchain(args) -> dict:
    ks = KCHAIN_QUICK if args.quick else KCHAIN_FULL
    rows = []
    for k in ks:
        text = case_table.kchain_text(k)
        row: dict[str, Any] = {"k": k}
        try:
            t = time_ms(lambda: einderiv.diff(text, "x"), 3, args.kchain_repeats,
                        args.derive_budget_s)
            row.update(ms=t["wall_ms"], cpu_ms=t["cpu_ms"], repeats=t["repeats"])
            g = einderiv.diff(text, "x")
            row["terms"] = len(g.terms) if isinstance(g, Sum) else 1
            arrays = case_table.kchain_data(k)
            ok, detail = matches(g.evaluate(**arrays), case_table.kchain_reference(k, arrays),
                                 1e-8)
            row["correct"] = ok
            if not ok:
                row["check"] = detail
                log(f"  !!! MISMATCH: k-chain gradient k={k}: {detail}")
        except Exception as exc:
            row["error"] = short_error(exc)
            log(f"  !!! ERROR: k-chain k={k}: {row['error']}")
        rows.append(row)
        log(f"  k={k:3d}  diff {row.get('ms', float('nan')):9.3f} ms wall "
            f"{row.get('cpu_ms', float('nan')):9.3f} ms CPU  "
            f"terms {row.get('terms', '?')}  correct {row.get('correct', '?')}")
    good = [r for r in rows if "ms" in r]

    def slope(rs, key="cpu_ms"):
        if len(rs) < 2:
            return None
        x = np.log([r["k"] for r in rs])
        y = np.log([max(r[key], 1e-6) for r in rs])
        return float(np.polyfit(x, y, 1)[0])
    s_all = slope(good)
    tail = [r for r in good if r["k"] >= KCHAIN_TAIL_FROM]
    s_tail = slope(tail)
    return {"rows": rows, "slope_all": s_all, "slope_tail": s_tail,
            "slope_tail_wall": slope(tail, "ms"), "flops": kchain_flop_row(),
            "tail_from": KCHAIN_TAIL_FROM,
            "ok": s_tail is not None and s_tail <= 2.0 and all("error" not in r and
                                                                r.get("correct") for r in rows)}


# ---------------------------------------------------------------------- FLOPs


def flop_counts(plan: Callable[[], int], hand: int) -> dict[str, Any]:
    """einderiv's plan FLOPs (from ``plan()``) against the hand-written count, and
    their ratio; an error in planning is reported, not raised."""
    row: dict[str, Any] = {"hand": hand}
    try:
        row["einderiv"] = plan()
        row["ratio"] = row["einderiv"] / hand if hand else None
    except Exception as exc:
        row["error"] = short_error(exc)
    return row


def flop_table(selected: list[Case]) -> list[dict]:
    """For each case: opt_einsum's FLOP estimate of einderiv's compiled plan and the
    FLOPs of the hand-written formula, at the case's sizes. Nothing is timed or
    evaluated: planning only reads the inputs' shapes."""
    rows = []
    for c in selected:
        data = c.make_data()
        row = {"case": c.id, "kind": c.kind, "label": c.label, "sizes": dict(c.sizes),
               **flop_counts(lambda: derive(c).compile().flops(**data), c.flops(c.sizes))}
        if "error" in row:
            log(f"  !!! ERROR: FLOPs of einderiv's plan on {c.label}: {row['error']}")
        rows.append(row)
    return rows


def kchain_flop_row(k: int = KCHAIN_FLOPS_K, d: int = KCHAIN_FLOPS_D) -> dict:
    """The k-chain gradient's plan FLOPs at size d against the hand-written (P + P^T) x
    as 2 chains of k matrix-vector products, with the cost of forming a single d x d
    matrix product (2 d^3), which a plan of matrix-vector products never pays."""
    def plan() -> int:
        # zero-stride arrays: enough to plan, and no memory
        arrays = {f"A{m}": np.broadcast_to(0.0, (d, d)) for m in range(1, k + 1)}
        arrays["x"] = np.broadcast_to(0.0, (d,))
        return einderiv.diff(case_table.kchain_text(k), "x").compile().flops(**arrays)
    return {"k": k, "d": d, "matrix_product": 2 * d ** 3,
            **flop_counts(plan, case_table.kchain_flops(k, d))}


# ------------------------------------------------------------------- targets


def evaluate_targets(results: list[dict], derive_rows: list[dict], chain: dict | None,
                     fw: Frameworks) -> list[dict]:
    def comp(r, key):
        return r["competitors"].get(key, {})

    def good(c):
        return c.get("status") == "ok" and c.get("median_s") is not None

    targets = []

    # T1: einderiv compiled / hand-written: median <= 1.15, worst <= 1.5
    ratios, broken = [], []
    for r in results:
        c = comp(r, "einderiv")
        if good(c):
            ratios.append((c["ratio"], r["label"]))
        else:
            broken.append(f"{r['label']} ({c.get('status')})")
    if results:
        med = statistics.median([x for x, _ in ratios]) if ratios else None
        worst = max(ratios) if ratios else None
        targets.append({
            "target": "einderiv compiled / hand-written: median over all cases <= 1.15",
            "holds": med is not None and med <= 1.15 and not broken,
            "measured": (f"median {med:.2f}" if med is not None else "no data")
            + (f"; not measured/wrong: {', '.join(broken)}" if broken else "")})
        targets.append({
            "target": "einderiv compiled / hand-written: worst case <= 1.5",
            "holds": worst is not None and worst[0] <= 1.5 and not broken,
            "measured": (f"worst {worst[0]:.2f} ({worst[1]})" if worst else "no data")
            + (f"; failing: {', '.join(broken)}" if broken else "")})

    def versus(kind_filter, key, need, title, per_case_need=None, ours="einderiv"):
        if key in fw.missing or ours in fw.missing:
            targets.append({"target": title, "holds": None,
                            "measured": f"not measured: {key if key in fw.missing else ours} "
                                        f"{fw.missing.get(key) or fw.missing[ours]}"})
            return
        fails, unmeasured, worst, n = [], [], None, 0
        for r in results:
            if not kind_filter(r):
                continue
            e, o = comp(r, ours), comp(r, key)
            bound = per_case_need(r) if per_case_need else need
            if not good(e):
                fails.append(f"{r['label']}: {ours} {e.get('status')}")
                continue
            if not good(o):
                unmeasured.append(f"{r['label']} ({key} {o.get('status')})")
                continue
            n += 1
            speedup = o["median_s"] / e["median_s"]
            if worst is None or speedup / bound < worst[0] / worst[2]:
                worst = (speedup, r["label"], bound)
            if speedup < bound:
                fails.append(f"{r['label']}: {speedup:.2f}x")
        if n == 0 and not fails and not unmeasured:
            return
        measured = (f"lowest speed-up {worst[0]:.2f}x ({worst[1]})" if worst else "no data")
        if fails:
            measured += "; failing: " + ", ".join(fails)
        if unmeasured:
            measured += "; not measured: " + ", ".join(unmeasured)
        holds = False if fails else (None if n == 0 else ("partial" if unmeasured else True))
        targets.append({"target": title, "holds": holds, "measured": measured})

    is_h = lambda r: r["kind"] == "hessian"  # noqa: E731
    is_g = lambda r: r["kind"] != "hessian"  # noqa: E731
    versus(is_h, "jax", 2.0, "every Hessian case: einderiv compiled >= 2x faster than "
           "jax.jit(jax.hessian)")
    versus(is_h, "torch", 20.0, "every Hessian case: einderiv compiled >= 20x faster than "
           "torch.func.hessian")
    versus(is_g, "jax", 1.0, "every gradient (and Jacobian) case: einderiv compiled at "
           "least as fast as jax.jit(jax.grad) (C9 within 1.3x)",
           per_case_need=lambda r: 1 / 1.3 if r["case"] == "C9" else 1.0)
    # Context, not issue-5 targets: the same derivatives run by XLA (compile(backend="jax"))
    versus(is_h, "jax", 2.0, "context: einderiv-jax (the derivative run by XLA) >= 2x faster "
           "than jax.jit(jax.hessian), every Hessian case", ours="einderiv-jax")
    versus(is_g, "jax", 1.0, "context: einderiv-jax at least as fast as jax.jit(jax.grad), "
           "every gradient (and Jacobian) case", ours="einderiv-jax")

    # T4: time to first result (evaluate) below JAX's compile time
    if "jax" in fw.missing:
        targets.append({"target": "time to first result (einderiv evaluate) below JAX's "
                        "compile time, every case", "holds": None,
                        "measured": f"not measured: jax {fw.missing['jax']}"})
    elif results:
        fails, worst, beats_first, n = [], None, 0, 0
        for r in results:
            e, j = comp(r, "evaluate"), comp(r, "jax")
            if not good(e) or j.get("compile_s") is None:
                fails.append(f"{r['label']}: not measured ({e.get('status')})")
                continue
            n += 1
            q = e["median_s"] / j["compile_s"]
            if worst is None or q > worst[0]:
                worst = (q, r["label"])
            if q >= 1:
                fails.append(f"{r['label']}: {q:.2f}x JAX compile")
            if good(j) and e["median_s"] < j["compile_s"] + j["median_s"]:
                beats_first += 1
        targets.append({"target": "time to first result (einderiv evaluate) below JAX's "
                        "compile time, every case", "holds": not fails,
                        "measured": (f"highest first-result / JAX-compile {worst[0]:.2f} "
                                     f"({worst[1]})" if worst else "no data")
                        + ("; failing: " + ", ".join(fails) if fails else "")
                        + (f" (for context: below JAX's own time to first result, compile + "
                           f"one call, in {beats_first} of {n} cases)" if fails and n else "")})

    if derive_rows:
        fails = [", ".join(r["cases"]) for r in derive_rows if not r.get("ok")]
        worst = max((r["grad_cpu_ms"], ",".join(r["cases"]), r["grad_ms"]) for r in derive_rows
                    if "grad_ms" in r) if any("grad_ms" in r for r in derive_rows) else None
        targets.append({"target": f"derivation of each case's gradient < "
                        f"{DERIVE_TARGET_MS:g} ms (median, CPU time)", "holds": not fails,
                        "measured": (f"slowest {worst[0]:.2f} ms CPU, {worst[2]:.2f} ms wall "
                                     f"({worst[1]})" if worst else "no data")
                        + ("; failing: " + "; ".join(fails) if fails else "")})
    if chain is not None:
        st, sa = chain["slope_tail"], chain["slope_all"]
        targets.append({"target": "k-chain: derivation time grows no faster than k^2 "
                        f"(log-log slope over k >= {chain['tail_from']} <= 2)",
                        "holds": chain["ok"],
                        "measured": (f"slope {st:.2f} (k >= {chain['tail_from']}), "
                                     f"{sa:.2f} (all k), CPU time; wall-time slope "
                                     f"{chain['slope_tail_wall']:.2f} (k >= "
                                     f"{chain['tail_from']})" if st is not None else "no data")
                        + ("" if all(r.get("correct") for r in chain["rows"])
                           else "; some gradients wrong or failed")})
    return targets


# ------------------------------------------------------------------- machine


def machine_info(fw: Frameworks) -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or platform.machine()
    info: dict[str, Any] = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opt_einsum": _version("opt_einsum"),
        "einderiv": einderiv.__version__ + _git_rev(),
    }
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
        if blas.get("openblas configuration"):
            info["blas_config"] = blas["openblas configuration"]
    except Exception:
        info["blas"] = "?"
    try:
        import threadpoolctl
        info["threadpools"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for p in threadpoolctl.threadpool_info()]
    except ImportError:
        pass
    info.update(fw.versions)
    info["env"] = {k: os.environ.get(k) for k in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NPROC",
        "OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "XLA_FLAGS", "JAX_ENABLE_X64")}
    if fw.torch is not None:
        info["torch_threads"] = fw.torch.get_num_threads()
    return info


def _git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                             capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "einderiv"], cwd=HERE,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f" (git {rev}{', einderiv/ modified' if dirty else ''})" if rev else ""
    except Exception:
        return ""


# ------------------------------------------------------------------ reporting


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} us"


def fmt_flops(row: dict) -> tuple[str, str, str]:
    """A FLOP row's einderiv, hand-written and ratio cells."""
    if "error" in row:
        return "ERROR", f"{row['hand']:,}", "-"
    ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
    return f"{row['einderiv']:,}", f"{row['hand']:,}", ratio


def kchain_flops_text(f: dict) -> str:
    """One sentence on the k-chain's FLOPs (console and report)."""
    if "error" in f:
        return (f"FLOPs of the gradient at k = {f['k']}, d = {f['d']}: einderiv's plan: "
                f"ERROR {f['error']}")
    times = f["matrix_product"] / f["einderiv"] if f["einderiv"] else float("inf")
    return (f"FLOPs of the gradient at k = {f['k']}, d = {f['d']}: einderiv's plan "
            f"{f['einderiv']:,}, hand-written {f['hand']:,} ((P + P^T) x as 2 chains of "
            f"{f['k']} matrix-vector products, 4 k d^2 + d), ratio {f['ratio']:.3f}; a "
            f"single d x d matrix product would cost 2 d^3 = {f['matrix_product']:,} "
            f"({times:.3g}x the whole plan)")


def cell_ratio(c: dict) -> str:
    st = c.get("status")
    if st == "missing":
        return "n/a"
    if st == "skipped":
        return "skip"
    if st == "error":
        return "ERROR"
    ratio = c.get("ratio")
    text = "-" if ratio is None else (f"{ratio:.2f}" if ratio < 100 else f"{ratio:.0f}")
    if st == "wrong":
        text += " WRONG"
    if c.get("one_call"):
        text += "*"
    return text


def print_case(r: dict) -> None:
    comps = r["competitors"]
    cells = [f"{r['label']:<30}", f"{fmt_time(comps['hand']['median_s']):>9}"]
    for key in COMPETITORS[1:]:
        cells.append(f"{cell_ratio(comps[key]):>11}")
    jc = comps.get("jax", {}).get("compile_s")
    cells.append(f"{fmt_time(jc):>9}")
    log(" ".join(cells))


def header() -> str:
    cols = [f"{'case':<30}", f"{'hand':>9}"] + [f"{SHORT[k]:>11}" for k in COMPETITORS[1:]]
    cols.append(f"{'jax comp.':>9}")
    return " ".join(cols)


def markdown(report: dict) -> str:
    m, a = report["machine"], report["settings"]
    L = ["# einderiv benchmark report (issue 5)", ""]
    L.append(f"Run: `{report['command']}` at {report['started']} "
             f"({'quick: small sizes' if a['quick'] else 'full sizes'}, "
             f"{a['repeats']} interleaved rounds, {report['elapsed_s']:.0f} s in all).")
    L += ["", "## Machine", ""]
    L.append(f"- CPU: {m['cpu']}; {m['logical_cores']} logical cores "
             f"({m['cores_available']} available to this process); load average at start "
             f"{', '.join(f'{x:.2f}' for x in (m.get('load_average_at_start') or []))}")
    L.append(f"- {m['platform']}, Python {m['python']}")
    L.append(f"- numpy {m['numpy']}, BLAS {m.get('blas', '?')}"
             + (f" ({m['blas_config']})" if m.get("blas_config") else ""))
    for p in m.get("threadpools", []):
        L.append(f"- thread pool {p['internal_api']} {p['version']}: {p['num_threads']} "
                 f"thread(s), {p['architecture']}")
    L.append(f"- einderiv {m['einderiv']}, opt_einsum {m['opt_einsum']}")
    for key, title in (("jax", "JAX"), ("torch", "torch"), ("autograd", "autograd")):
        if key in m:
            extra = f" (jaxlib {m['jaxlib']})" if key == "jax" else ""
            L.append(f"- {title} {m[key]}{extra}")
        else:
            L.append(f"- {title}: {report['missing'].get(key, 'not installed')}: skipped")
    L.append("- environment: " + ", ".join(f"{k}={v}" for k, v in m["env"].items()))
    L += ["", "## Protocol", "",
          "float64, one thread per framework; every competitor checked against the "
          "hand-written reference once per case before timing (allclose); then "
          f"{a['repeats']} rounds in which the competitors run interleaved, each round "
          "starting with the next one (rotation); a sample is the mean of as many calls "
          f"as fill ~{a['sample_s'] * 1e3:g} ms; the time is the median of the samples. "
          "Ratio = median time / hand-written median time (lower is better). "
          "'einderiv evaluate' is the uncached first call: parse + diff (+ diff) + "
          "evaluate, caches emptied before each call. 'JAX compile' is jit lower + compile "
          f"of a fresh function (median of {a['compile_repeats']}). See benchmarks/README.md.",
          ""]
    L += ["## Times and ratios to hand-written", "",
          "| case | hand-written | einderiv compiled | einderiv evaluate | einderiv-jax | "
          "jax.jit | JAX compile | torch.func | autograd |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["results"]:
        c = r["competitors"]

        def cell(key):
            e = c[key]
            if e["status"] in ("missing", "skipped", "error"):
                return {"missing": "n/a", "skipped": "skipped", "error": "**ERROR**"}[e["status"]]
            t = f"{fmt_time(e['median_s'])} ({cell_ratio(e)})"
            return t if e["status"] != "wrong" else f"**{t}**"
        L.append(f"| {r['label']} | {fmt_time(c['hand']['median_s'])} | {cell('einderiv')} | "
                 f"{cell('evaluate')} | {cell('einderiv-jax')} | {cell('jax')} | "
                 f"{fmt_time(c.get('jax', {}).get('compile_s'))} | {cell('torch')} | "
                 f"{cell('autograd')} |")
    L += ["", "Ratios by process CPU time instead of wall time (same samples; immune to "
          "time this process spent waiting for a core on a shared machine, but JAX's CPU "
          "time includes its runtime threads):", "",
          "| case | einderiv compiled | einderiv evaluate | einderiv-jax | jax.jit | "
          "torch.func | autograd |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["results"]:
        cells = []
        for key in COMPETITORS[1:]:
            e = r["competitors"][key]
            q = e.get("cpu_ratio")
            cells.append("-" if q is None or e["status"] not in ("ok", "wrong")
                         else f"{q:.2f}" + (" WRONG" if e["status"] == "wrong" else ""))
        L.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    notes = []
    for r in report["results"]:
        for key, e in r["competitors"].items():
            if e["status"] in ("wrong", "error", "skipped") or (e.get("note") and
                                                                e["status"] != "missing"):
                what = {"wrong": "WRONG RESULT", "error": "ERROR", "skipped": "skipped"}.get(
                    e["status"], "note")
                detail = e.get("note") or e.get("check")
                if e["status"] == "wrong":
                    detail = e.get("check")
                notes.append(f"- {r['label']}, {TITLES[key]}: {what}: {detail}")
    if notes:
        L += ["", "Notes:", ""] + notes
    L += ["", "`WRONG`: the result did not match the reference (the time is shown but "
          "worthless); `*`: one call only (over --max-call-s); n/a: framework not installed.",
          ""]
    if report.get("flops"):
        L += ["## FLOPs: einderiv's plan against the hand-written formula", "",
              FLOPS_CONVENTION, "",
              "| case | einderiv plan FLOPs | hand-written FLOPs | ratio |",
              "| --- | ---: | ---: | ---: |"]
        for row in report["flops"]:
            e, h, q = fmt_flops(row)
            if "error" in row:
                e = f"**ERROR** {row['error']}"
            L.append(f"| {row['label']} | {e} | {h} | {q} |")
        L.append("")
    if report.get("derivation"):
        L += ["## Derivation time (einderiv.diff from the text, median)", "",
              f"Target: gradient < {DERIVE_TARGET_MS:g} ms each, judged on the CPU time of "
              "the calling thread (on a shared machine the wall time of a few-ms call is "
              "quantized by the scheduler's time slices; on an idle one they agree).", "",
              "| cases | expression | wrt | gradient ms CPU | gradient ms wall | terms | "
              "Hessian ms CPU | compile ms | < 5 ms |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for d in report["derivation"]:
            if "error" in d:
                L.append(f"| {', '.join(d['cases'])} | `{d['expr']}` | {d['wrt']} | "
                         f"**ERROR** {d['error']} | | | | | no |")
                continue
            h = f"{d['hessian_cpu_ms']:.2f}" if "hessian_cpu_ms" in d else "-"
            L.append(f"| {', '.join(d['cases'])} | `{d['expr']}` | {d['wrt']} | "
                     f"{d['grad_cpu_ms']:.2f} | {d['grad_ms']:.2f} | {d['grad_terms']} | {h} | "
                     f"{d['compile_ms']:.2f} | "
                     f"{'yes' if d['ok'] else '**no**'} |")
        L.append("")
    ch = report.get("kchain")
    if ch:
        L += ["## k-chain: f_k = x^T A1 ... Ak x, gradient by x", "",
              "| k | diff ms CPU (median) | diff ms wall (median) | terms of the gradient | "
              "value correct |",
              "| ---: | ---: | ---: | ---: | --- |"]
        for row in ch["rows"]:
            if "error" in row:
                L.append(f"| {row['k']} | **ERROR** {row['error']} | | | |")
            else:
                L.append(f"| {row['k']} | {row['cpu_ms']:.3f} | {row['ms']:.3f} | {row['terms']} | "
                         f"{'yes' if row.get('correct') else '**no**'} |")
        if ch["slope_tail"] is not None:
            L += ["", f"Log-log slope of the CPU time against k: {ch['slope_tail']:.2f} over "
                  f"k >= {ch['tail_from']}, {ch['slope_all']:.2f} over all k; of the wall "
                  f"time: {ch['slope_tail_wall']:.2f} over k >= {ch['tail_from']} "
                  "(target: <= 2, i.e. no faster than k^2)."]
        if ch.get("flops"):
            L += ["", kchain_flops_text(ch["flops"]) + "."]
        L.append("")
    L += ["## Targets", "", "| target | holds | measured |", "| --- | --- | --- |"]
    for t in report["targets"]:
        holds = {True: "yes", False: "**no**", None: "not measured",
                 "partial": "yes, where measured"}[t["holds"]]
        L.append(f"| {t['target']} | {holds} | {t['measured']} |")
    L.append("")
    return "\n".join(L)


# ----------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="einderiv benchmark suite (issue 5)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, few repeats: a smoke test (< 2 minutes)")
    p.add_argument("--cases", default="",
                   help="comma-separated case ids, e.g. C1,C3 (default: all); add 'kchain' "
                        "to run the k-chain too (it runs by default only without --cases)")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved rounds per case (default 7; 3 with --quick)")
    p.add_argument("--out", default=str(HERE / "results"),
                   help="folder for latest.json and latest.md (default benchmarks/results)")
    p.add_argument("--skip", default="",
                   help="competitors to leave out, e.g. autograd,torch")
    p.add_argument("--max-call-s", type=float, default=None,
                   help="a competitor whose call takes longer is timed from that one call; "
                        "a torch/autograd Hessian estimated to take longer is skipped "
                        "(default 30; 2 with --quick)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="a competitor takes at most about this many seconds of samples per "
                        "case (but at least 3 samples; default 15; 1 with --quick)")
    p.add_argument("--no-kchain", action="store_true", help="leave out the k-chain")
    a = p.parse_args(argv)
    a.repeats = a.repeats or (3 if a.quick else 7)
    a.max_call_s = a.max_call_s or (2.0 if a.quick else 30.0)
    a.budget_s = a.budget_s or (1.0 if a.quick else 15.0)
    a.sample_s = 0.01 if a.quick else 0.05
    a.compile_repeats = 1 if a.quick else 3
    a.derive_repeats = 20 if a.quick else 200
    a.derive_budget_s = 0.3 if a.quick else 2.0
    a.kchain_repeats = 7 if a.quick else 31

    wanted = {s.strip().upper() for s in a.cases.split(",") if s.strip()}
    all_cases = case_table.cases(quick=a.quick)
    known = {c.id for c in all_cases} | {"KCHAIN"}
    unknown = wanted - known
    if unknown:
        p.error(f"unknown case(s) {', '.join(sorted(unknown))}; known: "
                f"{', '.join(sorted(known, key=lambda s: (len(s), s)))}")
    selected = [c for c in all_cases if not wanted or c.id in wanted]
    run_chain = not a.no_kchain and (not wanted or "KCHAIN" in wanted)

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    t_start = time.perf_counter()
    fw = Frameworks({s.strip() for s in a.skip.split(",") if s.strip()})
    for key, why in fw.missing.items():
        log(f"note: {TITLES[key]}: {why}: skipped")
    fw.warm_up()
    machine = machine_info(fw)
    log(f"{machine['cpu']}, {machine['cores_available']} core(s); numpy {machine['numpy']} "
        f"({machine.get('blas', '?')}); " + ", ".join(f"{k} {v}" for k, v in fw.versions.items()))
    log(f"{'quick' if a.quick else 'full'} run: {len(selected)} case variants, "
        f"{a.repeats} rounds; ratios = median time / hand-written median time")
    log("")
    log(header())

    results = []
    for case in selected:
        try:
            r = measure_case(case, fw, a)
        except Exception as exc:  # the hand-written reference itself failed: report it
            log(f"  !!! ERROR on {case.label}: {short_error(exc)}")
            continue
        results.append(r)
        print_case(r)

    flop_rows: list[dict] = []
    if selected:
        log("")
        log("FLOPs: opt_einsum's estimate for einderiv's compiled plan against the "
            "hand-written formula (ratio = einderiv / hand-written):")
        flop_rows = flop_table(selected)
        log(f"  {'case':<30} {'einderiv plan':>16} {'hand-written':>16} {'ratio':>7}")
        for row in flop_rows:
            e, h, q = fmt_flops(row)
            log(f"  {row['label']:<30} {e:>16} {h:>16} {q:>7}")

    derive_rows: list[dict] = []
    if selected:
        log("")
        log("derivation time of each case's gradient (einderiv.diff from the text, median "
            "thread CPU time; target < 5 ms):")
        derive_rows = derivation_table(selected, a)
        for d in derive_rows:
            if "error" in d:
                log(f"  {','.join(d['cases']):<10} ERROR {d['error']}")
            else:
                h = f"{d['hessian_cpu_ms']:7.2f}" if "hessian_cpu_ms" in d else "      -"
                log(f"  {','.join(d['cases']):<10} gradient {d['grad_cpu_ms']:7.2f} ms CPU "
                    f"({d['grad_ms']:7.2f} wall)  Hessian {h} ms CPU  "
                    f"compile {d['compile_ms']:7.2f} ms  "
                    f"{'ok' if d['ok'] else 'OVER TARGET'}")

    chain = None
    if run_chain:
        log("")
        log("k-chain f_k = x^T A1 ... Ak x, gradient by x:")
        chain = kchain(a)
        if chain["slope_tail"] is not None:
            log(f"  log-log slope of CPU time {chain['slope_tail']:.2f} (k >= "
                f"{chain['tail_from']}), {chain['slope_all']:.2f} (all k); wall "
                f"{chain['slope_tail_wall']:.2f} (k >= {chain['tail_from']}); target <= 2")
        log(f"  {kchain_flops_text(chain['flops'])}")

    targets = evaluate_targets(results, derive_rows, chain, fw)
    log("")
    log("targets:")
    for t in targets:
        holds = {True: "HOLDS", False: "FAILS", None: "n/a  ", "partial": "HOLDS*"}[t["holds"]]
        log(f"  [{holds}] {t['target']}: {t['measured']}")

    elapsed = time.perf_counter() - t_start
    report = {
        "command": "python benchmarks/run.py" + (" " + " ".join(sys.argv[1:])
                                                 if argv is None and sys.argv[1:] else ""),
        "started": started,
        "elapsed_s": elapsed,
        "settings": {"quick": a.quick, "repeats": a.repeats, "sample_s": a.sample_s,
                     "compile_repeats": a.compile_repeats, "max_call_s": a.max_call_s,
                     "budget_s": a.budget_s,
                     "cases": sorted(wanted)},
        "machine": machine,
        "missing": fw.missing,
        "results": results,
        "flops": flop_rows,
        "derivation": derive_rows,
        "kchain": chain,
        "targets": targets,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
    (out / "latest.md").write_text(markdown(report))
    log("")
    log(f"wrote {out / 'latest.json'} and {out / 'latest.md'} ({elapsed:.0f} s)")
    if out.resolve() == (HERE / "results").resolve() and not a.quick and not a.cases:
        docs = HERE.parent / "docs" / "benchmarks.md"  # docs/ keeps the latest full report
        old = docs.read_text() if docs.exists() else ""
        at = old.find("<!-- backends.py")  # backends.py's sections (CPU, GPU) follow
        keep = old[at:] if at >= 0 else ""
        docs.write_text(markdown(report) + ("\n" + keep if keep else ""))  # backends.py's part
        log(f"wrote {docs}")
    return 0


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


if __name__ == "__main__":
    sys.exit(main())
