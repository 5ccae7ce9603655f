"""einderiv's JAX and torch backends against their own autodiff (issue 20).

For every case of benchmarks/cases.py (``--quick``: small sizes), on one thread, float64:

- JAX: ``compile(backend="jax")`` (einderiv's plan exported as JAX code, run under
  ``jax.jit``), the exported code itself (``to_python(backend="jax", shapes=...)`` loaded
  and jitted by hand, called by keyword as einderiv is), against ``jax.jit(jax.grad)`` /
  ``jax.jit(jax.hessian)`` / ``jax.jit(jax.jacrev)`` of the same function, called as JAX
  code calls it (the variable, then a dict of the others); all get the same arrays
  and the same Python numbers (C1's ``n``). Two controls: "program", the exported code
  jitted with its arguments by position (what the ``f(**arrays)`` entry adds), and
  "autodiff again", a second ``jax.jit`` of the autodiff function (A/A: the run's
  noise, which a ratio within it cannot beat). JAX runs with CPU dispatch
  synchronous (``jax_cpu_enable_async_dispatch`` off): asynchronously a call of a few
  microseconds hands its work to another thread and took 30 or 85 us by whether that
  thread was awake (two modes, the same for every method; 40 samples of C1's gradient
  at 1000 x 100), so the minimum of a few rounds picked a mode, not a method;
- torch: ``compile(backend="torch")``, the exported torch code called directly (by
  keyword), against
  ``torch.func.grad`` / ``hessian`` / ``jacrev`` (eager, as torch.func runs) and against
  ``torch.compile`` of the hand-written formula (written below, one per case);
- for Hessians and Jacobians, the time to write the dense result (a new array of the
  result's shape filled with a number, jitted on JAX): a floor no method goes under.

Every competitor is checked against the hand-written numpy reference before timing.
Timing: rounds in which the competitors run interleaved; a sample is the mean of as
many calls as fill ``--sample-ms``; the time is the minimum over the rounds (on a
shared machine the minimum is the least disturbed sample). Ratios only.

Run ``python benchmarks/backends.py`` (``--quick``, ``--cases C1,C3``, ``--rounds N``,
``--skip torch.compile``); writes benchmarks/results/backends.json and .md (the json
after each row: a run cut short keeps its rows), and a full run its section of
docs/benchmarks.md (``--render FILE.json`` writes it again from a saved run).

``--device gpu``: the same cases with the arrays on the first GPU that JAX and torch
see (JAX_PLATFORMS=cuda; torch timed with ``torch.cuda.synchronize`` after each call),
the card's name recorded, a row that fails recorded with its error and the run going
on; a GPU run's report is its own section of docs/benchmarks.md. ``benchmarks/gpu.sh``
is that run as one call of a lent GPU machine (issue 20).
"""

import os
import sys

# The arrays' device, chosen before JAX loads (one_thread keeps a JAX_PLATFORMS set here).
_argv = " ".join(sys.argv[1:]) + " "
if "--device gpu " in _argv or "--device=gpu " in _argv:
    os.environ.setdefault("JAX_PLATFORMS", "cuda")
# One thread everywhere, set before numpy or a framework loads (as run.py).
import one_thread  # noqa: F401,E402

import argparse  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import Case, cases  # noqa: E402

import einderiv  # noqa: E402

HERE = Path(__file__).resolve().parent


# ------------------------------------------------------- hand-written, for torch.compile


def _t_c3_hess(d):
    import torch
    s = torch.sigmoid(d["y"] * (d["X"] @ d["theta"]))
    X = d["X"]
    return X.T @ (X * (s * (1.0 - s))[:, None])


def _t_c9_grad(d):
    import torch
    W1, W2, X = d["W1"], d["W2"], d["X"]
    H = torch.tanh(W1 @ X)
    B = (W2.T @ (W2 @ H - d["T"])) * (1.0 - H * H)
    return 2.0 * (B @ X.T)


def _t_c9_hess(d):
    import torch
    W1, W2, X = d["W1"], d["W2"], d["X"]
    H = torch.tanh(W1 @ X)
    D = 1.0 - H * H
    R = W2 @ H - d["T"]
    nh, ni = W1.shape
    A = (D[:, None, :] * X[None, :, :]).reshape(nh * ni, -1)
    P = (A @ A.T).reshape(nh, ni, nh, ni) * (2.0 * (W2.T @ W2))[:, None, :, None]
    C = -4.0 * (W2.T @ R) * H * D
    Q = torch.einsum("hb,ib,jb->hij", C, X, X)
    idx = torch.arange(nh)
    return P.index_put((idx[:, None, None], torch.arange(ni)[None, :, None], idx[:, None, None],
                        torch.arange(ni)[None, None, :]), Q, accumulate=True)


def _t_softmax(z):
    import torch
    return torch.softmax(z, dim=0)


def _t_c10_hess(d):
    import torch
    sy, p = d["y"].sum(), _t_softmax(d["z"])
    return sy * (torch.diag(p) - p[:, None] * p[None, :])


TORCH_HAND: dict[tuple[str, str], Callable[[dict], Any]] = {
    ("C1", "grad"): lambda d: (2.0 / d["n"]) * (d["X"].T @ (d["X"] @ d["theta"] - d["Y"])),
    ("C1", "hessian"): lambda d: (2.0 / d["n"]) * (d["X"].T @ d["X"]),
    ("C2", "grad"): lambda d: d["A"] @ d["x"] + d["x"] @ d["A"],
    ("C2", "hessian"): lambda d: d["A"] + d["A"].T,
    ("C3", "grad"): lambda d: d["X"].T @ (-d["y"] * __import__("torch").sigmoid(
        -d["y"] * (d["X"] @ d["theta"]))),
    ("C3", "hessian"): _t_c3_hess,
    ("C13", "hessian"): _t_c3_hess,
    ("C5", "jacobian"): lambda d: d["W"].T * (1.0 - __import__("torch").tanh(d["W"] @ d["x"]) ** 2),
    ("C6", "grad"): lambda d: __import__("torch").linalg.inv(d["X"]).T,
    ("C8", "grad"): lambda d: 2.0 * (d["U"] @ (d["V"].T @ d["V"]) - d["M"] @ d["V"]),
    ("C9", "grad"): _t_c9_grad,
    ("C9", "hessian"): _t_c9_hess,
    ("C10", "grad"): lambda d: d["y"].sum() * _t_softmax(d["z"]) - d["y"],
    ("C10", "hessian"): _t_c10_hess,
}


