#!/usr/bin/env python
"""Differential fuzzing of einderiv against an independent interpreter of its language.

Usage::

    python benchmarks/oracle_fuzz.py --seed 1 --n 2000 [--time-limit 600] [--minimize]
    python benchmarks/oracle_fuzz.py --text "x[i]*A[i,j]" --shape x=3 --shape A=3,4   # one text
    python benchmarks/oracle_fuzz.py --seed 1 --one 123 -v                              # one input

Each input is a random text of the index language (``generate(seed, k)``: a pure
function of the seed and the input number) with arrays of distinct index sizes.  The
oracle (benchmarks/oracle_lang.py: its own parser and evaluator over numpy, and
``jax.jacfwd`` of the same evaluator over jax.numpy in float64) gives the value, its
free-index order, and first and second derivatives rearranged to einderiv's
denominator layout.  Against it, for the expression and for ``diff`` by one or two of
its variables (and a second derivative for a fraction of inputs):

* ``Expr.free`` (the free-index order rule), ``evaluate``, ``compile()(...)``, the
  function of ``to_python()`` (exec'd, keyword arguments; ``--export torch``: the torch
  code, on torch tensors), and where ``to_matrix``
  succeeds, ``MatrixExpr.evaluate`` and ``parse_matrix(str(m)).evaluate``;
* every input array bit-identical after every call;
* every ``evaluate`` timed (> --slow seconds is a finding).

Findings: WRONG (a value beyond rtol 1e-6 of the largest magnitude; non-finite
entries skipped), FREE-ORDER, MUTATION, SLOW, HANG (the input ran past --timeout),
REFUSAL (an EinderivError on a text the oracle evaluates), CRASH (any other
exception), ACCEPTED-INVALID / ACCEPTED-AMBIGUOUS (einderiv gives a value where the
language says error).  Each distinct finding is printed with the input's text, the
arrays' shapes, and with --minimize a reproducer shrunk by dropping terms and
factors and replacing subexpressions.  Inputs run in a worker process (one core),
restarted after a hang.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field
import inspect
import multiprocessing as mp
import os
import re
import signal
import sys
import time
import traceback
import warnings
import zlib

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")           # one core (set before numpy is imported)
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SLOW_S = 2.0
#: Second derivatives with more entries are not checked: a 6.2 GB one (seed 48, input
#: 6227) took 2.6 s in einderiv, 1.6 s of it the allocation, and the oracle's nested
#: jacfwd or finite differences ran past --timeout (a HANG that was the fuzzer's own).
MAX_SECOND = 20_000_000
RTOL = 1e-6
ATOL = 1e-10


# ============================================================================ worker
def _worker_init(deriv="fd"):
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = "1"
    warnings.simplefilter("ignore")
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # one core
    except (AttributeError, OSError):
        pass
    if deriv != "jax":
        return
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false --xla_backend_optimization_level=0"
                               " --xla_llvm_disable_expensive_passes=true")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    jax.config.update("jax_enable_x64", True)
    warnings.simplefilter("ignore")


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


class Checker:
    """Runs one text through einderiv and the oracle; collects findings."""

    def __init__(self, text, arrays, plan, kind="value", slow=SLOW_S, deriv="fd"):
        import numpy as np
        self.np = np
        self.deriv = deriv
        self.print_derivs = True
        self.text = text
        self.arrays = arrays
        self.copies = {k: np.array(v, copy=True) for k, v in arrays.items()}
        self.plan = plan
        self.kind = kind
        self.slow = slow
        self.findings = []
        self.status = "?"
        self.compared = 0
        self.timings = []

    # ------------------------------------------------------------------ findings
    def add(self, category, check, message, expected=None, got=None):
        self.findings.append({"category": category, "check": check, "message": message,
                              "expected": expected, "got": got})

    def mutation_check(self, where):
        np = self.np
        for k, v in self.copies.items():
            a = self.arrays[k]
            if np.asarray(a).shape != v.shape or np.asarray(a).tobytes() != v.tobytes():
                self.add("MUTATION", where, f"input {k!r} changed by {where}")
                self.arrays[k] = np.array(v, copy=True)

    def call(self, where, fn, *args, **kw):
        """Call einderiv; classify exceptions; returns (ok, value)."""
        import einderiv
        t0 = time.perf_counter()
        try:
            out = fn(*args, **kw)
        except Timeout:
            raise
        except einderiv.EinderivError as e:
            self.mutation_check(where)
            return False, e
        except Exception as e:                          # noqa: BLE001
            self.mutation_check(where)
            tb = traceback.format_exc(limit=-3)
            self.add("CRASH", where, f"{type(e).__name__}: {str(e)[:300]}\n{tb}")
            return False, None
        dt = time.perf_counter() - t0
        self.timings.append((where, dt))
        self.mutation_check(where)
        return True, (out, dt)

    # --------------------------------------------------------------- comparisons
    def compare(self, where, expected, got, labels_exp=None, labels_got=None, rtol=None, atol=None):
        """expected: np array in oracle label order; got: engine array; labels to align."""
        np = self.np
        self.compared += 1
        got = np.asarray(got, dtype=np.float64) if not np.iscomplexobj(got) else np.asarray(got)
        if labels_exp is not None and labels_got is not None and tuple(labels_exp) != tuple(labels_got):
            if sorted(labels_exp) == sorted(labels_got) and len(set(labels_got)) == len(labels_got) \
                    and got.ndim == len(labels_got):
                got = np.transpose(got, [labels_got.index(l) for l in labels_exp])
        expected = np.asarray(expected, dtype=np.float64)
        if got.shape != expected.shape:
            self.add("WRONG", where, f"shape {got.shape}, expected {expected.shape}",
                     _summ(expected), _summ(got))
            return False
        fin = np.isfinite(expected)
        if not fin.any():
            return True
        e, g = expected[fin], got[fin]
        if np.iscomplexobj(g) or not np.all(np.isfinite(g)):
            self.add("WRONG", where, "non-finite where the oracle is finite", _summ(expected), _summ(got))
            return False
        scale = max(np.max(np.abs(e)), np.max(np.abs(g)))
        err = np.max(np.abs(e - g))
        if err > (rtol or RTOL) * scale + (atol or ATOL):
            self.add("WRONG", where, f"max abs err {err:.3g} (scale {scale:.3g})",
                     _summ(expected), _summ(got))
            return False
        return True

    def sum_order_alt(self, text):
        """The oracle's free labels for `text` under einderiv's own reading of a sum's
        axis order (first term with free labels, where it has them all)."""
        import oracle_lang as L
        old = L.Rules.SUM_ORDER
        L.Rules.SUM_ORDER = "first-has-union"
        try:
            return L.Interp(self.arrays, self.np).eval(L.parse(text)).labels
        except Exception:                                # noqa: BLE001
            return None
        finally:
            L.Rules.SUM_ORDER = old

    def check_free(self, where, expected, got):
        if tuple(got) != tuple(expected):
            cat = "FREE-ORDER" if sorted(got) == sorted(expected) else "WRONG"
            if cat == "FREE-ORDER" and self.sum_order_alt(self.text) == tuple(got):
                self.add(cat, where + ".sum-order", "a sum whose terms have different free sets takes "
                         "the first term's order, not code-point order (docs/language.md R6)"
                         f"; free {tuple(got)}, rule {tuple(expected)}")
                return
            self.add(cat, where, f"free {tuple(got)}, the language rule gives {tuple(expected)}")

    # ------------------------------------------------------------------ one expr
    def outputs(self, where, expr, expected, labels_exp, labels_eng, matrix=True, rtol=None, atol=None):
        """evaluate / compile / to_python / to_matrix of an einderiv Expr vs expected."""
        np = self.np
        arrays = self.arrays
        ok, r = self.call(where + ".evaluate", expr.evaluate, **arrays)
        if ok:
            val, dt = r
            if dt > self.slow:
                self.add("SLOW", where + ".evaluate", f"evaluate took {dt:.1f} s")
            self.compare(where + ".evaluate", expected, val, labels_exp, labels_eng, rtol, atol)
        elif r is not None:
            self.add("REFUSAL", where + ".evaluate", _msg(r))
        ok, r = self.call(where + ".compile", lambda: expr.compile()(**arrays))
        if ok:
            self.compare(where + ".compile", expected, r[0], labels_exp, labels_eng, rtol, atol)
        elif r is not None:
            self.add("REFUSAL", where + ".compile", _msg(r))
        # with the arrays' sizes (as compile(backend="jax") writes it: contraction paths,
        # products multiplied out where cheaper) for half the texts, without for the rest
        sized = zlib.crc32(self.text.encode()) % 2 == 0
        shapes = {k: np.shape(v) for k, v in arrays.items()} if sized else None
        export = os.environ.get("ORACLE_FUZZ_EXPORT", "numpy")  # --export: the workers' too
        ok, r = self.call(where + ".to_python", expr.to_python, "oracle_fn", backend=export,
                          shapes=shapes)
        if ok:
            src = r[0]
            ns: dict = {}
            try:
                exec(src, ns)
                fn = ns["oracle_fn"]
                params = list(inspect.signature(fn).parameters)
            except Exception as e:                       # noqa: BLE001
                self.add("CRASH", where + ".to_python", f"generated source fails: {type(e).__name__}: {e}")
                fn = None
            if fn is not None:
                if any(p.kind is not inspect.Parameter.KEYWORD_ONLY
                       for p in inspect.signature(fn).parameters.values()):
                    self.add("WRONG", where + ".to_python", f"arguments not keyword-only: {params}")
                missing = [p for p in params if p not in arrays]
                if missing:
                    self.add("CRASH", where + ".to_python", f"unknown arguments {missing}")
                else:
                    given = {p: arrays[p] for p in params}
                    if export == "torch":
                        import torch
                        given = {p: torch.from_numpy(np.array(v)) if np.ndim(v) else v
                                 for p, v in given.items()}
                    ok, r = self.call(where + ".to_python()", fn, **given)
                    if ok:
                        got = r[0].numpy() if export == "torch" else r[0]
                        self.compare(where + ".to_python", expected, got, labels_exp, labels_eng, rtol, atol)
        elif r is not None:
            self.add("REFUSAL", where + ".to_python", _msg(r))
        if matrix and len(labels_eng) <= 2:
            self.matrix(where, expr, expected, labels_exp, labels_eng, rtol, atol)

    def matrix(self, where, expr, expected, labels_exp, labels_eng, rtol=None, atol=None):
        import einderiv
        np = self.np
        try:
            m = expr.to_matrix()
        except einderiv.EinderivError:
            return
        except Timeout:
            raise
        except Exception as e:                           # noqa: BLE001
            self.add("CRASH", where + ".to_matrix", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}")
            return
        self.mutation_check(where + ".to_matrix")
        ok, r = self.call(where + ".to_matrix.evaluate", m.evaluate, **self.arrays)
        if ok:
            self.compare(where + ".to_matrix", expected, r[0], labels_exp, labels_eng, rtol, atol)
        elif r is not None:
            self.add("REFUSAL", where + ".to_matrix.evaluate", _msg(r) + f" [matrix: {m}]")
        shapes = {k: np.shape(v) for k, v in self.arrays.items()}
        ok, r = self.call(where + ".parse_matrix", einderiv.parse_matrix, str(m), shapes)
        if ok:
            back = r[0]
            ok2, r2 = self.call(where + ".parse_matrix.evaluate", back.evaluate, **self.arrays)
            if ok2:
                got = r2[0]
                if str(m).strip() == "0" and np.ndim(got) == 0:   # documented: 0 has any shape
                    got = np.broadcast_to(got, np.shape(expected))
                    labels_eng = labels_exp
                self.compare(where + ".parse_matrix(str(to_matrix))", expected, got, labels_exp, labels_eng, rtol, atol)
            elif r2 is not None and "size" not in str(r2):
                self.add("REFUSAL", where + ".parse_matrix.evaluate", _msg(r2) + f" [matrix: {m}]")
        elif r is not None and not re.search(r"\b(I|ones)\b", str(m)):
            self.add("REFUSAL", where + ".parse_matrix", _msg(r) + f" [matrix: {m}]")

    # ---------------------------------------------------------------------- run
    def run(self):
        import numpy as np
        import einderiv
        import oracle_lang as L
        text = self.text
        # --- the oracle
        try:
            ast = L.parse(text)
            ov = L.Interp(self.arrays, np).eval(ast)
            oracle = ("ok", ov)
        except L.OracleAmbiguous as e:
            oracle = ("ambiguous", str(e))
        except L.OracleInvalid as e:
            oracle = ("invalid", str(e))
        except L.OracleUnknownSize as e:
            oracle = ("unknown", str(e))
        except (ValueError, np.linalg.LinAlgError) as e:
            oracle = ("invalid", f"{type(e).__name__}: {e}")
        self.status = oracle[0]
        # --- einderiv.parse
        ok, r = self.call("parse", einderiv.parse, text)
        if not ok:
            if r is None:
                return
            if oracle[0] == "ok":
                self.add("REFUSAL", "parse", _msg(r))
            return
        e = r[0]
        if oracle[0] in ("invalid", "ambiguous"):
            okv, rv = self.call("evaluate(invalid)", e.evaluate, **self.arrays)
            if okv:
                cat = "ACCEPTED-AMBIGUOUS" if oracle[0] == "ambiguous" else "ACCEPTED-INVALID"
                self.add(cat, "parse", f"oracle: {oracle[1]}; einderiv parsed it as {e} "
                         f"free {e.free}", None, _summ(rv[0]))
            return
        if oracle[0] != "ok":
            self.call("evaluate(unknown-size)", e.evaluate, **self.arrays)
            return
        ov = oracle[1]
        self.check_free("parse.free", ov.labels, e.free)
        self.outputs("expr", e, ov.arr, ov.labels, e.free)
        self.print_check("expr", e, None, None)
        # --- derivatives
        if self.deriv == "jax":
            import jax
            import jax.numpy as jnp
            jarrays = {k: jnp.asarray(v) for k, v in self.arrays.items()}

            def F(env):
                return L.Interp(env, jnp).eval(ast).arr

        def oracle_np(env):
            return np.asarray(L.Interp(env, np).eval(ast).arr, dtype=np.float64)

        for var in self.plan.get("d1", []):
            if var not in e.variables and not re.search(rf"(?<!\w){re.escape(var)}(?!\w)", text):
                continue
            wrt = var
            names = self.plan.get("named", {}).get(var)
            if names and not set(names) & set(e.free):
                wrt = f"{var}[{','.join(names)}]"
            ok, r = self.call(f"diff[{wrt}]", einderiv.diff, text, wrt)
            if not ok:
                if r is not None:
                    self.add("REFUSAL", f"diff[{wrt}]", _msg(r))
                continue
            d = r[0]
            if wrt != var and tuple(d.free[:len(names)]) != tuple(names):
                self.add("WRONG", f"diff[{wrt}].free", f"derivative free {d.free}: the new axes are not {names}")
            k = np.ndim(self.arrays[var])
            if len(d.free) != k + len(e.free) or tuple(d.free[k:]) != tuple(e.free):
                self.add("WRONG", f"diff[{var}].free", f"derivative free {d.free}, expression free "
                         f"{e.free}, variable rank {k}")
                continue
            nout = len(ov.labels)
            exp_labels = tuple(d.free[:k]) + tuple(ov.labels)
            if self.deriv == "jax":
                def f1(v, var=var):
                    env = dict(jarrays)
                    env[var] = v
                    return F(env)
                jac = np.asarray(jax.jit(jax.jacfwd(f1))(jarrays[var]))      # out + var axes
                jac = np.moveaxis(jac, list(range(nout, nout + k)), list(range(k)))  # var axes first
                self.outputs(f"diff[{var}]", d, jac, exp_labels, d.free)
            else:
                def f1(v, var=var):
                    env = dict(self.arrays)
                    env[var] = v
                    return oracle_np(env)
                jac, fmag = fd_jacobian(f1, self.arrays[var], self.cols(self.arrays[var], FD_COLS))
                self.outputs(f"diff[{var}]", d, jac, exp_labels, d.free, rtol=FD_RTOL,
                             atol=FD_ATOL * max(1.0, fmag))
            if self.print_derivs:
                self.print_check(f"diff[{var}]", d, None, None)
            for v1, v2 in self.plan.get("d2", []):
                if v1 != var:
                    continue
                wrt2 = v2
                names2 = self.plan.get("named", {}).get(v2)
                if names2 and not set(names2) & set(d.free):
                    wrt2 = f"{v2}[{','.join(names2)}]"
                ok, r = self.call(f"diff[{v1}][{wrt2}]", einderiv.diff, d, wrt2)
                if not ok:
                    if r is not None and "does not occur" not in str(r):
                        self.add("REFUSAL", f"diff[{v1}][{v2}]", _msg(r))
                    continue
                d2 = r[0]
                k2 = np.ndim(self.arrays[v2])
                if tuple(d2.free[k2:]) != tuple(d.free):
                    self.add("WRONG", f"diff[{v1}][{v2}].free", f"{d2.free} vs {d.free}")
                    continue
                if np.size(self.arrays[v2]) * np.size(self.arrays[v1]) * np.size(ov.arr) > \
                        MAX_SECOND:
                    continue  # the dense result alone (GBs) outlasts --timeout
                if self.deriv == "jax":
                    def f2(u, v1=v1, v2=v2):
                        env = dict(jarrays)
                        env[v2] = u

                        def g(v):
                            env2 = dict(env)
                            env2[v1] = v
                            return F(env2)
                        return jax.jacfwd(g)(env[v1])        # out + v1
                    h = np.asarray(jax.jit(jax.jacfwd(f2))(jarrays[v2]))  # out + v1 + v2
                    nd = h.ndim
                    h = np.moveaxis(h, list(range(nd - k2, nd)), list(range(k2)))        # v2 first
                    h = np.moveaxis(h, list(range(k2 + nout, k2 + nout + k)), list(range(k2, k2 + k)))
                    exp2 = tuple(d2.free[:k2]) + exp_labels
                    self.outputs(f"diff[{v1}][{v2}]", d2, h, exp2, d2.free, matrix=False)
                else:
                    # FD of einderiv's first derivative (verified above at this point), its
                    # value taken from the ORACLE reading str(d) where it can, else d.evaluate
                    fd_fun = self.first_derivative_fn(d)
                    if fd_fun is None:
                        continue
                    try:
                        h, fmag = fd_jacobian(lambda u, v2=v2: fd_fun(v2, u), self.arrays[v2],
                                        self.cols(self.arrays[v2], FD_COLS2))
                    except Timeout:
                        raise
                    except Exception:                      # noqa: BLE001
                        continue
                    exp2 = tuple(d2.free[:k2]) + tuple(d.free)
                    self.outputs(f"diff[{v1}][{v2}]", d2, h, exp2, d2.free, matrix=False, rtol=FD_RTOL,
                                 atol=FD_ATOL * max(1.0, fmag))

    # ------------------------------------------------------------------ FD helpers
    def cols(self, x, limit):
        """Which entries of a variable FD perturbs: all, or `limit` chosen by the text."""
        n = int(self.np.size(x))
        if n <= limit:
            return list(range(n))
        rng = random.Random(zlib.crc32(self.text.encode()))
        return sorted(rng.sample(range(n), limit))

    def first_derivative_fn(self, d):
        """fn(var, value) -> d's value (axes in d.free order) with var set to value."""
        import einderiv
        import oracle_lang as L
        np = self.np
        try:
            ast = L.parse(str(d))
            base = L.Interp(self.arrays, np).eval(ast)
            ref = np.asarray(d.evaluate(**self.arrays), dtype=np.float64)
            if sorted(base.labels) == sorted(d.free) and len(set(base.labels)) == len(base.labels):
                perm = [base.labels.index(l) for l in d.free]

                def via_oracle(var, value):
                    env = dict(self.arrays)
                    env[var] = value
                    return np.transpose(np.asarray(L.Interp(env, np).eval(ast).arr, dtype=np.float64), perm)
                if np.allclose(np.transpose(np.asarray(base.arr, dtype=np.float64), perm), ref,
                                    rtol=1e-6, atol=1e-9, equal_nan=True):
                    return via_oracle
        except (L.OracleInvalid, L.OracleUnknownSize, ValueError, TypeError, IndexError,
                np.linalg.LinAlgError, einderiv.EinderivError):
            pass

        def via_engine(var, value):
            env = dict(self.arrays)
            env[var] = value
            return np.asarray(d.evaluate(**env), dtype=np.float64)
        return via_engine

    def print_check(self, where, expr, expected, labels_exp):
        """str(expr) read by the ORACLE gives expr's value (printing is parse-able text)."""
        import oracle_lang as L
        np = self.np
        try:
            txt = str(expr)
        except Timeout:
            raise
        except Exception as ex:                              # noqa: BLE001
            self.add("CRASH", where + ".str", f"{type(ex).__name__}: {ex}")
            return
        if expected is None:
            ok, r = self.call(where + ".evaluate", expr.evaluate, **self.arrays)
            if not ok:
                return
            expected, labels_exp = r[0], tuple(expr.free)
        try:
            v = L.Interp(self.arrays, np).eval(L.parse(txt))
        except L.OracleUnknownSize:
            return
        except (L.OracleInvalid, ValueError, np.linalg.LinAlgError) as ex:
            if "size" in str(ex) and "two sizes" not in str(ex):
                return
            self.add("PRINT", where + ".str", f"the oracle rejects the printed text: {ex}; "
                     f"printed: {txt[:300]}")
            return
        if tuple(v.labels) != tuple(labels_exp):
            if sorted(v.labels) != sorted(labels_exp):
                self.add("PRINT", where + ".str", f"printed text has free {v.labels}, expression "
                         f"{tuple(labels_exp)}; printed: {txt[:300]}")
                return
            if self.sum_order_alt(txt) == tuple(labels_exp):
                self.add("PRINT", where + ".str.free.sum-order", "the printed text relies on the first-term "
                         f"sum order (R6); printed free {v.labels}, expression {tuple(labels_exp)}; "
                         f"printed: {txt[:300]}")
            else:
                self.add("PRINT", where + ".str.free", f"printed text has free order {v.labels}, expression "
                         f"{tuple(labels_exp)}; printed: {txt[:300]}")
        n = len(self.findings)
        self.compare(where + ".str(oracle)", expected, np.transpose(np.asarray(v.arr, dtype=np.float64),
                     [list(v.labels).index(l) for l in labels_exp]) if v.labels else v.arr)
        if len(self.findings) > n:
            self.findings[-1]["category"] = "PRINT"
            self.findings[-1]["message"] += f"; printed: {txt[:300]}"


