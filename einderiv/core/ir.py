"""The intermediate representation: frozen, index-labelled expression nodes.

Every axis is named by an index label, never by a position (the lesson of SymPy's
array expressions). A :class:`Product` is one einsum term: its factors carry index
labels and ``out`` lists the labels that stay free, in axis order; every other label
is summed. A :class:`Sum` adds terms with the same free labels (a term with fewer
labels broadcasts along the missing ones).

Scopes: the argument of an element-wise :class:`Func` or a :class:`Pow` base shares
its free labels with the enclosing product (``exp(x[i]) * y[i]``); the argument of
:class:`Inv`, :class:`Det` and :class:`LogDet` is closed: its two free labels are
bound by the node, and the outside sees only ``Inv.indices``.

Sizes are not part of an expression. Where an index occurs on no tensor (a Kronecker
delta, a broadcast, a zero) the node keeps a *size hint* -- an int, a symbolic size
name, or ``(tensor_name, axis)`` -- used only by evaluation, never by equality.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from .layouts import DerivativeOf

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from ..matrix import MatrixExpr
    from ..numeric.compiled import CompiledExpr, ExportedExpr
    from ..tools.inspect import StructureReport

Index = str
SizeHint = int | str | tuple[str, int] | None

__all__ = [
    "Expr", "Tensor", "Delta", "Func", "Pow", "Inv", "Det", "LogDet", "Product", "Sum",
    "number", "zero", "const_value", "fresh_index", "fresh_names", "DerivativeOf",
]

_fresh_counter = itertools.count()


def fresh_index() -> Index:
    """A new internal index name. Internal names start with ``_`` and are renamed
    to readable letters by :func:`einderiv.symbolic.simplify.prettify` before printing."""
    return f"_{next(_fresh_counter)}"


def fresh_names(labels: Iterable[Index]) -> dict[Index, Index]:
    """A new internal name (:func:`fresh_index`) for each of ``labels``, handed out in
    sorted order: ``labels`` is often a set, whose order varies between processes (string
    hashes are salted, see ``PYTHONHASHSEED``), and the new names decide how ties are
    broken downstream, so handing them out in set order made the printed form vary."""
    return {b: fresh_index() for b in sorted(labels)}


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a block runs (its state is
    restored after; also usable as a decorator: ``@gc_paused()``).

    Parsing, differentiating and simplifying allocate many small objects that live as
    long as the expression, and form hardly any reference cycles (what they discard
    is freed by reference counting). On a large expression, the collector's repeated
    full passes over the growing heap took a third of the time (20,000 terms)."""
    if not gc.isenabled():  # already paused (a nested call) or turned off by the user
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(frozen=True, repr=False, eq=False)
class Expr:
    """Base class of all expression nodes (immutable, hashable, compared structurally).

    >>> import einderiv
    >>> e = einderiv.parse("A[i,k]*B[k,j]")
    >>> e.free
    ('i', 'j')
    >>> str(e)  # summed indices get canonical names: a, b, ... in order of appearance
    'A[i,a]*B[a,j]'
    >>> sorted(e.variables)
    ['A', 'B']

    **State on a node.** A node's fields are its meaning and never change. Three
    declared fields sit beside them, excluded from equality, hashing and ``repr``,
    and not copied by ``dataclasses.replace``:

    * ``derivative_of``: a :class:`DerivativeOf` (the variable, its axes, the
      layout) on the expression :func:`einderiv.diff` returns, written once by
      ``diff`` before the node is handed out (read by :mod:`einderiv.tools.inspect`
      and :func:`einderiv.to_matrix` to know which axes are the variable's);
    * ``definitions``: a :class:`~einderiv.core.definitions.Program`, the names to print;
    * ``_memo``: a dict of caches of pure functions of the node (canonical keys,
      size hints, the variables, the compiled plan of :meth:`evaluate`...), read and
      written only through :func:`memo`; each cache is named by the function that
      fills it. Nothing else is ever written onto a node.

    **Convenience methods.** ``str``, :meth:`to_latex` print through
    :mod:`einderiv.core.printing` (the same layer). :meth:`compile`, :meth:`to_python`,
    :meth:`to_matrix`, :meth:`structure` and :meth:`evaluate` belong to the layers
    above; they reach them through the package face ``einderiv`` (one sanctioned
    upward edge, imported when called, checked by tests/test_layers.py).
    """

    __slots__ = ()

    derivative_of: DerivativeOf | None = field(
        default=None, init=False, compare=False, repr=False)
    definitions: Any = field(default=None, init=False, compare=False, repr=False)
    _memo: dict[str, Any] | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def free(self) -> tuple[Index, ...]:
        """The free index labels, in axis order."""
        raise NotImplementedError

    @property
    def variables(self) -> frozenset[str]:
        """Names of the tensors and scalar variables the expression depends on."""
        cache = memo(self)
        found = cache.get("variables")
        if found is None:
            found = cache["variables"] = _collect_variables(self)
        return found

    def __str__(self) -> str:
        from .printing import to_text  # printing builds on this module
        return to_text(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def to_latex(self) -> str:
        """The expression in LaTeX index notation (lower indices, implicit sums).

        >>> import einderiv
        >>> einderiv.parse("2*x[i]/n").to_latex()
        '\\\\frac{2 x_{i}}{n}'
        """
        from .printing import to_latex  # printing builds on this module
        return to_latex(self)

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.to_latex()}$"

    # ---------------------------------------------- through the face (upward edge)

    def compile(self, shapes: Mapping[str, Any] | None = None, backend: str = "auto",
                **options: Any) -> CompiledExpr | ExportedExpr:
        """Plan the evaluation once and return a callable ``f(**arrays)`` (see
        :func:`einderiv.compile_expr`).

        >>> import numpy as np, einderiv
        >>> f = einderiv.diff("x[i]*A[i,j]*x[j]", "x").compile()
        >>> A, x = np.arange(9.0).reshape(3, 3), np.ones(3)
        >>> bool(np.allclose(f(A=A, x=x), (A + A.T) @ x))
        True
        """
        return _face().compile_expr(self, shapes=shapes, backend=backend, **options)

    def to_python(self, name: str = "grad", backend: str = "numpy",
                  shapes: Mapping[str, Any] | None = None, *, multiply_out: bool = True) -> str:
        """The source of a standalone function ``name(*, <variables as shown>)`` computing
        the expression from the plan of :meth:`compile` (:mod:`einderiv.numeric.codegen`;
        ``backend``: ``"numpy"``, ``"opt_einsum"``, ``"jax"`` or ``"torch"``; integer
        ``shapes`` fix each contraction's path; ``multiply_out`` as in :meth:`compile`).

        >>> import numpy as np, einderiv
        >>> src = einderiv.diff("x[i]*A[i,j]*x[j]", "x").to_python("grad")
        >>> print(src.splitlines()[3])
        def grad(*, A, x):
        >>> namespace = {}
        >>> exec(src, namespace)
        >>> A, x = np.arange(9.0).reshape(3, 3), np.ones(3)
        >>> bool(np.allclose(namespace["grad"](A=A, x=x), (A + A.T) @ x))
        True
        """
        return _face().to_python(self, name, backend, shapes, multiply_out=multiply_out)

    def to_matrix(self, **options: Any) -> MatrixExpr:
        """The expression in matrix notation, in the layout :func:`einderiv.diff`
        recorded (denominator unless ``layout="numerator"``; see
        :func:`einderiv.to_matrix`); raises ``NotMatrixExpressible`` where none exists."""
        return _face().to_matrix(self, **options)

    def structure(self, *args: Any, **kw: Any) -> StructureReport:
        """The structure report of a derivative (see :func:`einderiv.structure`)."""
        return _face().structure(self, *args, **kw)

    def evaluate(self, **arrays: Any) -> np.ndarray:
        """Evaluate; axes come in :attr:`free` order, the backend and dtype follow the
        arrays (numpy, dask, jax, torch; float32 in, float32 out). Scalar variables may
        be Python numbers or 0-d arrays; names not used are ignored. A scalar result is
        a 0-d array. The plan (:meth:`compile`) is made on the first call and reused.

        >>> import numpy as np, einderiv
        >>> e = einderiv.parse("A[i,k]*x[k]")
        >>> e.evaluate(A=np.eye(2), x=np.array([3.0, 4.0]))
        array([3., 4.])
        """
        cache = memo(self)
        compiled = cache.get("compiled")
        if compiled is None:
            compiled = cache["compiled"] = self.compile()
        return compiled(**arrays)