# ------------------------------------------------------------------------- timing


def sample(fn: Callable[[], Any], sample_s: float) -> float:
    """Mean seconds per call over as many calls as fill ``sample_s``."""
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    k = max(1, min(10_000, int(sample_s / max(one, 1e-7))))
    t0 = time.perf_counter()
    for _ in range(k):
        fn()
    return (time.perf_counter() - t0) / k


def derive(case: Case) -> einderiv.Expr:
    e = einderiv.diff(case.expr, case.wrt)
    return einderiv.diff(e, case.wrt) if case.order == 2 else e


def to_denominator(out: np.ndarray, case: Case, w: np.ndarray) -> np.ndarray:
    """A numerator-layout Jacobian (JAX, torch.func) in einderiv's layout."""
    if case.kind != "jacobian":
        return out
    nw = np.ndim(w)
    return np.moveaxis(out, tuple(range(out.ndim - nw, out.ndim)), tuple(range(nw)))


def _load(source: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<export>", "exec"), namespace)  # noqa: S102 - einderiv's own export
    return namespace["f"]


def jax_runners(case: Case, data: dict, expr: einderiv.Expr, ref: np.ndarray,
                device: str) -> dict:
    import jax
    import jax.numpy as jnp
    on = jax.devices("gpu" if device == "gpu" else "cpu")[0]
    arrays = {k: (jax.device_put(v, on) if isinstance(v, np.ndarray) else v)
              for k, v in data.items()}
    wrt = case.wrt
    others = {k: v for k, v in arrays.items() if k != wrt}
    T = {"grad": jax.grad, "hessian": jax.hessian, "jacobian": jax.jacrev}[case.kind]
    auto = jax.jit(T(lambda w, o: case.loss(jnp, {**o, wrt: w})))
    again = jax.jit(T(lambda w, o: case.loss(jnp, {**o, wrt: w})))  # A/A: the run's noise
    compiled = expr.compile(backend="jax")
    shapes = {k: np.shape(v) for k, v in data.items()}
    source = _load(expr.to_python("f", backend="jax", shapes=shapes))
    exported = jax.jit(source)
    kw = {p: arrays[p] for p in inspect.signature(source).parameters}  # keyword-only
    # the same program by position: jax.jit's own call, no keyword entry before it
    names = list(kw)
    program = jax.jit(lambda *a: source(**dict(zip(names, a))))
    args = tuple(kw.values())
    out = {
        "einderiv": lambda: jax.block_until_ready(compiled(**arrays)),
        "program": lambda: jax.block_until_ready(program(*args)),
        "export": lambda: jax.block_until_ready(exported(**kw)),
        "autodiff": lambda: jax.block_until_ready(auto(arrays[wrt], others)),
        "autodiff again": lambda: jax.block_until_ready(again(arrays[wrt], others)),
    }
    if case.kind != "grad":
        dense = jax.jit(lambda c: jnp.full(ref.shape, c, device=on))  # writes only
        out["dense"] = lambda: jax.block_until_ready(dense(2.0))
    return out


def torch_runners(case: Case, data: dict, expr: einderiv.Expr, ref: np.ndarray,
                  use_compile: bool, notes: list[str], device: str) -> dict:
    import torch
    import torch.func as tf
    on = torch.device("cuda" if device == "gpu" else "cpu")
    tensors = {k: (torch.from_numpy(np.ascontiguousarray(v)).to(on) if isinstance(v, np.ndarray)
                   else v) for k, v in data.items()}
    wrt = case.wrt
    others = {k: v for k, v in tensors.items() if k != wrt}
    T = {"grad": tf.grad, "hessian": tf.hessian, "jacobian": tf.jacrev}[case.kind]
    auto = T(lambda w, o: case.loss(torch, {**o, wrt: w}))
    compiled = expr.compile(backend="torch")
    shapes = {k: np.shape(v) for k, v in data.items()}
    exported = _load(expr.to_python("f", backend="torch", shapes=shapes))
    kw = {p: tensors[p] for p in inspect.signature(exported).parameters}  # keyword-only
    out = {
        "einderiv": lambda: compiled(**tensors),
        "export": lambda: exported(**kw),
        "autodiff": lambda: auto(tensors[wrt], others),
    }
    hand = TORCH_HAND.get((case.id, case.kind))
    if use_compile and hand is not None:
        fn = torch.compile(hand, dynamic=False)
        t0 = time.perf_counter()
        try:
            fn(tensors)
            out["torch.compile"] = lambda: fn(tensors)
            notes.append(f"torch.compile of the hand-written formula: compiled in "
                         f"{time.perf_counter() - t0:.1f} s")
        except Exception as exc:  # inductor needs a C++ compiler; record a failure
            notes.append(f"torch.compile failed: {type(exc).__name__}: {str(exc)[:120]}")
    if use_compile:  # einderiv's own code under torch.compile: one graph once the first
        compiled(**tensors)  # call has written the code for these shapes
        traced = torch.compile(compiled, dynamic=False)
        t0 = time.perf_counter()
        try:
            traced(**tensors)
            out["torch.compile(einderiv)"] = lambda: traced(**tensors)
            notes.append(f"torch.compile of einderiv's compiled function: compiled in "
                         f"{time.perf_counter() - t0:.1f} s")
        except Exception as exc:
            notes.append(f"torch.compile(einderiv) failed: {type(exc).__name__}: "
                         f"{str(exc)[:120]}")
    if case.kind != "grad":
        out["dense"] = lambda: torch.full(ref.shape, 2.0, dtype=torch.float64, device=on)
    if on.type == "cuda":  # a call's time is its kernels' time: wait for them
        def synced(fn: Callable[[], Any]) -> Callable[[], Any]:
            def call() -> Any:
                result = fn()
                torch.cuda.synchronize()
                return result
            return call
        out = {name: synced(fn) for name, fn in out.items()}
    return out


def check(name: str, result: Any, ref: np.ndarray, case: Case, w: np.ndarray) -> None:
    got = result.detach().cpu().numpy() if hasattr(result, "detach") else np.asarray(result)
    if name.startswith("autodiff"):
        got = to_denominator(got, case, w)
    if name != "dense" and not np.allclose(got, ref, rtol=case.rtol, atol=1e-8 * np.abs(ref).max()):
        raise AssertionError(f"{case.label}: {name} differs from the reference")


def measure(case: Case, lib: str, args) -> dict:
    data = case.make_data()
    ref = np.asarray(case.reference(data))
    expr = derive(case)
    notes: list[str] = []
    runners = jax_runners(case, data, expr, ref, args.device) if lib == "jax" else \
        torch_runners(case, data, expr, ref, "torch.compile" not in args.skip, notes, args.device)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for name, fn in runners.items():
        check(name, fn(), ref, case, data[case.wrt])  # the first call: JAX compiles
        t0 = time.perf_counter()
        fn()
        one = time.perf_counter() - t0
        if one > args.max_call_s:  # that call's time, not rounds of it
            times[name].append(one)
            notes.append(f"{name}: over {args.max_call_s:g} s a call, timed once")
    names = [name for name in runners if not times[name]]
    for r in range(args.rounds if names else 0):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(sample(runners[name], args.sample_ms / 1000))
    best = {name: min(ts) for name, ts in times.items()}
    return {"case": case.label, "kind": case.kind, "lib": lib, "best_s": best, "notes": notes}


# ------------------------------------------------------------------------- report


def fmt(s: float) -> str:
    return f"{s * 1e6:.1f} us" if s < 1e-3 else (f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s")


def verdict(row: dict) -> tuple[str, str]:
    """The target of issue 20 for one row: (need, holds)."""
    b = row["best_s"]
    speed = b["autodiff"] / b["einderiv"]
    if row["kind"] == "grad":
        return ">= 1x", "yes" if speed >= 1.0 else "**no**"
    if "dense" in b and b["einderiv"] <= 1.2 * b["dense"] and b["autodiff"] <= 1.2 * b["dense"]:
        return ">= 2x, or both within 1.2x of the dense write", "yes (dense-bound)"
    need = 2.0 if row["kind"] == "hessian" else 1.0
    return f">= {need:g}x", "yes" if speed >= need else "**no**"


BEGIN, END = "<!-- backends.py: begin -->", "<!-- backends.py: end -->"

FINDINGS = """\
Where the time went (`python benchmarks/backends.py`, the jaxprs and optimized HLO of
einderiv's jitted function against `jax.jit(jax.grad / hessian)`: `jax.make_jaxpr`,
`.lower(...).compile().as_text()`; one thread, float64):

- **Measuring a JAX call of microseconds**: with JAX's default asynchronous CPU
  dispatch a call hands its work to another thread; 40 interleaved samples of C1's
  gradient at 1000 x 100 took 30 or 85-92 us by whether that thread was awake, for
  every method alike (einderiv min 89.5 / median 92.0 us, `jax.jit(jax.grad)` min 30.4
  / median 87.7 us in one run): the minimum over a few rounds picked a mode, which is
  where the earlier 0.72-1.03x came from. This run sets
  `jax_cpu_enable_async_dispatch` off: one mode (C1: 23.3 / 24.3 us against 20.8 /
  21.6 us before the changes below).
- **Gradients, per-call overhead, found by timing `compiled(**arrays)` against its own
  jitted function called by position and `jax.jit(jax.grad)`, interleaved**: (1) the
  entry built a shape key per call and went through two Python frames before jax.jit,
  which keys shapes itself: 0.7-1.6 us. Now one `jax.jit` per compiled expression
  whose body runs only while JAX traces (it picks the code written for the shapes), and
  `f(**arrays)` passes the arrays by position (what that still costs: "the keyword
  entry" below). (2) The program: C1's HLO applied `2/n` after the second `dot`, one
  more XLA thunk than JAX, whose `2/n` sits in the residual's fusion
  (same two `dot`s otherwise). The writer now puts a product's scalar factors and sign
  on its smallest operand made element-wise (`t4 = 2.0 * t3 * t2`, fused by XLA into
  the loop that makes `t2`): C1 at 1000 x 100 went from 22.9 to 21.0 us, JAX's 21.0.
  (The numbers in this bullet and in the Hessian bullets below, unless marked, are
  from the machine of the earlier runs, an AMD EPYC of the same cache sizes whose
  generation was not recorded; the tables above are from a Zen 4 one (family 25 model
  17, AVX-512), where the times moved, most ratios less.)
- **Python numbers** (C1's `n`): `jax.jit` turns a Python number argument into a
  device scalar on every call, 1.5-3 us here (`x * n` jitted: 6.0 us with `n` a Python
  float, 4.5 us with a JAX scalar), as much as a small gradient's
  arithmetic. The entry now hands it the weak scalar `jax.jit` would make, made once
  per value (`numeric.codegen.WeakNumbers`: keyed by type, value and x64; signed
  zeros, NaN and numbers met while JAX traces pass as they are; at most 64 kept). C1
  at 1000 x 100: 28.9 against 30.3 us, the "program" column (the same code by position,
  the number converted by jax.jit) 29.6 us; with `n` given as a JAX scalar to both,
  einderiv and `jax.jit(jax.grad)` are the same program at 27.9 and 27.2 us.
- **The keyword entry, what is left of the small gradients**: "program" is einderiv's
  jitted code called by position, "einderiv" the same through `f(**arrays)`. The
  program is as fast as JAX's or faster (C2 at 100: 8.0-8.2 against 8.3-8.5 us; C3 at
  1000 x 100: 26.9-27.3 against 27.7-28.1 us; 40-80-round trials), and the entry costs
  0.5-1.4 us more: CPython builds the keyword dict and goes through the instance's
  `__call__` (~430 ns of Python for four names against a no-op), the generated
  positional entry behind it ~140 ns. Tried: a generated keyword-only `__call__` per
  instance (250 ns: parity with `jax.jit(jax.grad)`, a class per compiled expression,
  not taken) and the exported function jitted with keywords (JAX flattens them: the
  "export" column, same as autodiff). So C2 at 100 and C3 at 1000 x 100 land at
  0.94-1.02x from run to run (C2 at 100 once 0.74x, in a run whose A/A for that case
  was 0.85): the calls are 8-30 us, and JAX's own dispatch of a
  jitted call is ~4.5 us of them here. C10 is the one gradient behind by its program:
  the softmax is max-shifted, one more reduction than JAX's gradient of the loss as
  written (`log(sum(exp(z)))`,
  which overflows to nan for z > 709; einderiv's does not): 8 XLA thunks against 6,
  ~1 us of 10-12 us (0.83-0.93x); merging `sum(y)` into the sum of `exp` or into the
  max (one variadic reduce), or a stacked sum, gave 9.6-9.9 us against JAX's 9.25 us.
  Kept: a silent nan is the worse bug. Against JAX's gradient of the loss written
  stably, einderiv's is at parity: `jax.nn.logsumexp` 10.44-10.52 us,
  `jax.nn.log_softmax` 9.78-9.87 us, einderiv 10.53-10.59 us with its keyword entry,
  the form as written 8.09-8.13 us (minima of 40 interleaved rounds, two processes;
  the same 8 XLA thunks as log_softmax's). The large
  gradients (C1, C3 at 10000 x 500, C2 at 1000, C6 at 500, C9) are the same HLO as
  JAX's, two memory-bound passes over X or one LU, and land within the run's A/A band
  (the autodiff against a second jit of itself, in the table) of 1.00x, or outside it
  where the machine's memory bandwidth moves within a run: C3 at 10000 x 500 0.85x
  in one run, C1 at 10000 x 500 0.83x in another; 30 interleaved rounds of C1's then
  gave medians of 5.55 ms (einderiv), 5.74 (program), 5.37 (export), 5.07 and
  5.26 ms (autodiff, twice) and minima of 4.17-4.32 ms: the same program, the
  machine moving by 30%.
- **A gradient that reads X once** (the next step, not built): the logistic gradient's
  chain `X theta` -> element-wise -> `r^T X` in blocks of rows inside one `fori_loop`,
  X read once while each block is in cache (`python benchmarks/row_blocks.py`,
  hand-written JAX): on the Zen 4 machine 1.9-3.2x the two-pass program at 38-76 MiB
  of X on one thread, 1.1-1.5x with XLA's two threads, 1.0x below the last-level
  cache (32 MiB); on the earlier machine 1.2-3.5x on one thread above the cache but
  0.66-0.95x with two threads at 10000 x 500 and 5000 x 1000, and 0.6-0.8x below it.
  Rerun on this Zen 4 machine (`--sizes 1000x100,4000x500,10000x500,50000x100`):
  one thread 1.48x at 10000 x 500, 3.2x at 50000 x 100, but 0.64x at 4000 x 500
  (15 MiB, in the last-level cache); XLA's two threads 0.75x at 10000 x 500, 1.37x
  at 50000 x 100; two streams of blocks as a batch axis (one batched product per step,
  for the two threads) 0.71x at 10000 x 500. Not built: the gain depends on the thread
  count and on X against the cache, so a gate would be tuned to this benchmark's
  one-thread protocol while a user's JAX runs XLA's threads, where 10000 x 500 loses.
- **Hessians `X^T diag(w) X` (C1, C3, C13)**: einderiv's one product compiled to
  `dot(X, Z), lhs_contracting_dims={0}, rhs_contracting_dims={0}`, a plain XLA `dot`
  (Eigen), while `jax.hessian`'s first product (the identity of tangents through
  `X theta`, `lhs_contracting_dims={1}`) became a `ynn_fusion` (YNNPACK) at twice
  its speed: `X @ I` 0.35 ms against `X^T Z` 0.69 ms at 1000 x 100, 80 against 146 ms at
  10000 x 500. XLA on CPU hands a product to YNNPACK only where the first operand is
  summed over its last axis (xla/backends/cpu/ynn_support.cc, `lhs_canonical`), so
  `jax.hessian` paid 0.5 + 1 of our product and we were 1.5x, not 2x. Writing it
  `X.T @ (w X)`, `(X.T * w) @ X` or `lax.dot_general` with other dimension numbers
  gives the same HLO (XLA folds the transposes into the dot; `precision=` changes
  nothing in float64). What works: the first operand transposed behind
  `lax.optimization_barrier` (HLO: `transpose_copy_fusion`, the scaling fused into it,
  then `ynn_fusion`): 0.44 ms at 1000 x 100; but at 10000 x 500 a transpose of all of
  the 40 MB operand cost 24-50 ms (a fresh buffer each call, a strided copy), so it runs
  in blocks of up to 512 rows in one `fori_loop` (blocks of 400-500 rows measured best
  at 2000-10000 rows, 666-1000 rows 15-30% slower): 78 ms at 10000 x 500 in a trial of
  the product alone. Two more steps, measured the same way: the vector `w` of
  `X^T diag(w) X` goes into the helper beside `X` (each block of rows scaled as it is
  transposed: no n x d array `X w` written before the loop, which cost C3 20-25 ms at
  10000 x 500), and a product of an operand with itself (`X^T X`, `X^T diag(w) X`)
  computes 3 of its 4 blocks, the fourth the transpose of one (XLA has no symmetric
  product: 15-19% less time at 2000 x 1000 and 10000 x 500; none at 100 columns, where
  it is not split); `sqrt(w)` on both sides (one operand twice) needs w >= 0, not
  general. On the Zen 4 machine the plain product is as fast as the transposed one
  at 1000 x 100 (XLA's `dot` there: 0.49 against 0.47 ms) and the split into 3 of 4
  blocks pays from 64 columns (1000 x 64, 100, 200: 10-15% less time; 100 columns
  gained nothing on the earlier machine): it now starts at 64 columns. C1's and C3's
  Hessians at 1000 x 100 stay the thinnest margin: the product is compute-bound there
  (2 x 10^7 flops, ~45 GFLOP/s: one core's peak), `jax.hessian` does twice its flops
  and einderiv 3/4 of them, and the time of either program moves 20-40% between runs
  and processes (C1: 0.43-0.63 ms against 0.87-1.16 ms, 1.47-2.12x in six runs). Part
  of that spread was ours: a narrow operand went through in one block of up to 2 MiB
  (all of X at 1000 x 100, 800 KB transposed), which took ~100 minor page faults a call
  in some states of glibc's allocator (`getrusage` around 200 calls: 0.81-0.83 ms, 0.53
  ms in a state without them), `jax.hessian` none. Blocks are now of up to 512 rows
  whatever the width (two of 500 rows at 1000 x 100: no faults in the same process,
  0.50-0.53 ms; 10000 x 100 10% faster than in blocks of 2500 rows, 1000 x 64, 200 and
  3000 x 300 the same or 2-5% faster; wide operands had 512-row blocks already). With
  them C1's Hessian at 1000 x 100 took 0.42 and 0.41 ms against 0.88 and 0.89 ms in
  the two runs above (2.09x, 2.16x), C3's 2.09x and 2.03x: every Hessian at 2x or
  more in both. 4 x 4 blocks and a recursive split gained nothing at 100 columns. The
  rule is
  the jax dialect's, for any product summed
  over the leading axes of both operands (code_forms.leading and .weighted, the helper
  in numeric/dialects.py), on CPU only (`lax.platform_dependent`; cuBLAS takes a
  transposed operand as a flag), and only where both kept sides have >= 16 entries
  and the product >= 2^16 terms (below that the copy costs more: summed x kept x kept
  20 x 20 x 20 1.2x slower, 1000 x 100 x 4 1.1x). C9's network gradient and Hessian
  take it too.
- **Hessians with a Kronecker delta (C9, C10)**: `where` on compared index ranges,
  fused by XLA (was a scatter: a serial loop no fusion crosses).
- **Common subexpressions across a sign (C3, C13)**: the writer reuses any value
  already written (`X theta` once; torch computed it twice).
- **A product with a sum factor (C8, the low-rank fit)**: the gradient as derived is
  `-2 (M - U V^T) V`, and `jax.grad` of the loss computes it so: two products of
  2 m n r flops around the m x n residual. On numpy, `compile` multiplied it out where
  opt_einsum's FLOP counts say that saves 30% or more (`rewrites.distributions`:
  `2 (U (V^T V) - M V)`, 2 m n r flops and no m x n array), but the exported code, which
  `compile(backend="jax" | "torch")` runs, wrote the product as derived: 0.98x of
  `jax.jit(jax.grad)` in the earlier run, 0.55x of torch.compile of the hand-written
  formula. The writer now takes the same decision from the same sizes (known to it
  when `to_python` gets integer shapes, always under `compile`): on JAX 1.70x in the
  table above (1.66-1.92x in seven other runs; it was 4.65 against 4.54 ms), on torch
  2.8x torch.func's time and 1.03x torch.compile's in the table above (1.03-1.05x and
  parity in four other runs; it was 7.81 ms: 0.55x of torch.compile). It
  costs accuracy near an exact fit, as the normal equations do: both forms' error
  relative to the gradient grows as `eps |M| / |M - U V^T|`, multiplied out 10-30x
  that of the form as derived (`python benchmarks/multiplied_out.py`; docs/codegen.md).
- **torch**: two-operand products of matrices and vectors as `a @ b` on transposed
  views (C9's gradient 0.61x -> 1.2x of `torch.func.grad`); a delta beside a dense
  term added in place into the dense sum (C10, C9 Hessians).
- **torch, calls of microseconds**: eager torch
  pays ~9 us for a `torch.einsum` call however small, 9-13 us for
  `exp(u - logsumexp(u))` against 2.5 us for `torch.softmax`, and 6-7 us for the
  input conversion helper. The torch code now sums an axis that only one factor of a
  pair has out of it first (`y.sum(dim=(0,)) * t`; a sum over one factor as `.sum`),
  takes `torch.softmax` over one axis, and skips the conversion where every input is
  already a tensor of one floating dtype (kept where an input is a scalar, most often
  a Python number). The exported code before and after, interleaved in one process
  (`python benchmarks/export_ab.py --before 851a20e`): C10's gradient 54.2 -> 13.2 us
  (4.1x; 4.4-5.3x at d = 200), C2's gradient at 100 18.7 -> 11.7 us (1.6x), C5's
  Jacobian 1.41x, C9's and C10's Hessians 1.37x and 1.40x; the calls of milliseconds
  run the same code but for the conversion test (0.89-1.09x, the machine's noise).
  In the run after that change C10's gradient ran in 9.6 us against torch.compile's
  27.8 us of the hand-written formula (the run before: 37.4 against 24.1 us, 0.65x),
  C2's at 100 in 9.6 against 31.4 us (15.0 against 30.7 us); in the table above 2.7x
  and 3.0x torch.compile's speed.
- **torch, a diagonal beside a dense term (C9, C10 Hessians)**: added through a view
  of the sum made with `.diagonal(...)` (and a `.permute`) and `add_`, no longer by
  advanced indexing with `arange` index tensors (a gather and a scatter): the exported
  code before and after (`python benchmarks/export_ab.py --before cbc173e`): C9's
  Hessian 183.9 -> 143.6 us (1.28x), C10's 120.1 -> 101.1 us (1.19x); the JAX code
  is byte-identical.
- **torch.compile of einderiv's own code** (the "torch.compile(einderiv)" column:
  `torch.compile(expr.compile(backend="torch"))` after its first call): one graph, no
  graph break (before, the device of the constants was found with `max(..., key=)`,
  which broke the graph, and a trial `as_strided` view of the diagonal did too; tested
  with `torch._dynamo.explain` for every identity and Hessian of the test suite).
  Against torch.compile of the hand-written formula it lands at median 0.99x, from
  0.70x to 2.00x: inductor compiles equivalent formulas differently. It wrote `M.T @ v`
  as a loop of its own, 2x slower at 1000 x 1000 than the product it keeps for
  `v @ M` (C2's gradient at 1000: 357 us under torch.compile against 183 us eagerly);
  the torch code now writes a matrix-vector product as `v @ M` or `M @ v`, never
  with `M.T` (the same MKL call eagerly: 1351 against 1360 us at 10000 x 500), and
  C2's gradient takes 188 us under torch.compile. Eager einderiv is faster than either
  on calls of microseconds (C2 at 100, C10: 6.9-7.0 us against 18-22 us, inductor's
  guards and wrapper). Where torch.compile's hand-written gradient is ahead of eager
  einderiv (C1, C3 at 10000 x 500, 0.79-0.80x), it is the matrix-vector product
  `X @ theta`: this torch's MKL takes 2.1-2.2 ms for it at 10000 x 500 on the AMD
  EPYC (dgemv, 19 GB/s), inductor's own loop 1.0 ms (`torch.mv`, `X @ theta[:, None]`,
  `theta @ X.T` and `torch.einsum` are all MKL's 2.2-2.4 ms); under torch.compile
  einderiv's C1 gradient takes 2.51 ms, 1.15x the hand-written formula's.
- **What the keyword entry costs is CPython's** (C2 at 100, `timeit`, the call without
  `block_until_ready`): the jitted program by position 6.32 us, a plain function taking
  the keywords and calling it 6.40-6.55 us, an instance whose class has a generated
  keyword-only `__call__` 6.91 us, einderiv's `f(**arrays)` 7.03-7.35 us. Calling an
  instance goes through its type's `__call__` slot, which on CPython 3.11 packs the
  keywords into a dict and unpacks them again (no vectorcall): ~0.5 us that no
  `__call__` written in Python avoids, and `compile` returns an object (plans, source,
  `flops`), not a function.
- **C10's stable softmax, measured apart** (d = 1000, one thread, 40 interleaved
  rounds, minima): JAX's gradient of the loss as written 8.6-8.8 us, einderiv's program
  10.2-10.5 us (0.84x). XLA splits each reduction of 1000 entries into a
  `reduce-window` of 32 and a `reduce` (two thunks), and its max runs slower than its
  sum (6.57 against 6.03 us alone). Written as halving folds (`maximum` / `+` of the two
  halves while more than 32 entries remain, then one reduce), the max, the softmax's
  sum and `sum(y)` gave 8.66 us (1.02x): not built, since folds are slower beyond
  ~10^4 entries or along one axis of a matrix (0.49x at 10^5, 0.65x for (64, 1000)
  along 1000), and with the keyword entry it still lands at ~0.95x.
- No GPU was lent to this task: every number here is CPU. The GPU run is prepared as
  one call of a lent machine (`bash benchmarks/gpu.sh`: `--device gpu`, the card's
  name recorded, a failing row recorded and the run going on, the rows saved as they
  come); its report will be a section of its own below.
"""


GPU_NOTE = """\
- The cases and sizes of the CPU section, float64, the arrays put on the GPU before
  timing; a torch call is timed up to `torch.cuda.synchronize()`, a JAX one to
  `block_until_ready`. torch.compile is left out of the prepared run
  (`benchmarks/gpu.sh`): compiling 22 formulas with Triton does not fit a lent
  machine's 15 minutes with the rest.
"""


def targets(rows: list[dict]) -> list[str]:
    """The targets of issue 20, judged on this run."""
    rows = [r for r in rows if "best_s" in r]
    out = ["| target | holds | measured |", "| --- | --- | --- |"]
    for lib, auto in (("jax", "jax.jit(jax.grad)"), ("torch", "torch.func.grad")):
        for kinds, text in ((("grad", "jacobian"), f"every gradient (and Jacobian) at least "
                                                    f"as fast as {auto} (jacrev)"),
                            (("hessian",), f"every Hessian >= 2x faster than "
                                           f"{auto.replace('grad', 'hessian')}, or both within "
                                           "1.2x of the dense write")):
            sel = [r for r in rows if r["lib"] == lib and r["kind"] in kinds]
            if not sel:
                continue
            bad = [r for r in sel if verdict(r)[1] == "**no**"]
            dense = [r["case"] for r in sel if verdict(r)[1] == "yes (dense-bound)"]
            low = min(sel, key=lambda r: r["best_s"]["autodiff"] / r["best_s"]["einderiv"])
            speed = low["best_s"]["autodiff"] / low["best_s"]["einderiv"]
            note = f"lowest {speed:.2f}x ({low['case']})"
            if bad:
                note += "; failing: " + ", ".join(
                    f"{r['case']} {r['best_s']['autodiff'] / r['best_s']['einderiv']:.2f}x"
                    for r in bad)
            if dense:
                note += "; dense-bound: " + ", ".join(dense)
            aa = sorted(r["best_s"]["autodiff"] / r["best_s"]["autodiff again"]
                        for r in sel if "autodiff again" in r["best_s"])
            if bad and aa:
                note += (f"; this run's A/A (autodiff against a second jit of itself) "
                         f"{aa[0]:.2f}-{aa[-1]:.2f}")
            out.append(f"| {lib}: {text} | {'**no**' if bad else 'yes'} | {note} |")
    comp = [r for r in rows if "torch.compile" in r["best_s"]]
    if comp:
        ratios = sorted(r["best_s"]["torch.compile"] / r["best_s"]["einderiv"] for r in comp)
        behind = [r["case"] for r in comp if r["best_s"]["torch.compile"] < r["best_s"]["einderiv"]]
        out.append(f"| torch: against torch.compile of the hand-written formula (context) | "
                   f"{len(comp) - len(behind)} of {len(comp)} at least as fast | median "
                   f"{ratios[len(ratios) // 2]:.2f}x, range {ratios[0]:.2f}-{ratios[-1]:.2f}x; "
                   f"behind: {', '.join(behind) or 'none'} |")
    both = [r for r in comp if "torch.compile(einderiv)" in r["best_s"]]
    if both:
        ratios = sorted(r["best_s"]["torch.compile"] / r["best_s"]["torch.compile(einderiv)"]
                        for r in both)
        within = sum(1 for x in ratios if x >= 0.9)
        out.append(f"| torch: einderiv's compiled function under torch.compile against "
                   f"torch.compile of the hand-written formula | {within} of {len(both)} within "
                   f"0.9x or faster | median {ratios[len(ratios) // 2]:.2f}x, range "
                   f"{ratios[0]:.2f}-{ratios[-1]:.2f}x |")
    ex = sorted(r["best_s"]["export"] / r["best_s"]["einderiv"] for r in rows)
    if ex:
        out.append(f"| exported code (`to_python`) runs at the backend's speed | "
                   f"{'yes' if ex[len(ex) // 2] <= 1.1 else '**no**'} | export / compile: median "
                   f"{ex[len(ex) // 2]:.2f}, range {ex[0]:.2f}-{ex[-1]:.2f} |")
    return out


def markdown(rows: list[dict], meta: dict) -> str:
    gpu = meta.get("device") == "gpu"
    failed = [r for r in rows if "error" in r]
    rows = [r for r in rows if "best_s" in r]
    out = [f"Run: `{meta['command']}` at {meta['when']} ({meta['seconds']:.0f} s; "
           f"{meta['rounds']} rounds, min of samples of ~{meta['sample_ms']} ms; "
           f"{'arrays on the GPU, one host thread' if gpu else 'one thread'}; "
           f"float64; load average at start {meta['load']}).", "",
           f"Versions: {meta['versions']}. GPU: {meta['gpu']}.", ""]
    for lib, auto in (("jax", "jax.jit(jax.grad / hessian / jacrev)"),
                      ("torch", "torch.func.grad / hessian / jacrev")):
        sel = [r for r in rows if r["lib"] == lib]
        if not sel:
            continue
        jax_cols = lib == "jax"  # the program by position and the A/A control
        extra = " | torch.compile(hand) | ratio | torch.compile(einderiv) | ratio" \
            if lib == "torch" else ""
        out += [f"### {lib}: einderiv against {auto}", "",
                "speed-up = autodiff time / einderiv time (higher is better); export = the "
                "`to_python` code called directly; dense = writing an array of the result's shape "
                "once (a fill)." + (
                    " program = the same exported code jitted with its arguments by position "
                    "(jax.jit's own call, no keyword entry before it; Python numbers converted "
                    "by jax.jit on each call); A/A = autodiff time / the time of a second "
                    "`jax.jit` of the same autodiff function: the run's noise (1.00 where the "
                    "machine is steady)." if jax_cols else ""), "",
                "| case | einderiv" + (" | program" if jax_cols else "") + " | export | autodiff "
                "| speed-up" + (" | program speed-up | A/A" if jax_cols else "")
                + f" | export/einderiv | dense{extra} | target | holds |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---:"
                + (" | ---: | ---: | ---: | ---:" if extra else "")
                + (" | ---: | ---: | ---:" if jax_cols else "") + " | --- | --- |"]
        for r in sel:
            b = r["best_s"]
            need, holds = verdict(r)
            cells = [r["case"], fmt(b["einderiv"])]
            cells += [fmt(b["program"])] if jax_cols else []
            cells += [fmt(b["export"]), fmt(b["autodiff"]), f"{b['autodiff'] / b['einderiv']:.2f}x"]
            cells += [f"{b['autodiff'] / b['program']:.2f}x",
                      f"{b['autodiff'] / b['autodiff again']:.2f}"] if jax_cols else []
            cells += [f"{b['export'] / b['einderiv']:.2f}", fmt(b["dense"]) if "dense" in b else "-"]
            if extra:
                tc, te = b.get("torch.compile"), b.get("torch.compile(einderiv)")
                cells += [fmt(tc) if tc else "n/a",
                          f"{tc / b['einderiv']:.2f}x" if tc else "-",
                          fmt(te) if te else "n/a",
                          f"{tc / te:.2f}x" if tc and te else "-"]
            out.append("| " + " | ".join(cells + [need, holds]) + " |")
        out.append("")
    once = [f"- {r['lib']} {r['case']}: {note}" for r in rows for note in r["notes"]
            if "timed once" in note]
    if once:
        out += ["### Timed by one call (slower than `--max-call-s` a call)", ""] + once + [""]
    if failed:
        out += ["### Rows that failed", ""] + [f"- {r['lib']} {r['case']}: `{r['error']}`"
                                              for r in failed] + [""]
    out += ["### Targets of issue 20", ""] + targets(rows)
    out += ["", "### Findings", "", GPU_NOTE if gpu else FINDINGS]
    return "\n".join(out)


def write_docs(md: str, docs: Path, device: str = "cpu") -> None:
    """Put ``md`` into ``docs`` between the markers of its device (replacing an earlier
    block, or at the end); run.py keeps the blocks when it rewrites the file."""
    text = docs.read_text() if docs.exists() else ""
    begin, end, title = BEGIN, END, "JAX and torch backends against their own autodiff"
    if device == "gpu":
        begin, end = (m.replace("backends.py", "backends.py --device gpu") for m in (BEGIN, END))
        title += " on a GPU"
    block = f"{begin}\n## {title} (issue 20)\n\n{md}\n{end}\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    docs.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes")
    p.add_argument("--cases", default="", help="comma-separated ids (C1,C3), default all")
    p.add_argument("--libs", default="jax,torch")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--sample-ms", type=float, default=20.0)
    p.add_argument("--skip", default="", help="torch.compile: leave it out")
    p.add_argument("--max-call-s", type=float, default=5.0,
                   help="a method whose first call takes longer is timed once more, not "
                        "in every round (torch.func.hessian at 4000 x 2000: ~55 s a call)")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"],
                   help="where the arrays live (gpu: the first one JAX and torch see)")
    p.add_argument("--render", default="", help="a backends.json: write its report again "
                   "(docs/benchmarks.md too), measuring nothing")
    p.add_argument("--also", default="", help="with --render: another run's backends.json, "
                   "whose targets are shown beside (the machine is noisy: a rerun)")
    args = p.parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        md = markdown(saved["rows"], saved["meta"])
        if args.also:
            other = json.loads(Path(args.also).read_text())
            md = md.replace("### Findings", f"### Targets in another run of the same code "
                            f"(`{other['meta']['command']}` at {other['meta']['when']}, load "
                            f"average {other['meta']['load']})\n\n" +
                            "\n".join(targets(other["rows"])) + "\n\n### Findings")
        write_docs(md, HERE.parent / "docs" / "benchmarks.md", saved["meta"].get("device", "cpu"))
        print(md)
        return 0
    args.skip = set(filter(None, args.skip.split(",")))
    ids = set(filter(None, args.cases.split(",")))
    selected = [c for c in cases(args.quick) if not ids or c.id in ids]
    versions, cards = {}, []
    if "jax" in args.libs:
        import jax
        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_cpu_enable_async_dispatch", False)  # see the docstring
        versions["jax"] = jax.__version__
        if args.device == "gpu":
            try:
                cards.append(f"JAX: {jax.devices('gpu')[0].device_kind}")
            except Exception as exc:  # JAX_PLATFORMS=cuda without a GPU: an assertion
                raise SystemExit(f"--device gpu: JAX sees no GPU ({type(exc).__name__}: "
                                 f"{exc}); run it on a lent GPU machine (benchmarks/gpu.sh)") from None
    if "torch" in args.libs:
        import torch
        torch.set_num_threads(1)
        versions["torch"] = torch.__version__
        if args.device == "gpu":
            if not torch.cuda.is_available():
                raise SystemExit("--device gpu: torch sees no GPU (torch.cuda.is_available() "
                                 "is False); run it on a lent GPU machine (benchmarks/gpu.sh)")
            cards.append(f"torch: {torch.cuda.get_device_name(0)}")
    t0 = time.time()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    meta = {"command": "python benchmarks/backends.py " + " ".join(argv or sys.argv[1:]),
            "when": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": 0.0,
            "rounds": args.rounds, "sample_ms": args.sample_ms, "load": load,
            "versions": ", ".join(f"{k} {v}" for k, v in versions.items()) +
            f", einderiv {einderiv.__version__}, Python {platform.python_version()}",
            "device": args.device,
            "gpu": "; ".join(cards) if cards else "none on this machine (CPU only)"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for case in selected:  # both libraries per case: a run cut short has pairs
        for lib in args.libs.split(","):
            try:
                row = measure(case, lib, args)
            except Exception as exc:  # on a lent GPU: record it, measure the rest
                if args.device != "gpu":
                    raise
                row = {"case": case.label, "kind": case.kind, "lib": lib,
                       "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                print(f"{lib:6s} {case.label:30s} failed: {row['error']}", flush=True)
            else:
                b = row["best_s"]
                print(f"{lib:6s} {case.label:30s} " + "  ".join(f"{k} {fmt(v)}"
                                                                for k, v in b.items())
                      + f"  speed-up {b['autodiff'] / b['einderiv']:.2f}x", flush=True)
            rows.append(row)
            meta["seconds"] = time.time() - t0  # the rows so far, kept if the run is cut
            (out / "backends.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                          indent=1))
    md = markdown(rows, meta)
    print(md)
    (out / "backends.md").write_text(md + "\n")
    if out.resolve() == (HERE / "results").resolve() and not args.quick and not ids:
        write_docs(md, HERE.parent / "docs" / "benchmarks.md", args.device)  # the report
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
