"""Property tests over random well-formed expressions (tests/strategies.py).

Properties:

1. ``diff`` agrees with central finite differences of ``evaluate``, for a random
   variable of the expression (or one it does not use: a zero derivative), with
   chosen or explicit derivative index names; second derivatives of scalar
   expressions agree with finite differences of the first and are symmetric.
2. ``parse(str(e)) == e`` for random expressions and for their derivatives.
3. Simplification never changes values: ``parse(t, simplify=False)`` and
   ``parse(t)`` have the same free indices and evaluate to the same array (and so
   does the printed text of ``parse(t)``).
4. ``str()`` of a derivative parses back to the same free indices and values.

All tests are derandomized and use no example database, so CI is deterministic.
Properties 1 (first derivatives), 2, 3 and 4 over hundreds of draws are marked ``slow``;
the quick tier (``-m "not slow"``) keeps the second-derivative property and the
``test_regression_*`` functions, which check the same properties on fixed inputs.
The named ``test_regression_*`` functions are minimal reproducers of bugs these
properties found.
"""

from __future__ import annotations

import numpy as np
import pytest
from fd import central_diff_with_error
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from strategies import SHAPES, SIZE, Generated, expressions, make_values

import einderiv
from einderiv import EvaluationError

PROPERTY = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

seeds = st.integers(0, 2**32 - 1)
#: Include traces (an index twice on one tensor: ``2*M[k,k]``) and Kronecker deltas.
TRACES = True
DELTAS = True

# ----------------------------------------------------------------------------- helpers

#: Values beyond this are not "numerically tame"; such draws are discarded (rare).
_HUGE = 1e6


def _finite_tame(*arrays: np.ndarray) -> bool:
    return all(np.all(np.isfinite(a)) and np.max(np.abs(a), initial=0.0) < _HUGE for a in arrays)


def assert_matches_fd(symbolic: np.ndarray, numeric: tuple[np.ndarray, np.ndarray],
                      value: np.ndarray, what: str) -> None:
    """``symbolic`` equals the finite differences up to 1e-6 of the largest derivative
    entry, plus rounding (about 1e-16 |f| / h) and the estimated truncation error."""
    numeric, fd_err = numeric
    assert symbolic.shape == numeric.shape, (what, symbolic.shape, numeric.shape)
    scale = max(np.max(np.abs(numeric), initial=0.0), np.max(np.abs(symbolic), initial=0.0))
    # Finite differences must have converged for the comparison to mean anything
    # (``sin(exp(M[i,j]**2))`` oscillates faster than any usable step): discard such draws.
    assume(np.max(fd_err, initial=0.0) <= 1e-6 * scale + 1e-10)
    fscale = np.max(np.abs(value), initial=0.0)
    err = np.abs(symbolic - numeric)
    tol = 1e-6 * scale + 1e-10 * fscale + 1e-10 + 10 * fd_err
    bad = err > tol
    assert not np.any(bad), f"{what}: max abs error {np.max(err):.3e} (scale {scale:.3e}); " \
                            f"symbolic=\n{symbolic}\nnumeric=\n{numeric}"


def assert_same_values(a: np.ndarray, b: np.ndarray, what: str, rtol: float = 1e-9) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), 1.0)
    err = np.max(np.abs(a - b), initial=0.0)
    assert err <= rtol * scale, f"{what}: max abs difference {err:.3e}\n{a}\nvs\n{b}"


def _wrt_spec(draw, name: str, avoid: tuple[str, ...]) -> str:
    """``name`` alone (einderiv picks index names) or with explicit names that are not
    free in the expression (they may clash with its summed indices: capture test)."""
    rank = len(SHAPES[name])
    if rank == 0 or draw(st.booleans()):
        return name
    pool = [i for i in [*SIZE, "m", "n", "a", "b"] if i not in avoid]
    names = draw(st.lists(st.sampled_from(pool), unique=True, min_size=rank, max_size=rank))
    return f"{name}[{','.join(names)}]"


