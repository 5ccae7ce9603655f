"""Robustness (issue 6): the fuzzer's generators inside the test suite, every failure it
found as a named regression test, and the extreme inputs.

* ``test_fuzz_*``: a few thousand inputs from ``benchmarks/fuzz.py`` (token soup,
  mutations of valid expressions, matrix notation, well-formed random expressions
  checked against finite differences), deterministic seeds. Only ``EinderivError``
  may escape; no wrong answers; no input may run past the time limit.
* ``test_bug_*``: the minimal input of each failure the fuzzer found, with the
  expected behaviour; the docstring says what went wrong (F1, F2, ... number the
  findings of the issue-6 fuzzing report).
* ``test_extreme[...]``: the cases of ``benchmarks/extremes.py`` (5,000-deep nesting,
  20,000-term sums, 200-character names, 10-axis tensors), each in a child process
  with a generous time limit: they work, or raise a LimitError naming the limit.
  They take about half a minute: all but :data:`QUICK_EXTREMES` are marked ``slow``.

The generator runs are marked ``slow`` too, all but the matrix-notation one
(``-m "not slow"`` is the quick tier; README.md, "Quick start").

Reproduce a generator failure with ``python benchmarks/fuzz.py --seed SEED --mode MODE
--one K`` (the report prints the input number K).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import einderiv
from einderiv import EinderivError
from cases import grouped_chain
from fd import central_diff

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_einderiv_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


fuzz = _load("fuzz")
extremes = _load("extremes")

SEED = 20241122


def _report(runner) -> str:
    lines = [f"{len(runner.failures)} failures"]
    seen = set()
    for f in runner.failures:
        if f.signature in seen:
            continue
        seen.add(f.signature)
        lines.append(f.report())
        if len(seen) >= 5:
            break
    return "\n".join(lines)


def _only_einderiv_errors(fn):
    """Call ``fn``; an EinderivError is fine, anything else propagates."""
    try:
        return fn()
    except EinderivError:
        return None


def _run_python(code: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a hang in C code cannot be interrupted
    in-process); fails the test on a timeout."""
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                              text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang: no answer within {timeout:.0f} s:\n{textwrap.dedent(code)}")


# ====================================================================== generators


@pytest.mark.slow
def test_fuzz_soup_only_einderiv_errors():
    runner = fuzz.run_range(SEED, range(700), "soup", 0.0, timeout=5.0)
    assert sum(runner.tried.values()) > 2000
    assert not runner.failures, _report(runner)


@pytest.mark.slow
def test_fuzz_mutations_only_einderiv_errors():
    runner = fuzz.run_range(SEED, range(900), "mutation", 0.0, timeout=5.0)
    assert runner.tried.get("evaluate", 0) > 50  # mutations often stay valid
    assert not runner.failures, _report(runner)


def test_fuzz_matrix_notation_only_einderiv_errors():
    runner = fuzz.run_range(SEED, range(500), "matrix", 0.0, timeout=5.0)
    assert not runner.failures, _report(runner)


@pytest.mark.slow
def test_fuzz_math_derivatives_match_finite_differences():
    """Random well-formed expressions: diff == central differences, Hessians symmetric,
    mixed partials commute, parse(str(e)) == e, printing/simplification keep values."""
    runner = fuzz.run_range(SEED, range(150), "math", 1.0, timeout=10.0)
    assert runner.tried["math"] == 150
    assert not runner.failures, _report(runner)


def test_fuzz_inputs_are_reproducible():
    a = fuzz.make_input(7, 123)
    b = fuzz.make_input(7, 123)
    assert (a.kind, a.text, a.wrt, a.cli) == (b.kind, b.text, b.wrt, b.cli)


def test_math_generator_makes_valid_expressions():
    """The generator's own contract: its text parses with exactly the promised free
    indices (a generator bug must not hide as an einderiv bug)."""
    import random
    for k in range(200):
        mc = fuzz.math_case(random.Random(k), 3)
        e = einderiv.parse(mc.text)
        assert set(e.free) == set(mc.free), mc.text
        assert set(e.variables) <= set(mc.variables), mc.text


def test_fuzzer_reports_a_non_einderiv_exception(monkeypatch):
    """The harness itself: a KeyError escaping parse is a failure with a traceback."""
    def broken(*args, **kwargs):
        raise KeyError("boom")
    monkeypatch.setattr(einderiv, "parse", broken)
    runner = fuzz.Runner(timeout=5.0, targets={"parse"})
    runner.run(fuzz.Input(0, "soup", "x[i]", "x"))
    assert runner.failures and "KeyError" in runner.failures[0].summary
    assert "boom" in runner.failures[0].trace


def test_fuzzer_reports_a_hang(monkeypatch):
    import time

    def slow(*args, **kwargs):
        while True:
            time.sleep(0.01)
    monkeypatch.setattr(einderiv, "parse", slow)
    runner = fuzz.Runner(timeout=0.3, targets={"parse"})
    runner.run(fuzz.Input(0, "soup", "x", "x"))
    assert runner.failures and runner.failures[0].signature == "parse: hang"


