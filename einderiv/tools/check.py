"""A one-call self-check: symbolic derivative against central finite differences."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..api import diff, parse
from ..core.ir import Expr
from ..core.structures import apply_assumptions, normalize_assume, structures_in
from ..errors import EinderivError, did_you_mean
from ..symbolic.syntax import parse_wrt

__all__ = ["check", "CheckResult"]


@dataclass(frozen=True)
class CheckResult:
    """What :func:`check` found. ``max_rel_error`` is the largest absolute difference
    divided by the largest magnitude of the finite-difference derivative (at least 1e-12)."""

    max_abs_error: float
    max_rel_error: float
    symbolic: np.ndarray
    numeric: np.ndarray
    derivative: Expr
    wrt: str = ""

    def ok(self, rtol: float = 1e-5) -> bool:
        """Whether the relative error is within ``rtol``."""
        return self.max_rel_error <= rtol

    def __str__(self) -> str:
        return (f"d/d{self.wrt}: max relative error "
                f"{self.max_rel_error:.2e} (absolute {self.max_abs_error:.2e}) over "
                f"{self.symbolic.size} entries")

    def _verdict(self) -> str:
        return "agrees with" if self.ok() else "differs from"

    def _repr_markdown_(self) -> str:
        """Jupyter: the verdict, the errors and the derivative in LaTeX."""
        return (f"**d/d{self.wrt} {self._verdict()} central finite differences**: max "
                f"relative error {self.max_rel_error:.2e} (absolute "
                f"{self.max_abs_error:.2e}) over {self.symbolic.size} entries\n\n"
                f"$$ {self.derivative.to_latex()} $$")

    def _repr_html_(self) -> str:
        """Jupyter: the same as a small table (the derivative as text)."""
        rows = [("derivative", str(self.derivative)), ("by", self.wrt),
                ("max relative error", f"{self.max_rel_error:.2e}"),
                ("max absolute error", f"{self.max_abs_error:.2e}"),
                ("entries", str(self.symbolic.size))]
        body = "".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>"
                       for k, v in rows)
        return (f"<div><b>d/d{html.escape(self.wrt)} {self._verdict()} central finite "
                f"differences</b><table>{body}</table></div>")


def check(expr: Expr | str, wrt: str, values: Mapping[str, Any], *, eps: float = 1e-6,
          shapes: Mapping[str, object] | None = None,
          assume: Mapping[str, str] | None = None) -> CheckResult:
    """Compare :func:`diff` with central finite differences at ``values``.

    Works for any rank: each entry of the variable is perturbed by ``±h`` with
    ``h = eps * max(1, |x|)``, giving a tensor of shape ``x.shape + f.shape``.
    A variable assumed symmetric (``assume`` or marked by ``parse``) is perturbed
    along symmetric directions only (``E_pq + E_qp``; the change is split evenly
    between entries ``[p,q]`` and ``[q,p]``), a diagonal one along ``E_pp`` (its
    off-diagonal entries expected zero): the derivative on the variable's space
    (docs/structured.md).

    >>> import numpy as np, einderiv
    >>> rng = np.random.default_rng(0)
    >>> r = einderiv.check("x[i]*A[i,j]*x[j]", "x",
    ...                    {"x": rng.normal(size=3), "A": rng.normal(size=(3, 3))})
    >>> r.ok()
    True
    """
    e = parse(expr, shapes, assume=assume) if isinstance(expr, str) else \
        apply_assumptions(expr, assume, shapes)
    name, _ = parse_wrt(wrt)
    kind = normalize_assume(assume).get(name) or structures_in(e).get(name)
    if name not in values:
        hint = did_you_mean(name, e.variables) if name not in e.variables else ""
        raise EinderivError(f"values has no entry for the variable {name!r}"
                            + (f"; {hint}" if hint else ""))
    # the variable's rank from its value, should simplifying have removed it (s + -s)
    d = diff(e, wrt, {name: np.shape(values[name]), **dict(shapes or {})},
             assume={name: kind} if kind else None)
    point = {}
    for k, v in values.items():
        arr = np.asarray(v)
        if arr.dtype.kind == "c":
            raise EinderivError(f"check compares real derivatives; {k!r} is complex")
        try:
            point[k] = np.array(arr, dtype=float)
        except (TypeError, ValueError):
            raise EinderivError(f"{k!r} must be a numeric array for check") from None
    symbolic = np.asarray(d.evaluate(**point), dtype=float)
    x = point[name]
    base_shape = np.shape(e.evaluate(**point))
    numeric = np.zeros(x.shape + base_shape)
    for idx in np.ndindex(*x.shape):
        if kind is not None and (idx[0] > idx[1] or (kind == "diagonal" and idx[0] != idx[1])):
            continue  # filled from [q,p] below, or zero off the diagonal
        h = eps * max(1.0, abs(float(x[idx])))
        plus, minus = dict(point), dict(point)
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        if kind is not None:  # a symmetric direction: E_pq + E_qp
            mirror = idx[::-1]
            xp[mirror], xm[mirror] = xp[idx], xm[idx]
        plus[name], minus[name] = xp, xm
        change = (np.asarray(e.evaluate(**plus)) - np.asarray(e.evaluate(**minus))) / (2 * h)
        if kind is not None and idx[0] != idx[1]:  # <G, E_pq + E_qp> = 2 sym(G)[p,q]
            numeric[idx] = numeric[idx[::-1]] = change / 2
        else:
            numeric[idx] = change
    if symbolic.shape != numeric.shape:  # pragma: no cover - a layout bug would show here
        raise EinderivError(f"derivative has shape {symbolic.shape}, expected {numeric.shape}")
    abs_err = float(np.max(np.abs(symbolic - numeric))) if symbolic.size else 0.0
    scale = max(float(np.max(np.abs(numeric))) if numeric.size else 0.0, 1e-12)
    return CheckResult(abs_err, abs_err / scale, symbolic, numeric, d, name)
