"""Differentiating through definitions: backpropagation on the named program.

For ``f`` written with definitions ``Z = W^T X; A = tanh(Z); ...`` the derivative by
``W`` is the chain rule through the names, taken in reverse (notes 003_*, X.18-X.23):
the adjoint of each definition ``N`` that depends on the variable,

    dN = d f / d N = (d f / d N, N a tensor) + sum over each later M using N of (d M / d N) dM,

each partial taken on one body with the names read as tensors
(:func:`~einderiv.core.named.opaque`), so every body is differentiated and simplified
once: ``O(d)`` for ``d`` layers, where differentiating the written-out text was
``O(d^2)``. An adjoint used once is written into its use (``dL/dW = X ((V^T 2 (V A - T))
.* (1 - A.^2))^T``, as the notes print it); one used more often (a residual block)
becomes a definition of its own, ``dA[i,n] = ...``, so the result never doubles per layer.
By a defined name (the notes' dL/dZ) the result is that name's adjoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fractions import Fraction

from ..core.ir import (Expr, Index, Product, SizeHint, Sum, Tensor, children, fresh_names,
                       iter_tensors, remember, rename)
from ..core.definitions import Refolder, variable_hint
from ..core.named import (Named, body_of, definitions_in, opaque, own_labels, rewrite,
                          use)
from ..core.scopes import rebind
from .diff import derivative, variable_rule
from .terms import node_count
from .simplify import simplify

__all__ = ["backprop", "ranks", "INLINE_NODES"]

#: An adjoint used once is written into its use if it has at most this many nodes
#: (the two-layer network's, as the notes print it); a longer one is a definition
#: of its own (``dZ3[i,n] = ...``, X.23's form), so a deep chain reads layer by layer
#: and writing it in never renames a long expression (linear time).
INLINE_NODES = 64


def backprop(e: Expr, wrt: str, new: tuple[Index, ...], log: list[str] | None = None
             ) -> Expr:
    """The derivative of ``e`` (which uses definitions) by the variable or defined name
    ``wrt``, its axes labelled ``new``: free indices ``new + e.free``, each adjoint
    simplified, uses of definitions kept (the caller simplifies the whole once more)."""
    out = e.free
    inner = tuple(fresh_names(new)[i] for i in new)  # no label of a body can meet them
    rules: list[str] | None = None if log is None else []
    defs = definitions_in(e)
    uses = {n.name: n for n in defs}
    local = {n.name: rebind(opaque(body_of(n))) for n in defs}
    top = rebind(opaque(e))
    depends = {wrt}
    users: dict[str, list[str]] = {}  # name or variable -> the definitions using it
    for n in defs:
        for v in local[n.name].variables:
            users.setdefault(v, []).append(n.name)
        if local[n.name].variables & depends:
            depends.add(n.name)
    taken = set(e.variables) | set(uses) | set(out)
    tokens = {n.name: _unique(f"d{n.name}", taken) for n in defs if n.name in depends}
    refold = Refolder(defs)
    adjoints: dict[str, Expr] = {}  # name -> adjoint, free: the body's labels then `out`
    for n in reversed(defs):
        if n.name not in depends:
            continue
        labels = tuple(fresh_names(n.shown)[i] for i in n.shown)
        raw = _pullback(n.name, labels, top, local, users, tokens, rules, refold)
        # simplified in the left-hand side's labels, so that its summed ones read apart
        shown = _readable(n.shown, out)
        simplified = simplify(rename(raw, dict(zip(labels, shown))), shown + out)
        adjoints[n.name] = rename(simplified, dict(zip(shown, labels)))
        if n.name == wrt:
            result = rename(adjoints[wrt], dict(zip(labels, inner)))
            break
    else:
        result = _pullback(wrt, inner, top, local, users, tokens, rules, refold)
    if log is not None and rules is not None:
        # the rules of the pieces, without their placeholder variables' own
        names = [n.name for n in reversed(defs) if n.name in adjoints]
        log.append(variable_rule(wrt, new) if wrt not in uses else
                   f"d f / d {wrt} by the chain rule through the definitions")
        log.extend(r for r in rules if not r.startswith("d "))
        log.append("backpropagation: d f / d " + ", d f / d ".join(names))
    return rename(_assemble(result, adjoints, tokens, uses, out, wrt), dict(zip(inner, new)))


def ranks(e: Expr) -> dict[str, int]:
    """The rank of each variable and defined name ``e`` uses (a shared body walked once)."""
    found = {t.name: len(t.indices) for t in iter_tensors(e)}
    found.update((n.name, len(n.shown)) for n in definitions_in(e))
    return found


def _readable(labels: tuple[Index, ...], out: tuple[Index, ...]) -> tuple[Index, ...]:
    """``labels`` (a left-hand side's), each one that ``out`` (f's free indices) also
    has replaced by an unused letter: the adjoint's indices are the name's, then f's."""
    taken = set(labels) | set(out)
    spare = (c for c in "ijklmnpqrstuvwxyzabcdefgh" if c not in taken)
    return tuple(next(spare) if i in out else i for i in labels)