# ==================================================================== regressions
# Each: the minimal input of a failure the fuzzer found, and the expected behaviour.


def test_bug_unicode_superscript_digit():
    """F1: '²'.isdigit() is True but the number pattern did not match it: an
    AssertionError escaped the tokenizer."""
    for text in ["²", "x + ²", "2 ³", "½", "٣", "𝟙", "x ¹"]:
        with pytest.raises(einderiv.ParseError):
            einderiv.parse(text)


def test_bug_huge_number_str():
    """F2: printing a huge constant raised a plain ValueError (int -> str digit limit).
    Expected: a number beyond 1e+-4000 is a LimitError when parsed; one within prints
    and parses back, or (more than 3900 digits) ``str`` raises a LimitError saying so."""
    for text in ["1e5000*x", "1e5000"]:
        with pytest.raises(einderiv.LimitError, match="number out of range"):
            einderiv.parse(text)
    e = einderiv.parse("2**20000")  # 6021 digits, kept as a power
    assert (str(e), e.to_latex()) == ("2**20000", "2^{20000}")
    assert einderiv.parse(str(e)) == e
    e = einderiv.parse("1e3000*x")
    assert str(e) == "1" + "0" * 3000 + "*x" and einderiv.parse(str(e)) == e
    assert e.to_latex() == "1" + "0" * 3000 + " x"
    with pytest.raises(einderiv.LimitError, match="more than 3900 digits"):
        str(einderiv.parse("1e4000*x"))


def test_bug_huge_number_in_a_product_parse():
    """F2: canonical keys are compared through repr(): a 5001-digit constant raised a
    plain ValueError at parse time (and the CLI exited 3, "internal error"). Expected:
    out of range, a LimitError (exit 2); in range, keyed and printed (exit 0)."""
    with pytest.raises(einderiv.LimitError, match="number out of range"):
        einderiv.parse("y[d]*softplus(1e5000)")
    e = einderiv.parse("y[d]*softplus(1e3000)")
    assert einderiv.parse(str(e)) == e
    from einderiv.cli import main
    import contextlib
    import io
    for text, code in [("y[d]*softplus(1e5000)", 2), ("y[d]*softplus(1e3000)", 0)]:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            assert main(["diff", text, "--wrt", "y"]) == code, text


def test_bug_huge_number_to_matrix():
    """F2: to_matrix printed a 5001-digit constant: ValueError."""
    with pytest.raises(einderiv.LimitError, match="number out of range"):
        einderiv.parse("1e5000*x")
    assert str(einderiv.parse("2**20000*x").to_matrix()) == "x 2^20000"
    assert str(einderiv.parse("1e3000*x").to_matrix()) == "1" + "0" * 3000 + " x"
    with pytest.raises(einderiv.LimitError, match="more than 3900 digits"):
        str(einderiv.parse("1e4000*x").to_matrix())


def test_bug_huge_negative_power_evaluate():
    """F2: x**-1e4001 evaluated float(Fraction) of a 4001-digit integer: OverflowError."""
    with pytest.raises(einderiv.LimitError, match="number out of range"):
        einderiv.parse("x**-1e4001 + x")
    e = einderiv.parse("x**-1e4000 + x")  # in range: a float power, as numpy gives it
    with np.errstate(all="ignore"):
        assert float(e.evaluate(x=2.0)) == 2.0  # 2**-1e4000 underflows to 0
        assert float(e.evaluate(x=1.0)) == 2.0
        assert float(e.evaluate(x=0.5)) == np.inf  # 0.5**-1e4000 overflows


def test_bug_huge_number_evaluate():
    """F2: float(Fraction(10**400)) raised OverflowError in evaluate. Expected: the
    float value, inf."""
    e = einderiv.parse("1e400*x")
    with np.errstate(all="ignore"):
        value = e.evaluate(x=1.0)
    assert np.isposinf(value)


def test_bug_power_tower_hang():
    """F3: constant folding of 10**10**10 computed a 10-billion-digit integer."""
    r = _run_python("""
        import einderiv
        for text in ["10**10**10", "2**99999999", "(10**100)**(10**100)"]:
            try:
                einderiv.parse(text)
            except einderiv.EinderivError:
                pass
        print("done")
        """)
    assert r.stdout.strip() == "done", r.stderr[-2000:]


def test_bug_huge_exponent_hang():
    """F3: Fraction("1e99999999") builds a 100-million-digit integer (both parsers)."""
    r = _run_python("""
        import einderiv
        for text in ["1e99999999", "1e399999999999999999999999", "x*1e-99999999"]:
            for fn in (einderiv.parse, einderiv.parse_matrix):
                try:
                    fn(text)
                except einderiv.EinderivError:
                    pass
        print("done")
        """)
    assert r.stdout.strip() == "done", r.stderr[-2000:]


