"""Code export (issue 7): ``Expr.to_python`` and ``einderiv diff --emit``.

Every generated function is executed and compared with ``evaluate`` and with the
case's closed form written directly in numpy (tests/cases.py), never with arrays made
by the code under test. numpy and opt_einsum carry the coverage (CI installs only the
test extra); jax and torch run where they are installed (the pytest header
says which ran). Their runs are marked ``slow`` (a jit per function), all but
``test_foreign_export_restores_axis_orders`` and one case of
``test_compile_with_a_foreign_backend``."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import sys
from pathlib import Path

import numpy as np
import opt_einsum as oe
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import einderiv
from einderiv.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from cases import HESSIANS, IDENTITIES, LOW_RANK, low_rank_fit
from fd import central_diff
from strategies import SHAPES, expressions, make_values

RNG = np.random.default_rng(11)
LINREG = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"
LOGISTIC = "sum[a](log(1 + exp(-(y[a]*X[a,b]*theta[b] -> [a]))))"
SOFTPLUS_GLM = "sum[a](softplus(X[a,b]*theta[b]) - y[a]*X[a,c]*theta[c])"
ALL = IDENTITIES + HESSIANS
#: Array libraries besides numpy whose exported code is run: those installed (the
#: bench extra brings them; CI's test extra does not). conftest.py reports which.
FOREIGN = [b for b in ("jax", "torch") if importlib.util.find_spec(b) is not None]
#: The foreign backends, marked slow (the quick tier runs numpy and opt_einsum only).
SLOW_FOREIGN = [pytest.param(b, marks=pytest.mark.slow) for b in FOREIGN]


def _derivative(case):
    d = einderiv.diff(case.expr, case.wrt, case.shapes)
    return einderiv.diff(d, case.wrt, case.shapes) if case in HESSIANS else d


def _load(src: str, name: str = "grad"):
    namespace: dict = {}
    exec(compile(src, "<generated>", "exec"), namespace)  # noqa: S102 - what is tested
    return namespace[name]


def _call(fn, values: dict, convert=lambda a: a):
    """Call with the arguments the function takes (a derivative may drop a variable)."""
    return fn(**{p: convert(values[p]) for p in inspect.signature(fn).parameters})


def _body(src: str) -> str:
    """The code after the docstring."""
    return src.split('"""')[2]


def _imports(src: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
    return found


# ------------------------------------------------------------------ every identity


@pytest.mark.parametrize("with_shapes", [False, True], ids=["no-shapes", "shapes"])
@pytest.mark.parametrize("backend", ["numpy", "opt_einsum"])
@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_exported_function_equals_evaluate_and_closed_form(case, backend, with_shapes):
    d = _derivative(case)
    src = d.to_python(backend=backend, shapes=case.shapes if with_shapes else None)
    values = case.arrays(RNG)
    got = _call(_load(src), values)
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, case.closed_form(values), atol=1e-12)
    np.testing.assert_allclose(got, d.evaluate(**values), atol=1e-12)
    shown = sorted(d.variables, key=lambda v: re.search(rf"\b{v}\b", str(d)).start())
    sized = [n for n in d.compile().program.inputs if n not in d.variables]
    parameters = inspect.signature(_load(src)).parameters
    assert list(parameters) == shown + sized  # in the order the expression shows them
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())


def _run_foreign(backend: str, src: str, values: dict) -> np.ndarray:
    """Run exported ``src`` under jax or torch on ``values``; checks that the inputs
    are left as they were and the result is not one of them. numpy result."""
    if backend == "jax":
        import jax
        with jax.enable_x64(True):
            return np.asarray(_call(_load(src), values))
    import torch
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in values.items()}
    before = {k: t.clone() for k, t in tensors.items()}
    got = _call(_load(src), tensors)
    assert isinstance(got, torch.Tensor)
    for k, t in tensors.items():
        assert torch.equal(t, before[k])
        assert got.numel() == 0 or t.numel() == 0 or got.data_ptr() != t.data_ptr()
    return got.numpy()