def _pick_variable(draw, e: einderiv.Expr) -> tuple[str, bool]:
    """A variable of ``e``; sometimes one it does not use (needs ``shapes``)."""
    used = sorted(e.variables)
    if not used or draw(st.integers(0, 7)) == 0:
        return draw(st.sampled_from(sorted(SHAPES))), True
    return draw(st.sampled_from(used)), draw(st.booleans())


def _diff(e, wrt: str, with_shapes: bool) -> einderiv.Expr:
    return einderiv.diff(e, wrt, shapes=SHAPES if with_shapes else None)


# ------------------------------------------------------------------ 1. derivatives


@pytest.mark.slow
@settings(PROPERTY, max_examples=250)
@given(g=expressions(smooth=True, traces=TRACES, deltas=DELTAS),
       seed=seeds, data=st.data())
def test_diff_matches_finite_differences(g: Generated, seed: int, data) -> None:
    e = einderiv.parse(g.text)
    assert set(e.free) == set(g.free), "the generator's free indices disagree with parse"
    vals = make_values(seed)
    value = np.asarray(e.evaluate(**vals))
    assume(_finite_tame(value))

    name, with_shapes = _pick_variable(data.draw, e)
    wrt = _wrt_spec(data.draw, name, e.free)
    note(f"wrt={wrt!r} shapes={with_shapes}")
    d = _diff(e, wrt, with_shapes)
    note(f"derivative: {d}")
    rank = len(SHAPES[name])
    assert len(d.free) == rank + len(e.free)
    assert d.free[rank:] == e.free, "derivative axes must be (new..., expression's free...)"
    if "[" in wrt:
        assert d.free[:rank] == tuple(wrt[wrt.index("[") + 1:-1].split(","))
    # diff of the text is diff of the parsed expression
    assert _diff(g.text, wrt, with_shapes) == d

    symbolic = np.asarray(d.evaluate(**vals), dtype=float)
    assume(_finite_tame(symbolic))
    numeric = central_diff_with_error(lambda a: e.evaluate(**a), vals, name, 1e-3, accuracy=4)
    assert_matches_fd(symbolic, numeric, value, f"d/d{wrt} of {g.text}")
    # differentiating the unsimplified expression gives the same values
    # (einderiv may choose other new index names: they avoid the expression's own)
    raw = _diff(einderiv.parse(g.text, simplify=False), wrt, with_shapes)
    assert raw.free[rank:] == d.free[rank:]
    assert_same_values(raw.evaluate(**vals), symbolic, f"d/d{wrt} of unsimplified {g.text}",
                       rtol=1e-8)


@settings(PROPERTY, max_examples=80)
@given(g=expressions(free=(), smooth=True, max_depth=2, traces=TRACES, deltas=DELTAS),
       seed=seeds, data=st.data())
def test_second_derivatives_match_fd_and_are_symmetric(g: Generated, seed: int, data) -> None:
    e = einderiv.parse(g.text)
    assert e.free == ()
    vals = make_values(seed)
    value = np.asarray(e.evaluate(**vals))
    assume(_finite_tame(value))
    used = sorted(e.variables) or ["x"]
    v = data.draw(st.sampled_from(used), label="v")
    w = data.draw(st.sampled_from(used), label="w")
    rv, rw = len(SHAPES[v]), len(SHAPES[w])

    dv = _diff(e, v, True)
    dvw = _diff(dv, w, True)
    note(f"d/d{v}: {dv}\nd/d{w} d/d{v}: {dvw}")
    assert len(dvw.free) == rw + rv
    grad = np.asarray(dv.evaluate(**vals), dtype=float)
    hess = np.asarray(dvw.evaluate(**vals), dtype=float)
    assume(_finite_tame(grad, hess))
    numeric = central_diff_with_error(lambda a: dv.evaluate(**a), vals, w, 1e-3, accuracy=4)
    assert_matches_fd(hess, numeric, grad, f"d/d{w} d/d{v} of {g.text}")

    # symmetry: d2/dw dv == (d2/dv dw) with the two groups of axes swapped
    dwv = dvw if v == w else _diff(_diff(e, w, True), v, True)
    other = np.asarray(dwv.evaluate(**vals), dtype=float)
    swapped = np.transpose(other, tuple(range(rv, rv + rw)) + tuple(range(rv)))
    assert_same_values(hess, swapped, f"symmetry of d2/d{w}d{v} of {g.text}", rtol=1e-8)