def _face() -> Any:
    """The package face ``einderiv``: the convenience methods of :class:`Expr` call
    its public functions (the one upward edge from core, imported when called)."""
    import einderiv
    return einderiv


def memo(e: Expr) -> dict[str, Any]:
    """The cache dict of node ``e`` (created on first use): the only place where
    anything is stored on a node after it is made (see :class:`Expr`)."""
    found = e._memo
    if found is None:
        found = {}
        object.__setattr__(e, "_memo", found)
    return found


def cached(e: Expr, name: str, default: Any = None) -> Any:
    """The cache ``name`` of node ``e`` (``default`` where there is none; creates
    nothing)."""
    found = e._memo
    return default if found is None else found.get(name, default)


def remember(e: Expr, name: str, value: Any) -> None:
    """Store ``value`` as the cache ``name`` of node ``e`` (a pure function of it)."""
    memo(e)[name] = value


# ---------------------------------------------------------------------------- atoms


@dataclass(frozen=True, repr=False)
class Tensor(Expr):
    """A variable ``name[i, j, ...]``; a scalar variable has no indices.

    A repeated label (``X[a,a]``) reads the diagonal, as in numpy.einsum.
    ``assumed``: an assumption on the variable (``"symmetric"``, ``"diagonal"``; see
    :mod:`einderiv.core.structures`), None for none; part of equality, not of the text.
    """

    name: str
    indices: tuple[Index, ...] = ()
    assumed: str | None = None

    @property
    def free(self) -> tuple[Index, ...]:
        if len(self.indices) < 2:  # nothing to repeat (the common scalar and vector)
            return self.indices
        return tuple(dict.fromkeys(self.indices))


