"""Code export: the source of a standalone Python function computing an expression.

:func:`to_python` (``Expr.to_python``) writes out the plan of
:func:`einderiv.numeric.compiled.compile_expr` step by step, so the exported function does
what ``compile`` does:

* each step becomes one line (or a few), and each shared subexpression one local
  variable: input names for inputs, ``t1, t2, ...`` for intermediates;
* the stable forms are kept (max-shifted log-sum-exp, ``logaddexp`` for softplus and
  sigmoid, ``solve`` instead of an inverse times a vector, ``slogdet``);
* each product is one contraction (``np.einsum``, ``opt_einsum.contract``,
  ``jnp.einsum`` or ``torch.einsum``), scalars multiplied apart as compile does; with
  integer ``shapes`` the contraction path compile would take (opt_einsum's, for those
  shapes) is written into the call, so the order is the same;
* a delta with both indices free is never a dense identity: the term is written into
  a diagonal of zeros (an einsum view on numpy, an indexed assignment on torch), or
  on jax selected by ``jnp.where`` on compared index ranges (XLA fuses a select with
  what reads it; a scatter it does not);
* on jax, a product summed over the leading axes of both operands (``X^T W X``) calls a
  helper written beside the function, which on CPU transposes the first operand in
  cache-sized row blocks before the product (XLA's fast CPU product takes only a first
  operand summed over its last axes), and a product's scalar factors multiply its
  smallest operand made element-wise (fused into that loop by XLA, not a pass after);
* a value written twice (the same text of the same variables) is computed once;
* more than 52 index letters in one contraction (numpy's and torch's limit): that
  line calls ``opt_einsum.contract``, which maps the labels for the backend.

The function takes the expression's variables as keyword-only arguments, in the
order the expression shows them; its result has numpy's promotion of the arrays'
dtypes, Python numbers weak (NEP 50), integer and boolean arrays made floats (as
compile does); it never modifies its inputs, and imports
only its array library (jax.numpy and jax.lax on jax; opt_einsum where needed), never
einderiv.

The writer is :mod:`einderiv.numeric.code_writer` (one method per step kind), the
spellings of each library :mod:`einderiv.numeric.dialects`, the sizes in the
docstring :mod:`einderiv.numeric.axis_sizes`.
"""

from __future__ import annotations

import importlib.util
import keyword
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..core.ir import Expr
from ..core.shapes import normalize_shapes
from ..core.structures import check_values, structures_in
from ..errors import EinderivError
from .code_writer import CodeWriter
from .dialects import DIALECTS
from .inputs import check_flag, expressions, missing_error
from .lowering import lower, lower_many
from .planning import known_shapes, plan_shapes
from .rewrites import distributions

__all__ = ["BACKENDS", "to_python", "ExportedExpr"]

#: Backends of :func:`to_python` and what the generated code uses.
BACKENDS: dict[str, str] = {
    "numpy": "numpy only: np.einsum, with the contraction path written out when shapes are given",
    "opt_einsum": "numpy arrays, products by opt_einsum.contract",
    "jax": "jax.numpy (jnp.einsum; diagonals written with jnp.where)",
    "torch": "torch tensors (torch.einsum, torch.linalg)",
}


def to_python(expr: Expr | Sequence[Expr], name: str = "grad", backend: str = "numpy",
              shapes: Mapping[str, Any] | None = None, *, multiply_out: bool = True) -> str:
    """The source of a function ``name(*, <variables as the expression shows them>)``
    computing ``expr``; of a list of expressions (``einderiv.diff(loss, ["W", "b"])``),
    one function returning a tuple, their common subexpressions computed once.

    ``backend`` is a key of :data:`BACKENDS`. ``shapes`` (name -> tuple of sizes, as
    compile takes) is optional: sizes show in the docstring, and where every input has
    integer sizes, each contraction gets the path compile would use for them, and a
    product with a sum factor is multiplied out where compile multiplies it out
    (``multiply_out=False``: never; see :func:`einderiv.compile_expr`)."""
    check_flag("multiply_out", multiply_out)
    return _writer(expr, name, backend, shapes, multiply_out).source()


def _writer(expr: Expr | Sequence[Expr], name: str, backend: str,
            shapes: Mapping[str, Any] | None, multiply_out: bool = True) -> CodeWriter:
    dialect = DIALECTS.get(backend)
    if dialect is None:
        valid = ", ".join(f"{k!r} ({v})" for k, v in BACKENDS.items())
        raise EinderivError(f"unknown backend {backend!r}; valid backends: {valid}")
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise EinderivError(f"the function name must be a Python identifier, got {name!r}")
    shapes = normalize_shapes(shapes)
    expr = expressions(expr)
    program = lower_many(expr) if isinstance(expr, tuple) else lower(expr)
    # Shapes that do not fit are refused as compile refuses them; the memory limit is
    # the running machine's business, not the exporter's.
    known = known_shapes(expr, program, shapes)
    multiplied = None
    if known is not None and multiply_out:  # the sizes fixed: as compile does
        sized = plan_shapes(expr, program, known, optimize="auto", backend="numpy",
                            memory_limit=2**62)
        multiplied = distributions(program, sized.shapes, sized.costs, set(), "auto", "numpy")
    return CodeWriter(expr, program, backend, dialect, shapes, name, multiplied)