FD_COLS, FD_COLS2, FD_RTOL, FD_H = 12, 6, 1e-5, 1e-4
FD_ATOL = 1e-8          # times max(1, |f|): the rounding of f(x+h) - f(x-h) over 2h


def fd_jacobian(fun, x0, cols):
    """Central differences of fun at x0 for the flat entries `cols` of x0, with steps
    h and h/2 (Richardson-combined); entries where the two disagree (a kink or jump of
    relu/abs/step/sign within a step, or an unstable value) are NaN, as are entries of
    columns not perturbed.  Returns (x0.shape + fun's output shape, max |f(x0)|)."""
    import numpy as np
    x0 = np.asarray(x0, dtype=np.float64)
    flat = x0.ravel()
    f0 = np.asarray(fun(x0), dtype=np.float64)
    full = np.full((flat.size,) + f0.shape, np.nan)
    rows, diffs = [], []
    with np.errstate(all="ignore"):
        for c in cols:
            h = FD_H * max(1.0, abs(flat[c]))
            vals = []
            for step in (h, h / 2):
                xp, xm = flat.copy(), flat.copy()
                xp[c] += step
                xm[c] -= step
                vals.append((np.asarray(fun(xp.reshape(x0.shape)), dtype=np.float64) -
                             np.asarray(fun(xm.reshape(x0.shape)), dtype=np.float64)) / (2 * step))
            rows.append((4 * vals[1] - vals[0]) / 3)
            diffs.append(np.abs(vals[1] - vals[0]))
        if rows:
            J, D = np.stack(rows), np.stack(diffs)
            fin = np.isfinite(J) & np.isfinite(D)
            scale = np.max(np.abs(J[fin])) if fin.any() else 0.0
            J[~fin | (D > 1e-4 * scale + 1e-8)] = np.nan
            full[cols] = J
    fin0 = np.isfinite(f0)
    return full.reshape(x0.shape + f0.shape), (float(np.max(np.abs(f0[fin0]))) if fin0.any() else 0.0)