@dataclass(frozen=True, repr=False)
class Delta(Expr):
    """The Kronecker delta ``delta[i,j]``. ``Delta(i, i)`` with ``i`` free is a
    vector of ones along ``i`` (a broadcast); summed, it is the size of ``i``."""

    i: Index
    j: Index
    size: SizeHint = field(default=None, compare=False)

    @property
    def free(self) -> tuple[Index, ...]:
        return (self.i,) if self.i == self.j else (self.i, self.j)


@dataclass(frozen=True, repr=False)
class Func(Expr):
    """An element-wise function (see :mod:`einderiv.core.functions`) of ``arg``."""

    name: str
    arg: Expr

    @property
    def free(self) -> tuple[Index, ...]:
        return self.arg.free


@dataclass(frozen=True, repr=False)
class Pow(Expr):
    """``base ** exponent`` element-wise; ``exponent`` has no free indices."""

    base: Expr
    exponent: Expr

    @property
    def free(self) -> tuple[Index, ...]:
        return self.base.free


@dataclass(frozen=True, repr=False)
class Inv(Expr):
    """``inv(arg)[k,l]``: the matrix inverse of ``arg`` (rows ``arg.free[0]``,
    columns ``arg.free[1]``), its axes labelled ``indices``."""

    arg: Expr
    indices: tuple[Index, Index]

    @property
    def free(self) -> tuple[Index, ...]:
        return tuple(dict.fromkeys(self.indices))


@dataclass(frozen=True, repr=False)
class Det(Expr):
    """``det(arg)`` of a matrix-valued ``arg`` (two free indices)."""

    arg: Expr

    @property
    def free(self) -> tuple[Index, ...]:
        return ()