# ------------------------------------------------------------ 2. print / parse round trip


@pytest.mark.slow
@settings(PROPERTY, max_examples=250)
@given(g=expressions(smooth=False, traces=TRACES, deltas=DELTAS), data=st.data())
def test_print_parse_roundtrip(g: Generated, data) -> None:
    e = einderiv.parse(g.text)
    text = str(e)
    note(f"printed: {text}")
    assert einderiv.parse(text) == e
    assert str(einderiv.parse(text)) == text

    name, with_shapes = _pick_variable(data.draw, e)
    wrt = _wrt_spec(data.draw, name, e.free)
    d = _diff(e, wrt, with_shapes)
    dtext = str(d)
    note(f"d/d{wrt}: {dtext}")
    assert einderiv.parse(dtext) == d
    assert str(einderiv.parse(dtext)) == dtext


def _sized_wrapper(text: str, free: tuple[str, ...], sizes: dict[str, int]) -> str:
    """``text`` times ones that carry every free index on a variable, so evaluation
    knows all sizes even where the text alone cannot (``delta[a,i]``, d x[i] / dx)."""
    vec = {3: "x", 4: "y", 5: "z"}
    ones = "*".join(f"{vec[sizes[i]]}[{i}]" for i in free)
    return f"(1 + 0*{ones})*({text}) -> [{','.join(free)}]"


def printed_values(e: einderiv.Expr, vals: dict, sizes: dict[str, int]) -> np.ndarray:
    """The value of ``parse(str(e))`` (which must have ``e``'s free indices). Where the
    text alone cannot fix the size of a free index, the sizes are supplied."""
    text = str(e)
    back = einderiv.parse(text, shapes=SHAPES)
    assert back.free == e.free, (text, back.free, e.free)
    try:
        return np.asarray(back.evaluate(**vals))
    except EvaluationError as exc:
        # ``delta[a,i]`` (d x[i] / dx) has no size for a; see the regression tests
        # for the cases einderiv can infer.
        if "cannot tell the size" not in str(exc) or not e.free:
            raise
        wrapped = einderiv.parse(_sized_wrapper(text, e.free, sizes), simplify=False)
        return np.asarray(wrapped.evaluate(**vals))


# ------------------------------------------------------- 3. simplification keeps values


@pytest.mark.slow
@settings(PROPERTY, max_examples=300)
@given(g=expressions(smooth=False, traces=TRACES, deltas=DELTAS), seed=seeds)
def test_simplification_preserves_values(g: Generated, seed: int) -> None:
    raw = einderiv.parse(g.text, simplify=False)
    simp = einderiv.parse(g.text)
    note(f"simplified: {simp}")
    assert set(raw.free) == set(g.free), "the generator's free indices disagree with parse"
    assert simp.free == raw.free
    assert einderiv.parse(g.text, shapes=SHAPES) == simp  # the shapes are consistent
    vals = make_values(seed)
    a = np.asarray(raw.evaluate(**vals))
    assume(_finite_tame(a))
    assert_same_values(a, simp.evaluate(**vals), f"simplify({g.text})")
    # and the printed text of the simplified expression means the same
    sizes = {i: SIZE[i] for i in simp.free}
    assert_same_values(a, printed_values(simp, vals, sizes), f"parse(str(parse({g.text!r})))")


# ------------------------------------------------- 4. printed derivatives keep values


@pytest.mark.slow
@settings(PROPERTY, max_examples=200)
@given(g=expressions(smooth=True, traces=TRACES, deltas=DELTAS),
       seed=seeds, data=st.data())