class ExportedExpr:
    """``expr`` exported as code of another array library (:func:`to_python`) and
    loaded, called like a :class:`~einderiv.numeric.compiled.CompiledExpr`: ``f(**arrays)``,
    arrays of that library in and out. The code is written once per input shape, with
    that shape's contraction paths (products pairwise, intermediates in the axis order
    their contraction gives); ``Expr.compile(backend="jax")`` runs it under
    ``jax.jit`` (XLA compiles it once per shape), ``backend="torch"`` eagerly. The
    library must be installed. ``source``: the code for any shape. No memory check is
    made: the library reports an allocation that fails. ``multiply_out``: as
    :func:`einderiv.compile_expr` takes it."""

    def __init__(self, expr: Expr | tuple[Expr, ...], backend: str,
                 shapes: Mapping[str, Any] | None = None, multiply_out: bool = True):
        if importlib.util.find_spec(backend) is None:
            raise EinderivError(f"backend {backend!r} needs {backend} installed "
                                f"(pip install {backend})")
        writer = _writer(expr, "f", backend, shapes, multiply_out)
        self.expr, self.backend, self.source = expr, backend, writer.source()
        self.multiply_out = multiply_out
        self._params = [(p, writer.py[p]) for p in writer.params]
        self._variables = writer.variables
        self._fns: dict[tuple, Any] = {}  # per input shapes: the loaded function
        # checked on each call (core.structures)
        self._structures = {k: v for e in writer.exprs for k, v in structures_in(e).items()}
        names = [p for p, _ in self._params]
        # jax: one jitted function for all shapes, whose body runs only while JAX traces
        # a new signature: there it picks the code written for the shapes (_traced), and
        # jax.jit's own cache finds each call's compiled program, no key built here
        self._jitted: Any = None
        if backend == "jax":
            import jax
            self._jitted = jax.jit(self._traced)
        # one generated function, the arrays by position: on jax straight to jax.jit
        # (Python numbers as cached weak scalars), on torch to the function loaded for
        # the shapes; structured variables are checked on each call (the general way)
        self._call: Any = self._general
        if not self._structures and self._jitted is not None:
            self._call = jax_entry(names, self._jitted, self._general, WeakNumbers())
        elif not self._structures:
            self._call = fast_entry(names, self._fns, self._general)

    def __repr__(self) -> str:
        text = tuple(map(str, self.expr)) if isinstance(self.expr, tuple) else str(self.expr)
        return f"ExportedExpr({text!r}, backend={self.backend!r})"

    def __call__(self, **arrays: Any) -> Any:
        return self._call(arrays)

    def _general(self, arrays: Mapping[str, Any]) -> Any:
        """A call the fast entry does not take: a missing name, new shapes, structured
        variables, arguments without a ``.shape`` (lists)."""
        if any(p not in arrays for p, _ in self._params):
            raise missing_error(self._variables, [p for p, _ in self._params], arrays)
        check_values(self._structures, arrays)
        if self._jitted is not None:
            return self._jitted(*(arrays[p] for p, _ in self._params))
        shapes = tuple(tuple(np.shape(arrays[p])) for p, _ in self._params)
        fn = self._fns.get(shapes)
        if fn is None:
            fn = self._fns[shapes] = self._load(dict(zip((p for p, _ in self._params), shapes)))
        return fn(*(arrays[p] for p, _ in self._params))

    def _traced(self, *args: Any) -> Any:
        """jax: the body of the jitted function, run while JAX traces (the arguments are
        tracers, their shapes known): the code written for these shapes."""
        shapes = tuple(tuple(a.shape if hasattr(a, "shape") else _jnp_shape(a)) for a in args)
        fn = self._fns.get(shapes)
        if fn is None:
            fn = self._fns[shapes] = self._load(dict(zip((p for p, _ in self._params), shapes)))
        return fn(*args)

    def _load(self, shapes: Mapping[str, tuple]) -> Any:
        """The function written for these input shapes (ShapeError where they do not fit),
        taking the arguments by position (jax: called inside the jitted ``_traced``)."""
        source = _writer(self.expr, "f", self.backend, shapes, self.multiply_out).source()
        # the exported function takes keywords only; calls here go by position
        names = [py for _, py in self._params]
        source += (f"\n\ndef positional({', '.join(names)}):\n"
                   f"    return f({', '.join(f'{n}={n}' for n in names)})\n")
        namespace: dict[str, Any] = {}
        exec(compile(source, "<einderiv export>", "exec"), namespace)  # noqa: S102
        return namespace["positional"]