@pytest.mark.parametrize("func", ["step", "sigmoid", "softplus", "relu", "sign", "abs"])
def test_bug_step_complex(func):
    """F4: numpy has no complex loop for heaviside/logaddexp: a TypeError escaped.
    Complex input must give a value or an EvaluationError: an EvaluationError naming
    the function."""
    e = einderiv.parse(f"{func}(x[i])")
    with pytest.raises(einderiv.EvaluationError, match=rf"{func}\(\.\.\.\) is defined for real input"):
        e.evaluate(x=np.array([1 + 1j, -2 + 0.5j]))


def test_bug_evaluate_oversized_result():
    """F5: results too big for memory: MemoryError (or minutes in C) instead of a
    LimitError naming the size."""
    r = _run_python("""
        import numpy as np, einderiv
        cases = [
            (einderiv.parse("a[i]*b[j]*c[k]*d[l]*e[m]"), {n: np.ones(1000) for n in "abcde"}),
            (einderiv.diff("T[a,b,c,d,e,f,g,h,i,j]", "T"), {"T": np.ones((4,) * 10)}),
        ]
        for e, arrays in cases:
            try:
                e.evaluate(**arrays)
                print("ok")
            except einderiv.EinderivError as exc:
                print(type(exc).__name__)
        """, timeout=60)
    assert r.stdout.split() == ["LimitError", "LimitError"], r.stderr[-2000:]


def test_bug_delta_partner_size():
    """F6: the printed Jacobian of an element-wise function did not evaluate: a delta's
    partner index gives its size."""
    x = np.array([0.1, 0.2, 0.3])
    v = einderiv.parse("delta[a,i]*y[i] -> [a,i]").evaluate(y=x)
    assert np.allclose(v, np.diag(x))
    d = einderiv.diff("cos(y[i])", "y")
    again = einderiv.parse(str(d))
    assert np.allclose(again.evaluate(y=x), d.evaluate(y=x))


def test_bug_arrow_on_scalar_sum():
    """F7: '-> [i]' on a sum of index-free terms silently dropped the output index
    (a single term is an IndexMismatchError)."""
    for text in ["x + y -> [i]", "2 + 3 -> [i,j]"]:
        with pytest.raises(einderiv.IndexMismatchError):
            einderiv.parse(text)


def test_bug_nested_sum_product_diff_is_fast():
    """F8: simplify recomputed canonical keys of shared sub-trees: time doubled with
    each level of ((x+y)*x+y)*x... (12 levels: 20 s)."""
    r = _run_python("""
        import einderiv
        d = einderiv.diff("(" * 12 + "x" + "+y)*x" * 12, "x")
        print(float(d.evaluate(x=0.5, y=0.25)) != 0)
        """, timeout=15)
    assert r.stdout.strip() == "True", r.stderr[-2000:]


def test_bug_many_labels_message():
    """F9: a product with more than 52 distinct indices (numpy.einsum's letters) failed
    with "the arrays do not fit together: 'ascii' codec can't encode ..."."""
    idx = ",".join(f"i{k}" for k in range(30))
    d = einderiv.diff(f"T[{idx}]", "T")
    try:
        value = d.evaluate(T=np.ones((1,) * 30))
    except einderiv.LimitError as exc:
        assert "codec" not in str(exc)
    else:
        assert value.shape == (1,) * 60


def test_bug_negated_sum_under_arrow_roundtrip():
    """F15: a negated sum under '-> []' stayed factored, its printed form (with
    sum[...]) was distributed on reparse: parse(str(e)) != e. The texts are written
    with sum[d] since '->' over a term that lacks the summed index is refused as
    ambiguous (issue 21 C); the round trip is the same."""
    for text in ["sum[d](-(q[d] - y))", "-sum[a](2*q[a] - y)", "sum[d](-(q[d] - y) + x[d])"]:
        e = einderiv.parse(text)
        assert einderiv.parse(str(e)) == e, (text, str(e))
    for text in ["-(q[d] - y) -> []", "-(2*q[a] - y) -> []", "-(q[d] - y) + x[d] -> []"]:
        with pytest.raises(einderiv.EinderivError, match="Write sum"):
            einderiv.parse(text)
    d = einderiv.diff("(-(p[a,b]**2) - logdet(S))*(q[a,b] - c)", "c")
    assert einderiv.parse(str(d)) == d, str(d)


@pytest.mark.parametrize("dtype", [np.longdouble, np.float16])
@pytest.mark.parametrize("func", ["inv(M)[i,j]", "det(M)", "logdet(M)"])
def test_bug_longdouble_linalg(func, dtype):
    """F16: float128/float16 inputs pass the dtype check but numpy.linalg has no loop
    for them: a TypeError escaped. Expected: the value."""
    m = (np.eye(2) * 2).astype(dtype)
    value = einderiv.parse(func).evaluate(M=m)
    expected = {"inv(M)[i,j]": np.eye(2) / 2, "det(M)": 4.0, "logdet(M)": np.log(4.0)}[func]
    # the result keeps the input's dtype (issue 18: numpy's promotion; float16 in, float16 out)
    assert np.asarray(value).dtype == dtype
    np.testing.assert_allclose(np.asarray(value, dtype=float), expected,
                               rtol=1e-3 if dtype == np.float16 else 1e-7)


