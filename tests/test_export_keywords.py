"""Issue 18: an exported function takes its arrays as keyword-only arguments, in the
order the variables appear in the expression it computes (``grad(*, X, theta, Y,
n)``, not the sorted ``grad(X, Y, n, theta)``), in every dialect. The signature is
read from the source with ``ast`` (no jax or torch needed); the numpy function is
also called and checked against the closed form."""

from __future__ import annotations

import ast
import re

import numpy as np
import pytest

import einderiv

LINREG = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"
CASES = [
    (LINREG, "theta", ["X", "theta", "Y", "n"]),
    ("x[i]*A[i,j]*x[j]", "x", ["A", "x"]),
    ("(W2[o,h]*tanh(W1[h,i]*X[i,b]) - T[o,b])*(W2[o,g]*tanh(W1[g,j]*X[j,b]) - T[o,b])", "W1",
     ["W2", "X", "W1", "T"]),
    ("lambda*x[i]*x[i] + np*t1[i]*x[i]", "x", ["lambda_", "x", "np", "t1"]),
]


def _signature(src: str, name: str) -> ast.arguments:
    fn = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef)
              and n.name == name)
    return fn.args


def _shown(e: einderiv.Expr) -> list[str]:
    """The variables of ``e`` in the order its text shows them (an independent reading)."""
    text = str(e)
    return sorted(e.variables, key=lambda v: re.search(rf"\b{v}\b", text).start())


@pytest.mark.parametrize("backend", ["numpy", "opt_einsum", "jax", "torch"])
@pytest.mark.parametrize("text, wrt, want", CASES, ids=[c[1] + str(k) for k, c in enumerate(CASES)])
def test_keyword_only_in_the_order_shown(text, wrt, want, backend):
    d = einderiv.diff(text, wrt)
    args = _signature(d.to_python("grad", backend=backend), "grad")
    assert not args.args and not args.posonlyargs and args.vararg is None
    names = [a.arg for a in args.kwonlyargs]
    assert names == want
    assert [n.rstrip("_") for n in names] == _shown(d)


def test_calling_by_keyword_in_any_order():
    src = einderiv.diff(LINREG, "theta").to_python("grad")
    namespace: dict = {}
    exec(src, namespace)  # noqa: S102 - einderiv's own export
    grad = namespace["grad"]
    rng = np.random.default_rng(3)
    X, th, Y = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=4)
    want = 2 / 4 * X.T @ (X @ th - Y)
    np.testing.assert_allclose(grad(n=4, Y=Y, theta=th, X=X), want, rtol=1e-12)
    with pytest.raises(TypeError, match="positional"):
        grad(X, th, Y, 4)   # positional calls are refused: no silent swap of two arrays


def test_cli_emit_python_signature(capsys):
    from einderiv.cli import main
    main(["diff", LINREG, "--wrt", "theta", "--emit", "python"])
    out = capsys.readouterr().out
    args = _signature(out, "grad")
    assert [a.arg for a in args.kwonlyargs] == ["X", "theta", "Y", "n"] and not args.args