def _summ(a, limit=6):
    import numpy as np
    if a is None:
        return None
    a = np.asarray(a)
    flat = a.ravel()[:limit]
    return f"shape {a.shape}: " + np.array2string(flat, precision=6, separator=", ") + (" ..." if a.size > limit else "")


def _msg(e):
    return f"{type(e).__name__}: " + str(e).splitlines()[0][:300]


def check_text(text, arrays, plan, kind="value", timeout=20.0, slow=SLOW_S, deriv="fd"):
    """Run all checks on one text (in this process); returns (findings, compared, status)."""
    c = Checker(text, arrays, plan, kind, slow, deriv)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        c.run()
    except Timeout:
        c.add("HANG", "run", f"over {timeout} s (soft timeout); timings so far {c.timings}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return c.findings, c.compared, c.status


# ========================================================================= minimizer
def _key(f):
    check = re.sub(r"\[[^\]]*\]", "[]", f["check"])
    return (f["category"], check)


def candidates(ast):
    """Smaller ASTs: each node replaced by a child, a term or factor dropped, an
    arrow removed, a subexpression replaced by 1."""
    import oracle_lang as L
    out = []

    def rebuild(node, path, new):
        if not path:
            return new
        k, rest = path[0], path[1:]
        if isinstance(node, (L.Add, L.Mul)):
            items = list(node.items)
            op, child = items[k]
            items[k] = (op, rebuild(child, rest, new))
            return type(node)(tuple(items))
        fields = _children_fields(node)
        name = fields[k]
        kw = dict(node.__dict__)
        kw[name] = rebuild(getattr(node, name), rest, new)
        return type(node)(**kw)

    def walk(node, path):
        subs = []
        if isinstance(node, (L.Add, L.Mul)):
            items = list(node.items)
            for k in range(len(items)):
                rest = items[:k] + items[k + 1:]
                if rest:
                    if rest[0][0] in ("/",):
                        continue
                    if isinstance(node, L.Add) and rest[0][0] == "-":
                        rest[0] = ("+", L.Neg(rest[0][1]))
                    subs.append(rest[0][1] if len(rest) == 1 else type(node)(tuple(rest)))
            for k, (_, child) in enumerate(items):
                subs.append(child)
        else:
            for name in _children_fields(node):
                subs.append(getattr(node, name))
        if not isinstance(node, L.Num):
            subs.append(L.Num(__import__("fractions").Fraction(1)))
        for s in subs:
            out.append(rebuild(ast, path, s))
        if isinstance(node, (L.Add, L.Mul)):
            for k, (_, child) in enumerate(node.items):
                walk(child, path + [k])
        else:
            for k, name in enumerate(_children_fields(node)):
                walk(getattr(node, name), path + [k])
    walk(ast, [])
    return out


def _children_fields(node):
    import oracle_lang as L
    if isinstance(node, (L.Call, L.MatFn, L.SumOver, L.Neg, L.Arrow, L.Word)):
        return ["arg"]
    if isinstance(node, L.Pow):
        return ["base", "exponent"]
    return []


def minimize(text, arrays, plan, target, timeout, budget_s=45.0, slow=SLOW_S, deriv="fd"):
    """Shrink `text` while a finding with the same key as `target` persists."""
    import oracle_lang as L
    key = _key(target)
    best = text
    t0 = time.time()
    tried = set()
    improved = True
    while improved and time.time() - t0 < budget_s:
        improved = False
        try:
            ast = L.parse(best)
        except L.OracleInvalid:
            break
        cands = sorted({L.to_text(c) for c in candidates(ast)}, key=len)
        for c in cands:
            if len(c) >= len(best) or c in tried:
                continue
            if time.time() - t0 > budget_s:
                break
            tried.add(c)
            vars_in = [v for v in plan.get("d1", []) if re.search(rf"\b{re.escape(v)}\b", c)]
            p2 = {"d1": vars_in or plan.get("d1", []),
                  "d2": [(a, b) for a, b in plan.get("d2", []) if a in vars_in]}
            fs, _, _ = check_text(c, arrays, p2, timeout=min(timeout, 10.0), slow=slow, deriv=deriv)
            if any(_key(f) == key for f in fs):
                best = c
                improved = True
                break
    used = {k: v for k, v in arrays.items() if re.search(rf"(?<![\w]){re.escape(k)}(?![\w])", best)}
    return best, used


def worker_main(conn, deriv="fd"):
    _worker_init(deriv)
    import numpy  # noqa: F401
    import einderiv  # noqa: F401
    while True:
        msg = conn.recv()
        if msg is None:
            return
        op, payload = msg
        try:
            if op == "check":
                text, arrays, plan, kind, timeout, slow = payload
                conn.send(("ok", check_text(text, arrays, plan, kind, timeout, slow, deriv)))
            elif op == "minimize":
                text, arrays, plan, target, timeout, slow = payload
                conn.send(("ok", minimize(text, arrays, plan, target, timeout, slow=slow, deriv=deriv)))
        except Exception:                             # noqa: BLE001
            conn.send(("error", traceback.format_exc()))


class Worker:
    def __init__(self, deriv="fd"):
        self.ctx = mp.get_context("spawn")
        self.deriv = deriv
        self.start()

    def start(self):
        self.parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=worker_main, args=(child, self.deriv), daemon=True)
        self.proc.start()

    def ask(self, op, payload, hard_timeout):
        self.parent.send((op, payload))
        if self.parent.poll(hard_timeout):
            try:
                return self.parent.recv()
            except EOFError:
                pass
        self.restart()
        return ("hang", None)

    def restart(self):
        try:
            self.proc.kill()
            self.proc.join(5)
        except Exception:                             # noqa: BLE001
            pass
        self.start()

    def close(self):
        try:
            self.parent.send(None)
            self.proc.join(5)
        except Exception:                             # noqa: BLE001
            pass
        if self.proc.is_alive():
            self.proc.kill()