def test_bug_diagonal_inside_function_roundtrip():
    """F17: a delta contracted into an element-wise scope printed as Q[a,a] inside the
    function, which the parser reads as a trace: str(e) did not parse back."""
    rng = np.random.default_rng(0)
    Q = rng.uniform(0.1, 1.0, size=(3, 3))
    cases = {
        "delta[i,j]*exp(Q[i,j])": np.exp(np.diag(Q)).sum(),
        "delta[i,j]*Q[i,j]**2": (np.diag(Q) ** 2).sum(),
    }
    for text, expected in cases.items():
        e = einderiv.parse(text)
        assert np.isclose(e.evaluate(Q=Q), expected)
        again = einderiv.parse(str(e))
        assert again == e, (text, str(e))
        assert np.isclose(again.evaluate(Q=Q), expected)
    Q3 = rng.uniform(0.1, 1.0, size=(3, 2, 3))
    e = einderiv.parse("delta[i,j]*(Q[j,k,i]**0.5) -> [k]")
    expected = np.sqrt(np.einsum("aka->ak", Q3)).sum(axis=0)
    assert np.allclose(einderiv.parse(str(e)).evaluate(Q=Q3), expected)


def test_bug_delta_into_sum_of_diagonals_roundtrip():
    """F17 (related): the two diagonal terms printed differently, one as
    '(Y[i,a,a,j] -> [a,i,j])': values agree but parse(str(e)) != e."""
    e = einderiv.parse("delta[d,e]*(P[j,e,d,i] - Y[i,d,e,j]) -> [j,i]")
    again = einderiv.parse(str(e))
    assert again == e, str(e)
    rng = np.random.default_rng(1)
    P, Y = rng.normal(size=(3, 2, 2, 4)), rng.normal(size=(4, 2, 2, 3))
    expected = np.einsum("jaai->ji", P) - np.einsum("iaaj->ji", Y)
    assert np.allclose(again.evaluate(P=P, Y=Y), expected)


def test_bug_hvp_of_linear_function():
    """F18: hvp = jvp(diff(e, x), x): the first derivative no longer contains x, so the
    second could not tell its rank (IndexMismatchError). The Hessian is zero."""
    h = einderiv.hvp("a[i]*x[i]", "x")
    value = h.evaluate(a=np.ones(3), x=np.ones(3), v=np.ones(3))
    assert value.shape == (3,) and not value.any()
    h = einderiv.hvp("p", "p")
    assert float(h.evaluate(p=1.0, v=2.0)) == 0.0
    import contextlib
    import io
    from einderiv.cli import main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["diff", "a[i]*x[i]", "--wrt", "x", "--order", "2"]) == 0


def test_bug_printed_big_constant_reparses():
    """F19: after the literal limit (F3), folded constants and parse_matrix literals
    could still print as numbers the lexer refuses: str(e) did not parse back."""
    for make in (lambda: einderiv.parse("(10**300)*(10**300)*x"),
                 lambda: einderiv.parse_matrix("1e-400"),
                 lambda: einderiv.parse_matrix("1e300 * 1e300")):
        e = make()
        assert einderiv.parse(str(e)) == e, str(e)[:80]


def test_bug_folded_zero_roundtrip():
    """F20: a function of a number folded to Product(0) while "0" parses to Sum((), ()):
    two representations of zero, so parse(str(e)) != e."""
    zero = einderiv.parse("0")
    for text in ["sin(0)", "tanh(x*0)", "tan(tanh(-0.5*y*0.0*2*y))", "x*0", "x - x"]:
        e = einderiv.parse(text)
        assert e == zero, (text, repr(e))
        assert einderiv.parse(str(e)) == e


def test_bug_equal_diagonal_terms_collected():
    """F17 (another form): two equal diagonal terms stayed apart; their printed form
    was collected on reparse."""
    e = einderiv.parse("delta[b,c]*(x[a,b,c] + x[a,c,b]) -> []")
    assert einderiv.parse(str(e)) == e, str(e)
    x = np.random.default_rng(2).normal(size=(2, 3, 3))
    assert np.isclose(e.evaluate(x=x), 2 * np.einsum("abb->", x))


def test_bug_check_complex_values():
    """F21: check() cast complex values to float with a ComplexWarning (the imaginary
    part silently dropped). Expected: an EinderivError, or a check of the real value
    without the warning: an EinderivError naming the complex variable."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        with pytest.raises(EinderivError, match="'x' is complex"):
            einderiv.check("x[i]*x[i]", "x", {"x": np.array([1 + 1j, 2.0])})


def test_bug_two_inverse_factors_value():
    """F24: a product with two factors inv(X) (and two other matrices) evaluated to a
    wrong value in compile.py; found as a wrong derivative of tr(inv(exp(inv(X))))."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 3)) + 3 * np.eye(3)
    Y = np.linalg.inv(X)
    E, F = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    e = einderiv.parse("E[a,d]*F[d,e]*inv(X)[a,b]*inv(X)[c,d]")
    assert np.allclose(e.evaluate(X=X, E=E, F=F), np.einsum("ad,de,ab,cd->bce", E, F, Y, Y))
    # the derivative that exposed it, against central differences of numpy code
    d = einderiv.diff("inv(exp(inv(X)[a,b]))[e,e]", "X")

    def f(a):
        return np.trace(np.linalg.inv(np.exp(np.linalg.inv(a["X"]))))
    fd = central_diff(f, {"X": X}, "X")
    assert np.allclose(d.evaluate(X=X), fd, atol=1e-6)


