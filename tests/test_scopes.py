"""Scopes of index names (issue 21): what an index name means depends on where it stands.

* The argument of inv/det/logdet is closed: an ``a`` inside never meets an ``a``
  outside -- not in sizes, renaming, delta contraction or printing.
* A product's summed indices are its own: in ``x[i]*sum[i](y[i])`` x and y may
  differ in length, and a summed ``i`` never sizes a free ``i``.
* ``->`` on a sum means the same whatever the order of the terms, signs or number
  factors around it; where a term lacks an index the arrow sums over, the reading is
  ambiguous and refused.
* ``diff`` by a variable the text uses but simplification removed (``s + -s``) is a
  zero of the right shape.

Each reproducer of the issue is here, checked against numpy closed forms on every
evaluation path (evaluate, compile, the exported code, the matrix form where one
exists) and finite differences for derivatives; sizes are distinct (2, 3, 4, 5) so
that a size taken from the wrong index shows.
"""

from __future__ import annotations

import numpy as np
import pytest
from fd import assert_close_to_fd, central_diff

import einderiv
from einderiv import EinderivError

RNG = np.random.default_rng(21)
M4 = np.eye(4) * 3 + 0.3 * RNG.normal(size=(4, 4))   # well conditioned, det > 0
X2 = RNG.normal(size=2)


def values(e: einderiv.Expr, arrays: dict) -> list[tuple[str, np.ndarray]]:
    """The value of ``e`` by every path: evaluate, compile, exported numpy code, and the
    matrix form where ``to_matrix`` finds one."""
    found = [("evaluate", e.evaluate(**arrays)), ("compile", e.compile()(**arrays))]
    namespace: dict = {}
    exec(e.to_python("f"), namespace)  # noqa: S102 - einderiv's own export
    f = namespace["f"]
    found.append(("to_python", f(**{k: v for k, v in arrays.items()
                                    if k in f.__code__.co_varnames})))
    try:
        m = e.to_matrix()
    except einderiv.NotMatrixExpressible:
        return found
    found.append(("to_matrix", m.evaluate(**arrays)))
    return found


def assert_all_paths(e: einderiv.Expr, arrays: dict, want: np.ndarray) -> None:
    want = np.asarray(want)
    for path, got in values(e, arrays):
        got = np.asarray(got)
        assert got.shape == want.shape, (path, str(e), got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"{path}: {e}")


# ---------------------------------------------------- A: inv/det/logdet are closed scopes


@pytest.mark.parametrize("text", ["sum[a](det(M[g,a]) + 0*x[a])",
                                  "sum[a](0*x[a] + det(M[g,a]))"])
def test_det_argument_does_not_size_the_outer_index(text: str) -> None:
    """M is 4x4, x has length 2: the sum over a has 2 terms, not 4 (was 4 det M in
    one term order)."""
    e = einderiv.parse(text)
    assert_all_paths(e, {"M": M4, "x": X2}, 2 * np.linalg.det(M4))


def test_logdet_argument_does_not_size_a_derivative() -> None:
    """d/ds sum[a](logdet(M[g,a]) + s + x[a]) is the length of x (printed as
    delta[a,a], which evaluated to 4 from M's axis)."""
    d = einderiv.diff("sum[a](logdet(M[g,a]) + s + x[a])", "s")
    assert_all_paths(d, {"M": M4, "x": X2, "s": 0.7}, 2.0)


@pytest.mark.parametrize("text, arrays, shape", [
    ("logdet(M[g,a]) + s + x[a]", {"x": X2}, (2,)),
    ("logdet(M[g,a]) + (s + F[a,b,c])", {"F": RNG.normal(size=(2, 3, 4))}, (2, 3, 4)),
])
def test_logdet_argument_does_not_shape_a_derivative(text: str, arrays: dict, shape) -> None:
    """A gradient by a scalar broadcast along the outer indices has their shape, with
    the outer sizes (was (4,) and (4, 3, 4): a's size taken from M)."""
    arrays = {"M": M4, "s": 0.3, **arrays}
    for shapes in (None, {k: np.shape(v) for k, v in arrays.items()}):
        d = einderiv.diff(text, "s", shapes=shapes)
        assert_all_paths(d, arrays, np.ones(shape))
        numeric = central_diff(lambda a: einderiv.parse(text).evaluate(**a), arrays, "s")
        assert_close_to_fd(d.evaluate(**arrays), numeric)