def test_printed_derivative_has_same_values(g: Generated, seed: int, data) -> None:
    e = einderiv.parse(g.text)
    vals = make_values(seed)
    name, with_shapes = _pick_variable(data.draw, e)
    wrt = _wrt_spec(data.draw, name, e.free)
    d = _diff(e, wrt, with_shapes)
    text = str(d)
    note(f"d/d{wrt}: {text}")
    expected = np.asarray(d.evaluate(**vals))
    assume(_finite_tame(expected))
    rank = len(SHAPES[name])
    sizes = {i: n for i, n in zip(d.free, SHAPES[name])}
    sizes.update({i: SIZE[i] for i in d.free[rank:]})
    got = printed_values(d, vals, sizes)
    assert_same_values(expected, got, f"parse(str(d/d{wrt} {g.text}))")


# ------------------------------------------------------------------------ regressions
# Minimal reproducers of bugs the properties above found (see the module docstring).


def _vals() -> dict:
    return make_values(0)


def test_regression_repeated_index_in_product_evaluates() -> None:
    """A tensor with a repeated index inside a product is a trace (Einstein rule)."""
    M = _vals()["M"]
    assert einderiv.parse("2*M[i,i]").free == ()
    np.testing.assert_allclose(einderiv.parse("2*M[i,i]").evaluate(M=M), 2 * np.trace(M))
    np.testing.assert_allclose(einderiv.parse("sum[i](M[i,i] -> [i])").evaluate(M=M), np.trace(M))
    x = _vals()["x"]
    np.testing.assert_allclose(einderiv.parse("x[j]*M[i,i]").evaluate(M=M, x=x), np.trace(M) * x)
    np.testing.assert_allclose(einderiv.parse("2*inv(M)[i,i]").evaluate(M=M),
                               2 * np.trace(np.linalg.inv(M)))


def test_regression_lone_repeated_index_same_as_in_product() -> None:
    """``M[i,i]`` and ``1*M[i,i]`` follow the same rule (free indices and values)."""
    M = _vals()["M"]
    lone, prod = einderiv.parse("M[i,i]"), einderiv.parse("1*M[i,i]")
    assert lone.free == prod.free
    np.testing.assert_allclose(lone.evaluate(M=M), prod.evaluate(M=M))


@pytest.mark.parametrize("text", ["x[i] - x[i]", "s - s", "exp(x[i]) - exp(x[i])",
                                  "-x[i] + x[i]"])
def test_regression_like_terms_cancel(text: str) -> None:
    """collect_terms adds terms equal up to their coefficient: ``t - t`` is zero."""
    e = einderiv.parse(text)
    zero = einderiv.parse(f"0*({text.split(' ')[0].lstrip('-')})")
    assert e == zero, str(e)


def test_regression_transposed_lone_tensor_prints_arrow() -> None:
    """A one-factor product that transposes a tensor must print its axis order."""
    A = _vals()["A"]
    for e in (einderiv.parse("(A[p,i] -> [i,p])"), einderiv.diff("A[p,i]*s", "s")):
        assert e.free == ("i", "p")
        back = einderiv.parse(str(e))
        assert back == e, str(e)
        np.testing.assert_allclose(back.evaluate(A=A, s=1.0), A.T)


def test_regression_delta_sized_by_sibling_term() -> None:
    """A delta's size can come from another term of the same sum."""
    y = _vals()["y"]
    want = np.eye(4) + np.outer(y, y)
    for text in ("delta[i,p] + y[i]*y[p]", "y[i]*y[p] + delta[i,p]",
                 str(einderiv.diff("y[p]*y[q]*y[q]", "y[i]"))):
        e = einderiv.parse(text)
        if text.startswith("y[a]"):  # d/dy[i] of |y|^2 y[p]: |y|^2 delta + 2 y y^T
            want = (y @ y) * np.eye(4) + 2 * np.outer(y, y)
        np.testing.assert_allclose(e.evaluate(y=y), want, err_msg=text)