def test_bug_dummy_names_stable_under_reparse():
    """F25: summed indices were named before the terms were put in order, so the first
    printing and its reparse named them differently (values equal, structure not)."""
    e = einderiv.parse("-((y[i,d1]*x[d1])**2) - (delta[d2,d3]*(p[d2,i,d3]**3)) -> [i]")
    assert einderiv.parse(str(e)) == e, str(e)


def test_bug_empty_axis_five_factors():
    """F26: a size-0 axis made opt_einsum's dynamic programming find no path
    (RuntimeError) for a product of five factors."""
    e = einderiv.parse("q[a]*x[a]*y[a]*z[c]*w[c]")
    v = e.evaluate(q=np.ones(2), x=np.ones(2), y=np.ones(2), z=np.ones(0), w=np.ones(0))
    assert float(v) == 0.0
    e = einderiv.parse("q[a,b]*x[b,a]*y[b,a]*z[c]*w[c] -> [c]")
    v = e.evaluate(q=np.ones((2, 2)), x=np.ones((2, 2)), y=np.ones((2, 2)), z=np.ones(0),
                   w=np.ones(0))
    assert v.shape == (0,)


def test_bug_empty_axis_with_a_scalar_factor():
    """F27: with an empty axis the left-to-right path counted the scalar factors,
    which are multiplied apart, so opt_einsum got a path too long (IndexError)."""
    e = einderiv.parse("(y*y/p)*((-1)*p*x4[i]*x44[e,d])/q")
    d = einderiv.diff(e, "q")
    assert d.free == ("d", "e", "i")
    v = d.evaluate(y=2.0, p=3.0, q=0.5, x4=np.ones(3), x44=np.ones((0, 2)))
    assert v.shape == (2, 0, 3)
    x4, x44 = np.arange(1.0, 4.0), np.arange(8.0).reshape(4, 2)
    v = d.evaluate(y=2.0, p=3.0, q=0.5, x4=x4, x44=x44)
    # f = -y^2 x4[i] x44[e,d] / q, so df/dq = y^2 x4[i] x44[e,d] / q^2, axes (d, e, i)
    np.testing.assert_allclose(v, 4.0 / 0.25 * np.einsum("i,ed->dei", x4, x44))


def test_bug_many_factors_ordered_apart_ran_out_of_memory():
    """F28: 91 factors u_j[s_j] v_j[s_j,t_j] w_j[t_j], sorted u0..u29, v0.., w0.., were
    contracted in that order: an outer product of 3^30 entries (the CI run was killed).
    Factors linked by an index are now contracted together first."""
    text, arrays, expected = grouped_chain(30, np.random.default_rng(28))
    f = einderiv.parse(text).compile(memory_limit=10**6)
    np.testing.assert_allclose(f(**arrays), expected, rtol=1e-9)


def test_bug_chained_delta_sizes():
    """F12: delta sizes were propagated in one pass in factor order."""
    x = np.arange(3.0)
    for text in ["delta[a,i]*delta[b,a]*x[b]", "delta[b,a]*delta[a,i]*x[b]"]:
        for simplify in (False, True):
            v = einderiv.parse(text, simplify=simplify).evaluate(x=x)
            assert np.allclose(v, x), (text, simplify)
    y = np.arange(6.0).reshape(2, 3)
    for text in ["delta[a,i]*delta[b,a]*delta[b,c]*y[c,j]",
                 "delta[a,i]*(delta[b,a]*(delta[b,c]*y[c,j]))"]:
        for simplify in (False, True):
            v = einderiv.parse(text, simplify=simplify).evaluate(y=y)
            assert np.allclose(v, y), (text, simplify)


def test_bug_delta_next_to_fused_inv():
    """F22: compile.size_ref looked up `.free` on an already lowered factor (_Slot):
    AttributeError."""
    S, x = 2 * np.eye(3), np.arange(3.0)
    for simplify in (False, True):
        e = einderiv.parse("delta[i,a]*inv(S)[a,d]*x[d]", simplify=simplify)
        assert np.allclose(e.evaluate(S=S, x=x), x / 2)
    P = np.random.default_rng(3).uniform(size=(3, 3, 3))
    e = einderiv.parse("delta[i,a]*(inv(S)[a,d]*(delta[e,f]*P[d,e,f]))", simplify=False)
    assert np.allclose(e.evaluate(S=S, P=P), np.einsum("dee->d", P) / 2)