def test_det_of_outer_product_keeps_outer_sizes() -> None:
    """det(y z^T) has its own a and c: the product's (a, b) are H's axes, (3, 4), not
    (2, 4). With the (u - u) factor the value is 0; the second text checks values."""
    y, z, u = RNG.normal(size=2), RNG.normal(size=2), RNG.normal(size=5)
    H = RNG.normal(size=(3, 4, 5))
    shapes = {"y": (2,), "z": (2,), "u": (5,), "H": (3, 4, 5)}
    arrays = {"y": y, "z": z, "u": u, "H": H}
    e = einderiv.parse("det(y[a]*z[c])*((u[d] - u[d])*H[a,b,d])", shapes=shapes)
    assert_all_paths(e, arrays, np.zeros((3, 4)))
    N = np.eye(2) + np.outer(y, z)
    e = einderiv.parse("det(N[a,c])*u[d]*H[a,b,d]")
    assert_all_paths(e, {"N": N, **arrays}, np.linalg.det(N) * np.einsum("d,abd->ab", u, H))


def test_inv_argument_names_are_its_own() -> None:
    """inv(M[g,a])[i,j]*w[a]: the a of w (length 2) is not M's column index (4). The
    argument's free indices are (a, g), in code-point order, so it is M^T."""
    w = RNG.normal(size=2)
    e = einderiv.parse("inv(M[g,a])[i,j]*w[a]")
    assert e.free == ("a", "i", "j")
    assert_all_paths(e, {"M": M4, "w": w}, np.einsum("ij,a->aij", np.linalg.inv(M4.T), w))
    d = einderiv.diff("inv(M[g,a])[i,j]*w[a]*v[j]", "v")
    v = RNG.normal(size=4)
    arrays = {"M": M4, "w": w, "v": v}
    numeric = central_diff(lambda a: einderiv.parse("inv(M[g,a])[i,j]*w[a]*v[j]").evaluate(**a),
                           arrays, "v")
    assert_close_to_fd(d.evaluate(**arrays), numeric)


# ------------------------------------------------ D: a product's summed indices are its own


def test_rebound_sum_index_may_have_another_size() -> None:
    """docs/language.md: a name re-bound by sum[...] may have another size; with shapes
    given parse raised ShapeError."""
    x, y = RNG.normal(size=3), RNG.normal(size=4)
    for simplify in (True, False):
        e = einderiv.parse("x[i]*sum[i](y[i])", shapes={"x": (3,), "y": (4,)}, simplify=simplify)
        assert_all_paths(e, {"x": x, "y": y}, x * y.sum())
    with pytest.raises(einderiv.ShapeError, match="index 'i' has size"):
        einderiv.parse("x[i]*y[i]", shapes={"x": (3,), "y": (4,)})


def test_summed_index_does_not_size_a_free_one() -> None:
    """In sum[i](y[i])*delta[i,i] nothing gives the free i a size: an error naming it,
    not y's length taken from the other scope (the unsimplified form evaluated)."""
    for simplify in (True, False):
        e = einderiv.parse("sum[i](y[i])*delta[i,i]", simplify=simplify)
        with pytest.raises(einderiv.EvaluationError, match="cannot tell the size of index"):
            e.evaluate(y=RNG.normal(size=4))


def test_delta_inside_a_product_sizes_its_free_index() -> None:
    """step(delta[i,d1]*y4[d1]) -> [i]: the delta ties the free i to the summed d1
    inside the product, so i has y4's length (fuzz --seed 3 input 930 raised
    'cannot tell the size' once summed labels were kept in their scope)."""
    y4 = RNG.normal(size=3)
    raw = einderiv.parse("step(delta[i,d1]*y4[d1]) -> [i]", simplify=False)
    for e in (raw, einderiv.diff(raw, "y4")):
        want = np.heaviside(y4, 0) if e is raw else np.zeros((3, 3))
        np.testing.assert_array_equal(e.evaluate(y4=y4), want)


# ------------------------------------------------------------------ C: '->' on a sum