def test_regression_delta_sized_by_partner_index() -> None:
    """``delta[b,i]`` is square: ``b`` has the size of ``i``."""
    v = _vals()
    np.testing.assert_allclose(einderiv.parse("delta[b,i]*x[i] -> [b,i]").evaluate(x=v["x"]),
                               np.diag(v["x"]))
    d = einderiv.diff("tanh(x[i]*y[p])*y[p]", "x")
    np.testing.assert_allclose(einderiv.parse(str(d)).evaluate(**v), d.evaluate(**v))


def test_regression_derivative_with_sum_factor_roundtrips() -> None:
    for wrt in ("x", "x[j]"):
        d = einderiv.diff("tanh(x[i]*y[p])*y[p]", wrt)
        assert einderiv.parse(str(d)) == d, str(d)


def test_regression_broadcast_one_derivative_prints_parseably() -> None:
    d = einderiv.diff("x[i] + s", "s")
    back = einderiv.parse(str(d))
    assert back == d
    np.testing.assert_allclose(d.evaluate(**_vals()), np.ones(3))


def test_regression_zero_derivative_of_inv_evaluates() -> None:
    d = einderiv.diff("inv(M)[i,j]", "x", shapes=SHAPES)
    assert d.free == ("a", "i", "j")
    np.testing.assert_array_equal(d.evaluate(**_vals()), np.zeros((3, 3, 3)))


def test_regression_cancelled_terms_keep_sizes() -> None:
    v = _vals()
    e = einderiv.parse("A[p,i]*z[r] + s - A[p,i]*z[r]")
    np.testing.assert_allclose(e.evaluate(**v), np.full((3, 4, 5), float(v["s"])))
    assert einderiv.parse(str(e)) == e


@pytest.mark.parametrize("text", ["sum[j](tanh(x[i]*x[j]))", "sum[j,k](tanh(x[i]*x[j]*x[k]))"])
def test_regression_renamed_inner_product_roundtrips(text: str) -> None:
    e = einderiv.parse(text)
    assert einderiv.parse(str(e)) == e, str(e)


def test_regression_all_broadcast_sum_roundtrips() -> None:
    v = _vals()
    d = einderiv.diff("x[i] + tanh(s)", "s")
    assert str(d) == "(1 - tanh(s)**2)*delta[i,i] -> [i]"
    back = einderiv.parse(str(d))
    assert back == d, str(d)
    np.testing.assert_allclose(d.evaluate(**v), np.full(3, 1 - np.tanh(v["s"]) ** 2))
    # The text no longer says which array gives the size of i (x dropped out of the
    # derivative): evaluating the re-parsed text says so instead of guessing.
    with pytest.raises(einderiv.EvaluationError, match="size of index 'i'"):
        back.evaluate(**v)


@pytest.mark.parametrize("text", ["A[p,j]*M[i,l]*M[j,l]*x[i]", "M[i,l]*M[j,l]*x[i]*y[p]*A[p,j]"])
def test_regression_summed_names_are_a_fixed_point(text: str) -> None:
    e = einderiv.parse(text)
    assert str(einderiv.parse(str(e))) == str(e)
    assert einderiv.parse(str(e)) == e


def test_regression_arrow_over_sum_with_scalar_term() -> None:
    v = _vals()
    e = einderiv.parse("x[i] + y[p]*y[p] -> [i]")
    assert e.free == ("i",)
    np.testing.assert_allclose(e.evaluate(**v), v["x"] + v["y"] @ v["y"])
    e = einderiv.parse("(A[p,i] + 2*M[j,j] -> [i,p])")
    np.testing.assert_allclose(e.evaluate(**v), v["A"].T + 2 * np.trace(v["M"]))


def test_regression_delta_against_sum_factor() -> None:
    v = _vals()
    e = einderiv.parse("(y[p]*y[q] + s)*delta[p,q]")
    assert e.free == ()
    np.testing.assert_allclose(e.evaluate(**v), v["y"] @ v["y"] + 4 * v["s"])
    assert einderiv.parse(str(e)) == e
    e = einderiv.parse("(B[i,r]*z[v] + z[r]*z[v]*x[i])*delta[v,r]")
    np.testing.assert_allclose(e.evaluate(**v), v["B"] @ v["z"] + v["x"] * (v["z"] @ v["z"]))
    assert einderiv.parse(str(e)) == e