if FOREIGN:  # defined only where there is something to run (no skipped tests in CI)
    @pytest.mark.parametrize("with_shapes", [False, True], ids=["no-shapes", "shapes"])
    @pytest.mark.parametrize("backend", SLOW_FOREIGN)
    @pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
    def test_foreign_export(case, backend, with_shapes):
        d = _derivative(case)
        src = d.to_python(backend=backend, shapes=case.shapes if with_shapes else None)
        # jax: jax.lax for a product over the leading axes of both operands (X^T X)
        assert _imports(src) - {"jax.lax"} == {"jax.numpy" if backend == "jax" else "torch"}
        values = case.arrays(RNG)
        got = _run_foreign(backend, src, values)
        np.testing.assert_allclose(got, case.closed_form(values), atol=1e-12)

    @pytest.mark.parametrize("backend", FOREIGN)
    @pytest.mark.parametrize("case", [c if k == 0 else pytest.param(c, marks=pytest.mark.slow)
                                      for k, c in enumerate(ALL)], ids=lambda c: c.name)
    def test_compile_with_a_foreign_backend(case, backend):
        """``compile(backend="jax"|"torch")`` runs the exported plan (jitted on JAX):
        that library's arrays in and out, values of the closed form."""
        f = _derivative(case).compile(backend=backend)
        values = case.arrays(RNG)
        if backend == "jax":
            import jax
            import jax.numpy as jnp
            with jax.enable_x64(True):
                got = f(**{k: jnp.asarray(v) for k, v in values.items()})
                assert isinstance(got, jax.Array)
                got = np.asarray(got)
        else:
            import torch
            got = f(**{k: torch.from_numpy(np.array(v)) for k, v in values.items()})
            assert isinstance(got, torch.Tensor)
            got = got.numpy()
        np.testing.assert_allclose(got, case.closed_form(values), atol=1e-12)
        with pytest.raises(einderiv.EvaluationError, match="missing value for"):
            f()


    @pytest.mark.slow
    @settings(deadline=None, derandomize=True, database=None, max_examples=120,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(g=expressions(smooth=True), seed=st.integers(0, 2**32 - 1), data=st.data())
    def test_foreign_export_of_random_derivatives_equals_numpy(g, seed, data):
        """Random expressions and derivatives (tests/strategies.py) exported with shapes:
        products pairwise, intermediates in the axis order their contraction gives them,
        transposed back only for the steps that read axes by position (log-sum-exp,
        solve, inv, det, the result). Values equal compile's on numpy."""
        e = einderiv.parse(g.text)
        wrt = data.draw(st.sampled_from(sorted(SHAPES)))
        vals = make_values(seed)
        for f in (e, einderiv.diff(e, wrt, SHAPES)):
            want = np.asarray(f.evaluate(**vals))
            assume(np.all(np.isfinite(want)) and np.max(np.abs(want), initial=0.0) < 1e6)
            for backend in FOREIGN:
                got = _run_foreign(backend, f.to_python(backend=backend, shapes=SHAPES), vals)
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9,
                                           err_msg=f"{backend}: {f}")


    @pytest.mark.parametrize("backend", FOREIGN)
    @pytest.mark.parametrize("text, closed", [
        # axes in the order the products give them (cyclic permutations of the
        # result's), kept through tanh, restored at the end
        ("tanh(x[i]*y[p]*z[r])", lambda v: np.tanh(np.einsum("i,p,r->ipr", v["x"], v["y"], v["z"]))),
        ("tanh(x[i]*y[p]*z[r]) -> [r,i,p]",
         lambda v: np.tanh(np.einsum("i,p,r->rip", v["x"], v["y"], v["z"]))),
        ("tanh(A[p,i]*B[i,r]*y[q]) -> [q,r,p]",
         lambda v: np.tanh(np.einsum("pi,ir,q->qrp", v["A"], v["B"], v["y"]))),
        # read by position: a solve on a product stored as (j,i)
        ("inv(M[i,k]*M[k,j] + M[j,i])[i,j]*x[j]",
         lambda v: np.linalg.solve(v["M"] @ v["M"] + v["M"].T, v["x"])),
    ])
    def test_foreign_export_restores_axis_orders(backend, text, closed):
        e = einderiv.parse(text)
        vals = make_values(3)
        got = _run_foreign(backend, e.to_python(backend=backend, shapes=SHAPES), vals)
        np.testing.assert_allclose(got, closed(vals), rtol=1e-12)