def _unique(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _pullback(name: str, labels: tuple[Index, ...], top: Expr, local: Mapping[str, Expr],
              users: Mapping[str, list[str]], tokens: Mapping[str, str],
              log: list[str] | None, refold: Callable[[Expr], Expr]) -> Expr:
    """``d f / d name`` (axes ``labels``, then f's): through ``f`` itself, and through
    each definition using ``name``, times that definition's adjoint (a tensor here)."""
    out = labels + top.free
    terms = [refold(derivative(top, name, labels, log))] if name in top.variables else []
    for user in users.get(name, ()):
        if user in tokens:
            body = local[user]
            # the body's own labels are the definition's private ones: renamed here
            fresh = fresh_names(body.free)
            own = tuple(fresh[i] for i in body.free)
            partial = rename(refold(derivative(body, name, labels, log)), fresh)
            adjoint = Tensor(tokens[user], own + top.free)
            terms.append(Product(Fraction(1), (partial, adjoint), out))
    hints = tuple((i, (name, axis)) for axis, i in enumerate(labels))
    return Sum(tuple(terms), out, hints)


def _assemble(result: Expr, adjoints: Mapping[str, Expr], tokens: Mapping[str, str],
              uses: Mapping[str, Named], out: tuple[Index, ...], wrt: str) -> Expr:
    """``result`` with the names put back: each adjoint used once written into its
    use, each used more often a definition of its own (the adjoint of ``wrt``, where
    it is a name, is ``result`` itself)."""
    by_token = {tokens[name]: name for name in adjoints}
    count: dict[str, int] = {}  # the uses of each adjoint, as the expressions print
    stack = [result, *(a for name, a in adjoints.items() if name != wrt)]
    while stack:
        x = stack.pop()
        if isinstance(x, Tensor) and x.name in by_token:
            count[x.name] = count.get(x.name, 0) + 1
        stack.extend(children(x))
    done: dict[str, Expr] = {}  # token -> the adjoint with the names put back
    shared: dict[str, Named] = {}  # token -> a use of the adjoint's own definition

    def adjoint(token: str) -> Expr:
        found = done.get(token)
        if found is None:
            found = done[token] = rewrite(adjoints[by_token[token]], replacement, hint)
        return found

    def resolve(t: Tensor) -> Expr | None:
        if t.name in uses:
            n = uses[t.name]
            return use(n.name, body_of(n), t.indices, n.shown)
        if t.name not in by_token:
            return None
        value = adjoint(t.name)
        if count.get(t.name, 0) <= 1 and \
                node_count(opaque(value), INLINE_NODES + 1) <= INLINE_NODES:
            return rename(value, dict(zip(value.free, t.indices)))
        own = shared.get(t.name)
        if own is None:
            name = by_token[t.name]
            shown = _readable(uses[name].shown, out) + out
            # simplified in the left-hand side's labels, so that its summed ones read apart
            value = simplify(rename(value, dict(zip(value.free, shown))), shown)
            params = dict(zip(shown, own_labels(t.name, len(shown))))
            body = rename(value, params)
            remember(body, "simplified", tuple(params[i] for i in shown))
            made = use(t.name, body, shown, shown)
            assert isinstance(made, Named)
            own = shared[t.name] = made
        return use(own.name, body_of(own), t.indices, own.shown)

    def hint(h: SizeHint) -> SizeHint:
        """An axis of an adjoint is an axis of its name, or of ``f``; an axis of a name
        is the variable axis it comes from (the name may be gone from the result)."""
        if isinstance(h, tuple) and h and h[0] in by_token:
            name = by_token[h[0]]
            h = (name, h[1]) if h[1] < len(uses[name].shown) else None
        return variable_hint(h, uses)

    def replacement(x: Expr) -> Expr | None:
        if isinstance(x, Tensor):
            replaced = resolve(x)
            return x if replaced is None else replaced
        return x if isinstance(x, Named) else None

    return rewrite(result, replacement, hint)