@pytest.mark.parametrize("text", ["sum[l](x[l] - s - x[l])", "sum[l](s + 0*x[l])"])
def test_regression_cancelled_carrier_keeps_size_in_text(text: str) -> None:
    """Cancelling the only tensor that carried a summed index keeps its size for
    evaluation (a hint on the node); the printed text names it, ``size(x, 0)``
    (docs/language.md, "Sizes"), so the re-parsed text evaluates too."""
    v = _vals()
    e = einderiv.parse(text)
    want = einderiv.parse(text, simplify=False).evaluate(**v)
    np.testing.assert_allclose(e.evaluate(**v), want)
    back = einderiv.parse(str(e))
    assert back == e
    assert "size(x, 0)" in str(e)  # since issue 14 the text says it: size(x, 0)
    np.testing.assert_allclose(back.evaluate(**v), want)


def test_regression_delta_into_function_argument() -> None:
    v = _vals()
    e = einderiv.parse("cos(M[i,j])*delta[i,j]")
    np.testing.assert_allclose(e.evaluate(**v), np.sum(np.cos(np.diag(v["M"]))))
    assert einderiv.parse(str(e)) == e
    e = einderiv.parse("cos(M[i,j])*delta[i,j]*z[r]")
    np.testing.assert_allclose(e.evaluate(**v), np.sum(np.cos(np.diag(v["M"]))) * v["z"])
    d = einderiv.diff("cos(M[i,j])*delta[i,j]", "M")
    np.testing.assert_allclose(d.evaluate(**v), -np.diag(np.sin(np.diag(v["M"]))))
    assert einderiv.parse(str(d)) == d


def test_regression_coefficient_times_summed_sum_roundtrips() -> None:
    e = einderiv.parse("2*sum[a](x[a]*y[p] + exp(x[a])*y[p])")
    assert einderiv.parse(str(e)) == e, str(e)
    d = einderiv.diff("2*inv(M[i,l] + x[i]*x[l])[k,k]", "x")
    assert einderiv.parse(str(d)) == d, str(d)


@pytest.mark.parametrize("text, want", [
    ("exp(M[i,l])*delta[i,l]*x[i] -> [i]", lambda v: v["x"] * np.exp(np.diag(v["M"]))),
    ("(1 + M[i,l]**2)**(-1)*delta[i,l]*x[i] -> [i]",
     lambda v: v["x"] / (1 + np.diag(v["M"]) ** 2)),
])
def test_regression_diagonal_in_function_prints_explicitly(text, want) -> None:
    """A diagonal made by contracting a delta into a function argument keeps its meaning
    in the printed text (a lone ``M[i,i]`` in its own scope is a trace)."""
    v = _vals()
    e = einderiv.parse(text)
    np.testing.assert_allclose(e.evaluate(**v), want(v))
    np.testing.assert_allclose(einderiv.parse(str(e)).evaluate(**v), want(v))


@pytest.mark.parametrize("text", ["(y[w] + s - y[w])*delta[w,q]",
                                  "-2*((y[p]*y[w] + s) - y[p]*y[w])*delta[w,q]"])
def test_regression_delta_renamed_index_keeps_size(text: str) -> None:
    v = _vals()
    want = einderiv.parse(text, simplify=False).evaluate(**v)
    np.testing.assert_allclose(einderiv.parse(text).evaluate(**v), want)


def test_regression_many_tied_factors_roundtrip() -> None:
    e = einderiv.parse("2*y[a]*y[a]*y[b]*y[c]*y[c]*y[c]*z[d]*z[d]*z[r] -> [r]")
    assert str(einderiv.parse(str(e))) == str(e)
    assert einderiv.parse(str(e)) == e