@pytest.mark.parametrize("text", [
    "y[a] - (z[a]*w[h] + s) -> [a]", "-(z[a]*w[h] + s) + y[a] -> [a]",
    "(X[a,h] + s) -> [a]", "1*(X[a,h] + s) -> [a]", "-2*(X[a,h] + s)/3 -> [a]",
    "y[a] - z[a]*w[h]*s -> [a]", "x[h]*w[h] + X[a,h] -> [a]",
])
def test_arrow_over_a_term_that_lacks_the_summed_index_is_refused(text: str) -> None:
    """The two readings (each term summed over h, or the sum's value summed, which
    multiplies a term without h by |h|) differ; term order or a factor 1 chose
    between them (issue 21 C). The error says what to write."""
    with pytest.raises(EinderivError, match=r"'->' sums over 'h'.*Write sum\[h\]\(\.\.\.\)"):
        einderiv.parse(text)


@pytest.mark.parametrize("text, want", [
    ("sum[h](X[a,h] - (z[a]*w[h] + s))", lambda y, z, w, s, X: X.sum(1) - z * w.sum() - 4 * s),
    ("y[a] - sum[h](z[a]*w[h]) - s", lambda y, z, w, s, X: y - z * w.sum() - s),
    ("sum[h](X[a,h] + s)", lambda y, z, w, s, X: X.sum(1) + len(w) * s),
    ("sum[h](X[a,h]) + s", lambda y, z, w, s, X: X.sum(1) + s),
])
def test_what_to_write_instead(text: str, want) -> None:
    y, z, w, s, X = RNG.normal(size=3), RNG.normal(size=3), RNG.normal(size=4), 0.9, \
        RNG.normal(size=(3, 4))
    e = einderiv.parse(text)
    assert_all_paths(e, {"y": y, "z": z, "w": w, "s": s, "X": X}, want(y, z, w, s, X))


@pytest.mark.parametrize("texts", [
    ["x[i]*w[i] + b[i] -> [i]", "b[i] + x[i]*w[i] -> [i]", "1*(x[i]*w[i] + b[i]) -> [i]",
     "-(-(x[i]*w[i]) - b[i]) -> [i]", "2*(b[i]/2 + x[i]*w[i]/2) -> [i]"],
    ["(X[a,h] + z[a]*w[h]) -> [a]", "z[a]*w[h] + X[a,h] -> [a]", "1*(X[a,h] + z[a]*w[h]) -> [a]",
     "-(-X[a,h] - w[h]*z[a]) -> [a]"],
])
def test_arrow_on_a_sum_ignores_term_order_signs_and_factors(texts: list[str]) -> None:
    """'->' reaches through signs, parentheses and number factors to every term, so
    these spellings are one expression (the Hadamard product x .* w + b; X 1 + z (1^T w))."""
    x, w4, b = RNG.normal(size=4), RNG.normal(size=4), RNG.normal(size=4)
    z, X = RNG.normal(size=3), RNG.normal(size=(3, 4))
    first = texts[0]
    want = x * w4 + b if "x[i]" in first else X.sum(1) + z * w4.sum()
    arrays = {"x": x, "w": w4, "b": b, "z": z, "X": X}
    for text in texts:
        assert_all_paths(einderiv.parse(text), arrays, want)


# -------------------------------------------------- D: a variable the text uses, cancelled


@pytest.mark.parametrize("text, wrt, arrays, shape", [
    ("s + -s", "s", {"s": 0.5}, ()),
    ("(A[b,a]*x[c])**0 -> [c,b,a]", "x", {"A": RNG.normal(size=(3, 4)), "x": X2}, (2, 2, 3, 4)),
    ("x[i]*y[i] - y[j]*x[j]", "x", {"x": RNG.normal(size=3), "y": RNG.normal(size=3)}, (3,)),
])
def test_diff_by_a_variable_that_cancels_is_zero(text: str, wrt: str, arrays: dict, shape) -> None:
    """It occurs in the text, so its rank is known: the derivative is a zero of the
    variable's shape followed by the expression's (was "'x' does not occur")."""
    numeric = central_diff(lambda a: einderiv.parse(text).evaluate(**a), arrays, wrt)
    assert numeric.shape == shape
    for make in (lambda: einderiv.diff(text, wrt),
                 lambda: einderiv.derive_steps(text, wrt).result):
        d = make()
        assert_close_to_fd(d.evaluate(**arrays), numeric)
    assert einderiv.check(text, wrt, arrays).ok()
    j = einderiv.jvp(text, wrt, "v")
    v = np.ones(np.shape(arrays[wrt]))
    np.testing.assert_allclose(j.evaluate(**arrays, v=v),
                               np.tensordot(v, numeric, axes=np.ndim(v)), atol=1e-8)
