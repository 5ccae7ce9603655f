"""Names in the IR: a use ``Z[a,b]`` of a definition ``Z[i,n] = body`` keeps one body.

A :class:`Named` node is a product: the definition's body, whose free labels are the
definition's own (private: :func:`own_labels`, which no text writes, so no label around
a use can meet them), times one Kronecker delta per axis renaming them to the labels
of the use. Any pass that does not know names reads it as that product and is
right; the passes that do know them (simplify, differentiation, printing, matrix form:
:func:`opaque`) read the use as a tensor named ``Z``, so the body is simplified and
differentiated once however often it is used, and a derivative through ``d`` layers
costs ``O(d)`` (docs/language.md, "Definitions"). :func:`einderiv.core.definitions.inline`
writes every use out (what numeric evaluation and ``expand=True`` take).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction

from .ir import (Delta, Expr, Index, Product, SizeHint, Sum, Tensor, _rename_product, cached,
                 children, fresh_names, register_node, remember, rename, with_children)

__all__ = ["Named", "use", "own_labels", "body_of", "use_labels", "has_names", "opaque",
           "definitions_in", "names_table", "rewrite"]


@dataclass(frozen=True, repr=False)
class Named(Product):
    """``name[labels]``: ``factors`` are the definition's body, then one delta per axis
    (body label -> use label); ``shown``: the indices of the definition's left-hand
    side, for printing it (not part of equality)."""

    name: str = ""
    shown: tuple[Index, ...] = field(default=(), compare=False)

    def __hash__(self) -> int:  # the body is shared: hashing it whole at every use is O(size)
        return hash((self.name, self.out, len(self.factors)))


def use(name: str, body: Expr, labels: tuple[Index, ...], shown: tuple[Index, ...] = ()
        ) -> Expr:
    """The use ``name[labels]`` of the definition whose body is ``body`` (its free labels,
    in order, are the definition's axes). ``labels`` may repeat (a diagonal)."""
    params = body.free
    if len(labels) != len(params):  # pragma: no cover - callers check ranks
        raise ValueError(f"{name} has {len(params)} axes, used with {len(labels)}")
    if set(labels) & set(params):  # a label of the body itself: give the body fresh ones
        body = rename(body, fresh_names(params))
        params = body.free
    deltas = tuple(Delta(p, i) for p, i in zip(params, labels))  # sizes: the body's
    return Named(Fraction(1), (body, *deltas), tuple(dict.fromkeys(labels)), name,
                 shown or params)


def own_labels(name: str, rank: int) -> tuple[Index, ...]:
    """The labels of the body of the definition ``name``: its own, private (no text
    writes ``_``), and the same at every parse, so that equal texts give equal nodes."""
    return tuple(f"_{name}.{k}" for k in range(rank))


def body_of(n: Named) -> Expr:
    return n.factors[0]


def use_labels(n: Named) -> tuple[Index, ...]:
    """The labels of the use, one per axis of the definition (repeats kept)."""
    return tuple(d.j for d in n.factors[1:] if isinstance(d, Delta))


def has_names(e: Expr) -> bool:
    """Whether ``e`` uses a definition (memoised on each node visited)."""
    if isinstance(e, Named):
        return True
    found = cached(e, "has_names")
    if found is None:
        found = any(has_names(c) for c in children(e))
        remember(e, "has_names", found)
    return found


def rewrite(e: Expr, replacement: Callable[[Expr], Expr | None],
            hint: Callable[[SizeHint], SizeHint] | None = None) -> Expr:
    """``e`` rebuilt bottom-up: a node that ``replacement`` maps (not None) is replaced,
    its children not visited; the size hints of deltas and sums are mapped by ``hint``.
    A shared node is visited once, and a node that nothing changes is kept (with what
    is memoised on it)."""
    done: dict[int, tuple[Expr, Expr]] = {}

    def go(x: Expr) -> Expr:
        found = done.get(id(x))
        if found is not None:
            return found[1]
        new = replacement(x)
        if new is None and isinstance(x, Delta):
            new = x if hint is None or hint(x.size) == x.size else replace(x, size=hint(x.size))
        elif new is None:
            kids = children(x)
            new_kids = [go(k) for k in kids]
            new = x if all(a is b for a, b in zip(new_kids, kids)) else with_children(x, new_kids)
            if hint is not None and isinstance(new, Sum) and \
                    any(hint(h) != h for _, h in new.hints):
                new = Sum(new.terms, new.out, tuple((i, hint(h)) for i, h in new.hints))
        done[id(x)] = (x, new)  # x kept alive, so that its id is not reused
        return new

    return go(e)


def opaque(e: Expr) -> Expr:
    """``e`` with each use of a definition read as a tensor of its name (``A[i,n]``):
    what to simplify, differentiate and print in the names."""
    return rewrite(e, lambda x: Tensor(x.name, use_labels(x)) if isinstance(x, Named)
                   else None if has_names(x) else x)


def _uses(e: Expr) -> Iterator[Named]:
    """The uses of definitions in ``e`` outside their bodies (each node visited once)."""
    seen: set[int] = set()
    stack = [e]
    while stack:
        x = stack.pop()
        if id(x) in seen or not has_names(x):
            continue
        seen.add(id(x))
        if isinstance(x, Named):
            yield x
        else:
            stack.extend(reversed(children(x)))


def names_table(e: Expr) -> dict[str, Named] | None:
    """A use of each definition ``e`` uses outside the bodies, by name: what
    :func:`materialize` needs to undo :func:`opaque`. None where a name would be read
    two ways (two definitions of one name, or a variable of that name beside them)."""
    table: dict[str, Named] = {}
    for n in _uses(e):
        other = table.setdefault(n.name, n)
        if body_of(other) is not body_of(n) and body_of(other) != body_of(n):
            return None
    variables = {t.name for t in _top_tensors(e)}
    return None if variables & set(table) else table


def _top_tensors(e: Expr) -> Iterator[Tensor]:
    """The tensors of ``e`` outside the bodies of definitions (each node once)."""
    seen: set[int] = set()
    stack = [e]
    while stack:
        x = stack.pop()
        if id(x) in seen or isinstance(x, Named):
            continue
        seen.add(id(x))
        if isinstance(x, Tensor):
            yield x
        stack.extend(children(x))


def definitions_in(e: Expr) -> list[Named]:
    """One use of each definition ``e`` uses (directly or through another), each after
    those its body uses: the order to print or compute them in."""
    order: list[Named] = []
    seen: set[int] = set()
    stack: list[tuple[Named, bool]] = [(n, False) for n in reversed(list(_uses(e)))]
    while stack:
        n, expanded = stack.pop()
        key = id(body_of(n))
        if expanded:
            if key not in seen:
                seen.add(key)
                order.append(n)
            continue
        if key in seen:
            continue
        stack.append((n, True))
        stack.extend((m, False) for m in reversed(list(_uses(body_of(n))))
                     if id(body_of(m)) not in seen)
    return order


# ------------------------------------------------------------- the IR's tables


def _rebuild(e: Named, new: tuple[Expr, ...] | list[Expr]) -> Expr:
    """The same use if nothing changed; a use of the new body where only the body
    changed, keeping its labels (a variable in it marked symmetric: every use rebuilt
    by one pass shares the new body); else a plain product."""
    if all(a is b for a, b in zip(new, e.factors)):
        return e
    if all(a is b for a, b in zip(new[1:], e.factors[1:])) and new[0].free == e.factors[0].free:
        return replace(e, factors=tuple(new))
    return Product(e.coeff, tuple(new), e.out)


def _rename(e: Named, mapping: Mapping[Index, Index]) -> Expr:
    """Only the deltas change: the body's labels are private."""
    local = {k: v for k, v in mapping.items() if k in e.out}
    if not local:
        return e
    if set(local.values()) & set(body_of(e).free):  # pragma: no cover - fresh labels
        return _rename_product(Product(e.coeff, e.factors, e.out), mapping)
    deltas = tuple(Delta(d.i, local.get(d.j, d.j), d.size) for d in e.factors[1:]
                   if isinstance(d, Delta))
    return replace(e, factors=(e.factors[0], *deltas),
                   out=tuple(dict.fromkeys(local.get(i, i) for i in e.out)))


register_node(Named, children=lambda e: e.factors, rebuild=_rebuild, rename=_rename)