def _jnp_shape(a: Any) -> tuple:
    """The shape of a nested list (of tracers, inside jax.jit) as jax.numpy reads it."""
    import jax.numpy as jnp
    return tuple(jnp.asarray(a).shape)


def _entry(names: list[str], body: Callable[[list[str]], list[str]],
           namespace: dict[str, Any]) -> Any:
    """``call(arrays)`` generated: the arrays of ``names`` taken as ``a0, a1, ...`` (a
    missing name goes to ``general(arrays)``), then the lines ``body(["a0", ...])``."""
    params = [f"a{k}" for k in range(len(names))]
    lines = ["def call(arrays):"]
    if params:
        lines += ["    try:"] + [f"        {p} = arrays[{n!r}]" for n, p in zip(names, params)]
        lines += ["    except KeyError:", "        return general(arrays)"]
    exec(compile("\n".join(lines + body(params)) + "\n", "<einderiv entry>", "exec"),  # noqa: S102
         namespace)
    return namespace["call"]


def fast_entry(names: list[str], fns: Mapping[tuple, Any], general: Any) -> Any:
    """``call(arrays)``: the function loaded for the arrays' shapes (``fns``, keyed by
    the shapes in the order of ``names``), called with the arrays by position, or
    ``general(arrays)`` where a name is missing, an argument has no shape (a Python
    number counts as shape ``()``), or the shapes are new (torch)."""
    def body(params: list[str]) -> list[str]:
        return ["    try:", "        key = (" + "".join(
            f"() if type({p}) in NUMBERS else {p}.shape, " for p in params) + ")",
            "    except AttributeError:", "        return general(arrays)",
            "    fn = fns.get(key)", "    if fn is None:", "        return general(arrays)",
            f"    return fn({', '.join(params)})"]
    return _entry(names, body, {"fns": fns, "general": general, "NUMBERS": (float, int)})


def jax_entry(names: list[str], jitted: Any, general: Any, numbers: WeakNumbers) -> Any:
    """``call(arrays)``: ``jitted`` (one ``jax.jit``, which keys the shapes itself) with
    the arrays by position, each Python number replaced by ``numbers(value)``; a missing
    name goes to ``general(arrays)``. Its Python work is ~0.15 us, behind the ~0.4 us of
    ``ExportedExpr.__call__`` taking the keywords (benchmarks/backends.py: "program", the
    code jitted and called by position, against "einderiv")."""
    def body(params: list[str]) -> list[str]:
        return [line for p in params
                for line in (f"    if type({p}) in NUMBERS:", f"        {p} = numbers({p})")
                ] + [f"    return jitted({', '.join(params)})"]
    return _entry(names, body, {"jitted": jitted, "general": general, "numbers": numbers,
                                "NUMBERS": WeakNumbers.TYPES})


class WeakNumbers:
    """Python numbers as the weakly typed JAX scalars ``jax.jit`` makes of them, made
    once per value and reused. ``jax.jit`` converts a Python number argument on every
    call (1.5-3 us on a 2-core EPYC, as much as a small gradient's arithmetic); a
    research script passes the same ``n`` or learning rate each step. The scalar has
    the number's abstract value (dtype, weak type: the same compiled program, the same
    promotion); the key holds the type (``1 == 1.0 == True``) and ``jax_enable_x64``
    (the scalar's precision). Not cached: signed zeros and NaN (``-0.0 == 0.0``, equal
    keys for different numbers; ``nan != nan``), complex numbers (signed zero parts;
    not in :attr:`TYPES`, the entry passes them on), and a number met while JAX traces
    (``jnp.asarray`` gives a tracer there): those go to JAX as they are. At most
    :attr:`SIZE` values are kept (a schedule of learning rates does not grow it without
    bound)."""

    TYPES = frozenset((float, int, bool))
    SIZE = 64

    def __init__(self) -> None:
        import jax
        import jax.numpy as jnp
        self._config: Any = jax.config  # its options are attributes mypy does not know
        self._asarray, self._tracer = jnp.asarray, jax.core.Tracer
        self._made: dict[tuple, Any] = {}

    def __call__(self, value: float | int | bool) -> Any:
        key = (type(value), value, self._config.jax_enable_x64)
        made = self._made.get(key)
        if made is not None:
            return made
        if value != value or (type(value) is float and value == 0.0):
            return value
        try:
            made = self._asarray(value)
        except (OverflowError, TypeError):  # jax.jit reports it, as for any argument
            return value
        if isinstance(made, self._tracer):
            return value
        if len(self._made) >= self.SIZE:
            self._made.clear()
        self._made[key] = made
        return made