# ========================================================================= generator
# Random texts of einderiv's index language, for benchmarks/oracle_fuzz.py.
# 
# ``generate(seed, k)`` -> ``Case(text, arrays, plan)``: a pure function of (seed, k).
# The generator writes TEXT (never IR) with: products with summed and free indices,
# traces X[a,a], deltas, Hadamard and reductions by '->' (on products and on sums, also
# through -(...), 2*(...), (...)/3), broadcast scalars, sum[...] with reused (and
# re-sized) index names, nested scopes of det/logdet/inv that reuse outer index names
# with other sizes, every element-wise function (arguments kept in the domain), powers
# and quotients.  Each index name has a size in its scope (2..5, distinct where
# possible); every variable has one shape; matrices under inv/det/logdet are
# 3*I + small noise, so they are well conditioned.
# 
# Whether a text is valid, and its value, is decided by the oracle, not here: the
# generator aims at valid texts but need not hit them.

LETTERS = ["i", "j", "k", "l", "m", "p", "a", "b", "c", "d", "q", "r"]
POOLS = {0: ["s", "t", "g", "h"], 1: ["x", "y", "z", "u", "v", "w"],
         2: ["A", "B", "C", "D", "E", "F"], 3: ["T", "U", "V", "W"]}
WELL = ["M", "N", "P", "Q", "R", "S"]
FUNCS = ["exp", "log", "sin", "cos", "tan", "tanh", "sigmoid", "softplus", "sqrt", "relu",
         "abs", "step", "sign"]
NUMBERS = ["2", "3", "1/2", "0.5", ".25", "2.", "1e-1", "3/2", "5"]


@dataclass
class Case:
    text: str
    arrays: dict
    plan: dict = field(default_factory=dict)
    kind: str = "value"          # "value" or "ambiguous" (expected an error)


