"""einderiv's JAX and torch backends against their own autodiff (issue 20).

For every case of benchmarks/cases.py (``--quick``: small sizes), on one thread, float64:

- JAX: ``compile(backend="jax")`` (einderiv's plan exported as JAX code, run under
  ``jax.jit``), the exported code itself (``to_python(backend="jax", shapes=...)`` loaded
  and jitted by hand, called by keyword as einderiv is), against ``jax.jit(jax.grad)`` /
  ``jax.jit(jax.hessian)`` / ``jax.jit(jax.jacrev)`` of the same function, called as JAX
  code calls it (the variable, then a dict of the others); all three get the same
  arrays and the same Python numbers (C1's ``n``). JAX runs with CPU dispatch
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
``--skip torch.compile``); writes benchmarks/results/backends.json and .md, and a full
run its section of docs/benchmarks.md (``--render FILE.json`` writes it again from a
saved run).
"""

# One thread everywhere, set before numpy or a framework loads (as run.py).
import one_thread  # noqa: F401
import os

import argparse  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
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


def jax_runners(case: Case, data: dict, expr: einderiv.Expr, ref: np.ndarray) -> dict:
    import jax
    import jax.numpy as jnp
    arrays = {k: (jnp.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in data.items()}
    wrt = case.wrt
    others = {k: v for k, v in arrays.items() if k != wrt}
    T = {"grad": jax.grad, "hessian": jax.hessian, "jacobian": jax.jacrev}[case.kind]
    auto = jax.jit(T(lambda w, o: case.loss(jnp, {**o, wrt: w})))
    compiled = expr.compile(backend="jax")
    shapes = {k: np.shape(v) for k, v in data.items()}
    source = _load(expr.to_python("f", backend="jax", shapes=shapes))
    exported = jax.jit(source)
    kw = {p: arrays[p] for p in inspect.signature(source).parameters}  # keyword-only
    out = {
        "einderiv": lambda: jax.block_until_ready(compiled(**arrays)),
        "export": lambda: jax.block_until_ready(exported(**kw)),
        "autodiff": lambda: jax.block_until_ready(auto(arrays[wrt], others)),
    }
    if case.kind != "grad":
        dense = jax.jit(lambda c: jnp.full(ref.shape, c))  # writes only: no read
        out["dense"] = lambda: jax.block_until_ready(dense(2.0))
    return out


def torch_runners(case: Case, data: dict, expr: einderiv.Expr, ref: np.ndarray,
                  use_compile: bool, notes: list[str]) -> dict:
    import torch
    import torch.func as tf
    tensors = {k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v)
               for k, v in data.items()}
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
    if case.kind != "grad":
        out["dense"] = lambda: torch.full(ref.shape, 2.0, dtype=torch.float64)
    return out


def check(name: str, result: Any, ref: np.ndarray, case: Case, w: np.ndarray) -> None:
    got = result.detach().numpy() if hasattr(result, "detach") else np.asarray(result)
    if name == "autodiff":
        got = to_denominator(got, case, w)
    if name != "dense" and not np.allclose(got, ref, rtol=case.rtol, atol=1e-8 * np.abs(ref).max()):
        raise AssertionError(f"{case.label}: {name} differs from the reference")


def measure(case: Case, lib: str, args) -> dict:
    data = case.make_data()
    ref = np.asarray(case.reference(data))
    expr = derive(case)
    notes: list[str] = []
    runners = jax_runners(case, data, expr, ref) if lib == "jax" else \
        torch_runners(case, data, expr, ref, "torch.compile" not in args.skip, notes)
    for name, fn in runners.items():
        check(name, fn(), ref, case, data[case.wrt])
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(args.rounds):
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
Where the time went (before the changes of issue 20; `python benchmarks/backends.py`
and the jaxprs / optimized HLO of einderiv's jitted function against `jax.jit(jax.grad)`,
`jax.make_jaxpr` and `.lower(...).compile().as_text()`):

- **Gradients (C1, C2, C3, C6, C10)**: the HLO is the same program. For C1 and C3 both
  compile to two `dot`s (`X theta`, then `X^T r` with `lhs_contracting_dims={0}`, no
  transpose copied) and one fusion of the element-wise chain; the only difference is
  the operand order of the second dot (result layout `[d,1]` against `[1,d]`), which
  measured the same (1.94 ms against 1.94 ms at 10000 x 500). C6 is `inv(X).T` against
  JAX's LU-based adjoint of `slogdet`, the same cost. The gaps of 0.72-0.98x in the
  issue-5 report were per-call overhead and noise: `ExportedExpr.__call__` called the
  jitted function by keyword with a Python float among the arguments, which costs JAX
  about 10 us more than a positional call (C1 grad at 200 x 40: 35 us by keyword, 25 us
  by position, 25 us for `jax.jit(jax.grad)`), plus shape tuples built per call.
  The sigmoid was written `exp(-logaddexp(0, -x))`, whose JAX form is a
  `custom_jvp` with `where`s for infinities; `1 / (1 + exp(-x))` is one fused loop.
