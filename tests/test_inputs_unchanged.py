"""Evaluation never writes into the caller's arrays.

A compiled plan computes some steps in place (``tanh(u)`` into ``u``'s array, a sum
into one of its parts, a product into one of its factors, a diagonal into the rest of
a sum). Those writes may only touch arrays the plan allocated itself: never an input,
nor a view of one (a transpose, a product of one factor, a sum of one term), also
when the inputs are views of each other, one array under two names, transposed or
strided views, read-only arrays or Python numbers.

Values are checked against ``np.einsum`` and central finite differences
(tests/fd.py), or, for the random expressions of tests/strategies.py, against an
evaluation on private copies; inputs are checked bit for bit (and their dtype and
``writeable`` flag) after every call of every path: ``evaluate``, ``compile()``
(the first call plans, the second runs the straight-line function),
``compile(shapes=...)``, the exported code (``to_python``, numpy and opt_einsum)
and ``compile(backend="dask")``. The two tests over random products and expressions
are marked ``slow``; the quick tier (``-m "not slow"``) runs the fixed cases.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect

import numpy as np
import pytest
from fd import assert_close_to_fd, central_diff, central_hessian
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from strategies import SHAPES, expressions, make_values

import einderiv
from einderiv import EinderivError

rewrites = importlib.import_module("einderiv.numeric.rewrites")
direct_products = importlib.import_module("einderiv.numeric.direct_products")
planning = importlib.import_module("einderiv.numeric.planning")

PROPERTY = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HAVE_DASK = importlib.util.find_spec("dask") is not None


# ----------------------------------------------------------------------------- helpers


def snapshot(arrays: dict) -> dict:
    """A private copy of every numpy input with its dtype and ``writeable`` flag."""
    return {k: (v.copy(), v.dtype, v.flags.writeable) for k, v in arrays.items()
            if isinstance(v, np.ndarray)}


def assert_unchanged(arrays: dict, before: dict, what: str) -> None:
    for k, (copy, dtype, writeable) in before.items():
        v = arrays[k]
        assert v.dtype == dtype and v.flags.writeable == writeable, (what, k)
        assert np.array_equal(v, copy, equal_nan=True) and v.tobytes() == copy.tobytes(), \
            f"{what}: input {k!r} was modified"


def _exported(expr: einderiv.Expr, backend: str):
    """The exported function, taking the arrays it uses out of keyword arguments."""
    namespace: dict = {}
    exec(expr.to_python("f", backend=backend), namespace)  # noqa: S102 - our own export
    f = namespace["f"]
    params = inspect.signature(f).parameters
    return lambda **a: f(**{k: v for k, v in a.items() if k in params})


def paths(expr: einderiv.Expr, shapes: dict, dask: bool = False) -> list:
    """``(name, call)`` for every way to evaluate ``expr``; a compiled call runs twice."""
    def called(fn):
        return lambda a: fn(**a)
    plain, planned = expr.compile(), expr.compile(shapes=shapes)
    found = [("evaluate", called(expr.evaluate)),
             ("compile", called(plain)), ("compile, again", called(plain)),
             ("compile(shapes)", called(planned)), ("compile(shapes), again", called(planned))]
    found += [(f"to_python({b})", called(_exported(expr, b))) for b in ("numpy", "opt_einsum")]
    if dask:
        import dask.array as da
        lazy = expr.compile(backend="dask")
        found.append(("dask", lambda a: lazy(**{
            k: da.from_array(v) if isinstance(v, np.ndarray) else v
            for k, v in a.items()}).compute()))
    return found


def assert_paths(expr: einderiv.Expr, arrays: dict, expected: np.ndarray, shapes: dict,
                 dask: bool = False, rtol: float = 1e-9) -> None:
    """Every path gives ``expected`` and leaves ``arrays`` as they were."""
    before = snapshot(arrays)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    for name, call in paths(expr, shapes, dask):
        got = np.asarray(call(arrays))
        assert_unchanged(arrays, before, name)
        assert got.shape == expected.shape, (name, got.shape, expected.shape)
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale, err_msg=name)


@pytest.fixture
def in_place_everywhere(monkeypatch):
    """The plan's size thresholds at 0: every in-place step, outer-product loop and
    early release runs on the small arrays of the tests too."""
    monkeypatch.setattr(rewrites, "IN_PLACE_MIN_SIZE", 0)
    monkeypatch.setattr(direct_products, "OUTER_EINSUM_MIN", 0)
    monkeypatch.setattr(planning, "RELEASE_MIN_BYTES", 0)


# ------------------------------------------------------------------ the cases


def test_a_lone_factor_is_not_multiplied_in_place():
    # F[c,i,b] carries free indices only: its group of the product is F itself (a
    # transposed view), which took (M M^T)[c,i] in place
    rng = np.random.default_rng(0)
    F, M = rng.normal(size=(3, 3, 4)), rng.normal(size=(3, 5))
    expected = np.einsum("cib,ce,ie->ibc", F, M, M)
    e = einderiv.parse("F[c,i,b]*M[c,e]*M[i,e] -> [i,b,c]")
    arrays = {"F": F, "M": M}
    before = snapshot(arrays)
    for _ in range(2):  # a second call on the same arrays: still right
        np.testing.assert_allclose(e.evaluate(F=F, M=M), expected, rtol=1e-12, atol=1e-12)
        assert_unchanged(arrays, before, "evaluate")
    # every path, each compiled one called twice
    assert_paths(e, arrays, expected, {"F": (3, 3, 4), "M": (3, 5)}, dask=HAVE_DASK)


HESSIAN_TEXT = "sigmoid(y[e]*s*(1/-(u[e]*z[f])**2*A[a,f]))*(y1[g]*(v[g]*x1[a]))"
HESSIAN_SHAPES = {"s": (), "y": (2,), "z": (2,), "u": (2,), "A": (4, 2), "v": (5,),
                  "y1": (5,), "x1": (4,)}


@pytest.mark.parametrize("seed", range(4))
def test_a_second_derivative_leaves_z_alone_and_is_right(seed):
    # the Hessian's 19-factor products hold z[e] and z[i] as lone factors
    rng = np.random.default_rng(seed)
    arrays = {k: rng.normal(size=shape) for k, shape in HESSIAN_SHAPES.items()}
    for k in ("u", "z"):  # away from 0: 1/(u z)^2 stays moderate
        arrays[k] = np.sign(arrays[k]) * rng.uniform(0.7, 1.3, size=2)
    arrays["s"] = float(rng.uniform(0.5, 1.5))  # a Python number
    g = einderiv.diff(HESSIAN_TEXT, "z")
    h = einderiv.diff(g, "z")
    first = g.compile()
    # d/dz of the first derivative (axes: z, then the gradient's), on private copies
    numeric = central_diff(lambda a: first(**{k: np.array(v) for k, v in a.items()}),
                           {k: np.array(v) for k, v in arrays.items()}, "z")
    expected = np.asarray(_exported(h, "numpy")(**{k: np.array(v) for k, v in arrays.items()}))
    assert_close_to_fd(expected, numeric)
    assert_paths(h, arrays, expected, HESSIAN_SHAPES, dask=HAVE_DASK)


def test_a_sum_of_one_term_is_not_taken_over_in_place():
    # Sum((A[p,i],), out=(i,p)) runs as a transposed view of A; tanh of it (large
    # enough to run in place) wrote into A
    from einderiv.core.ir import Func, Sum, Tensor
    A = np.random.default_rng(1).normal(size=(40, 30))
    e = Func("tanh", Sum((Tensor("A", ("p", "i")),), ("i", "p")))
    compiled = einderiv.compile_expr(e)
    before = snapshot({"A": A})
    for _ in range(2):
        np.testing.assert_allclose(compiled(A=A), np.tanh(A.T), rtol=1e-12)
        assert_unchanged({"A": A}, before, "tanh of a one-term sum")


def _einsum(spec: str, post=lambda v: v):
    """A closed form: ``post(np.einsum(spec, A, B, x))`` (operands by name), its
    axes labelled as the letters after ``->``."""
    names = [{"a": "A", "b": "B", "x": "x"}[n] for n in spec.split(":")[0].split(",")]
    subscripts = spec.split(":")[1]
    return subscripts.split("->")[1], lambda a: post(
        np.einsum(subscripts, *(a[n] for n in names)))


@pytest.mark.parametrize("text, closed", [
    ("A[i,r]*B[i,r] -> []", _einsum("a,b:ir,ir->")),
    ("tanh(A[i,r]*A[j,r]*x[k] -> [k,j,i])", _einsum("a,a,x:ir,jr,k->kji", np.tanh)),
    ("(A[i,r]*B[j,r] -> [i,j]) + (B[i,r]*A[j,r] -> [i,j])",
     ("ij", lambda a: np.einsum("ir,jr->ij", a["A"], a["B"]) * 2)),
    ("exp(A[i,r]*B[j,r]*x[j] -> [r,i])**2",
     _einsum("a,b,x:ir,jr,j->ri", lambda v: np.exp(v) ** 2)),
])
def test_one_array_under_two_names(text, closed, in_place_everywhere):
    # (the third closed form: A and B hold the same values in every layout below)
    labels, value = closed
    rng = np.random.default_rng(2)
    X, Y, x = rng.normal(size=(3, 5)), rng.normal(size=(5, 3)), rng.normal(size=3)
    buffer = rng.normal(size=16)
    e = einderiv.parse(text)
    perm = [labels.index(i) for i in e.free]
    layouts = [{"A": X, "B": X, "x": x},             # one array under two names
               {"A": Y.T, "B": Y.T, "x": X[:, 1]},   # transposed and strided views
               {"A": buffer[:15].reshape(3, 5),      # overlapping views of one buffer
                "B": buffer[1:].reshape(3, 5), "x": buffer[::6]}]
    for arrays in layouts:
        private = {k: np.array(v) for k, v in arrays.items()}
        if "+" in text and not np.array_equal(private["A"], private["B"]):
            continue  # the closed form 2 A B^T needs A == B
        expected = np.transpose(value(private), perm)
        assert_paths(e, arrays, expected, {"A": (3, 5), "B": (3, 5), "x": (3,)})


# -------------------------------------------------------------- random products


#: Tensors of the random products: A and B have one shape (one array may be both).
PRODUCT_SHAPES = {"F": (3, 3, 4), "A": (3, 5), "B": (3, 5), "x": (3,), "y": (4,),
                  "w": (5,), "s": ()}
_LABELS = {3: ["i", "j", "k"], 4: ["p", "q"], 5: ["r", "u"]}
_WRAPS = ["{}", "tanh({})", "({})**2", "3*sigmoid({})", "sin({}) + ({})"]


@st.composite
def products(draw):
    """A product under ``->`` (repeated factors: Gram pairs; factors with free
    indices only; diagonals; any output order) in one element-wise wrapper, with the
    numpy function it stands for."""
    n = draw(st.integers(2, 4))
    names = draw(st.lists(st.sampled_from(sorted(PRODUCT_SHAPES)), min_size=n, max_size=n))
    factors = []
    for name in names:
        labels = tuple(draw(st.sampled_from(_LABELS[d])) for d in PRODUCT_SHAPES[name])
        factors.append((name, labels))
    used = list(dict.fromkeys(i for _, labels in factors for i in labels))
    out = draw(st.permutations(used))[:draw(st.integers(0, min(3, len(used))))]
    if draw(st.booleans()):  # a Gram pair X[a,S] X[b,S] beside factors with free indices only
        a, b = draw(st.permutations(["i", "j"]))
        gram = draw(st.sampled_from(["A", "B"]))
        factors = [("F", (a, b, "p")), (gram, (a, "r")), (gram, (b, "r"))]
        if draw(st.booleans()):
            factors.append(draw(st.sampled_from([("x", ("k",)), ("y", ("q",)), ("s", ())])))
        out = draw(st.permutations(list(dict.fromkeys(
            i for _, ls in factors for i in ls if i != "r"))))
    coeff = draw(st.sampled_from(["", "2*", "-"]))
    text = coeff + "*".join(f"{n}[{','.join(ls)}]" if ls else n for n, ls in factors) + \
        f" -> [{','.join(out)}]"
    spec = ",".join("".join(ls) for _, ls in factors) + "->" + "".join(out)
    sign = {"": 1.0, "2*": 2.0, "-": -1.0}[coeff]
    wrap = draw(st.sampled_from(_WRAPS))

    def value(arrays: dict) -> np.ndarray:
        p = sign * np.einsum(spec, *(np.asarray(arrays[n], dtype=float) for n, _ in factors))
        if wrap == "{}":
            return p
        if wrap == "tanh({})":
            return np.tanh(p)
        if wrap == "({})**2":
            return p * p
        if wrap == "3*sigmoid({})":
            return 3 / (1 + np.exp(-p))
        return np.sin(p) + p
    return wrap.format(f"({text})", f"({text})"), tuple(out), sorted({n for n, _ in factors}), \
        value


def _strided_views(arrays: dict) -> dict:
    """Transposed (matrices) and strided (vectors) views; a scalar as a Python float."""
    return {k: (np.ascontiguousarray(v.T).T if v.ndim > 1 else
                np.repeat(v, 2)[::2] if v.ndim == 1 else float(v)) for k, v in arrays.items()}


def _in_one_buffer(arrays: dict, overlap: bool) -> dict:
    """The arrays as views into one buffer, side by side or each overlapping the next
    (then the values are what the buffer holds)."""
    buffer = np.empty(sum(v.size for v in arrays.values()))
    shared, at = {}, 0
    for k, v in sorted(arrays.items()):
        shared[k] = buffer[at:at + v.size].reshape(v.shape)
        shared[k][...] = v
        at += (v.size + 1) // 2 if overlap else v.size
    return shared


def _layouts(arrays: dict, rng: np.random.Generator) -> dict[str, dict]:
    """The same values as plain arrays, transposed/strided views, views into one
    shared buffer (overlapping: the values are then what the buffer holds), one
    array for A and B, read-only arrays; the scalar as a Python float or 0-d array."""
    plain = {k: np.array(v) for k, v in arrays.items()}
    views = _strided_views(arrays)
    shared = _in_one_buffer(arrays, overlap=True)
    same = dict(plain)
    same["B"] = same["A"] = np.array(rng.normal(size=arrays["A"].shape))
    frozen = {k: np.array(v) for k, v in arrays.items()}
    for v in frozen.values():
        v.flags.writeable = False
    return {"plain": plain, "views": views, "shared buffer": shared, "A is B": same,
            "read-only": frozen}


def _in_free_order(value, out: tuple, free: tuple):
    """``value`` (axes ``out``) as a function returning its axes in the order ``free``."""
    perm = [out.index(i) for i in free]
    return lambda a: np.transpose(value(a), perm)


@pytest.mark.slow
@settings(PROPERTY, max_examples=25)
@given(case=products(), order=st.integers(0, 2), wrt=st.data(), seed=st.integers(0, 2**32 - 1),
       thresholds=st.booleans())
def test_random_products_and_their_derivatives_leave_inputs_alone(case, order, wrt, seed,
                                                                   thresholds):
    text, out, names, value = case
    note(text)
    with pytest.MonkeyPatch.context() as mp:
        if thresholds:  # in-place steps on small arrays too
            mp.setattr(rewrites, "IN_PLACE_MIN_SIZE", 0)
            mp.setattr(direct_products, "OUTER_EINSUM_MIN", 0)
            mp.setattr(planning, "RELEASE_MIN_BYTES", 0)
        e = einderiv.parse(text)
        f = _in_free_order(value, out, e.free)
        var = wrt.draw(st.sampled_from([n for n in names if n != "s"] or names))
        expr = e
        for _ in range(order):
            expr = einderiv.diff(expr, var, shapes=PRODUCT_SHAPES)
        rng = np.random.default_rng(seed)
        base = {k: rng.uniform(-1, 1, size=shape) for k, shape in PRODUCT_SHAPES.items()}
        references: dict[bytes, np.ndarray] = {}  # per set of values: einsum / FD, once
        for layout, arrays in _layouts(base, rng).items():
            private = {k: np.array(v, dtype=float) for k, v in arrays.items()}
            key = b"".join(private[k].tobytes() for k in sorted(private))
            if key not in references:
                reference = f(private) if order == 0 else central_diff(f, private, var) \
                    if order == 1 else central_hessian(f, private, var)
                got = np.asarray(expr.compile()(**private))
                assert_close_to_fd(got, reference, rtol=1e-9 if order == 0 else 1e-5)
                references[key] = got
            note(layout)
            assert_paths(expr, arrays, references[key], PRODUCT_SHAPES,
                         dask=HAVE_DASK and order == 1)


# ------------------------------------------------- random expressions (strategies.py)


def _strategy_layouts(vals: dict) -> dict[str, dict]:
    """Transposed/strided views (a Python float for ``s``), views side by side in one
    buffer (not overlapping: M stays well conditioned), read-only arrays."""
    views = _strided_views(vals)
    shared = _in_one_buffer(vals, overlap=False)
    frozen = {k: np.array(v) for k, v in vals.items()}
    for v in frozen.values():
        v.flags.writeable = False
    return {"views": views, "shared buffer": shared, "read-only": frozen}


@pytest.mark.slow
@settings(PROPERTY, max_examples=25)
@given(g=expressions(smooth=False), wrt=st.data(), seed=st.integers(0, 2**32 - 1),
       thresholds=st.booleans())
def test_random_expressions_and_derivatives_give_the_same_values_on_any_layout(
        g, wrt, seed, thresholds):
    with pytest.MonkeyPatch.context() as mp:
        if thresholds:
            mp.setattr(rewrites, "IN_PLACE_MIN_SIZE", 0)
            mp.setattr(direct_products, "OUTER_EINSUM_MIN", 0)
            mp.setattr(planning, "RELEASE_MIN_BYTES", 0)
        e = einderiv.parse(g.text)
        var = wrt.draw(st.sampled_from(sorted(SHAPES)))
        try:
            d1 = einderiv.diff(e, var, shapes=SHAPES)
            d2 = einderiv.diff(d1, var, shapes=SHAPES)
        except EinderivError:
            assume(False)
        for expr in (e, d1, d2):
            for layout, arrays in _strategy_layouts(make_values(seed)).items():
                private = {k: np.array(v, dtype=float) for k, v in arrays.items()}
                try:
                    expected = np.asarray(expr.evaluate(**private))
                except EinderivError:  # e.g. inv of a matrix made singular by the buffer
                    continue
                note(f"{expr} on {layout}")
                assert_paths(expr, arrays, expected, SHAPES)