class Gen:
    def __init__(self, rng: random.Random):
        self.r = rng
        self.shapes: dict[str, tuple] = {}
        self.well: set[str] = set()
        self.ambiguous = False
        self.bound: set = set()          # names bound by the enclosing sum[...]s

    # -------------------------------------------------------------------- helpers
    def chance(self, p):
        return self.r.random() < p

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    def var(self, shape, well=False):
        """A variable name of this shape (reused where one exists)."""
        rank = len(shape)
        pool = WELL if well else POOLS[min(rank, 3)]
        same = [n for n, s in self.shapes.items() if s == shape and (n in self.well) == well
                and n[0] in pool]
        if same and self.chance(0.7):
            return self.pick(same)
        names = [n for n in pool if n not in self.shapes]
        if not names:
            k = 2
            while True:
                names = [f"{n}{k}" for n in pool if f"{n}{k}" not in self.shapes]
                if names:
                    break
                k += 1
        name = self.pick(names)
        self.shapes[name] = tuple(shape)
        if well:
            self.well.add(name)
        return name

    def new_letter(self, scope, size=None, avoid=()):
        """A letter not yet used in this scope (None if there is none left)."""
        free = [l for l in LETTERS if l not in scope and l not in avoid]
        if not free:
            return None
        l = self.pick(free)
        scope[l] = size if size is not None else self.pick([2, 3, 4, 5])
        return l

    def perm(self, labels):
        labels = list(labels)
        self.r.shuffle(labels)
        return labels

    def tensor(self, scope, labels):
        labels = self.perm(labels)
        if not labels:
            if self.chance(0.3):
                return self.pick(NUMBERS)
            return self.var(())
        # a trace pair on a tensor: X[i,t,t]
        extra = []
        if len(labels) < 3 and self.chance(0.12):
            t = self.new_letter(scope, avoid=labels)
            extra = [t, t] if t else []
        labs = labels + extra
        self.r.shuffle(labs)
        name = self.var(tuple(scope[l] for l in labs))
        return f"{name}[{','.join(labs)}]"

    # ------------------------------------------------------------------ expressions
    def expr(self, scope, free, depth):
        """Text whose free index SET is `free` (each with its size in scope)."""
        free = list(free)
        if depth <= 0:
            return self.tensor(scope, free)
        w = self.r.random()
        if w < 0.04:
            return self.many_factors(scope, free, depth)
        if w < 0.06:
            return self.chain(scope, free)
        if w < 0.09 and len(free) >= 1:
            return self.softmax(scope, free, depth)
        if w < 0.40:
            return self.product(scope, free, depth)
        if w < 0.58:
            return self.sum(scope, free, depth)
        if w < 0.68:
            return self.arrow_product(scope, free, depth)
        if w < 0.78:
            return self.arrow_sum(scope, free, depth)
        if w < 0.86:
            return self.sumover(scope, free, depth)
        return self.factor(scope, free, depth)

    def sum(self, scope, free, depth):
        n = self.pick([2, 2, 3])
        w = self.r.random()
        if len(free) >= 2 and w < 0.2:          # a table x[i] - y[j]: the terms split the labels
            cut = self.r.randrange(1, len(free))
            fr = self.perm(free)
            terms = [self.expr(scope, fr[:cut], depth - 1), self.expr(scope, fr[cut:], depth - 1)]
        elif free and w < 0.45:                 # bias adds: terms with subsets of the labels
            terms = [self.expr(scope, free, depth - 1)]
            for _ in range(n - 1):
                sub = [l for l in free if self.chance(0.5)]
                terms.append(self.expr(scope, sub, depth - 1))
            self.r.shuffle(terms)
        else:
            terms = [self.expr(scope, free, depth - 1) for _ in range(n)]
        if free and self.chance(0.4):           # a broadcast scalar term
            terms.insert(self.r.randrange(len(terms) + 1), self.expr(scope, [], depth - 1))
        out = self.wrap_term(terms[0], first=True)
        for t in terms[1:]:
            out += self.pick([" + ", " - "]) + self.wrap_term(t)
        return out

    def wrap_term(self, t, first=False):
        if "->" in t or (t.startswith("-") and not first):
            return f"({t})"
        return t


    def relink(self, slots: list, scope: dict, free) -> tuple | bool | None:
        """Move one occurrence of a label l in ``slots`` to a new letter m of l's size
        (for a delta[l,m] or inv(...)[l,m] that links them): ``(l, m)``; None where no
        label is placed; False where no letter is left."""
        cands = [(k, l) for k, s in enumerate(slots) for l in s]
        if not cands:
            return None
        k, l = self.pick(cands)
        m = self.new_letter(scope, size=scope[l], avoid=free)
        if m is None:
            return False
        slots[k][slots[k].index(l)] = m
        return l, m
    def product(self, scope, free, depth, extra_sum=None):
        big = self.chance(0.06)
        nf = self.pick([5, 6, 7, 8]) if big else self.pick([1, 2, 2, 3, 3, 4])
        summed = []
        if nf >= 2:
            for _ in range(self.pick([2, 3, 4]) if big else self.pick([0, 1, 1, 2])):
                reuse = [l for l in scope if l not in free and l not in summed and l not in self.bound]
                if reuse and self.chance(0.25):
                    # a name used elsewhere, summed here with its own size (scoped)
                    scope = dict(scope)
                    l = self.pick(reuse)
                    scope[l] = self.pick([2, 3, 4, 5])
                else:
                    l = self.new_letter(scope, avoid=free)
                if l:
                    summed.append(l)
        slots = [[] for _ in range(nf)]
        for l in free:
            if l in self.bound and nf >= 2 and self.chance(0.6):    # bound: free however often
                for k in self.r.sample(range(nf), self.pick([2, 2, 3]) if nf >= 3 else 2):
                    slots[k].append(l)
                continue
            slots[self.r.randrange(nf)].append(l)
        for l in summed:
            ks = self.r.sample(range(nf), 2) if nf >= 2 else [0, 0]
            if self.chance(0.15) and nf >= 3:
                ks = self.r.sample(range(nf), 3)
            for k in ks:
                slots[k].append(l)
        factors = []
        # a delta: move one occurrence of a label l to a new letter m, add delta[l,m]
        if self.chance(0.18):
            link = self.relink(slots, scope, free)
            if link is False:
                return self.tensor(scope, free)
            if link:
                l, m = link
                factors.append(f"delta[{l},{m}]" if self.chance(0.5) else f"delta[{m},{l}]")
        # an inverse: the same trick, inv(ARG)[l,m]
        if self.chance(0.10):
            link = self.relink(slots, scope, free)
            if link is False:
                return self.tensor(scope, free)
            if link:
                l, m = link
                arg = self.matrix_arg(scope[l], depth - 1)
                factors.append(f"inv({arg})[{l},{m}]" if self.chance(0.5) else f"inv({arg})[{m},{l}]")
        for s in slots:
            factors.append(self.factor(scope, s, (0 if self.chance(0.7) else depth - 1) if big else depth - 1))
        self.r.shuffle(factors)
        if self.chance(0.2):                    # det/logdet scalar factor
            factors.insert(self.r.randrange(len(factors) + 1), self.detlike(depth - 1))
        text = ""
        for k, f in enumerate(factors):
            if k == 0:
                text = f
            else:
                juxt = text[-1] in ")]" and f[0].isalpha() and self.chance(0.2)
                text += " " if juxt else "*"
                text += f
        if self.chance(0.25):
            text = self.pick(NUMBERS) + "*" + text
        if self.chance(0.12):
            text = text + "/" + self.pick(["2", "3", "4"])
        if self.chance(0.10):                  # a quotient by a positive factor
            if free or summed:
                labs = self.r.sample(free + summed, 1)
                # labels exposed by a divisor join the product: only reuse summed ones
                labs = [l for l in labs if l in summed]
            else:
                labs = []
            text += "/" + self.positive(scope, labs, depth - 1)
            # labs in summed: now counted 3 times, still summed
        if self.chance(0.1):
            text = "-" + text
        return text

    def factor(self, scope, labels, depth):
        """A product factor exposing the label multiset `labels` (a list)."""
        labels = list(labels)
        if depth <= 0 or self.chance(0.35):
            return self.tensor(scope, labels)
        w = self.r.random()
        if w < 0.30:
            return self.func(scope, labels, depth)
        if w < 0.45:
            return f"({self.sum(scope, labels, depth)})"
        if w < 0.55:
            return self.sumover(scope, labels, depth)
        if w < 0.70:
            return self.power(scope, labels, depth)
        if w < 0.80:
            return f"({self.arrow_product(scope, labels, depth)})"
        if w < 0.88 and not labels:
            return self.detlike(depth)
        if w < 0.94:
            return f"({self.product(scope, labels, depth)})"
        return self.tensor(scope, labels)

    def func(self, scope, labels, depth):
        f = self.pick(FUNCS)
        e = self.expr(scope, labels, depth - 1)
        if f == "log":
            return self.pick([f"log(1 + ({e})**2)", f"log(2 + sin({e}))", f"log(softplus({e}) + 1/2)",
                              f"log(exp({e}))"])
        if f == "sqrt":
            return self.pick([f"sqrt(1 + ({e})**2)", f"sqrt(sigmoid({e}))", f"sqrt(exp(tanh({e})))"])
        if f == "tan":
            return self.pick([f"tan(tanh({e}))", f"tan(sin({e})/2)"])
        if f == "exp":
            return self.pick([f"exp({e})", f"exp(tanh({e}))", f"exp(({e})/4)", f"exp(sin({e}))"])
        return f"{f}({e})"

    def positive(self, scope, labels, depth):
        e = self.expr(scope, labels, max(depth - 1, 0))
        return self.pick([f"(1 + ({e})**2)", f"exp(tanh({e}))", f"(2 + cos({e}))",
                          f"sigmoid({e})", f"(softplus({e}) + 1)"])

    def power(self, scope, labels, depth):
        e = self.expr(scope, labels, depth - 1)
        k = self.r.random()
        if k < 0.35:
            return f"({e})**{self.pick(['2', '3', '2'])}"
        if k < 0.5:
            return f"(1 + ({e})**2)**{self.pick(['(1/2)', '-1', '-2', '0.5', '(-1/2)'])}"
        if k < 0.65:
            s = self.var(())
            return f"(2 + sin({e}))**{s}"
        if k < 0.8:
            ex = self.expr(scope, [], max(depth - 2, 0))
            return f"(2 + tanh({e}))**tanh({ex})"
        return f"(1 + ({e})**2)**2**-1**-1" if self.chance(0.2) else f"({e})**-{self.pick(['1', '2'])}" \
            .replace(f"({e})**-", f"(3 + tanh({e}))**-")

    def sumover(self, scope, labels, depth):
        """sum[L](E): L new or REUSED names, possibly with another size inside."""
        inner = dict(scope)
        n = self.pick([1, 1, 2])
        names = []
        for _ in range(n):
            cands = [l for l in LETTERS if l not in labels and l not in names and l not in self.bound]
            if self.bound and self.chance(0.03):
                cands = sorted(self.bound - set(labels) - set(names)) or cands   # an error on purpose
            l = self.pick(cands)
            inner[l] = self.pick([2, 3, 4, 5]) if (l not in scope or self.chance(0.4)) else scope[l]
            names.append(l)
        outer = self.bound
        self.bound = outer | set(names)
        try:
            if self.chance(0.35):               # the index reused 3+ times in one product
                e = self.bound_product(inner, list(labels), names, depth - 1)
            else:
                e = self.expr(inner, list(labels) + names, depth - 1)
        finally:
            self.bound = outer
        return f"sum[{','.join(names)}]({e})"

    def bound_product(self, scope, free, names, depth):
        """A product in which the bound names occur in 3+ factors (free there, R5),
        with a function of them and a '->'-free inner part."""
        nf = self.pick([3, 4, 5, 6])
        slots = [[] for _ in range(nf)]
        for a in names:
            for k in self.r.sample(range(nf), min(nf, self.pick([3, 3, 4, 5]))):
                slots[k].append(a)
        for l in free:
            slots[self.r.randrange(nf)].append(l)
        c = self.new_letter(scope, avoid=free)
        if c:                                   # one ordinary summed index too
            for k in self.r.sample(range(nf), 2):
                slots[k].append(c)
        fs = []
        for sl in slots:
            if len(set(sl)) < len(sl) or depth <= 0 or self.chance(0.5):
                fs.append(self.tensor(scope, sl))
            else:
                fs.append(self.factor(scope, sl, depth - 1))
        return "*".join(fs)

    def many_factors(self, scope, free, depth):
        """8-20 factors sharing one index (summed, Hadamard by '->', or bound), plus
        the free labels: planning of long products."""
        n = self.r.randint(8, 20)
        l = self.new_letter(scope, size=self.pick([2, 3, 4, 5]), avoid=free)
        if l is None:
            return self.tensor(scope, free)
        slots = [[l] for _ in range(n)]
        for f in free:
            slots[self.r.randrange(n)].append(f)
        extra = self.new_letter(scope, avoid=free)
        if extra and self.chance(0.5):
            for k in self.r.sample(range(n), 2):
                slots[k].append(extra)
        fs = []
        for sl in slots:
            if self.chance(0.15) and depth > 1:
                fs.append(self.func(scope, sl, 1))
            else:
                fs.append(self.tensor(scope, sl))
        text = "*".join(fs)
        w = self.r.random()
        if w < 0.3:                              # Hadamard over l, then summed by sum[l]
            return f"sum[{l}]({text} -> [{','.join(self.perm(free + [l]))}])"
        if w < 0.5 and l not in self.bound:
            return f"sum[{l}]({text})"           # bound: free in the product, summed once
        return text

    def chain(self, scope, free):
        """A long matrix chain A[i,a]*B[a,b]*...: a few hundred characters, sizes <= 5."""
        n = self.r.randint(8, 18)
        labs = [self.new_letter(scope, avoid=free) for _ in range(n - 1)]
        labs = [l for l in labs if l]
        if len(labs) < 2:
            return self.tensor(scope, free)
        ends = list(free)
        fs = []
        prev = ends.pop() if ends else None
        for k, l in enumerate(labs):
            fs.append(self.tensor(scope, [x for x in (prev, l) if x]))
            prev = l
        fs.append(self.tensor(scope, [prev] + ends))
        self.r.shuffle(fs)
        return "*".join(fs)

    def softmax(self, scope, free, depth):
        """Z[..,k] - log(sum[j](exp(Z[..,j]))): a normaliser broadcast along k."""
        k = self.pick(free)
        rest = [l for l in free if l != k]
        j = self.new_letter(scope, size=scope[k], avoid=free)
        if j is None or j in self.bound:
            return self.tensor(scope, free)
        labs = self.perm(rest + [k])
        name = self.var(tuple(scope[l] for l in labs))
        z1 = f"{name}[{','.join(labs)}]"
        z2 = f"{name}[{','.join(j if l == k else l for l in labs)}]"
        lse = f"log(sum[{j}](exp({z2})))"
        if self.chance(0.4) and rest:
            y = self.tensor(scope, free)
            return f"-sum[{','.join(self.perm(free))}]({y}*({z1} - {lse}))" if not (set(free) & self.bound) \
                else f"{z1} - {lse}"
        return f"{z1} - {lse}" if self.chance(0.6) else f"-{lse} + {z1}"

    def detlike(self, depth):
        n = self.pick([2, 3, 4])
        f = self.pick(["det", "logdet", "logdet"])
        return f"{f}({self.matrix_arg(n, depth)})"

    def matrix_arg(self, n, depth):
        """A closed scope: a well-conditioned n x n matrix; its index names are chosen
        afresh (they may be names used outside, with other sizes)."""
        inner: dict = {}
        if self.bound and self.chance(0.5):      # reuse a name bound outside: not bound here
            p = self.pick(sorted(self.bound))
            inner[p] = n
        else:
            p = self.new_letter(inner, size=n)
        q = self.new_letter(inner, size=n)  # a fresh scope: never None
        outer, self.bound = self.bound, set()
        try:
            return self._matrix_arg(inner, p, q, n, depth)
        finally:
            self.bound = outer

    def _matrix_arg(self, inner, p, q, n, depth):
        w = self.r.random()
        M = self.var((n, n), well=True)
        if w < 0.2:
            return M
        if w < 0.35:
            return f"{M}[{p},{q}]" if self.chance(0.5) else f"{M}[{q},{p}]"
        if w < 0.6 and depth > 0:
            e = self.expr(inner, [p, q], depth - 1)
            body = f"{M}[{p},{q}] + 1/10*tanh({e})"
            return body if self.chance(0.6) else f"({body}) -> [{q},{p}]"
        if w < 0.75:
            k = self.new_letter(inner, size=n) or p
            N = self.var((n, n), well=True)
            return f"{M}[{p},{k}]*{N}[{k},{q}]"
        if w < 0.85:
            k = self.new_letter(inner, size=n) or q
            return f"delta[{p},{k}]*{M}[{k},{q}] - 1/10*sigmoid({self.tensor(inner, [p, q])})"
        if depth > 0:
            e = self.expr(inner, [p, q], depth - 1)
            return f"2*{M}[{q},{p}] - 1/10*sin({e})"
        return M

    # ---------------------------------------------------------------------- arrows
    def arrow_product(self, scope, free, depth):
        """P -> [perm(free)]: Hadamard (a listed label in 2 factors) and dropped
        labels (once or twice)."""
        nf = self.pick([1, 2, 2, 3])
        slots = [[] for _ in range(nf)]
        for l in free:
            if self.chance(0.15):
                slots[self.r.randrange(nf)] += [l, l]      # a diagonal: X[l,l] -> [l]
                continue
            for k in (self.r.sample(range(nf), 2) if nf >= 2 and self.chance(0.5)
                      else [self.r.randrange(nf)]):
                slots[k].append(l)
        for _ in range(self.pick([0, 1, 1, 2])):
            d = self.new_letter(scope, avoid=free)
            if d is None:
                break
            for k in (self.r.sample(range(nf), 2) if nf >= 2 and self.chance(0.5)
                      else [self.r.randrange(nf)]):
                slots[k].append(d)
        fs = [self.tensor(scope, s) if len(set(s)) < len(s) else self.factor(scope, s, depth - 1)
              for s in slots]
        text = "*".join(fs)
        return f"{text} -> [{','.join(self.perm(free))}]"

    def arrow_sum(self, scope, free, depth):
        """(T1 + T2 ...) -> [perm(free)], each term carrying dropped labels D too;
        wrapped in -(...), 2*(...), (...)/3 sometimes; rarely AMBIGUOUS on purpose."""
        D = [self.new_letter(scope, avoid=free) for _ in range(self.pick([0, 1, 1, 2]))]
        D = [d for d in D if d]
        n = self.pick([2, 2, 3])
        terms = []
        for _ in range(n):
            if self.chance(0.3):
                terms.append(self.arrow_product_raw(scope, free, D, depth - 1))
            elif self.chance(0.3):              # a term carrying only some listed labels
                terms.append(self.expr(scope, [l for l in free if self.chance(0.5)] + D, depth - 1))
            else:
                terms.append(self.expr(scope, free + D, depth - 1))
        if D and self.chance(0.15):
            self.ambiguous = True               # a term without a dropped label, or with it twice
            if self.chance(0.5):
                terms.append(self.expr(scope, free if self.chance(0.5) else [], depth - 1))
            else:
                d = self.pick(D)
                terms.append(f"{self.tensor(scope, [d])}*{self.tensor(scope, [d] + free)}")
        body = terms[0]
        if "->" in body:
            body = f"({body})"
        for t in terms[1:]:
            body += self.pick([" + ", " - "]) + self.wrap_term(t)
        w = self.r.random()
        if w < 0.15:
            body = f"-({body})"
        elif w < 0.3:
            body = f"{self.pick(['2', '1', '1/2'])}*({body})"
        elif w < 0.4:
            body = f"({body})/3"
        elif w < 0.55:
            body = f"({body})"
        return f"{body} -> [{','.join(self.perm(free))}]"

    def arrow_product_raw(self, scope, free, D, depth):
        """A product term whose listed labels repeat (Hadamard under the outer ->)."""
        slots = [[], []]
        for l in free:
            for k in ([0, 1] if self.chance(0.5) else [self.r.randrange(2)]):
                slots[k].append(l)
        for d in D:
            slots[self.r.randrange(2)].append(d)
        return "*".join(self.factor(scope, s, depth - 1) for s in slots)


