"""Step-by-step derivations (issue 7): every step has the value of the next, the
last index step is what diff returns, and the least-squares example follows the
notes (001_*, A.17-A.22)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import einderiv
from einderiv.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from cases import HESSIANS, IDENTITIES  # noqa: E402

RNG = np.random.default_rng(11)
LSQ = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"


def _value(e: einderiv.Expr, values: dict) -> np.ndarray:
    return np.asarray(e.evaluate(**values))   # names it does not use are ignored


@pytest.mark.parametrize("case", IDENTITIES + HESSIANS, ids=lambda c: c.name)
def test_each_step_has_the_value_of_the_next_and_ends_at_diff(case):
    expr = case.expr
    if case in HESSIANS:
        expr = einderiv.diff(case.expr, case.wrt, case.shapes)
    steps = einderiv.derive_steps(expr, case.wrt, case.shapes)
    result = einderiv.diff(expr, case.wrt, case.shapes)
    index_steps = [s for s in steps if s.matrix is None]
    assert index_steps[-1].expr == result and str(index_steps[-1].expr) == str(result)
    assert steps.result == result
    values = case.arrays(RNG)
    expected = case.closed_form(values)
    for step in index_steps[1:]:   # the first is f itself
        assert step.expr.free == result.free, step.rule
        np.testing.assert_allclose(_value(step.expr, values), expected, atol=1e-10,
                                   err_msg=f"{case.name}: step {step.rule!r}: {step.expr}")
    if steps[-1].matrix is not None:
        np.testing.assert_allclose(steps[-1].matrix.evaluate(**values), expected, atol=1e-10)


def test_least_squares_follows_the_notes_a17_to_a22():
    steps = einderiv.derive_steps(LSQ, "theta[d]")
    rules = [s.rule for s in steps]
    assert rules == ["index form", "differentiate", "flatten products", "contract deltas",
                     "rename dummies", "collect like terms", "matrix form"]
    # A.18: product rule, two terms, each with a delta on the differentiated factor
    raw = steps[1]
    assert "product rule" in raw.detail and "delta" in raw.detail
    assert isinstance(raw.expr, einderiv.Expr) and len(raw.expr.terms) == 2
    assert all("delta[d," in str(t) for t in raw.expr.terms)
    # A.19: deltas contracted, no delta left, still two terms
    contracted = steps[3].expr
    assert "delta" not in str(contracted) and len(contracted.terms) == 2
    # renamed: the two terms read the same (so they are seen to be equal)
    renamed = steps[4].expr
    assert str(renamed.terms[0]) == str(renamed.terms[1])
    # A.20: one term with the factor 2; A.22: the X^T form
    assert str(steps[5].expr) == "2*X[a,d]*(X[a,b]*theta[b] - Y[a])/n"
    assert "2 terms -> 1" in steps[5].detail
    assert str(steps[6].matrix) == "2/n X^T (X theta - Y)"
    n, d = 4, 3
    X, Y, th = RNG.normal(size=(n, d)), RNG.normal(size=n), RNG.normal(size=d)
    closed = 2 / n * X.T @ (X @ th - Y)
    for s in steps[1:]:
        np.testing.assert_allclose(_value(s.expr, dict(X=X, Y=Y, theta=th, n=float(n))), closed)


def test_rules_are_named_for_each_kind_of_node():
    cases = {
        "tanh(W[i,j]*x[j])": ("x", "chain rule for tanh"),
        "x[i]/(x[j]*x[j])": ("x", "quotient rule"),
        "(x[i]*x[i])**3": ("x", "power rule"),
        "det(X)": ("X", "Jacobi's formula"),
        "logdet(X)": ("X", "logdet"),
        "inv(X)[i,j]*a[j]": ("X", "inverse"),
    }
    for text, (wrt, rule) in cases.items():
        steps = einderiv.derive_steps(text, wrt)
        assert rule in steps[1].detail, (text, steps[1].detail)


def test_latex_is_an_align_block_and_notebooks_render_it():
    steps = einderiv.derive_steps(LSQ, "theta")
    tex = steps.to_latex()
    lines = tex.splitlines()
    assert lines[0] == r"\begin{align*}" and lines[-1] == r"\end{align*}"
    assert len(lines) == len(steps) + 2
    assert r"\frac{\partial f}{\partial \theta_{d}}" in tex and r"\delta_{" in tex
    assert all(r"\text{" + s.rule + "}" in tex for s in steps)
    assert steps._repr_latex_().startswith("$$\\begin{align*}")
    assert "**contract deltas**" in steps._repr_markdown_()


def test_steps_of_a_text_that_does_not_parse_raise_parse_error():
    with pytest.raises(einderiv.ParseError):
        einderiv.derive_steps("x[i]*", "x")
    with pytest.raises(einderiv.EinderivError):
        einderiv.derive_steps("x[i]", "y")


def test_cli_prints_numbered_steps(capsys):
    assert main(["diff", LSQ, "--wrt", "theta", "--steps"]) == 0
    out = capsys.readouterr().out
    assert "1. index form" in out and "4. contract deltas" in out
    assert "2*X[a,d]*(X[a,b]*theta[b] - Y[a])/n" in out
    assert "2/n X^T (X theta - Y)" in out


def test_cli_steps_latex_prints_an_align_block(capsys):
    assert main(["diff", LSQ, "--wrt", "theta", "--steps", "--latex"]) == 0
    header, out = capsys.readouterr().out.strip().split("\n", 1)
    assert header == "% layout: theta's axes first, then f's (denominator layout)"
    assert out.startswith(r"\begin{align*}") and out.endswith(r"\end{align*}")


def test_cli_steps_of_a_hessian_show_each_order(capsys):
    assert main(["diff", "x[i]*A[i,j]*x[j]", "--wrt", "x", "--order", "2", "--steps"]) == 0
    out = capsys.readouterr().out
    assert "order 1" in out and "order 2" in out and "A + A^T" in out


def test_cli_steps_in_a_subprocess_exit_zero():
    run = subprocess.run([sys.executable, "-m", "einderiv", "diff", "--steps"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "contract deltas" in run.stdout