@dataclass(frozen=True, repr=False)
class LogDet(Expr):
    """``logdet(arg)`` = log |det(arg)|, evaluated with ``slogdet``."""

    arg: Expr

    @property
    def free(self) -> tuple[Index, ...]:
        return ()


# ------------------------------------------------------------------------ composites


@dataclass(frozen=True, repr=False)
class Product(Expr):
    """One einsum term: ``coeff * factors``, free labels ``out``, all others summed.

    ``Product(2, (X[a,d], r[a]), ("d",))`` is ``2 * sum_a X[a,d] r[a]``.
    A product with no factors is a number.
    """

    coeff: Fraction
    factors: tuple[Expr, ...]
    out: tuple[Index, ...]

    @property
    def free(self) -> tuple[Index, ...]:
        return self.out


@dataclass(frozen=True, repr=False)
class Sum(Expr):
    """A sum of terms. ``out`` is the axis order; a term missing some of ``out``
    broadcasts along them. ``Sum((), out)`` is the zero tensor. ``hints`` maps
    indices to size hints for evaluation (not part of equality)."""

    terms: tuple[Expr, ...]
    out: tuple[Index, ...]
    hints: tuple[tuple[Index, SizeHint], ...] = field(default=(), compare=False)

    @property
    def free(self) -> tuple[Index, ...]:
        return self.out


# --------------------------------------------------------------------------- helpers


def number(value: Fraction | int) -> Product:
    """The constant ``value`` as an expression."""
    return Product(Fraction(value), (), ())


def zero(out: tuple[Index, ...] = (), hints: Mapping[Index, SizeHint] | None = None) -> Sum:
    """The zero tensor with free labels ``out``."""
    return Sum((), tuple(out), tuple((hints or {}).items()))


def const_value(e: Expr) -> Fraction | None:
    """The value of ``e`` if it is a plain number, else None."""
    if isinstance(e, Product) and not e.factors and not e.out:
        return e.coeff
    if isinstance(e, Sum) and not e.out:
        if not e.terms:
            return Fraction(0)
        if len(e.terms) == 1:
            return const_value(e.terms[0])
    return None


def children(e: Expr) -> tuple[Expr, ...]:
    """The direct subexpressions of ``e``, in order (none for an atom)."""
    get = _CHILDREN.get(type(e))
    if get is None:  # a subclass of a node type (the printing view Word): its base's
        get = next((_CHILDREN[c] for c in type(e).__mro__ if c in _CHILDREN), _no_children)
    return get(e)


def with_children(e: Expr, new: tuple[Expr, ...] | list[Expr]) -> Expr:
    """A node like ``e`` with its direct subexpressions replaced by ``new`` (in the
    order :func:`children` gives them); an atom comes back as it is.

    >>> from einderiv import parse
    >>> e = parse("tanh(x[i])")
    >>> print(with_children(e, [parse("y[i]")]))
    tanh(y[i])
    """
    rebuild = _REBUILD.get(type(e))
    if rebuild is None:  # a subclass (the printing view Word) keeps its kind and fields
        return replace(e, arg=new[0]) if isinstance(e, Func) else e
    return rebuild(e, new)


def _no_children(e: Expr) -> tuple[Expr, ...]:
    return ()


def _arg_child(e: Func | Inv | Det | LogDet) -> tuple[Expr, ...]:
    return (e.arg,)


def _pow_children(e: Pow) -> tuple[Expr, ...]:
    return (e.base, e.exponent)


def _factor_children(e: Product) -> tuple[Expr, ...]:
    return e.factors


def _term_children(e: Sum) -> tuple[Expr, ...]:
    return e.terms


#: :func:`children` by node type: one dictionary look-up instead of a chain of
#: isinstance tests (walks visit every node, so this is a hot path).
_CHILDREN: dict[type, Callable[[Any], tuple[Expr, ...]]] = {
    Tensor: _no_children, Delta: _no_children,
    Func: _arg_child, Inv: _arg_child, Det: _arg_child, LogDet: _arg_child,
    Pow: _pow_children, Product: _factor_children, Sum: _term_children,
}