def test_bug_inv_solve_size_mismatch():
    """F23: inv(M) times a vector of the wrong size: numpy's solve raised ValueError."""
    with pytest.raises(einderiv.EvaluationError):
        einderiv.parse("inv(M)[b,j]*v[j]").evaluate(M=np.eye(3), v=np.ones(1))


# ======================================================================= extremes

#: case -> what is acceptable: "ok" (works) and/or "limit" (an EinderivError naming
#: the limit; for these cases it must be a LimitError).
EXTREMES = {
    "deep_parens_5000": {"limit"},
    "deep_functions_5000": {"limit"},
    "deep_signs_5000": {"limit"},
    "deep_power_tower_5000": {"limit"},
    "deep_sum_over_5000": {"limit"},
    "deep_neg_parens_5000": {"limit"},
    "deep_inv_5000": {"limit"},
    "deep_diff_5000": {"limit"},
    "deep_cli_5000": {"ok"},
    "deep_signs_times_parens": {"ok", "limit"},
    "deep_tanh_at_limit_diff": {"ok", "limit"},
    "deep_tanh_at_limit_hessian": {"ok", "limit"},
    "deep_nested_sum_product_diff": {"ok", "limit"},
    "deep_power_chain_at_limit_diff": {"ok", "limit"},
    "sum_20000_equal_terms": {"ok"},
    "sum_20000_terms_parse_print": {"ok"},
    "sum_20000_terms_diff": {"ok"},
    "sum_20000_terms_evaluate": {"ok"},
    "sum_20000_terms_cli": {"ok"},
    "product_20000_factors": {"ok", "limit"},
    "product_20000_scalars_diff": {"ok"},
    "index_names_200_chars": {"ok"},
    "variable_names_200_chars": {"ok"},
    "names_100000_chars": {"ok"},
    "long_name_error_message": {"ok"},
    "rank_10_diff_evaluate": {"ok"},
    "rank_10_jacobian_20_axes": {"ok"},
    "rank_10_hessian": {"ok"},
    "rank_10_jacobian_too_big": {"limit"},
    "outer_product_too_big": {"limit"},
    "rank_30_jacobian": {"ok", "limit"},
    "rank_40_hessian_axes": {"ok", "limit"},
}

#: Generous: "a few seconds" on a quiet machine, with room for a loaded CI runner.
EXTREME_LIMIT_S = 30.0

#: The extremes of the quick tier (one that works, one refused with a LimitError); the
#: others are marked ``slow``.
QUICK_EXTREMES = {"rank_10_diff_evaluate", "deep_parens_5000"}


def test_extremes_table_covers_every_case():
    assert set(EXTREMES) == set(extremes.CASES)


@pytest.mark.parametrize("name", [n if n in QUICK_EXTREMES else pytest.param(n, marks=pytest.mark.slow)
                                  for n in sorted(EXTREMES)])
def test_extreme(name):
    r = extremes.run_case(name, EXTREME_LIMIT_S)
    assert r["status"] != "FAIL", f"{name}: {r['detail']} ({r['seconds']} s)"
    assert r["status"] in EXTREMES[name], f"{name}: {r['status']}: {r['detail']}"
    if r["status"] == "limit":
        assert r["detail"].startswith("LimitError"), f"{name}: {r['detail']}"


def test_bug_zero_denominator_prints_readably():
    """F29 (fuzz --seed 0, input 25470, ``0.0^-1 Y' I``): a constant that folds to a zero
    denominator printed as ``Y[i]/0``, which parse refuses (a literal '/0' is a
    ParseError); it prints as ``Y[i]*0**-1``, the same expression, inf as in numpy."""
    for text in ("Y[i]/(1-1)", "Y[i]*0**-1", "-2*A[i,j]*x[j]/(2-2)/s"):
        e = einderiv.parse(text)
        assert "/0" not in str(e)
        assert einderiv.parse(str(e)) == e
    m = einderiv.parse_matrix("0.0^-1 Y' I", shapes={"Y": (4,)})
    assert einderiv.parse(str(m)) == m
    with np.errstate(divide="ignore"):
        assert np.all(np.isposinf(einderiv.parse("Y[i]/(1-1)").evaluate(Y=np.ones(3))))
    with pytest.raises(einderiv.ParseError, match="division by zero"):
        einderiv.parse("Y[i]/0")


def test_bug_scalar_plus_identity_of_size_one():
    """F30 (fuzz --seed 25, input 6114, ``inv(A + I)`` with A a scalar and I of size 1):
    a sum whose only dense part is a scalar, with a delta written onto its diagonal,
    took the scalar for an array of the sum's shape when every axis had size 1 (the
    broadcast was skipped): a bare KeyError. Compared with the closed form at sizes
    1 and 3."""
    a = 0.3
    for n in (1, 3):
        for text in ("inv(A + I)", "A + I", "I - A"):
            m = einderiv.parse_matrix(text, shapes={"A": (), "I": (n,)})
            want = {"inv(A + I)": np.linalg.inv(a + np.eye(n)), "A + I": a + np.eye(n),
                    "I - A": np.eye(n) - a}[text]
            np.testing.assert_allclose(m.evaluate(A=a), want, rtol=1e-12)
        d = einderiv.diff(einderiv.parse_matrix("inv(A + I)", shapes={"A": (), "I": (n,)}), "A")
        inv = np.linalg.inv(a + np.eye(n))   # d inv(M)/dA = -inv(M) ones ones^T inv(M)
        np.testing.assert_allclose(d.evaluate(A=a), -inv @ np.ones((n, n)) @ inv, rtol=1e-12)


