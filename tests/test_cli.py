"""The command line: `einderiv diff ...`, `einderiv demo`, exit codes and error output.

Printed derivatives are parsed back and value-checked against closed forms written in
numpy (notes 001_*, A.4-A.5: the linear-regression gradient and Hessian)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import einderiv
from einderiv.cli import main

LINREG = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"


def _derivative_text(out: str, name: str) -> str:
    """The printed derivative: the text after ' = ' on the line 'd... f / d NAME = ...'."""
    for line in out.splitlines():
        if re.match(rf"^d(\^\d+)?\s*f\s*/\s*d\s*{name}\b.*? = ", line):
            return line.split(" = ", 1)[1].strip()
    raise AssertionError(f"no derivative line for {name!r} in:\n{out}")


def _top_level_terms(text: str) -> int:
    depth, terms = 0, 1
    for k, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and text[k:k + 3] in (" + ", " - "):
            terms += 1
    return terms


def _linreg_values(seed: int):
    rng = np.random.default_rng(seed)
    X, theta, Y = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=4)
    return {"X": X, "theta": theta, "Y": Y, "n": 4.0}


def _gradient(v):
    return 2 / v["n"] * v["X"].T @ (v["X"] @ v["theta"] - v["Y"])


def _hessian(v):
    return 2 / v["n"] * v["X"].T @ v["X"]


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------- success


def test_issue_command_prints_one_term_gradient(capsys) -> None:
    code, out, err = _run(capsys, ["diff", LINREG, "--wrt", "theta", "--shape", "X=n,d"])
    assert code == 0, err
    assert err == ""
    text = _derivative_text(out, "theta")
    assert _top_level_terms(text) == 1, text
    g = einderiv.parse(text)
    assert g.free == ("d",) or len(g.free) == 1
    for seed in (0, 1):
        v = _linreg_values(seed)
        np.testing.assert_allclose(g.evaluate(**v), _gradient(v), rtol=1e-12)
    # the function is printed too, and parses back to the same values
    f_line = next(line for line in out.splitlines() if line.startswith("f = "))
    f = einderiv.parse(f_line[4:])
    v = _linreg_values(2)
    r = v["X"] @ v["theta"] - v["Y"]
    np.testing.assert_allclose(f.evaluate(**v), r @ r / v["n"], rtol=1e-12)
    # the shape line uses the symbolic size of theta's axis
    assert re.search(r"shape:\s*\(d,\)", out), out


def test_gradient_is_exactly_the_notes_form(capsys) -> None:
    code, out, _ = _run(capsys, ["diff", LINREG, "--wrt", "theta", "--shape", "X=n,d"])
    assert code == 0
    assert _derivative_text(out, "theta") == "2*X[a,d]*(X[a,b]*theta[b] - Y[a])/n"


def test_order_two_prints_the_hessian(capsys) -> None:
    code, out, err = _run(capsys, ["diff", LINREG, "--wrt", "theta", "--shape", "X=n,d",
                                   "--order", "2"])
    assert code == 0, err
    text = _derivative_text(out, "theta")
    h = einderiv.parse(text)
    assert len(h.free) == 2
    v = _linreg_values(3)
    np.testing.assert_allclose(h.evaluate(**v), _hessian(v), rtol=1e-12)
    assert re.search(r"shape:\s*\(d, d\)", out), out


def test_order_two_of_a_nonsymmetric_quadratic(capsys) -> None:
    code, out, err = _run(capsys, ["diff", "x[i]*A[i,j]*x[j]", "--wrt", "x", "--order", "2"])
    assert code == 0, err
    h = einderiv.parse(_derivative_text(out, "x"))
    A = np.random.default_rng(5).normal(size=(3, 3))
    np.testing.assert_allclose(h.evaluate(A=A, x=np.ones(3)), A + A.T, rtol=1e-12)


def test_jacobian_layout_and_shape_line(capsys) -> None:
    """d(Ax)/dx printed by the CLI is A^T (denominator layout), shape (3, 4)."""
    code, out, err = _run(capsys, ["diff", "A[i,j]*x[j]", "--wrt", "x", "--shape", "A=4,3"])
    assert code == 0, err
    d = einderiv.parse(_derivative_text(out, "x"))
    A = np.random.default_rng(6).normal(size=(4, 3))
    np.testing.assert_allclose(d.evaluate(A=A, x=np.ones(3)), A.T, rtol=1e-12)
    assert re.search(r"shape:\s*\(3, 4\)", out), out


def test_named_wrt_indices(capsys) -> None:
    code, out, err = _run(capsys, ["diff", LINREG, "--wrt", "theta[k]"])
    assert code == 0, err
    g = einderiv.parse(_derivative_text(out, "theta"))
    assert g.free == ("k",)
    v = _linreg_values(7)
    np.testing.assert_allclose(g.evaluate(**v), _gradient(v), rtol=1e-12)


def test_latex_output(capsys) -> None:
    code, out, err = _run(capsys, ["diff", LINREG, "--wrt", "theta", "--shape", "X=n,d",
                                   "--latex"])
    assert code == 0, err
    assert "\\frac" in out
    assert "\\theta" in out
    assert "theta[" not in out  # no index-bracket text in LaTeX mode
    # one line that pastes into a document; every other line is a LaTeX comment
    lines = out.splitlines()
    assert r"\frac{\partial f}{\partial \theta_{d}} = \frac{2 X_{ad} \left(X_{ab} \theta_{b} - Y_{a}\right)}{n}" in lines
    assert all(l.startswith(("f = ", r"\frac", "% ")) for l in lines), lines


def test_demo(capsys) -> None:
    code, out, err = _run(capsys, ["demo"])
    assert code == 0, err
    text = _derivative_text(out, "theta")
    assert _top_level_terms(text) == 1
    g = einderiv.parse(text)
    v = _linreg_values(8)
    np.testing.assert_allclose(g.evaluate(**v), _gradient(v), rtol=1e-12)


def test_demo_order_two_and_latex(capsys) -> None:
    code, out, err = _run(capsys, ["demo", "--order", "2"])
    assert code == 0, err
    h = einderiv.parse(_derivative_text(out, "theta"))
    v = _linreg_values(9)
    np.testing.assert_allclose(h.evaluate(**v), _hessian(v), rtol=1e-12)
    code, out, err = _run(capsys, ["demo", "--latex"])
    assert code == 0 and "\\frac" in out


def test_no_command_runs_the_demo(capsys) -> None:
    code, out, _ = _run(capsys, [])
    assert code == 0
    g = einderiv.parse(_derivative_text(out, "theta"))
    v = _linreg_values(10)
    np.testing.assert_allclose(g.evaluate(**v), _gradient(v), rtol=1e-12)


# ------------------------------------------------------------------------ errors


def _assert_one_line_error(err: str, kind: str) -> list[str]:
    assert "Traceback" not in err
    lines = err.rstrip("\n").splitlines()
    assert lines, "nothing on stderr"
    assert lines[0].startswith("einderiv:"), err
    assert kind in lines[0], err
    return lines


@pytest.mark.parametrize("expr, column", [
    ("x[i", 3),
    ("x[i] + * y[i]", 7),
    ("(X[a,b]*theta[b] - Y[a]", 0),
    ("x ^ 2", 2),
    ("foo(x[i])", 0),
])
def test_parse_error_exit_code_and_caret(capsys, expr, column) -> None:
    code, out, err = _run(capsys, ["diff", expr, "--wrt", "x"])
    assert code == 2
    assert out == ""
    lines = _assert_one_line_error(err, "ParseError")
    assert len(lines) == 3, err   # message, the input, the caret
    assert lines[1] == "  " + expr
    assert lines[2].strip() == "^"
    assert lines[2].index("^") - 2 == column


@pytest.mark.parametrize("argv, kind, pattern", [
    (["diff", "x[i] + y[j] -> [i]", "--wrt", "x"], "IndexMismatchError", r"sums over 'j'"),
    (["diff", "x[i]", "--wrt", "theta"], "IndexMismatchError", r"'theta'"),
    (["diff", "X[i,j]*y[j]", "--wrt", "y", "--shape", "X=4,3", "--shape", "y=4"],
     "ShapeError", r"'j'"),
    (["diff", "X[i]", "--wrt", "X", "--shape", "X=4,3"], "ShapeError", r"'X'"),
    (["diff", "x[i]", "--wrt", "x", "--shape", "x"], "Error", r"NAME=SIZES|--shape"),
    (["diff", "x[i]"], "Error", r"--wrt"),
    (["diff", "(" * 2000 + "x" + ")" * 2000, "--wrt", "x"], "LimitError", r"nest|deep"),
    (["diff", "x[i]", "--wrt", "3x"], "ParseError", r"wrt"),
])
def test_bad_input_exit_code_two_without_traceback(capsys, argv, kind, pattern) -> None:
    code, out, err = _run(capsys, argv)
    assert code == 2
    assert out == ""
    lines = _assert_one_line_error(err, kind)
    assert re.search(pattern, lines[0]), lines[0]
    assert len(lines[0]) < 300
    if len(lines) > 1:  # anything after the message is a caret excerpt
        assert len(lines) == 3 and lines[2].strip() == "^", err


@pytest.mark.parametrize("argv", [
    ["--debug", "diff", "x[i", "--wrt", "x"],
    ["diff", "x[i", "--wrt", "x", "--debug"],
])
def test_debug_shows_a_traceback(capsys, argv) -> None:
    code, _, err = _run(capsys, argv)
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert "ParseError" in err


def test_argparse_errors_exit_two(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["diff", "x[i]", "--wrt", "x", "--order", "9"])
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


# -------------------------------------------------------------------- subprocess


def test_python_dash_m_einderiv() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "einderiv", "diff", LINREG, "--wrt", "theta", "--shape", "X=n,d"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = _derivative_text(proc.stdout, "theta")
    assert _top_level_terms(text) == 1
    g = einderiv.parse(text)
    v = _linreg_values(11)
    np.testing.assert_allclose(g.evaluate(**v), _gradient(v), rtol=1e-12)


def test_python_dash_m_einderiv_bad_input() -> None:
    proc = subprocess.run([sys.executable, "-m", "einderiv", "diff", "x[i] + * y[i]", "--wrt", "x"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = _assert_one_line_error(proc.stderr, "ParseError")
    assert lines[1:] == ["  x[i] + * y[i]", "         ^"]