#: :func:`with_children` by node type: ``(node, new children) -> node``.
_REBUILD: dict[type, Callable[[Any, Any], Expr]] = {
    Tensor: lambda e, new: e, Delta: lambda e, new: e,
    Func: lambda e, new: Func(e.name, new[0]), Pow: lambda e, new: Pow(new[0], new[1]),
    Inv: lambda e, new: Inv(new[0], e.indices), Det: lambda e, new: Det(new[0]),
    LogDet: lambda e, new: LogDet(new[0]),
    Product: lambda e, new: Product(e.coeff, tuple(new), e.out),
    Sum: lambda e, new: Sum(tuple(new), e.out, e.hints),
}


def register_node(kind: type, *, children: Callable[[Any], tuple[Expr, ...]],
                  rebuild: Callable[[Any, Any], Expr], rename: Callable[..., Expr]) -> None:
    """Add a node type of another module (:mod:`einderiv.core.named`) to the tables."""
    _CHILDREN[kind], _REBUILD[kind], RENAME_RULES[kind] = children, rebuild, rename


def walk(e: Expr) -> Iterator[Expr]:
    """All nodes of ``e``, parents first, a shared node (a definition's body) once."""
    stack = [e]
    seen: set[int] = set()
    while stack:
        if id(node := stack.pop()) in seen:
            continue
        seen.add(id(node))
        yield node
        get = _CHILDREN.get(type(node))
        below = get(node) if get is not None else children(node)
        if below:
            stack.extend(reversed(below))


def _collect_variables(e: Expr) -> frozenset[str]:
    """The names of the tensors in ``e`` (see :attr:`Expr.variables`); a subtree
    whose names are already memoised is not walked again (iterative: no recursion)."""
    if isinstance(e, Tensor):
        return frozenset((e.name,))
    names: set[str] = set()
    stack = [e]
    seen: set[int] = set()
    while stack:
        if id(node := stack.pop()) in seen:
            continue
        seen.add(id(node))
        known = cached(node, "variables")
        if known is not None:
            names.update(known)
        elif isinstance(node, Tensor):
            names.add(node.name)
        else:
            stack.extend(children(node))
    return frozenset(names)


def iter_tensors(e: Expr) -> Iterator[Tensor]:
    return (n for n in walk(e) if isinstance(n, Tensor))


def _declared_labels(n: Expr) -> tuple[Index, ...]:
    """The index labels node ``n`` itself names (not those of its children)."""
    if isinstance(n, (Tensor, Inv)):
        return n.indices
    if isinstance(n, Delta):
        return (n.i, n.j)
    if isinstance(n, (Product, Sum)):
        return n.out
    return ()


def all_indices(e: Expr) -> set[Index]:
    """Every index label used anywhere in ``e``, in any scope."""
    return {i for n in walk(e) for i in _declared_labels(n)}


def visible_indices(e: Expr) -> set[Index]:
    """Index labels used outside the closed scopes of inv/det/logdet arguments
    (those are private to their node and never meet another label)."""
    return {i for n in open_scope(e) for i in _declared_labels(n)}


def factor_indices(f: Expr) -> tuple[Index, ...]:
    """The labels a factor exposes to its product, with multiplicity for tensors
    and deltas (``X[a,a]`` exposes ``a`` twice: the Einstein rule sums it)."""
    if isinstance(f, (Tensor, Inv)):
        return f.indices
    if isinstance(f, Delta):
        return (f.i, f.j)
    return f.free


def open_scope(e: Expr) -> Iterator[Expr]:
    """The nodes of ``e`` outside inv/det/logdet arguments (those nodes included), each once."""
    stack, seen = [e], set()
    while stack:
        if id(node := stack.pop()) in seen:
            continue
        seen.add(id(node))
        yield node
        if not isinstance(node, (Inv, Det, LogDet)):
            stack.extend(reversed(children(node)))