@pytest.mark.parametrize("text, closed", [
    # the fuzz input, whose printed text parse refused
    ("tanh(y[d,i])*(u[d]*v[d] -> []) -> [i]", lambda a: np.tanh(a["y"]).sum(0) * (a["u"] @ a["v"])),
    # printed plain, this meant w[i,j]*u[i]*v[i]: another expression (free j only)
    ("w[i,j]*(u[i]*v[i] -> [])", lambda a: a["w"] * (a["u"] @ a["v"])),
    # the clash two groupings out
    ("a[k]*(b[i]*(c[k]*e[k] -> []))", lambda a: np.outer(a["b"], a["a"]) * (a["c"] @ a["e"])),
    ("-w[i,j]*(-2*u[i]*v[i] -> [])", lambda a: 2 * a["w"] * (a["u"] @ a["v"])),
])
def test_bug_scoped_product_factor_prints_its_scope(text, closed):
    """F31 (fuzz --seed 28, input 29501): a product factor that sums an index which
    the enclosing product also uses printed as plain ``(u[d]*v[d])``, which parse
    reads as grouping, merging its ``d`` into the enclosing product: refused, or
    another expression. It keeps ``-> []`` there. Values against the closed form."""
    rng = np.random.default_rng(31)
    sizes = {"i": 4, "j": 3, "k": 5, "d": 2}
    vec = "d" if "y[" in text else "i"
    shapes = {"y": "di", "u": vec, "v": vec, "w": "ij", "a": "k", "b": "i", "c": "k", "e": "k"}
    e = einderiv.parse(text, simplify=False)
    arrays = {n: rng.normal(size=tuple(sizes[x] for x in shapes[n])) for n in e.variables}
    back = einderiv.parse(str(e), simplify=False)
    assert back.free == e.free == tuple(sorted(e.free))   # the closed forms' axis order
    np.testing.assert_allclose(back.evaluate(**arrays), closed(arrays), rtol=1e-12)


def test_bug_scoped_product_two_groupings_deep():
    """F31, built as IR (parse merges such groupings as it reads them): the inner
    product sums k, which the outermost product uses; the middle product, whose own
    factors do not clash, keeps the scope, so the printed text means the same."""
    from fractions import Fraction

    from einderiv.core.ir import Product, Tensor
    inner = Product(Fraction(1), (Tensor("c", ("k",)), Tensor("e", ("k",))), ())
    middle = Product(Fraction(1), (Tensor("b", ("i",)), inner), ("i",))
    outer = Product(Fraction(1), (Tensor("a", ("k",)), middle), ("i", "k"))
    rng = np.random.default_rng(31)
    arrays = {"a": rng.normal(size=5), "b": rng.normal(size=4), "c": rng.normal(size=5),
              "e": rng.normal(size=5)}
    want = np.outer(arrays["b"], arrays["a"]) * (arrays["c"] @ arrays["e"])
    back = einderiv.parse(str(outer), simplify=False)
    assert back.free == outer.free == ("i", "k")
    np.testing.assert_allclose(outer.evaluate(**arrays), want, rtol=1e-12)
    np.testing.assert_allclose(back.evaluate(**arrays), want, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.longdouble, np.clongdouble, np.float16])
@pytest.mark.parametrize("which", ["S", "b"])
def test_bug_linalg_of_long_double_arrays(dtype, which):
    """F32 (fuzz --seed 50, input 1668): ``inv(M)[k,l]*b[l]`` runs as a solve; a
    long-double right-hand side (or a complex long-double matrix) reached
    numpy.linalg, which refuses it: a bare TypeError. Such arrays are promoted as
    numpy promotes integers (float64, complex128). Values against the closed form."""
    rng = np.random.default_rng(32)
    S = rng.normal(size=(4, 4)) + 4 * np.eye(4)
    x, b = rng.normal(size=(4, 4)), rng.normal(size=4)
    e = einderiv.parse("inv(S[a,c] + 1/10*tanh(x[a,c]))[k,l]*b[l]")
    args = {"S": S, "x": x, "b": b}
    args[which] = args[which].astype(dtype)
    got = e.evaluate(**args)
    want = np.linalg.solve(S.astype(np.float64) + 0.1 * np.tanh(x), b)
    np.testing.assert_allclose(got, want, rtol=1e-2 if dtype == np.float16 else 1e-10)
    for text, closed in (("inv(S)[i,j]", np.linalg.inv), ("det(S)", np.linalg.det)):
        np.testing.assert_allclose(einderiv.parse(text).evaluate(S=S.astype(dtype)),
                                   closed(S), rtol=1e-2 if dtype == np.float16 else 1e-10)