@pytest.mark.parametrize("text", ["sum[v](z[v]*x[i]*y[p] - s) -> [p,i]",
                                  "sum[v](exp(z[v]*x[i]*y[p]) - s) -> [p,i]",
                                  "sum[j](x[j]*x[i]*y[p] + 3) -> [p,i]"])
def test_regression_summed_sum_with_root_arrow(text: str) -> None:
    v = _vals()
    want = einderiv.parse(text, simplify=False).evaluate(**v)
    e = einderiv.parse(text)
    np.testing.assert_allclose(e.evaluate(**v), want)
    np.testing.assert_allclose(einderiv.parse(str(e)).evaluate(**v), want)
    assert einderiv.parse(str(e)) == e


@pytest.mark.parametrize("text", ["z[r] + (s + 2) -> [r]", "(z[r] - (s + 2)) -> [r]"])
def test_regression_arrow_over_sum_with_scalar_subsum(text: str) -> None:
    v = _vals()
    sign = -1 if " - " in text else 1
    np.testing.assert_allclose(einderiv.parse(text).evaluate(**v), v["z"] + sign * (v["s"] + 2))


@pytest.mark.parametrize("text", ["sum[l,w](A[w,l]*y[p] + A[p,l]*y[w])",
                                  "sum[l,w](A[w,l]*y[p]*y[q] + A[p,l]*y[q]*y[w]) -> [p,q]"])
def test_regression_sum_over_sum_names_fixed_point(text: str) -> None:
    e = einderiv.parse(text)
    assert str(einderiv.parse(str(e))) == str(e)
    assert einderiv.parse(str(e)) == e


@pytest.mark.parametrize("text", ["sum[q](y[q] - s)", "sum[l](x[l] - s - x[l])"])
def test_regression_differentiated_carrier_keeps_size_in_text(text: str) -> None:
    """d/ds sums a constant over an index whose only carrier was differentiated away."""
    v = _vals()
    d = einderiv.diff(text, "s")
    want = -4.0 if "y" in text else -3.0
    np.testing.assert_allclose(d.evaluate(**v), want)
    # The text names the array that sizes the summed index (issue 14): size(y, 0).
    back = einderiv.parse(str(d))
    assert back == d
    assert str(d) == ("-size(y, 0)" if "y" in text else "-size(x, 0)")
    np.testing.assert_allclose(back.evaluate(**v), want)


@pytest.mark.parametrize("text, wrt", [
    ("sum[k](M[l,k] + s - M[l,k])*x[l]", None),
    ("sum[k](M[l,k] + s - M[l,k])", None),
    ("(x[l] - s)*x[k] -> []", "s"),
    ("sum[l](M[l,i]*x[i] + s)", "s"),
    ("(x[l] - s)*x[k]*M[i,k] -> [i]", "s"),
])
def test_regression_size_factor_prints_evaluably(text: str, wrt: str | None) -> None:
    """A summed size factor (``delta[a,a]`` whose carrier cancelled or was
    differentiated away) keeps its size for evaluation; its printed text says
    which array gives that size, ``size(M, 1)`` (docs/language.md, "Sizes"), so the
    re-parsed text evaluates to the same value."""
    v = _vals()
    e = einderiv.parse(text)
    if wrt is None:
        want = einderiv.parse(text, simplify=False).evaluate(**v)
        np.testing.assert_allclose(e.evaluate(**v), want)
    else:
        want = einderiv.diff(einderiv.parse(text, simplify=False), wrt).evaluate(**v)
        e = einderiv.diff(e, wrt)
        np.testing.assert_allclose(e.evaluate(**v), want)  # evaluates with its size hints
    back = einderiv.parse(str(e))
    assert back == e
    assert "size(" in str(e)
    if "delta[" in str(e):  # a ones vector along l, 's*size(M, 1)*delta[l,l] -> [l]': the
        # text does not say l's size (docs/language.md, "Sizes")
        with pytest.raises(einderiv.EvaluationError, match="size of index 'l'"):
            back.evaluate(**v)
    else:
        np.testing.assert_allclose(back.evaluate(**v), e.evaluate(**v))