def bound_indices(p: Product) -> set[Index]:
    """Labels summed by the product ``p`` itself (not those of inner scopes)."""
    seen: set[Index] = set()
    for f in p.factors:
        seen.update(factor_indices(f))
    return seen - set(p.out)


def rename(e: Expr, mapping: Mapping[Index, Index]) -> Expr:
    """Rename the free labels of ``e`` by ``mapping``, avoiding capture: a label
    bound inside ``e`` that a new name would collide with is renamed fresh first.
    Mapping two free labels to one takes the diagonal, as a repeated einsum label does."""
    if not mapping:
        return e
    mapping = {k: v for k, v in mapping.items() if k != v}
    if not mapping:
        return e
    # A node that keeps its labels is returned as it is, with what is memoised on it.
    rule = RENAME_RULES.get(type(e))
    if rule is None:
        raise TypeError(f"unknown node {type(e).__name__}")  # pragma: no cover
    return rule(e, mapping)


def _rename_labelled(e: Tensor | Inv, mapping: Mapping[Index, Index]) -> Expr:
    if not any(i in mapping for i in e.indices):
        return e
    if isinstance(e, Tensor):
        return replace(e, indices=tuple(mapping.get(i, i) for i in e.indices))
    i, j = e.indices
    return Inv(e.arg, (mapping.get(i, i), mapping.get(j, j)))


def _rename_delta(e: Delta, mapping: Mapping[Index, Index]) -> Expr:
    if e.i not in mapping and e.j not in mapping:
        return e
    return Delta(mapping.get(e.i, e.i), mapping.get(e.j, e.j), e.size)


def _rename_open(e: Func | Pow, mapping: Mapping[Index, Index]) -> Expr:
    """An element-wise function or a power shares its labels: the generic traversal
    (an exponent has no free labels, so renaming it changes nothing)."""
    kids = children(e)
    new = [rename(c, mapping) for c in kids]
    return e if all(n is c for n, c in zip(new, kids)) else with_children(e, new)


def _rename_product(e: Product, mapping: Mapping[Index, Index]) -> Expr:
    """Only the free labels are renamed; a summed label that a new name would
    capture is renamed fresh first."""
    free = set(e.out)
    local = {k: v for k, v in mapping.items() if k in free}
    if not local:
        return e
    targets = set(local.values())
    clash = bound_indices(e) & targets
    full = dict(local)
    full.update(fresh_names(clash))
    factors = tuple(rename(f, full) for f in e.factors)
    return Product(e.coeff, factors, tuple(dict.fromkeys(full.get(i, i) for i in e.out)))


def _rename_sum(e: Sum, mapping: Mapping[Index, Index]) -> Expr:
    local = {k: v for k, v in mapping.items() if k in set(e.out)}
    if not local:
        return e
    hints = tuple(dict((local.get(i, i), h) for i, h in e.hints).items())
    return Sum(tuple(rename(t, local) for t in e.terms),
               tuple(dict.fromkeys(local.get(i, i) for i in e.out)), hints)


#: How each node type renames its free labels: ``(node, mapping) -> node``. A node
#: type that binds labels (the softmax words of :mod:`einderiv.core.softmax`) adds
#: its own entry where it is defined.
RENAME_RULES: dict[type, Callable[[Any, Mapping[Index, Index]], Expr]] = {
    Tensor: _rename_labelled,
    Inv: _rename_labelled,
    Delta: _rename_delta,
    Func: _rename_open,
    Pow: _rename_open,
    Det: lambda e, mapping: e,  # closed: nothing free inside
    LogDet: lambda e, mapping: e,
    Product: _rename_product,
    Sum: _rename_sum,
}


def freshen_bound(p: Product, avoid: set[Index]) -> Product:
    """``p`` with every summed label that is in ``avoid`` renamed fresh."""
    clash = bound_indices(p) & avoid
    if not clash:
        return p
    mapping = fresh_names(clash)
    return Product(p.coeff, tuple(rename(f, mapping) for f in p.factors), p.out)