def make_arrays(shapes, well, rng: np.random.Generator):
    arrays = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name in well:
            n = shape[0]
            arrays[name] = 3.0 * np.eye(n) + 0.1 * rng.standard_normal((n, n))
        else:
            a = rng.uniform(0.2, 1.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
            arrays[name] = np.asarray(a, dtype=np.float64)
    return arrays


def mutate_syntax(r, text):
    """One edit that the language refuses (R0) or, rarely, a valid juxtaposition."""
    edits = []
    for m in re.finditer(r"\]\*(?=[\w(])", text):      # X[i]*y -> X[i] 2*y | X[i] (y)
        edits.append((m.start() + 1, m.end(), r.choice([" 2*", " (1)*", " "])))
    for m in re.finditer(r"(?<![\w.])(\d+)\*(?=[A-Za-z(])", text):  # 2*x -> 2 3*x | 2e*x | 2..5*x
        edits.append((m.start(), m.end(), r.choice([m.group(1) + " 3*", m.group(1) + "e*",
                                                    m.group(1) + "..5*", m.group(1) + "e"])))
    for m in re.finditer(r"(?<![\w\]])([a-zA-Z]\w*)\*\(", text):   # s*(..) -> s (..)
        if m.group(1) not in ("sum", "delta", "inv", "det", "logdet") and m.group(1) not in FUNCS:
            edits.append((m.end(1), m.end(), " ("))
    if not edits:
        return text
    a, b, rep = r.choice(edits)
    return text[:a] + rep + text[b:]


def generate(seed: int, k: int, max_depth=None) -> Case:
    r = random.Random(seed * 1_000_003 + k)
    g = Gen(r)
    scope: dict = {}
    sizes = [2, 3, 4, 5]
    r.shuffle(sizes)
    for l, s in zip(r.sample(LETTERS, 4), sizes):
        scope[l] = s
    rank = r.choice([0, 0, 1, 1, 1, 2, 2, 3])
    free = r.sample(sorted(scope), rank)
    depth = max_depth if max_depth is not None else r.choice([1, 2, 2, 3, 3, 4])
    text = g.expr(scope, free, depth)
    if r.random() < 0.03:                      # issue 14 juxtaposition/number errors
        text = mutate_syntax(r, text)
    arrays = make_arrays(g.shapes, g.well, np.random.default_rng(seed * 7919 + k))
    names = sorted(arrays)
    d1 = r.sample(names, min(len(names), r.choice([1, 1, 2]))) if names else []
    d2 = []
    if d1 and r.random() < 0.3:
        d2 = [(d1[0], r.choice(names))]
    named = {}
    for v in set(d1) | {b for _, b in d2}:
        if r.random() < 0.4:   # diff(text, "x[p,q]"): names that may be bound inside the text
            cands = [l for l in LETTERS if l not in free]
            named[v] = r.sample(cands, len(arrays[v].shape))
    plan = {"d1": d1, "d2": d2, "named": named}
    return Case(text, arrays, plan, "ambiguous" if g.ambiguous else "value")


# ============================================================================== CLI
def _sig(f):
    cat, check = _key(f)
    msg = f["message"].splitlines()[0] if f["message"] else ""
    if cat in ("ACCEPTED-INVALID", "ACCEPTED-AMBIGUOUS"):      # one kind per oracle reason
        msg = re.sub(r"\b[a-zA-Z]\b|\d+", "_", msg.split(";")[0])
    elif cat in ("PRINT", "FREE-ORDER"):
        msg = re.sub(r"\([^)]*\)", "(_)", msg.split(";")[0])
    elif cat in ("WRONG", "SLOW", "HANG"):
        msg = re.sub(r"[\d.e+-]+", "#", msg.split(";")[0]) if cat == "WRONG" and "shape" in msg else ""
    else:
        msg = re.sub(r"'[^']*'", "'_'", msg)
        msg = re.sub(r"\([^)]*\)", "(_)", msg)
        msg = re.sub(r"\d+", "#", msg)[:120]
    return (cat, check, msg)


def _shapes(arrays):
    import numpy as np
    return ", ".join(f"{k}: {tuple(np.shape(v))}" for k, v in sorted(arrays.items()))


def report_finding(f, text, arrays, minimized=None, used=None):
    lines = [f"[{f['category']}] {f['check']}: {f['message'].splitlines()[0]}"]
    if minimized is not None:
        lines.append(f"    minimized: {minimized}")
        lines.append(f"    shapes:    {_shapes(used)}")
    lines.append(f"    text:      {text}")
    if minimized is None:
        lines.append(f"    shapes:    {_shapes(arrays)}")
    if f.get("expected") is not None:
        lines.append(f"    expected:  {f['expected']}")
    if f.get("got") is not None:
        lines.append(f"    got:       {f['got']}")
    if f["category"] == "CRASH":
        lines += ["    " + l for l in f["message"].splitlines()[1:]]
    return "\n".join(lines)


def selftest():
    """The oracle against numpy written by hand (so the oracle can be trusted)."""
    import oracle_lang as L
    rng = np.random.default_rng(0)
    X, A, B = rng.normal(size=(3, 4)), rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    x, y, w, b = rng.normal(size=3), rng.normal(size=3), rng.normal(size=4), rng.normal(size=3)
    M = 3 * np.eye(3) + 0.1 * rng.normal(size=(3, 3))
    T = rng.normal(size=(3, 4, 2))
    s = np.array(0.7)
    env = dict(X=X, A=A, B=B, x=x, y=y, w=w, b=b, c=np.array(1.7), M=M, T=T, s=s)
    sig = lambda u: 1 / (1 + np.exp(-u))  # noqa: E731
    cases = [
        ("sum[a](X[a,b])", X.sum(0), ("b",)), ("X[a,b]*w[b]", X @ w, ("a",)),
        ("A[i,k]*B[k,j]", A @ B, ("i", "j")), ("B[k,j]*A[i,k]", A @ B, ("i", "j")),
        ("A[j,i]", A.T, ("i", "j")), ("A[a,a]", np.trace(A), ()),
        ("A[a,a] -> [a]", np.diag(A), ("a",)), ("x[i]/y[i]", (x / y).sum(), ()),
        ("x[i]/y[i] -> [i]", x / y, ("i",)), ("x[i]*x[j] -> [j,i]", np.outer(x, x).T, ("j", "i")),
        ("exp(x[i])*y[i]", (np.exp(x) * y).sum(), ()),
        ("x[i]*y[i] + b[i] -> [i]", x * y + b, ("i",)),
        ("X[a,b]*w[b] - x[a] + c", X @ w - x + 1.7, ("a",)),
        ("inv(M)[i,j]*x[j]", np.linalg.inv(M) @ x, ("i",)), ("inv(M)[j,i]", np.linalg.inv(M).T, ("i", "j")),
        ("det(M)", np.linalg.det(M), ()), ("logdet(A[i,k]*A[j,k] -> [i,j])", np.linalg.slogdet(A @ A.T)[1], ()),
        ("det(M[j,i]*2)", np.linalg.det(2 * M.T), ()), ("det(M[g,a]) + x[a]", np.linalg.det(M) + x, ("a",)),
        ("x[i]*sum[i](w[i])", x * w.sum(), ("i",)), ("delta[i,j]*x[j]", x, ("i",)),
        ("delta[i,j]*x[j]*y[i] -> [i,j]", np.diag(x * y), ("i", "j")),
        ("T[k,i,j]", T.transpose(1, 2, 0), ("i", "j", "k")),
        ("(A[i,j] + B[j,i]) -> [j,i]", (A + B.T).T, ("j", "i")), ("A[j,i] + B[i,j]", A.T + B, ("i", "j")),
        ("x[i]*(y[i]*b[i])", (x * y * b).sum(), ()), ("(1 + x[i]**2)**(1/2)", np.sqrt(1 + x ** 2), ("i",)),
        ("2**3**2", 512.0, ()), ("A[i,j] + B[i,j] -> [i]", (A + B).sum(1), ("i",)),
        ("-(x[i]*y[i] + b[i]) -> [i]", -(x * y + b), ("i",)),
        ("2*(x[i]*y[i] + b[i]) -> [i]", 2 * (x * y + b), ("i",)),
        ("sigmoid(s)*softplus(s) + relu(s) + abs(-s) + step(s) + sign(s)",
         sig(s) * np.log1p(np.exp(s)) + s + s + 1 + 1, ()),
        ("X[a,b]*sum[a](X[a,c]) -> [b,c]", (X.sum(0)[None, :] * X).T @ np.ones(3) if False else
         np.einsum("ab,c->bc", X, X.sum(0)), ("b", "c")),
        ("tan(x[i])/cos(y[i]) + log(1 + b[i]**2)*sqrt(2 + sin(x[i]))",   # both terms summed
         (np.tan(x) / np.cos(y)).sum() + (np.log(1 + b ** 2) * np.sqrt(2 + np.sin(x))).sum(), ()),
        ("tan(x[i])/cos(y[i]) -> [i]", np.tan(x) / np.cos(y), ("i",)),
        # ---- issue 14: sum[a] binds a through its body (any depth), summed once
        ("sum[i](x[i]*y[i])", x @ y, ()),
        ("sum[i](x[i]*y[i]*b[i]*x[i])", np.sum(x * y * b * x), ()),
        ("sum[a](X[a,b]*X[a,c]*w[c])", (X * (X @ w)[:, None]).sum(0), ("b",)),
        ("sum[a](log(1 + exp(-x[a]*A[a,b]*b[b])))", np.sum(np.log1p(np.exp(-x * (A @ b)))), ()),
        ("sum[a](softplus(X[a,b]*w[b]) - y[a]*X[a,c]*w[c])",
         np.sum(np.logaddexp(0, X @ w) - y * (X @ w)), ()),
        ("sum[a](A[a,a]*x[a])", np.sum(np.diag(A) * x), ()),
        ("sum[a](x[a]*sum[b](A[a,b]*B[b,a]*y[b]))",
         np.einsum("a,ab,ba,b->", x, A, B, y), ()),
        ("sum[a](x[a]*exp(y[a]*b[a]))", np.sum(x * np.exp(y * b)), ()),
        ("sum[a](x[a]*(y[a] + b[a])**2)", np.sum(x * (y + b) ** 2), ()),
        ("sum[a](x[a]*det(M[a,b]*2))", x.sum() * np.linalg.det(2 * M), ()),  # closed scope
        ("sum[a](x[a]*exp(y[a]*b[c] -> [c])*b[a])", np.sum(x * b) * np.exp(y.sum() * b), ("c",)),
        ("-sum[a,k](A[a,k]*(B[a,k] - log(sum[j](exp(B[a,j])))))",
         -np.sum(A * (B - np.log(np.exp(B).sum(1))[:, None])), ()),
        # ---- sums broadcast by name
        ("x[i] - w[j]", x[:, None] - w[None, :], ("i", "j")),
        ("w[j] - x[i]", w[None, :] - x[:, None], ("i", "j")),       # sets differ: sorted
        ("A[i,k]*X[k,n] + b[i]", A @ X + b[:, None], ("i", "n")),
        ("(A[i,j] -> [j,i]) + x[i]", (A + x[:, None]).T, ("j", "i")),  # first term has all
        ("x[i] + (A[i,j] -> [j,i])", A + x[:, None], ("i", "j")),  # first lacks j: sorted
        ("(A[i,j] -> [j,i]) + B[i,j] + s", A.T + B.T + 0.7, ("j", "i")),  # same sets: first term's
        ("s + (A[i,j] -> [j,i])", A.T + 0.7, ("j", "i")),
        ("B[a,j] - log(sum[k](exp(B[a,k])))", B - np.log(np.exp(B).sum(1))[:, None], ("a", "j")),
        ("x[i]*sum[i](w[i])", x * w.sum(), ("i",)),                  # scoped sizes 3 and 4
        ("x[i]*y[i] + w[i]*w[i]", x @ y + w @ w, ()),               # summed i: 3 and 4
        # ---- '->' on sums: per term, through signs and numbers
        ("-2*(x[i]*y[i] + b[i])/3 -> [i]", -2 * (x * y + b) / 3, ("i",)),
        ("x[i] - w[j] + s -> [j,i]", (x[:, None] - w[None, :] + 0.7).T, ("j", "i")),
        ("X[a,h]*w[h] + x[a]*y[k]*b[k] -> [a]", X @ w + x * (y @ b), ("a",)),
        ("x[i]*w[j] + b[i]*w[j] -> [j]", w * x.sum() + w * b.sum(), ("j",)),
        ("x[i]*y[i] + b[i] + s -> [i]", x * y + b + 0.7, ("i",)),
        # ---- f(EXPR) keeps EXPR's order; a lone reference is sorted
        ("exp(A[i,j] -> [j,i])", np.exp(A.T), ("j", "i")), ("exp(A[j,i])", np.exp(A.T), ("i", "j")),
        ("(A[i,j] -> [j,i])**2", A.T ** 2, ("j", "i")),
        ("2s", 1.4, ()), ("2 s", 1.4, ()), ("(x[i])(y[i])", x @ y, ()), ("2(s + 1)", 3.4, ()),
        ("2e1s", 14.0, ()), ("1 c", 1.7, ()), ("x[i] y[i] -> [i]", x * y, ("i",)),
        # ---- issue 15 (in progress): softmax / log_softmax / logsumexp words
        ("logsumexp[k](A[a,k])", np.log(np.exp(A).sum(1)), ("a",)),
        ("softmax[k](A[k,a]*x[k])", (np.exp(A * x[:, None]) / np.exp(A * x[:, None]).sum(0)).T, ("a", "k")),
        ("sum[k](log_softmax[k](x[k])*y[k])", np.sum((x - np.log(np.exp(x).sum())) * y), ()),
    ]
    bad = 0
    for text, exp, free in cases:
        v = L.evaluate(text, env)
        good = v.labels == free and np.allclose(v.arr, exp, rtol=1e-12, atol=1e-12)
        bad += not good
        print(("ok  " if good else "BAD ") + text, v.labels)
    invalid = ["x[i] + s -> []", "x[i]*y[i] + b[i] -> []", "x[i] + w[i]",
               "x[i]**x[i]", "x[i]*w[i] -> [i]", "x[i] -> [i,i]", "det(x[i])",
               # issue 14
               "sum[a](sum[a](x[a]))", "sum[i](x[j])", "sum[a](x[a]*y[a] -> [])",
               "sum[a](x[a]*b[c] -> [c])", "sum[a](x[a] + x[a]*y[a] -> [])",
               "X[a,h] + s -> [a]", "x[h]*y[h] + b[h] -> []", "-2*(X[a,h] + s)/3 -> [a]",
               "x[i]*w[j] + s -> [j]", "x[i] + y[i] -> [j]",
               "2 3", "x 2", "x[i] (y[i])", "s (x[i])", "1..2", "1e", "2ex", "s*2e+", ".5.5",
               "sum[a](x[a]*det(A[a,b]*y[a]))",    # inside det a is not bound: summed, 1 free
               ]
    for text in invalid:
        try:
            L.evaluate(text, env)
            print("BAD (accepted) " + text)
            bad += 1
        except L.OracleInvalid as e:
            print(f"ok  invalid: {text}  ({e})")
    print("selftest:", "all good" if not bad else f"{bad} bad")
    return 1 if bad else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--start", type=int, default=0, help="first input number")
    ap.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--timeout", type=float, default=20.0, help="per input (soft); hard kill at 3x")
    ap.add_argument("--slow", type=float, default=SLOW_S, help="flag an evaluate slower than this")
    ap.add_argument("--minimize", action="store_true", help="shrink each distinct finding")
    ap.add_argument("--per-key", type=int, default=2, help="examples kept (and minimized) per finding kind")
    ap.add_argument("--one", type=int, default=None, help="run input number ONE alone, verbosely")
    ap.add_argument("--text", default=None, help="check this text (with --shape NAME=d1,d2)")
    ap.add_argument("--shape", action="append", default=[])
    ap.add_argument("--depth", type=int, default=None, help="generator depth (default random 1-4)")
    ap.add_argument("--out", default=None, help="append the report to this file")
    ap.add_argument("--selftest", action="store_true", help="check the oracle against numpy by hand")
    ap.add_argument("--export", choices=["numpy", "torch"], default="numpy",
                    help="the backend of the to_python code checked (torch: tensors in)")
    ap.add_argument("--deriv", choices=["fd", "jax"], default="fd",
                    help="derivative reference: central differences of the oracle on numpy (fast, "
                         "default) or jax.jacfwd of the oracle (exact, slower)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    os.environ["ORACLE_FUZZ_EXPORT"] = args.export  # read where the workers check
    if args.selftest:
        return selftest()

    import numpy as np
    cases = []
    if args.text is not None:
        rng = np.random.default_rng(args.seed)
        arrays = {}
        for s in args.shape:
            name, _, dims = s.partition("=")
            shape = tuple(int(d) for d in dims.split(",") if d)
            arrays[name] = (3 * np.eye(shape[0]) + 0.1 * rng.standard_normal(shape)
                            if len(shape) == 2 and shape[0] == shape[1] and name[0] in WELL
                            else rng.uniform(0.2, 1, size=shape) * rng.choice([-1.0, 1.0], size=shape))
        names = sorted(arrays)
        cases = [(-1, Case(args.text, arrays, {"d1": names, "d2": [(a, b) for a in names for b in names]}))]
    elif args.one is not None:
        cases = [(args.one, generate(args.seed, args.one, args.depth))]

    counts = dict(expressions=0, compared=0, wrong=0, mutations=0, refusals=0, crashes=0,
                  slow=0, hangs=0, free_order=0, accepted_invalid=0, print=0, oracle_invalid=0,
                  oracle_unknown=0)
    kinds: dict = {}
    t0 = time.time()
    worker = Worker(args.deriv)
    hard = args.timeout * 3 + 30

    def handle(k, case, findings):
        for f in findings:
            c = f["category"]
            key = {"WRONG": "wrong", "MUTATION": "mutations", "REFUSAL": "refusals", "CRASH": "crashes",
                   "SLOW": "slow", "HANG": "hangs", "FREE-ORDER": "free_order",
                   "PRINT": "print"}.get(c, "accepted_invalid")
            counts[key] += 1
            sig = _sig(f)
            lst = kinds.setdefault(sig, [])
            lst.append((len(case.text), k, case, f))
            lst.sort(key=lambda t: t[0])
            del lst[args.per_key:]
            if args.verbose:
                print(report_finding(f, case.text, case.arrays), flush=True)

    try:
        it = cases if cases else ((k, None) for k in range(args.start, args.start + args.n))
        for k, case in it:
            if args.time_limit and time.time() - t0 > args.time_limit:
                break
            if case is None:
                case = generate(args.seed, k, args.depth)
            counts["expressions"] += 1
            if args.verbose:
                print(f"--- input {k}: {case.text}", flush=True)
            res = worker.ask("check", (case.text, case.arrays, case.plan, case.kind, args.timeout,
                                       args.slow), hard)
            if res[0] == "hang":
                findings = [{"category": "HANG", "check": "run", "message": f"killed after {hard:.0f} s",
                             "expected": None, "got": None}]
                compared = 0
            elif res[0] == "error":
                findings = [{"category": "CRASH", "check": "harness", "message": res[1],
                             "expected": None, "got": None}]
                compared = 0
            else:
                findings, compared, status = res[1]
                if status in ("invalid", "ambiguous"):
                    counts["oracle_invalid"] += 1
                elif status == "unknown":
                    counts["oracle_unknown"] += 1
            counts["compared"] += compared
            handle(k, case, findings)
            if counts["expressions"] % 250 == 0:
                print(f"  .. {counts['expressions']} inputs, {time.time() - t0:.0f} s, "
                      f"{len(kinds)} kinds of finding", file=sys.stderr, flush=True)
        # ---------------------------------------------------------------- report
        out = []
        out.append(f"oracle_fuzz seed {args.seed}: inputs {args.start}..{args.start + counts['expressions'] - 1}, "
                   f"{time.time() - t0:.0f} s")
        out.append("counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        out.append(f"distinct findings: {len(kinds)}")
        for sig, lst in sorted(kinds.items()):
            for _, k, case, f in lst:
                mini = used = None
                if args.minimize and f["category"] not in ("HANG",):
                    res = worker.ask("minimize", (case.text, case.arrays, case.plan, f, args.timeout,
                                                  args.slow), 300)
                    if res[0] == "ok":
                        mini, used = res[1]
                out.append(f"# input {k} (seed {args.seed})")
                out.append(report_finding(f, case.text, case.arrays, mini, used))
        text = "\n".join(out)
        print(text, flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(text + "\n\n")
    finally:
        worker.close()
    return 1 if kinds else 0


if __name__ == "__main__":
    sys.exit(main())