def test_foreign_backend_that_is_not_installed_says_so(monkeypatch):
    """A backend whose library is missing is refused, saying what to install."""
    monkeypatch.setattr(einderiv.numeric.codegen.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(einderiv.EinderivError, match=r"backend 'jax' needs jax installed"):
        einderiv.diff(LINREG, "theta").compile(backend="jax")


# ------------------------------------------------------------------ the source


@pytest.mark.parametrize("backend, allowed", [("numpy", {"numpy"}),
                                              ("opt_einsum", {"numpy", "opt_einsum"}),
                                              ("jax", {"jax.numpy", "jax.lax"}), ("torch", {"torch"})])
def test_source_imports_only_its_array_library(backend, allowed, monkeypatch):
    sources = [_derivative(c).to_python(backend=backend) for c in ALL]
    for src in sources:
        assert _imports(src) <= allowed
        assert "einderiv" not in _imports(src)
    case = IDENTITIES[13]   # the linear-regression gradient
    assert case.name == "A.4 linear regression gradient"
    src = _derivative(case).to_python(backend=backend)
    monkeypatch.setitem(sys.modules, "einderiv", None)  # importing einderiv would fail
    if backend == "numpy":
        values = case.arrays(RNG)
        np.testing.assert_allclose(_call(_load(src), values), case.closed_form(values))


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_inputs_are_not_modified_and_the_result_is_not_a_view_of_them(case):
    values = case.arrays(RNG)
    before = {k: v.copy() for k, v in values.items()}
    for backend in ("numpy", "opt_einsum"):
        got = _call(_load(_derivative(case).to_python(backend=backend)), values)
        for k, v in values.items():
            np.testing.assert_array_equal(v, before[k])
            assert not np.may_share_memory(got, v), k
        got[...] = 7.0   # the result is an ordinary writeable array
        for k, v in values.items():
            np.testing.assert_array_equal(v, before[k])


def test_shared_subexpressions_are_one_variable_each():
    # the loss has the residual X theta - Y twice; the exported code forms it once
    src = einderiv.parse(LINREG).to_python("loss")
    assert _body(src).count('np.einsum("ab,b->a", X, theta') == 1
    assert _body(src).count(" - Y") == 1
    v = {"X": RNG.normal(size=(6, 3)), "theta": RNG.normal(size=3), "Y": RNG.normal(size=6),
         "n": 6.0}
    r = v["X"] @ v["theta"] - v["Y"]
    np.testing.assert_allclose(_load(src, "loss")(**v), r @ r / 6.0)
    # the softplus GLM's Hessian has sigmoid(u) twice, as s * (1 - s): one sigmoid line
    h = einderiv.diff(einderiv.diff(SOFTPLUS_GLM, "theta"), "theta")
    assert str(h).count("sigmoid") == 2
    src = h.to_python("hessian")
    assert _body(src).count("logaddexp") == 1
    X, y, th = RNG.normal(size=(7, 3)), RNG.random(7), RNG.normal(size=3)
    s = 1 / (1 + np.exp(-(X @ th)))
    np.testing.assert_allclose(_load(src, "hessian")(X=X, theta=th),
                               X.T @ np.diag(s * (1 - s)) @ X)


def _paths(src: str) -> list[tuple[str, list]]:
    """(subscripts, path) of each contraction with an explicit path in ``src``."""
    found = []
    for spec, path in re.findall(r'\("([^"]+)", [^\n]*?optimize=\[(?:"einsum_path", )?'
                                 r'(\([^\]]*)\]', src):
        found.append((spec, list(ast.literal_eval("[" + path + "]"))))
    return found


def test_integer_shapes_write_out_the_contraction_path_compile_uses():
    text = "x[i]*A[i,j]*B[j,k]*C[k,l]*y[l]"
    e = einderiv.parse(text)
    small_first = {"x": (2,), "A": (2, 40), "B": (40, 40), "C": (40, 30), "y": (30,)}
    large_first = {"x": (30,), "A": (30, 40), "B": (40, 40), "C": (40, 2), "y": (2,)}
    for backend in ("numpy", "opt_einsum"):
        plain = e.to_python(backend=backend)
        # five operands: compile searches with opt_einsum's "dp" (optimal for <= 4)
        assert "optimize=True" in plain or 'optimize="dp"' in plain
        assert not _paths(plain)
    seen = []
    for shapes in (small_first, large_first):
        for backend in ("numpy", "opt_einsum"):
            src = e.to_python(backend=backend, shapes=shapes)
            assert "optimize=True" not in src and 'optimize="' not in src
            ((spec, path),) = _paths(src)
            operands = spec.split("->")[0].split(",")
            names = re.search(rf'"{re.escape(spec)}", ([^)]*?), optimize', src).group(1)
            dims = [shapes[n] for n in names.split(", ")]
            assert [len(d) for d in dims] == [len(o) for o in operands]
            # opt_einsum's path for these subscripts and sizes, as compile plans it
            want = oe.contract_path(spec, *dims, shapes=True, optimize="dp")[0]
            assert path == [tuple(c) for c in want]
            seen.append(path)
            arrays = {k: RNG.normal(size=s) for k, s in shapes.items()}
            expected = arrays["x"] @ arrays["A"] @ arrays["B"] @ arrays["C"] @ arrays["y"]
            np.testing.assert_allclose(_load(src)(**arrays), expected, rtol=1e-10)
    assert seen[0] != seen[2]   # the sizes decide the order


class _Recorded:
    """An array module whose functions note the size of each new array they return."""

    def __init__(self, module, sizes: list, inputs: list):
        self._module, self._sizes, self._inputs = module, sizes, inputs

    def __getattr__(self, name: str):
        attr = getattr(self._module, name)
        if isinstance(attr, type) or not callable(attr):
            return attr

        def call(*args, **kwargs):
            out = attr(*args, **kwargs)
            if isinstance(out, np.ndarray) and not any(out is a for a in self._inputs):
                self._sizes.append(out.size)
            return out
        return call


def _largest_array_made(backend: str, fn, arrays: dict) -> int:
    """The most elements of an array ``fn`` makes while it runs (inputs aside): JAX's
    intermediates in its jaxpr, every result of a torch function under a
    TorchFunctionMode, every array numpy's (or opt_einsum's) functions return."""
    if backend == "jax":
        import jax
        with jax.enable_x64(True):
            jaxpr = jax.make_jaxpr(lambda **kw: fn(**kw))(**arrays)

        def inner(params: dict):  # the jaxprs of a nested jit (compile's), a loop's body
            for value in params.values():
                for p in value if isinstance(value, (tuple, list)) else (value,):
                    p = getattr(p, "jaxpr", p)  # a ClosedJaxpr's
                    if hasattr(p, "eqns"):
                        yield p

        def made(jaxpr) -> list[int]:
            return [n for eqn in jaxpr.eqns for n in (
                [int(np.prod(v.aval.shape)) for v in eqn.outvars] +
                [n for sub in inner(eqn.params) for n in made(sub)])]
        return max(made(jaxpr.jaxpr))
    sizes = [0]
    if backend == "torch":
        import torch
        from torch.overrides import TorchFunctionMode

        class Record(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                if isinstance(out, torch.Tensor) and out.data_ptr() not in inputs:
                    sizes.append(out.numel())
                return out
        tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
        inputs = {t.data_ptr() for t in tensors.values()}
        with Record():
            fn(**tensors)
        return max(sizes)
    namespace = fn.__globals__
    modules = {name: namespace[name] for name in ("np", "oe") if name in namespace}
    try:
        for name, module in modules.items():
            namespace[name] = _Recorded(module, sizes, list(arrays.values()))
        fn(**arrays)
    finally:
        namespace.update(modules)
    return max(sizes)


@pytest.mark.parametrize("backend", ["numpy", "opt_einsum", *SLOW_FOREIGN])
def test_exported_low_rank_gradient_is_multiplied_out_as_compile_does(backend):
    # d/dU ||M - U V^T||^2 = -2 (M - U V^T) V. With the sizes given, the code is that of
    # compile's plan: for r << m, n it writes 2 (U (V^T V) - M V), half the FLOPs, and
    # never makes the m x n residual (JAX: 2.5 against 4.5 ms at 1000 x 1000 x 50);
    # for r close to n multiplying out costs more, and the residual (m x n, larger than
    # the m x r result) stays.
    g = einderiv.diff("(M[i,j] - U[i,k]*V[j,k])*(M[i,j] - U[i,l]*V[j,l])", "U")
    for (m, n, r), multiplied in (((60, 50, 40), False), ((400, 300, 2), True)):
        arrays = {"M": RNG.normal(size=(m, n)), "U": RNG.normal(size=(m, r)),
                  "V": RNG.normal(size=(n, r))}
        M, U, V = arrays["M"], arrays["U"], arrays["V"]
        src = g.to_python("grad", backend=backend, shapes={k: v.shape for k, v in arrays.items()})
        fn = _load(src)
        got = _run_foreign(backend, src, arrays) if backend in FOREIGN else fn(**arrays)
        np.testing.assert_allclose(got, -2 * (M - U @ V.T) @ V, rtol=1e-10)
        largest = _largest_array_made(backend, fn, arrays)
        assert (largest < m * n / 4) if multiplied else (largest >= m * n)
    # without sizes the code cannot know which is cheaper: the residual, as written
    fn = _load(g.to_python("grad", backend=backend))
    assert _largest_array_made(backend, fn, arrays) >= m * n


@pytest.mark.parametrize("backend", ["numpy", "opt_einsum", *SLOW_FOREIGN])
def test_multiply_out_false_keeps_the_product_as_derived(backend):
    # multiply_out=False (near an exact fit, the derived form rounds 10-30x better):
    # -2 (M - U V^T) V as derived, the m x n residual made, where the sizes (r << m, n)
    # would have it multiplied out; in the export and, on jax and torch, in compile
    g = einderiv.diff(LOW_RANK, "U")
    m, n, r = 400, 300, 2
    arrays, want = low_rank_fit(m, n, r, RNG)
    shapes = {k: v.shape for k, v in arrays.items()}
    src = g.to_python("grad", backend=backend, shapes=shapes, multiply_out=False)
    assert src != g.to_python("grad", backend=backend, shapes=shapes)
    got = _run_foreign(backend, src, arrays) if backend in FOREIGN else _load(src)(**arrays)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert _largest_array_made(backend, _load(src), arrays) >= m * n
    if backend in FOREIGN:  # compile runs the export: the option reaches it, named or
        for multiply_out in (False, True):  # by the arrays' library ("auto")
            for named in (backend, "auto"):
                f = g.compile(backend=named, multiply_out=multiply_out)
                largest = _largest_array_made(backend, f, arrays)
                assert (largest >= m * n) if not multiply_out else (largest < m * n / 4)


#: Products with a sum factor, and the value written by hand in numpy (sizes m, n, r).
SUM_FACTORS = [
    ("V[a,f]*(M[e,a] - U[e,b]*V[a,b])", lambda v: (v["M"] - v["U"] @ v["V"].T) @ v["V"]),
    ("x[i]*(M[i,j] + 3*U[i,k]*V[j,k] - N[i,j])*y[j]",
     lambda v: v["x"] @ (v["M"] + 3 * v["U"] @ v["V"].T - v["N"]) @ v["y"]),
    ("-2*(M[i,j] - U[i,k]*V[j,k])*V[j,l]*W[l,q] -> [q,i]",
     lambda v: -2 * ((v["M"] - v["U"] @ v["V"].T) @ v["V"] @ v["W"]).T),
    ("U[i,k]*(U[i,l]*V[j,l] + M[i,j]*s) -> [k,j]",
     lambda v: v["U"].T @ (v["U"] @ v["V"].T + v["s"] * v["M"])),
]


def _sum_factor_case(text: str, by_hand, backend: str, m: int, n: int, r: int, seed: int):
    rng = np.random.default_rng(seed)
    sizes = {"M": (m, n), "N": (m, n), "U": (m, r), "V": (n, r), "x": (m,), "y": (n,),
             "W": (r, 3), "s": ()}
    shapes = {k: sh for k, sh in sizes.items() if re.search(rf"\b{k}\b", text)}
    values = {k: rng.normal(size=sh) if sh else 1.5 for k, sh in shapes.items()}
    for multiply_out in (True, False):  # as the sizes say; as derived
        src = einderiv.parse(text).to_python("grad", backend=backend, shapes=shapes,
                                             multiply_out=multiply_out)
        got = _run_foreign(backend, src, values) if backend in FOREIGN else \
            _call(_load(src), values)
        np.testing.assert_allclose(got, by_hand(values), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", ["numpy", "opt_einsum"])
@pytest.mark.parametrize("text, by_hand", SUM_FACTORS, ids=[t for t, _ in SUM_FACTORS])
@settings(deadline=None, derandomize=True, database=None, max_examples=25)
@given(m=st.integers(1, 40), n=st.integers(1, 40), r=st.integers(1, 6), seed=st.integers(0, 99))
def test_products_with_a_sum_factor_export_as_their_sizes_say(backend, text, by_hand, m, n, r,
                                                              seed):
    # multiplied out or not (the sizes decide), the value is the expression's
    _sum_factor_case(text, by_hand, backend, m, n, r, seed)


@pytest.mark.parametrize("backend", SLOW_FOREIGN)
@pytest.mark.parametrize("text, by_hand", SUM_FACTORS, ids=[t for t, _ in SUM_FACTORS])
def test_foreign_products_with_a_sum_factor(backend, text, by_hand):
    for m, n, r in ((30, 20, 2), (4, 3, 5)):  # multiplied out; not
        _sum_factor_case(text, by_hand, backend, m, n, r, seed=m)


def test_more_than_52_index_letters_fall_back_to_opt_einsum():
    k, d = 60, 2
    text = "*".join(["x[i0]"] + [f"A{m}[i{m - 1},i{m}]" for m in range(1, k + 1)] + [f"x[i{k}]"])
    mats = {f"A{m}": RNG.normal(size=(d, d)) / 1.5 for m in range(1, k + 1)}
    x = RNG.normal(size=d)
    chain = np.linalg.multi_dot(list(mats.values()))
    shapes = dict({n: (d, d) for n in mats}, x=(d,))
    for e, want in [(einderiv.parse(text), x @ chain @ x),
                    (einderiv.diff(text, "x"), (chain + chain.T) @ x)]:
        for given in (None, shapes):
            src = e.to_python(shapes=given)
            assert _imports(src) == {"numpy", "opt_einsum"} and "oe.contract(" in src
            np.testing.assert_allclose(_load(src)(x=x, **mats), want, rtol=1e-9)
    small = einderiv.parse("*".join(["x[i0]"] + [f"A{m}[i{m - 1},i{m}]" for m in range(1, 5)]))
    assert _imports(small.to_python()) == {"numpy"}   # 5 letters: plain np.einsum


def test_deltas_are_written_into_a_diagonal_not_multiplied_by_an_identity():
    d = einderiv.diff("W[j,i]*A[j]", "W")           # A[b]*delta[c,i], a 3-tensor
    np_src, jax_src, torch_src = (d.to_python(backend=b) for b in ("numpy", "jax", "torch"))
    for src in (np_src, jax_src, torch_src):
        assert "eye(" not in src
    assert re.search(r'np\.einsum\("abb->ab", t\d+\)\[\.\.\.\] = ', np_src)
    # jax: a select on compared index ranges (XLA fuses it; a scatter it does not)
    assert re.search(r"jnp\.where\(t\d+, ", jax_src) and ".at[" not in jax_src
    assert re.search(r"t\d+\[i\d+, i\d+, i\d+\] = ", torch_src)
    A, W = RNG.normal(size=5), RNG.normal(size=(5, 3))
    np.testing.assert_allclose(_load(np_src)(A=A, W=W), np.einsum("p,qi->pqi", A, np.eye(3)))


def test_integer_inputs_are_promoted_to_float():
    src = einderiv.diff(LINREG, "theta").to_python()
    X, th, Y = np.arange(12).reshape(4, 3), np.array([1, -2, 3]), np.array([0, 1, 0, 2])
    got = _load(src)(X=X, theta=th, Y=Y, n=3)
    assert got.dtype == np.float64
    Xf = X.astype(float)
    np.testing.assert_allclose(got, 2 / 3 * Xf.T @ (Xf @ th - Y))
    assert X.dtype.kind == "i"   # the caller's array is untouched


def test_float32_inputs_stay_float32():
    src = einderiv.diff("tanh(z[i])", "z").to_python("jacobian")
    z = np.linspace(-1, 1, 4, dtype=np.float32)
    got = _load(src, "jacobian")(z=z)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.diag(1 - np.tanh(z) ** 2), rtol=1e-6)


@st.composite
def _products(draw):
    """A product of 1-4 factors with random index patterns (an index in one factor only,
    in several, twice in one: a diagonal) and an explicit output, as einsum reads it."""
    k = draw(st.integers(1, 4))
    factors = [draw(st.lists(st.sampled_from("abcd"), min_size=1, max_size=3)) for _ in range(k)]
    used = sorted({i for f in factors for i in f})
    out = draw(st.permutations(used).flatmap(
        lambda p: st.integers(0, len(p)).map(lambda m: p[:m])))
    text = "*".join(f"T{j}[{','.join(f)}]" for j, f in enumerate(factors))
    return text + f" -> [{','.join(out)}]", factors, list(out)


@pytest.mark.skipif("torch" not in FOREIGN, reason="torch is not installed")
@settings(deadline=None, derandomize=True, database=None, max_examples=80)
@given(product=_products(), seed=st.integers(0, 99))
def test_torch_products_summed_first_equal_einsum(product, seed):
    # torch: an axis that only one factor of a pair has, and nothing keeps, is summed
    # out of it first (torch.einsum costs ~9 us a call); with and without sizes (the
    # paths differ), against numpy's einsum of the same subscripts
    text, factors, out = product
    sizes = {"a": 2, "b": 3, "c": 4, "d": 5}
    rng = np.random.default_rng(seed)
    arrays = {f"T{j}": rng.normal(size=[sizes[i] for i in f]) for j, f in enumerate(factors)}
    want = np.einsum(",".join("".join(f) for f in factors) + "->" + "".join(out),
                     *arrays.values())
    try:
        e = einderiv.parse(text)
    except einderiv.EinderivError:  # a pattern the language refuses (reported, not read)
        assume(False)
    for shapes in ({k: v.shape for k, v in arrays.items()}, None):
        got = _run_foreign("torch", e.to_python(backend="torch", shapes=shapes), arrays)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=text)


def test_torch_export_sums_first_and_takes_inputs_as_they_are():
    # the source: a sum, not torch.einsum, for y[a] t[b] -> [b]; torch's own softmax over
    # one axis; the conversion helper skipped for tensors of one floating dtype (a float32
    # and a float64 tensor still go through it: the result is float64)
    import torch
    g = einderiv.diff("-y[i]*(z[i] - log(sum[j](exp(z[j]))))", "z")
    src = g.to_python(backend="torch", shapes={"z": (5,), "y": (5,)})
    assert "einsum" not in _body(src) and "torch.softmax(z, dim=0) if not z.is_complex()" in src
    assert ".sum(dim=(0,))" in src
    f = _load(src)
    z, y = RNG.normal(size=5), RNG.random(5)
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    for dz, dy in ((torch.float64, torch.float64), (torch.float32, torch.float64)):
        got = f(z=torch.from_numpy(z).to(dz), y=torch.from_numpy(y).to(dy))
        assert got.dtype == torch.promote_types(dz, dy)
        np.testing.assert_allclose(got.numpy(), y.sum() * p - y, rtol=1e-6)
    got = f(z=list(z), y=torch.from_numpy(y))  # a list: converted
    np.testing.assert_allclose(got.numpy(), y.sum() * p - y, rtol=1e-12)
    zc = z + 0.3j  # complex: torch.softmax has no complex kernel, the form by logsumexp
    pc = np.exp(zc - zc.max()) / np.exp(zc - zc.max()).sum()
    got = f(z=torch.from_numpy(zc), y=torch.from_numpy(y))
    np.testing.assert_allclose(got.numpy(), y.sum() * pc - y, rtol=1e-12)


# ------------------------------------------------------------------ every step kind

_B = RNG.normal(size=(4, 4))
_S = _B @ _B.T + 4 * np.eye(4)    # well conditioned
_BIG = np.array([1000.0, 1001.0, 999.0, -1000.0])


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


STEP_CASES = [
    # logsumexp (max-shifted), embed, an outer product: large values must not overflow
    ("softmax Hessian", lambda: einderiv.diff(einderiv.diff("log(sum[j](exp(x[j])))", "x"), "x"),
     {"x": _BIG}, lambda v: np.diag(_softmax(v["x"])) - np.outer(_softmax(v["x"]),
                                                                 _softmax(v["x"]))),
    ("cross-entropy gradient", lambda: einderiv.diff("-y[i]*(z[i] - log(sum[j](exp(z[j]))))", "z"),
     {"y": np.array([0.1, 0.2, 0.3, 0.4]), "z": _BIG}, lambda v: _softmax(v["z"]) - v["y"]),
    ("solve", lambda: einderiv.parse("x[i]*inv(A)[i,j]*b[j]"),
     {"x": RNG.normal(size=4), "A": _S, "b": RNG.normal(size=4)},
     lambda v: v["x"] @ np.linalg.inv(v["A"]) @ v["b"]),
    ("transposed solve", lambda: einderiv.parse("x[i]*inv(A)[i,j]"),
     {"x": RNG.normal(size=4), "A": _S}, lambda v: v["x"] @ np.linalg.inv(v["A"])),
    ("solve with a 3-axis right-hand side", lambda: einderiv.parse("inv(A)[i,j]*B[j,k,l]"),
     {"A": _S, "B": RNG.normal(size=(4, 2, 3))},
     lambda v: np.einsum("ij,jkl->ikl", np.linalg.inv(v["A"]), v["B"])),
    ("det and logdet", lambda: einderiv.diff("logdet(A) + det(A)", "A"), {"A": _S},
     lambda v: np.linalg.inv(v["A"]).T * (1 + np.linalg.det(v["A"]))),
    ("element-wise functions", lambda: einderiv.parse(
        "relu(x[i]) + abs(x[i]) + step(x[i]) + sign(x[i]) + sin(x[i]) + cos(x[i]) + tan(x[i])"
        " + sqrt(abs(x[i])) + softplus(x[i]) + sigmoid(x[i]) + exp(-abs(x[i]))"),
     {"x": np.array([-800.0, -2.0, 0.3, 1.5, 800.0])},
     lambda v: (np.maximum(v["x"], 0) + np.abs(v["x"]) + (v["x"] > 0) + np.sign(v["x"])
                + np.sin(v["x"]) + np.cos(v["x"]) + np.tan(v["x"]) + np.sqrt(np.abs(v["x"]))
                + np.logaddexp(0, v["x"]) + 1 / (1 + np.exp(-np.clip(v["x"], -700, 700)))
                + np.exp(-np.abs(v["x"])))),
    ("powers", lambda: einderiv.parse("x[i]**p + x[i]**1.5 + x[i]**(-2) + x[i]**(-0.5) + log(x[i])"),
     {"x": np.array([0.5, 1.2, 2.0]), "p": np.array(2.5)},
     lambda v: v["x"] ** 2.5 + v["x"] ** 1.5 + v["x"] ** -2.0 + v["x"] ** -0.5 + np.log(v["x"])),
    ("third derivative tensor", lambda: einderiv.diff("x[i]*x[j]*x[k] -> [i,j,k]", "x"),
     {"x": RNG.normal(size=3)},
     lambda v: (np.einsum("pi,j,k->pijk", np.eye(3), v["x"], v["x"])
                + np.einsum("i,pj,k->pijk", v["x"], np.eye(3), v["x"])
                + np.einsum("i,j,pk->pijk", v["x"], v["x"], np.eye(3)))),
    ("diagonal and trace", lambda: einderiv.parse("A[i,i] -> [i]"),
     {"A": RNG.normal(size=(3, 3))}, lambda v: np.diag(v["A"])),
    ("empty axis", lambda: einderiv.diff(LINREG, "theta"),
     {"X": np.zeros((0, 3)), "theta": RNG.normal(size=3), "Y": np.zeros(0), "n": np.array(2.0)},
     lambda v: np.zeros(3)),
]


@pytest.mark.parametrize("with_shapes", [False, True], ids=["no-shapes", "shapes"])
@pytest.mark.parametrize("backend", ["numpy", "opt_einsum", *SLOW_FOREIGN])
@pytest.mark.parametrize("name, build, values, closed_form", STEP_CASES,
                         ids=[c[0] for c in STEP_CASES])
def test_every_step_kind(name, build, values, closed_form, backend, with_shapes):
    e = build()
    shapes = {k: np.shape(v) for k, v in values.items()} if with_shapes else None
    src = e.to_python(backend=backend, shapes=shapes)
    want = closed_form(values)
    got = _run_foreign(backend, src, values) if backend in FOREIGN \
        else _call(_load(src), values)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    if backend in ("numpy", "opt_einsum"):
        np.testing.assert_allclose(got, e.evaluate(**values), rtol=1e-12, atol=1e-300)


def test_inverse_times_vector_is_a_solve_and_logdet_a_slogdet():
    src = einderiv.parse("x[i]*inv(A)[i,j]*b[j]").to_python()
    assert "np.linalg.solve(" in src and "np.linalg.inv(" not in src
    assert "slogdet" in einderiv.parse("logdet(A)").to_python()


# ------------------------------------------------------------------ names and errors


def test_variable_names_that_clash_with_python_or_the_generated_names():
    e = einderiv.diff("lambda*x[i]*x[i] + np*t1[i]*x[i]", "x")
    src = e.to_python()
    assert "import numpy as np_" in src and "def grad(*, lambda_, x, np, t1):" in src
    x, t1 = RNG.normal(size=3), RNG.normal(size=3)
    np.testing.assert_allclose(_load(src)(lambda_=0.5, np=2.0, t1=t1, x=x),
                               2 * 0.5 * x + 2.0 * t1)


def test_docstring_states_shapes_axis_order_layout_and_the_expression():
    g = einderiv.diff(LINREG, "theta")
    doc = _load(g.to_python()).__doc__
    assert "2*X[a,d]*(X[a,b]*theta[b] - Y[a])/n" in doc
    for line in ("X: shape (a, d)", "theta: shape (d,)", "Y: shape (a,)", "n: shape () (a scalar)",
                 "shape (d,), axes in the order of the free indices (d)", "denominator layout"):
        assert line in doc, line
    doc = _load(g.to_python(shapes={"X": (5, 3), "theta": (3,), "Y": (5,), "n": ()})).__doc__
    assert "X: shape (5, 3)" in doc and "Returns an array of shape (3,)" in doc
    doc = _load(g.to_python(shapes={"X": ("m", "p")})).__doc__
    assert "X: shape (m, p)" in doc and "theta: shape (p,)" in doc and "Y: shape (m,)" in doc
    doc = _load(einderiv.diff("W[j,i]*A[j]", "W").to_python()).__doc__
    assert "shape (b, c, c), axes in the order of the free indices (b, c, i)" in doc


def test_unknown_backend_and_bad_names_are_refused():
    e = einderiv.parse("x[i]")
    with pytest.raises(einderiv.EinderivError, match="'numpy'.*'opt_einsum'.*'jax'.*'torch'"):
        e.to_python(backend="tensorflow")
    for bad in ("lambda", "2fast", "a-b"):
        with pytest.raises(einderiv.EinderivError, match="identifier"):
            e.to_python(name=bad)
    with pytest.raises(einderiv.ShapeError):
        e.to_python(shapes={"x": (3, 4)})
    with pytest.raises(einderiv.ShapeError, match="size"):
        einderiv.parse("x[i]*y[i]").to_python(shapes={"x": (3,), "y": (4,)})


# ------------------------------------------------------------------ command line


def _emit(capsys, argv):
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def _linreg(seed=0):
    rng = np.random.default_rng(seed)
    return {"X": rng.normal(size=(5, 3)), "theta": rng.normal(size=3),
            "Y": rng.normal(size=5), "n": 5.0}


def test_cli_emit_python_prints_a_runnable_gradient_and_hessian(capsys):
    shape = ["--shape", "X=5,3", "--shape", "theta=3", "--shape", "Y=5", "--shape", "n="]
    out = _emit(capsys, ["diff", LINREG, "--wrt", "theta", *shape, "--emit", "python"])
    assert out.startswith("import numpy as np\n") and "def grad(*, X, theta, Y, n):" in out
    assert 'optimize=["einsum_path", ' in out   # integer shapes: the path is written out
    v = _linreg()
    np.testing.assert_allclose(_load(out)(**v),
                               2 / v["n"] * v["X"].T @ (v["X"] @ v["theta"] - v["Y"]))
    out = _emit(capsys, ["diff", LINREG, "--wrt", "theta", "--order", "2", "--emit", "python"])
    assert "optimize=True" in out   # no shapes: numpy's own path search
    np.testing.assert_allclose(_load(out, "hessian")(X=v["X"], n=v["n"]),
                               2 / v["n"] * v["X"].T @ v["X"])
    out = _emit(capsys, ["diff", "tanh(A[i,j]*x[j])", "--wrt", "x", "--emit", "python"])
    A, x = RNG.normal(size=(4, 3)), RNG.normal(size=3)
    np.testing.assert_allclose(_load(out, "jacobian")(A=A, x=x),
                               A.T @ np.diag(1 - np.tanh(A @ x) ** 2))
    out = _emit(capsys, ["diff", "--emit", "python", "--name", "linreg_grad"])   # the demo
    assert "def linreg_grad(*, X, theta, Y, n):" in out and "X: shape (n, d)" in out
    np.testing.assert_allclose(_load(out, "linreg_grad")(**v),
                               2 / v["n"] * v["X"].T @ (v["X"] @ v["theta"] - v["Y"]))


def test_cli_emit_python_matches_finite_differences(capsys):
    out = _emit(capsys, ["diff", LOGISTIC, "--wrt", "theta", "--emit", "python"])
    X, y, th = RNG.normal(size=(6, 3)), RNG.choice([-1.0, 1.0], 6), RNG.normal(size=3)

    def loss(a):
        return np.logaddexp(0, -y * (X @ a["theta"])).sum()
    fd = central_diff(loss, {"theta": th}, "theta")
    np.testing.assert_allclose(_load(out)(X=X, theta=th, y=y), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", ["opt_einsum", *SLOW_FOREIGN])
def test_cli_emit_python_backend_writes_that_librarys_code(capsys, backend):
    # --backend: the code of to_python(backend=...), run on that library's arrays
    out = _emit(capsys, ["diff", LINREG, "--wrt", "theta", "--emit", "python",
                         "--backend", backend])
    assert out == einderiv.diff(LINREG, "theta").to_python("grad", backend=backend)
    v = _linreg(3)
    got = _run_foreign(backend, out, v) if backend in FOREIGN else _load(out)(**v)
    np.testing.assert_allclose(got, 2 / v["n"] * v["X"].T @ (v["X"] @ v["theta"] - v["Y"]))


def test_cli_no_multiply_out_keeps_the_residual(capsys):
    # with integer sizes (r << m, n) the code multiplies -2 (M - U V^T) V out, never
    # making the m x n residual; --no-multiply-out keeps it as derived
    m, n, r = 400, 300, 2
    arrays, want = low_rank_fit(m, n, r, RNG)
    shape = [f"--shape={k}={','.join(map(str, v.shape))}" for k, v in arrays.items()]
    argv = ["diff", LOW_RANK, "--wrt", "U", *shape, "--emit", "python"]
    for flags, residual in (([], False), (["--no-multiply-out"], True)):
        fn = _load(_emit(capsys, argv + flags))
        np.testing.assert_allclose(fn(**arrays), want, rtol=1e-10)
        largest = _largest_array_made("numpy", fn, arrays)
        assert (largest >= m * n) if residual else (largest < m * n / 4)


def test_cli_emit_latex_prints_index_and_matrix_forms(capsys):
    out = _emit(capsys, ["diff", LINREG, "--wrt", "theta", "--emit", "latex"])
    assert out.splitlines() == [
        "% d f / d theta, denominator layout",
        r"\frac{2 X_{ad} \left(X_{ab} \theta_{b} - Y_{a}\right)}{n}",
        "% matrix form",
        r"\frac{2}{n} X^{\top} \left(X \theta - Y\right)",
    ]
    out = _emit(capsys, ["diff", "W[j,i]*A[j]", "--wrt", "W", "--emit", "latex"])
    assert out.splitlines() == ["% d f / d W, denominator layout", r"A_{b} \delta_{ci}"]


def test_cli_without_emit_is_unchanged(capsys):
    out = _emit(capsys, ["diff", LINREG, "--wrt", "theta"])
    lines = out.splitlines()
    assert lines[0] == "layout: theta's axes first, then f's (denominator layout)"  # the header
    assert lines[2] == "d f / d theta = 2*X[a,d]*(X[a,b]*theta[b] - Y[a])/n"
    assert "def " not in out and "matrix form: 2/n X^T (X theta - Y)" in out
