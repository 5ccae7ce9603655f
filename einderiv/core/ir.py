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
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

Index = str
SizeHint = int | str | tuple[str, int] | None

__all__ = [
    "Expr", "Tensor", "Delta", "Func", "Pow", "Inv", "Det", "LogDet", "Product", "Sum",
    "number", "zero", "const_value", "fresh_index", "fresh_names",
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
    """

    __slots__ = ()

    @property
    def free(self) -> tuple[Index, ...]:
        """The free index labels, in axis order."""
        raise NotImplementedError

    @property
    def variables(self) -> frozenset[str]:
        """Names of the tensors and scalar variables the expression depends on."""
        found = self.__dict__.get("_variables")  # memoised on the immutable node
        if found is None:
            found = _collect_variables(self)
            object.__setattr__(self, "_variables", found)
        return found

    def __str__(self) -> str:
        from .printing import to_text
        return to_text(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def to_latex(self) -> str:
        """The expression in LaTeX index notation (lower indices, implicit sums).

        >>> import einderiv
        >>> einderiv.parse("2*x[i]/n").to_latex()
        '\\\\frac{2 x_{i}}{n}'
        """
        from .printing import to_latex
        return to_latex(self)

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.to_latex()}$"

    def compile(self, shapes: Mapping[str, Any] | None = None, backend: str = "numpy",
                **options: Any) -> Any:
        """Plan the evaluation once and return a callable ``f(**arrays)`` (see
        :func:`einderiv.numeric.compiled.compile_expr`).

        >>> import numpy as np, einderiv
        >>> f = einderiv.diff("x[i]*A[i,j]*x[j]", "x").compile()
        >>> A, x = np.arange(9.0).reshape(3, 3), np.ones(3)
        >>> bool(np.allclose(f(A=A, x=x), (A + A.T) @ x))
        True
        """
        from ..numeric.compiled import compile_expr
        return compile_expr(self, shapes=shapes, backend=backend, **options)

    def to_python(self, name: str = "grad", backend: str = "numpy",
                  shapes: Mapping[str, Any] | None = None) -> str:
        """The source of a standalone function ``name(<variables, sorted>)`` computing
        the expression from the plan of :meth:`compile` (see :mod:`einderiv.numeric.codegen`;
        ``backend``: ``"numpy"``, ``"opt_einsum"``, ``"jax"`` or ``"torch"``; integer
        ``shapes`` fix each contraction's path).

        >>> import numpy as np, einderiv
        >>> src = einderiv.diff("x[i]*A[i,j]*x[j]", "x").to_python("grad")
        >>> print(src.splitlines()[3])
        def grad(A, x):
        >>> namespace = {}
        >>> exec(src, namespace)
        >>> A, x = np.arange(9.0).reshape(3, 3), np.ones(3)
        >>> bool(np.allclose(namespace["grad"](A, x), (A + A.T) @ x))
        True
        """
        from ..numeric.codegen import to_python
        return to_python(self, name=name, backend=backend, shapes=shapes)

    def to_matrix(self, **options: Any) -> Any:
        """The expression in denominator-layout matrix notation (see
        :func:`einderiv.matrix.to_matrix`); raises ``NotMatrixExpressible`` where none
        exists."""
        from ..matrix.nodes import to_matrix
        return to_matrix(self, **options)

    def structure(self, *args: Any, **kw: Any) -> Any:
        """The structure report of a derivative (see :func:`einderiv.tools.inspect.structure`)."""
        from ..tools.inspect import structure
        return structure(self, *args, **kw)

    def evaluate(self, **arrays: Any) -> np.ndarray:
        """Evaluate with numpy/opt_einsum; axes come in :attr:`free` order.

        Scalar variables may be Python numbers or 0-d arrays. Names the expression
        does not use are ignored. A scalar result is a 0-d array. The evaluation plan
        (:meth:`compile`) is made on the first call and reused.

        >>> import numpy as np, einderiv
        >>> e = einderiv.parse("A[i,k]*x[k]")
        >>> e.evaluate(A=np.eye(2), x=np.array([3.0, 4.0]))
        array([3., 4.])
        """
        compiled = self.__dict__.get("_compiled")
        if compiled is None:
            compiled = self.compile()
            object.__setattr__(self, "_compiled", compiled)
        return compiled(**arrays)


# ---------------------------------------------------------------------------- atoms


@dataclass(frozen=True, repr=False)
class Tensor(Expr):
    """A variable ``name[i, j, ...]``; a scalar variable has no indices.

    A repeated label (``X[a,a]``) reads the diagonal, as in numpy.einsum.
    """

    name: str
    indices: tuple[Index, ...] = ()

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
    if get is not None:
        return get(e)
    if isinstance(e, (Func, Inv, Det, LogDet)):  # a subclass of a node type
        return (e.arg,)
    if isinstance(e, Pow):
        return (e.base, e.exponent)
    if isinstance(e, Product):
        return e.factors
    if isinstance(e, Sum):
        return e.terms
    return ()


def with_children(e: Expr, new: tuple[Expr, ...] | list[Expr]) -> Expr:
    """A node like ``e`` with its direct subexpressions replaced by ``new`` (in the
    order :func:`children` gives them); an atom comes back as it is.

    >>> from einderiv import parse
    >>> e = parse("tanh(x[i])")
    >>> print(with_children(e, [parse("y[i]")]))
    tanh(y[i])
    """
    if isinstance(e, Product):
        return Product(e.coeff, tuple(new), e.out)
    if isinstance(e, Sum):
        return Sum(tuple(new), e.out, e.hints)
    if isinstance(e, Func):
        if type(e) is not Func:  # a printing view (einderiv.core.softmax.Word) keeps its kind
            return replace(e, arg=new[0])
        return Func(e.name, new[0])
    if isinstance(e, Pow):
        return Pow(new[0], new[1])
    if isinstance(e, Inv):
        return Inv(new[0], e.indices)
    if isinstance(e, (Det, LogDet)):
        return type(e)(new[0])
    return e


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
_CHILDREN = {
    Tensor: _no_children, Delta: _no_children,
    Func: _arg_child, Inv: _arg_child, Det: _arg_child, LogDet: _arg_child,
    Pow: _pow_children, Product: _factor_children, Sum: _term_children,
}


def walk(e: Expr) -> Iterator[Expr]:
    """All nodes of ``e``, parents before children (iterative: no recursion limit)."""
    stack = [e]
    while stack:
        node = stack.pop()
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
    while stack:
        node = stack.pop()
        known = node.__dict__.get("_variables")
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
    return {i for n in _open_scope(e) for i in _declared_labels(n)}


def factor_indices(f: Expr) -> tuple[Index, ...]:
    """The labels a factor exposes to its product, with multiplicity for tensors
    and deltas (``X[a,a]`` exposes ``a`` twice: the Einstein rule sums it)."""
    if isinstance(f, (Tensor, Inv)):
        return f.indices
    if isinstance(f, Delta):
        return (f.i, f.j)
    return f.free


def outer_origins(e: Expr) -> dict[Index, SizeHint]:
    """For the labels visible at the top of ``e`` (and any in open scopes, never those
    inside an inv/det/logdet argument), a size hint: the first ``(tensor, axis)``
    carrying the label, else a delta's hint.
    Memoised on the (immutable) node; the caller gets its own copy."""
    cached = e.__dict__.get("_outer_origins")
    if cached is None:
        cached = _outer_origins(e)
        object.__setattr__(e, "_outer_origins", cached)
    return dict(cached)


def _open_scope(e: Expr) -> Iterator[Expr]:
    """The nodes of ``e`` outside the closed scopes of inv/det/logdet arguments
    (the ``Inv``/``Det``/``LogDet`` nodes themselves included), parents first."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (Inv, Det, LogDet)):
            stack.extend(reversed(children(node)))


def _outer_origins(e: Expr) -> dict[Index, SizeHint]:
    # A product below e is a scope of its own: what it sums is another index that may
    # share a name with one of e (``sum[a](y[a])*delta[a,a]``), and so is a label inside
    # an inv/det/logdet argument (``logdet(M[g,a]) + x[a]``). Each product's origins are
    # found within it (its deltas tie its labels there) and only its free labels are
    # passed up. The products below are done innermost first, so each is memoised
    # before its parent reads it (no recursion along a deep expression).
    below = [n for n in _open_scope_products(e) if n is not e]
    for q in reversed(below):
        if "_outer_origins" not in q.__dict__:
            object.__setattr__(q, "_outer_origins", _scope_origins(q))
    return _scope_origins(e)


def _open_scope_products(e: Expr) -> Iterator[Product]:
    for n in _open_scope(e):
        if isinstance(n, Product):
            yield n


def _free_deltas(e: Expr, free: frozenset[Index]) -> Iterator[Delta]:
    """The deltas in ``e`` (through products and sums, not function arguments) whose
    two labels are free all the way up (in ``free``): they tie sizes in the scope
    around ``e`` too (``-(-delta[d1,d2]) + q[i,d1]``: d2 has q's size)."""
    stack: list[tuple[Expr, frozenset[Index]]] = [(e, free)]
    while stack:
        n, here = stack.pop()
        if isinstance(n, Delta):
            if n.i in here and n.j in here:
                yield n
        elif isinstance(n, Product):  # what it sums is its own: not free above
            inner = here & frozenset(n.out)
            stack.extend((f, inner) for f in n.factors)
        elif isinstance(n, Sum):
            stack.extend((t, here) for t in n.terms)


def _scope_origins(e: Expr) -> dict[Index, SizeHint]:
    """The origins of the labels of ``e``'s own scope, reading each product below it
    from its memo (see :func:`_outer_origins`)."""
    found: dict[Index, SizeHint] = {}
    deltas: list[Delta] = []
    stack: list[Expr] = [e]
    while stack:
        n = stack.pop()
        if isinstance(n, Tensor):
            for axis, idx in enumerate(n.indices):
                found.setdefault(idx, (n.name, axis))
            continue
        if isinstance(n, Product) and n is not e:
            inner = n.__dict__.get("_outer_origins")
            if inner is None:
                inner = _outer_origins(n)
            for idx in n.out:
                if inner.get(idx) is not None:
                    found.setdefault(idx, inner[idx])
            deltas.extend(_free_deltas(n, frozenset(n.out)))
            continue
        if isinstance(n, Sum):
            for idx, hint in n.hints:
                found.setdefault(idx, hint)
        elif isinstance(n, Inv):  # inv(M)[i,j]: i, j have the sizes of M's rows, columns
            inner = outer_origins(n.arg)
            for idx, axis_label in zip(n.indices, n.arg.free):
                if inner.get(axis_label) is not None:
                    found.setdefault(idx, inner[axis_label])
            continue
        elif isinstance(n, Delta):
            deltas.append(n)
        if not isinstance(n, (Det, LogDet)):
            stack.extend(reversed(children(n)))
    for n in deltas:  # tensors first, then a delta's own hint
        if n.size is not None:
            found.setdefault(n.i, n.size)
            found.setdefault(n.j, n.size)
    changed = True
    while changed:  # a delta is square: its indices share one size (chains: fixpoint)
        changed = False
        for n in deltas:
            if (n.i in found) != (n.j in found):
                found.setdefault(n.i, found.get(n.j))
                found.setdefault(n.j, found.get(n.i))
                changed = True
    return found


def bound_indices(p: Product) -> set[Index]:
    """Labels summed by the product ``p`` itself (not those of inner scopes)."""
    seen: set[Index] = set()
    for f in p.factors:
        seen.update(factor_indices(f))
    return seen - set(p.out)


def size_marker(f: Expr, p: Product) -> bool:
    """Whether factor ``f`` of product ``p`` is a size marker: a ``delta[i,i]`` with
    ``i`` summed by ``p`` and on no other factor (the size of ``i``), whose size hint
    is an axis of a variable, ``(x, k)``. It is printed ``size(x, k)``."""
    if not isinstance(f, Delta) or f.i != f.j or f.i in p.out:
        return False
    hint = f.size
    if not (isinstance(hint, tuple) and len(hint) == 2 and isinstance(hint[0], str)
            and isinstance(hint[1], int)):
        return False
    return sum(factor_indices(g).count(f.i) for g in p.factors) == 2


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
    if isinstance(e, (Tensor, Inv)):
        if not any(i in mapping for i in e.indices):
            return e
        indices = tuple(mapping.get(i, i) for i in e.indices)
        if isinstance(e, Tensor):
            return Tensor(e.name, indices)
        return Inv(e.arg, indices)  # type: ignore[arg-type]
    if isinstance(e, Delta):
        if e.i not in mapping and e.j not in mapping:
            return e
        return Delta(mapping.get(e.i, e.i), mapping.get(e.j, e.j), e.size)
    if isinstance(e, Func) and type(e) is not Func:  # a printing view: einderiv.core.softmax.Word
        return e.renamed(mapping)  # type: ignore[attr-defined]
    if isinstance(e, (Func, Pow)):
        inner = e.arg if isinstance(e, Func) else e.base
        renamed = rename(inner, mapping)
        if renamed is inner:
            return e
        return Func(e.name, renamed) if isinstance(e, Func) else Pow(renamed, e.exponent)
    if isinstance(e, (Det, LogDet)):
        return e
    if isinstance(e, Product):
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
    if isinstance(e, Sum):
        local = {k: v for k, v in mapping.items() if k in set(e.out)}
        if not local:
            return e
        hints = tuple(dict((local.get(i, i), h) for i, h in e.hints).items())
        return Sum(tuple(rename(t, local) for t in e.terms),
                   tuple(dict.fromkeys(local.get(i, i) for i in e.out)), hints)
    raise TypeError(f"unknown node {type(e).__name__}")  # pragma: no cover


def freshen_bound(p: Product, avoid: set[Index]) -> Product:
    """``p`` with every summed label that is in ``avoid`` renamed fresh."""
    clash = bound_indices(p) & avoid
    if not clash:
        return p
    mapping = fresh_names(clash)
    return Product(p.coeff, tuple(rename(f, mapping) for f in p.factors), p.out)