@pytest.mark.parametrize("shape_a, shape_b", [((0, 0), (0, 2, 3)), ((4, 4), (4, 0, 3)),
                                              ((0, 0), (0, 0))])
def test_bug_solve_with_an_empty_axis(shape_a, shape_b):
    """F33 (fuzz --seed 52, input 26206, ``x x'^-1`` with x 0 x 0): a solve whose
    right-hand side has an empty axis reshaped it with -1, which numpy cannot infer
    for size 0: a bare ValueError. Values against numpy's own solve."""
    rng = np.random.default_rng(33)
    A = rng.normal(size=shape_a) + 4 * np.eye(shape_a[0])
    B = rng.normal(size=shape_b)
    text = "inv(A)[i,j]*B[" + ",".join("jkl"[:len(shape_b)]) + "]"
    got = einderiv.parse(text).evaluate(A=A, B=B)
    want = np.linalg.solve(A, B.reshape(shape_a[0], int(np.prod(shape_b[1:])))).reshape(shape_b)
    assert got.shape == want.shape == shape_b
    np.testing.assert_allclose(got, want, rtol=1e-12)
    namespace: dict = {}   # the exported code reshapes the same way
    exec(einderiv.parse(text).to_python("f", "numpy"), namespace)  # noqa: S102
    np.testing.assert_allclose(namespace["f"](A=A, B=B), want, rtol=1e-12)
    m = einderiv.parse_matrix("x x'⁻¹", {"x": (0, 0)})
    assert m.evaluate(x=np.zeros((0, 0))).shape == (0, 0)


@pytest.mark.parametrize("text", [
    "(x**3)**(1/3)*(x**3)**(2/3)*x**-3",        # merged to (x**3)**1 = x**3, then with x**-3
    "(1+exp(x))**(1/2)*(1+exp(x))**(-3/2)",     # merged to (1+exp(x))**-1 = sigmoid(-x)
    "sigmoid(-x)*(1+exp(x))**-1",
    "(x**2)**(1/2)*(x**2)**(1/2)*x**-2",
])
def test_bug_merged_powers_go_through_the_power_rules(text):
    """F34 (fuzz --seed 57, input 5272): ``d/dq ((q**-2)**(1/2))**q`` kept the factor
    ``(q**-2)**-1 q**-2``, which simplifying the printed result turned into 1: powers
    merged in a product skipped the rules for a power of a power (and the sigmoid
    rule), so the result was not in canonical form. Values against numpy."""
    e = einderiv.parse(text)
    assert einderiv.parse(str(e)) == e
    x = np.array([0.3, 1.7, 2.5])
    raw = einderiv.parse(text, simplify=False)
    closed = {"(x**3)**(1/3)*(x**3)**(2/3)*x**-3": np.ones_like(x),
              "(1+exp(x))**(1/2)*(1+exp(x))**(-3/2)": 1 / (1 + np.exp(x)),
              "sigmoid(-x)*(1+exp(x))**-1": 1 / (1 + np.exp(x)) ** 2,
              "(x**2)**(1/2)*(x**2)**(1/2)*x**-2": np.ones_like(x)}[text]
    for form in (e, raw):
        np.testing.assert_allclose([form.evaluate(x=v) for v in x], closed, rtol=1e-12)


def test_bug_power_of_a_power_derivative_is_canonical():
    """F34, the fuzz input: for q > 0, ((q**-2)**(1/2))**q = q**-q, whose derivative
    is -q**-q (log q + 1)."""
    d = einderiv.diff("((q**-2)**(1/2))**q", "q")
    assert einderiv.parse(str(d)) == d
    for q in (0.4, 1.3, 2.2):
        np.testing.assert_allclose(d.evaluate(q=q), -q ** -q * (np.log(q) + 1), rtol=1e-12)


def test_bug_symbolic_power_of_a_power_merged():
    """F35 (fuzz --seed 3, input 510): merging ``((p**q)**(3/2))**(-1/2)`` with the
    factors of its derivative left a symbolic exponent, read as a number: a bare
    TypeError from Fraction(None) in the second derivative. For p > 0 the expression
    is p**(-3q/4), whose derivatives by p are k p**(k - 1) and k (k - 1) p**(k - 2),
    k = -3q/4."""
    text = "((p**q)**(3/2))**(-1/2)"
    d = einderiv.diff(text, "p")
    d2 = einderiv.diff(d, "p")
    assert einderiv.parse(str(d2)) == d2
    for p, q in ((0.4, 0.6), (1.7, -1.3), (2.2, 2.0)):
        k = -0.75 * q
        np.testing.assert_allclose(einderiv.parse(text).evaluate(p=p, q=q), p ** k, rtol=1e-12)
        np.testing.assert_allclose(d.evaluate(p=p, q=q), k * p ** (k - 1), rtol=1e-12)
        np.testing.assert_allclose(d2.evaluate(p=p, q=q), k * (k - 1) * p ** (k - 2), rtol=1e-11)