- **After**: the gradients are at parity with `jax.jit(jax.grad)`, as the same HLO
  must be: the smallest cases are calls of 15-30 us where a few microseconds decide.
  C1's gradient at 1000 x 100 stays about 3 us (0.87x) behind, the exported function
  called directly too; its HLO applies the scalar `2/n` after the second `dot` (one
  more small fusion, one more XLA thunk per call), where JAX folds it into the
  residual's fusion. A trial that moved it there measured inside the noise.
- **Hessians with a Kronecker delta (C9, C10)**: the delta was written
  `zeros(...).at[i, i].set(v)`, an XLA `scatter`, which runs as a serial loop that no
  fusion crosses, then added to the dense term. Now it is
  `where(arange(n)[:, None] == arange(n)[None, :], v, 0)`, which XLA fuses with the
  sum that reads it: one pass writing the result.
- **Common subexpressions across a sign (C3, C13)**: the program keeps `-(y X theta)` and
  `y X theta` apart (the sigmoid's argument and its mirror); XLA's CSE merges the two
  dots, torch runs eagerly and computed `X theta` twice. The writer now reuses any
  value already written (same text over the same never-reassigned variables).
- **torch**: `torch.einsum` of two matrices permutes and copies before `bmm`; a
  two-operand product of matrices and vectors is now written `a @ b` on transposed
  views (BLAS takes the transpose as a flag): C9's gradient went from 0.61x to 1.2x of
  `torch.func.grad`. Not on JAX: there `X.T @ v` made XLA on CPU copy `X.T` (C3's
  gradient at 10000 x 500 fell to 0.13x in a trial run), while `jnp.einsum` is one
  `dot_general` with the contracting dimensions given.
- **torch, a delta beside a dense term (C10, C9 Hessians)**: zeros, an indexed
  assignment, then a sum over the whole result: three passes. Now the dense terms are
  summed first and the diagonal term is added in place (`H[i, i] += v`) into that new
  array (or into the dense term itself where nothing else reads it).
- **Not changed: the GEMM-bound Hessians (C1, C3, C13)**, `X^T diag(w) X`. einderiv and
  `jax.hessian` both end in one `dot` of 2 n d^2 flops; numpy's plan halves that with
  syrk (gram.py), but XLA has no symmetric product. A blocked variant (the lower
  triangle of k x k column blocks, mirrored; jitted, measured in a quiet moment)
  gained nothing at 10000 x 500 (78.7 ms plain, 77.4-82.4 ms with 2-6 blocks) and
  1.3x at 2000 x 1000 (52.4 -> 39.7 ms) and 4000 x 2000 (425 -> 319 ms): XLA copies
  the column slices, and 1.3x more would still leave C13 short of 2x. Not adopted; these
  stay at 1.3-1.8x. (`jax.hessian`, forward over reverse, pushes the d x d identity of
  tangents through `X theta`: a second product of the same size, `X I`, besides the
  final one, so about 2x is the most that one product can gain over it.)
- No GPU was lent to this task (the device tool's draw did not include it): every
  number here is CPU.
"""


def targets(rows: list[dict]) -> list[str]:
    """The targets of issue 20, judged on this run."""
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
            out.append(f"| {lib}: {text} | {'**no**' if bad else 'yes'} | {note} |")
    comp = [r for r in rows if "torch.compile" in r["best_s"]]
    if comp:
        ratios = sorted(r["best_s"]["torch.compile"] / r["best_s"]["einderiv"] for r in comp)
        behind = [r["case"] for r in comp if r["best_s"]["torch.compile"] < r["best_s"]["einderiv"]]
        out.append(f"| torch: against torch.compile of the hand-written formula (context) | "
                   f"{len(comp) - len(behind)} of {len(comp)} at least as fast | median "
                   f"{ratios[len(ratios) // 2]:.2f}x, range {ratios[0]:.2f}-{ratios[-1]:.2f}x; "
                   f"behind: {', '.join(behind) or 'none'} |")
    ex = sorted(r["best_s"]["export"] / r["best_s"]["einderiv"] for r in rows)
    if ex:
        out.append(f"| exported code (`to_python`) runs at the backend's speed | "
                   f"{'yes' if ex[len(ex) // 2] <= 1.1 else '**no**'} | export / compile: median "
                   f"{ex[len(ex) // 2]:.2f}, range {ex[0]:.2f}-{ex[-1]:.2f} |")
    return out


def markdown(rows: list[dict], meta: dict) -> str:
    out = [f"Run: `{meta['command']}` at {meta['when']} ({meta['seconds']:.0f} s; "
           f"{meta['rounds']} rounds, min of samples of ~{meta['sample_ms']} ms; one thread; "
           f"float64; load average at start {meta['load']}).", "",
           f"Versions: {meta['versions']}. GPU: {meta['gpu']}.", ""]
    for lib, auto in (("jax", "jax.jit(jax.grad / hessian / jacrev)"),
                      ("torch", "torch.func.grad / hessian / jacrev")):
        sel = [r for r in rows if r["lib"] == lib]
        if not sel:
            continue
        extra = " | torch.compile(hand) | ratio" if lib == "torch" else ""
        out += [f"### {lib}: einderiv against {auto}", "",
                "speed-up = autodiff time / einderiv time (higher is better); export = the "
                "`to_python` code called directly; dense = writing an array of the result's shape "
                "once (a fill).", "",
                f"| case | einderiv | export | autodiff | speed-up | export/einderiv | dense"
                f"{extra} | target | holds |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---:" + (" | ---: | ---:" if extra else "")
                + " | --- | --- |"]
        for r in sel:
            b = r["best_s"]
            need, holds = verdict(r)
            cells = [r["case"], fmt(b["einderiv"]), fmt(b["export"]), fmt(b["autodiff"]),
                     f"{b['autodiff'] / b['einderiv']:.2f}x", f"{b['export'] / b['einderiv']:.2f}",
                     fmt(b["dense"]) if "dense" in b else "-"]
            if extra:
                tc = b.get("torch.compile")
                cells += [fmt(tc) if tc else "n/a",
                          f"{tc / b['einderiv']:.2f}x" if tc else "-"]
            out.append("| " + " | ".join(cells + [need, holds]) + " |")
        out.append("")
    out += ["### Targets of issue 20", ""] + targets(rows) + ["", "### Findings", "", FINDINGS]
    return "\n".join(out)


def write_docs(md: str, docs: Path) -> None:
    """Put ``md`` into ``docs`` between the markers (replacing an earlier block, or at
    the end); run.py keeps the block when it rewrites the file."""
    text = docs.read_text() if docs.exists() else ""
    block = f"{BEGIN}\n## JAX and torch backends against their own autodiff (issue 20)\n\n{md}\n{END}\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END) + 1:]
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
    p.add_argument("--out", default=str(HERE / "results"))
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
        write_docs(md, HERE.parent / "docs" / "benchmarks.md")
        print(md)
        return 0
    args.skip = set(filter(None, args.skip.split(",")))
    ids = set(filter(None, args.cases.split(",")))
    selected = [c for c in cases(args.quick) if not ids or c.id in ids]
    versions = {}
    if "jax" in args.libs:
        import jax
        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_cpu_enable_async_dispatch", False)  # see the docstring
        versions["jax"] = jax.__version__
    if "torch" in args.libs:
        import torch
        torch.set_num_threads(1)
        versions["torch"] = torch.__version__
    t0 = time.time()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = []
    for lib in args.libs.split(","):
        for case in selected:
            row = measure(case, lib, args)
            b = row["best_s"]
            print(f"{lib:6s} {case.label:30s} " + "  ".join(f"{k} {fmt(v)}" for k, v in b.items())
                  + f"  speed-up {b['autodiff'] / b['einderiv']:.2f}x", flush=True)
            rows.append(row)
    meta = {"command": "python benchmarks/backends.py " + " ".join(argv or sys.argv[1:]),
            "when": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": time.time() - t0,
            "rounds": args.rounds, "sample_ms": args.sample_ms, "load": load,
            "versions": ", ".join(f"{k} {v}" for k, v in versions.items()) +
            f", einderiv {einderiv.__version__}, Python {platform.python_version()}",
            "gpu": "none on this machine (CPU only)"}
    md = markdown(rows, meta)
    print(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "backends.md").write_text(md + "\n")
    (out / "backends.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    if out.resolve() == (HERE / "results").resolve() and not args.quick and not ids:
        write_docs(md, HERE.parent / "docs" / "benchmarks.md")  # a full run: the report
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
