"""From the positioned AST to the IR: the Einstein summation rule and index checks.

Rules (docs/language.md):

* In a product, an index occurring in two or more factors (or twice in one tensor,
  as in ``X[a,a]``) is summed; an index occurring once stays free. Free indices are
  ordered by code point, like ``numpy.einsum``'s implicit mode.
* ``u / v`` is ``u * v**-1`` under the same rule.
* ``EXPR -> [i,j]`` fixes the free indices and their order; other indices are summed
  and repeated ones may stay free (Hadamard ``x[i]*w[i] -> [i]``). On a sum it
  applies to each term, through signs and number factors; where it drops an index
  that some term does not carry once (``X[a,h] + s -> [a]``) it is refused as
  ambiguous.
* A product's summed indices and the argument of inv/det/logdet are scopes of their
  own: their names never meet the same names outside (sizes included).
* The terms of a sum must have the same free indices; a term with none broadcasts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction

from ..core.functions import FUNCTIONS
from ..core.ir import (Delta, Det, Expr, Func, Index, Inv, LogDet, Pow, Product, Sum, Tensor,
                       factor_indices, fresh_index, gc_paused, number, visible_indices)
from ..core.softmax import expand as expand_word
from ..errors import IndexMismatchError, ParseError, format_caret
from . import syntax as S

__all__ = ["build"]


def _fmt(indices: Sequence[Index]) -> str:
    return "(" + ", ".join(indices) + ")"


class _Builder:
    def __init__(self, text: str):
        self.text = text
        self.ranks: dict[str, tuple[int, int]] = {}  # name -> (rank, position of first use)
        # Under '->': each term's indices that occur once in it, and its position.
        self.arrow_terms: list[tuple[set[Index], int]] | None = None
        # Indices bound by the enclosing sum[...]s (name -> position of the sum): free
        # throughout the body, summed once, by the sum.
        self.bound: dict[Index, int] = {}
        # What binds each of ``bound``, where it is not a sum (softmax[k], ...), for messages.
        self.binder: dict[Index, str] = {}
        self.sizes: list[S.SizeOf] = []  # the size(x, k) atoms, checked at the end

    def check_sizes(self) -> None:
        """``size(x, k)`` needs an axis ``k`` of ``x`` where the text gives x's rank."""
        for node in self.sizes:
            if node.name in self.ranks and node.axis >= self.ranks[node.name][0]:
                rank = self.ranks[node.name][0]
                raise self.error(
                    f"size({node.name}, {node.axis}): {node.name!r} has {rank} ax"
                    f"{'is' if rank == 1 else 'es'} (used at position "
                    f"{self.ranks[node.name][1]}), so its axes are 0 to {rank - 1}"
                    if rank else
                    f"size({node.name}, {node.axis}): {node.name!r} is a scalar here (position "
                    f"{self.ranks[node.name][1]}) and has no axes", node.axis_pos)

    def size_of(self, node: S.SizeOf) -> Expr:
        """``size(x, k)``: the length of axis ``k`` of ``x``, a number. It is the size
        marker of the IR, a summed ``delta[i,i]`` whose size hint is ``(x, k)``
        (docs/language.md, "Sizes")."""
        if node.name in S.RESERVED:  # pragma: no cover - the parser refuses it
            raise self.error(f"{node.name!r} is reserved, not a variable", node.name_pos)
        self.sizes.append(node)
        label = fresh_index()
        return Product(Fraction(1), (Delta(label, label, (node.name, node.axis)),), ())

    def error(self, message: str, pos: int | None, cls: type = IndexMismatchError) -> Exception:
        return cls(format_caret(message, self.text, pos))

    def note_rank(self, name: str, rank: int, pos: int) -> None:
        if name in S.RESERVED:
            raise self.error(f"{name!r} is reserved and cannot name a variable", pos)
        seen = self.ranks.setdefault(name, (rank, pos))
        if seen[0] != rank:
            what = lambda r: "a scalar" if r == 0 else f"{r} index" + "es" * (r > 1)  # noqa: E731
            raise self.error(
                f"{name!r} is used with {what(rank)} here but with {what(seen[0])} "
                f"at position {seen[1]}", pos)

    # -------------------------------------------------------------------- dispatch
    def build(self, node: S.Node) -> Expr:
        if isinstance(node, S.Num):
            return number(node.value)
        if isinstance(node, S.Call) and node.func in FUNCTIONS:
            return self.call(node)  # f(EXPR) has EXPR's free indices, in EXPR's order
        if isinstance(node, (S.Ref, S.DeltaRef, S.Call)):
            return self.einstein_atom(self.atom(node))
        if isinstance(node, S.SumOver):
            return self.sum_over(node)
        if isinstance(node, S.WordCall):
            return self.word(node)
        if isinstance(node, S.SizeOf):
            return self.size_of(node)
        if isinstance(node, S.Power):
            return self.power(node)
        if isinstance(node, (S.Mul, S.Neg)):
            return self.product(node, None)
        if isinstance(node, S.Add):
            return self.add(node, None)
        if isinstance(node, S.Arrow):
            return self.arrow(node)
        raise TypeError(node)  # pragma: no cover

    def atom(self, node: S.Ref | S.DeltaRef | S.Call) -> Expr:
        if isinstance(node, S.Ref):
            if node.indices is None:
                self.note_rank(node.name, 0, node.pos)
                return Tensor(node.name, ())
            self.note_rank(node.name, len(node.indices), node.pos)
            return Tensor(node.name, tuple(i for i, _ in node.indices))
        if isinstance(node, S.DeltaRef):
            return Delta(node.i[0], node.j[0])
        return self.call(node)

    def einstein_atom(self, atom: Expr) -> Expr:
        """The Einstein rule for a lone reference, as ``numpy.einsum`` implicit mode:
        ``X[a,a]`` sums (``einsum('aa', X)``) and ``A[p,i]`` has free indices (i, p);
        an index bound by an enclosing ``sum[...]`` stays free (the diagonal)."""
        free = self.implicit_free(_label_counts((atom,)))
        return atom if atom.free == free else Product(Fraction(1), (atom,), free)

    def implicit_free(self, counts: dict[Index, int]) -> tuple[Index, ...]:
        """The free indices by the Einstein rule, in code-point order: those occurring
        once, and those an enclosing ``sum[...]`` binds (it sums them, once)."""
        bound = self.bound
        return tuple(sorted(i for i, c in counts.items() if c == 1 or i in bound))

    # ------------------------------------------------------------------ functions
    def call(self, node: S.Call) -> Expr:
        if node.func in FUNCTIONS:
            return Func(node.func, self.build(node.arg))
        # inv / det / logdet: a bare name is a matrix; otherwise two free indices.
        if isinstance(node.arg, S.Ref) and node.arg.indices is None:
            self.note_rank(node.arg.name, 2, node.arg.pos)
            arg: Expr = Tensor(node.arg.name, (fresh_index(), fresh_index()))
        else:
            outer, self.bound = self.bound, {}  # a closed scope: no outer sum reaches in
            try:
                arg = self.build(node.arg)
            finally:
                self.bound = outer
            if len(arg.free) != 2:
                raise self.error(
                    f"{node.func}(...) needs a matrix: a name or an expression with exactly "
                    f"two free indices, but its argument has {_fmt(arg.free)}", node.pos)
        if node.func == "inv":
            assert node.indices is not None
            return Inv(arg, (node.indices[0][0], node.indices[1][0]))
        return Det(arg) if node.func == "det" else LogDet(arg)

    def sum_over(self, node: S.SumOver) -> Expr:
        """``sum[a](BODY)`` binds ``a`` in BODY, at any depth (inv/det/logdet arguments
        apart): it is free there, and summed once, here (docs/language.md)."""
        names = [i for i, _ in node.indices]
        for name, pos in node.indices:
            if names.count(name) > 1:
                raise self.error(f"index {name!r} is listed twice in sum[...]", pos)
            if name in self.bound:
                outer_word = self.binder.get(name, f"another sum[{name}]")
                raise self.error(
                    f"sum[{name}] inside {outer_word} (at position {self.bound[name]}): "
                    f"the inner one would sum the same index again; rename one of them",
                    pos)
        outer = self.bound
        self.bound = {**outer, **{name: pos for name, pos in node.indices}}
        try:
            arg = self.build(node.arg)
        finally:
            self.bound = outer
        for name, pos in node.indices:
            if name not in arg.free:
                why = "it does not occur in the argument" if name not in visible_indices(arg) \
                    else "a '->' inside the argument sums it already"
                raise self.error(f"sum over {name!r}, but {why} (free: {_fmt(arg.free)})", pos)
        return Product(Fraction(1), (arg,), tuple(i for i in arg.free if i not in names))

    def word(self, node: S.WordCall) -> Expr:
        """``softmax[k](u)``, ``log_softmax[k](u)``, ``logsumexp[k](u)``: the expression
        each stands for (:mod:`einderiv.core.softmax`). Like ``sum[k]``, the word binds ``k``
        in its argument: ``k`` is free there at any depth (``logsumexp[k](z[k]*w[k])``
        runs over the entries of the Hadamard product); the argument's other free
        indices are batch axes."""
        name, pos = node.index
        word = node.word
        if word == "logsumexp" and name in self.bound:
            raise self.error(
                f"logsumexp[{name}] inside {self.binder.get(name, f'sum[{name}]')} (at position "
                f"{self.bound[name]}): it would sum the same index again; rename one of them",
                pos)
        outer, outer_binder = self.bound, self.binder
        if name not in outer:
            self.bound = {**outer, name: pos}
            self.binder = {**outer_binder, name: f"{word}[{name}]"}
        try:
            arg = self.build(node.arg)
        finally:
            self.bound, self.binder = outer, outer_binder
        if name not in arg.free:
            if name in visible_indices(arg):
                why = "a '->' inside the argument sums it already"
            else:
                why = "it does not occur in the argument"
            axes = ", ".join(arg.free)
            hint = (f"; write the axis to run over, one of ({axes}), as in "
                    f"{word}[{arg.free[-1]}](...)" if arg.free else
                    f"; the argument has no free index: {word} needs a vector, as in "
                    f"{word}[k](z[k])")
            raise self.error(f"{word}[{name}] runs over {name!r}, but {why} (free: "
                             f"{_fmt(arg.free)}){hint}", pos)
        return expand_word(word, arg, name)

    def power(self, node: S.Power) -> Expr:
        base = self.build(node.base)
        exponent = self.build(node.exponent)
        if exponent.free:
            raise self.error(
                f"an exponent must have no free indices, but it has {_fmt(exponent.free)}",
                node.pos)
        return Pow(base, exponent)

    # ------------------------------------------------------------------- products
    def collect(self, node: S.Node, sign: Fraction,
                factors: list[tuple[Expr, int]]) -> Fraction:
        """Flatten a product chain into ``factors``; return the numeric coefficient."""
        if isinstance(node, S.Neg):
            return self.collect(node.arg, -sign, factors)
        if isinstance(node, S.Num):
            return sign * node.value
        if isinstance(node, (S.Ref, S.DeltaRef, S.Call)):
            factors.append((self.atom(node), node.pos))
            return sign
        if isinstance(node, S.Mul):
            coeff = sign
            for op, item in node.items:
                if op == "*":
                    coeff = self.collect(item, coeff, factors)
                    continue
                if isinstance(item, S.Num):
                    if item.value == 0:
                        raise self.error("division by zero", item.pos, ParseError)
                    coeff /= item.value
                    continue
                factors.append((Pow(self.build(item), number(-1)), _pos(item)))
            return coeff
        factors.append((self.build(node), _pos(node)))
        return sign

    def product(self, node: S.Node, out: list[tuple[Index, int]] | None,
                in_sum: bool = False) -> Expr:
        if out is not None:
            scale, core = self.linear_core(node)
            if isinstance(core, S.Add):  # -(u + v) -> [i] is -(u -> [i] + v -> [i])
                total = self.add(core, out, in_sum)
                return total if scale == 1 else Product(scale, (total,), total.free)
        factors: list[tuple[Expr, int]] = []
        coeff = self.collect(node, Fraction(1), factors)
        counts = _label_counts(f for f, _ in factors)
        if out is not None and self.arrow_terms is not None:
            self.arrow_terms.append(({i for i, c in counts.items() if c == 1}, _pos(node)))
        fs = tuple(f for f, _ in factors)
        if out is None:
            free = self.implicit_free(counts)
        elif in_sum:  # a term of a sum broadcasts along the output indices it lacks
            free = tuple(i for i, _ in out if i in counts)
        else:
            free = tuple(i for i, _ in out)
            for name, pos in out:
                if name not in counts:
                    raise self.error(
                        f"output index {name!r} does not occur in the expression before '->' "
                        f"(its indices: {_fmt(sorted(counts))})", pos)
        if len(fs) == 1 and coeff == 1 and fs[0].free == free and out is None:
            return fs[0]
        return Product(coeff, fs, free)

    def add(self, node: S.Add, out: list[tuple[Index, int]] | None,
            in_sum: bool = False) -> Expr:
        """A sum; its free indices are the union of its terms', and a term broadcasts
        along those it lacks (named broadcasting: ``W[h,i]*X[i,n] + b[h]``). Their
        order: that of the first term with free indices if it has them all, else
        code-point order; or the output list of ``->``."""
        terms: list[Expr] = []
        for op, item, _ in node.items:
            term = self.build(item) if out is None else self.with_out(item, out, in_sum=True)
            if op == "-":
                term = Product(Fraction(-1), (term,), term.free)
            terms.append(term)
        if out is not None:
            carried = {i for t in terms for i in t.free}
            for name, pos in out:
                if name not in carried and not in_sum:  # 'x[i] + y -> [i,j]': j is nowhere
                    raise self.error(f"output index {name!r} does not occur in the expression "
                                     "before '->'", pos)
            return Sum(tuple(terms), tuple(name for name, _ in out if name in carried))
        first = next((t.free for t in terms if t.free), ())
        union = {i for t in terms for i in t.free}
        free = first if len(union) == len(first) else tuple(sorted(union))
        return Sum(tuple(terms), free)

    def with_out(self, node: S.Node, out: list[tuple[Index, int]], in_sum: bool = False) -> Expr:
        if isinstance(node, S.Add):
            return self.add(node, out, in_sum)
        return self.product(node, out, in_sum)

    def arrow(self, node: S.Arrow) -> Expr:
        names = [name for name, _ in node.indices]
        for name, pos in node.indices:
            if names.count(name) > 1:
                raise self.error(f"output index {name!r} is listed twice after '->'", pos)
        outer, self.arrow_terms = self.arrow_terms, []
        try:
            result = self.with_out(node.arg, node.indices)
            self.check_arrow_terms(self.arrow_terms, {name for name, _ in node.indices},
                                   node.pos)
        finally:
            self.arrow_terms = outer
        return result

    def check_arrow_terms(self, terms: list[tuple[set[Index], int]], out: set[Index],
                          end: int) -> None:
        """``->`` on a sum sums each dropped index over every term, so every term must
        carry it once: in ``X[a,h] + s -> [a]`` one reader sums ``s`` over ``h`` too
        (``|h| s``, the sum's value summed), another adds it once. Refused, saying what
        to write for either reading."""
        if len(terms) < 2:
            return
        dropped = sorted({i for singles, _ in terms for i in singles} - out)
        for h in dropped:
            lacking = [pos for singles, pos in terms if h not in singles]
            if not lacking:
                continue
            starts = sorted(pos for _, pos in terms) + [end]
            after = starts[starts.index(lacking[0]) + 1]
            term = _term_text(self.text, lacking[0], after)
            which = f"the term {term!r}" if term else "a term"
            raise self.error(
                f"'->' sums over {h!r}, but {which} does not carry {h!r} once: is it summed "
                f"over {h!r} too (times the size of {h!r}) or added once? Write sum[{h}](...) "
                f"around the terms to sum, as in sum[{h}](X[a,{h}]) + s or "
                f"sum[{h}](X[a,{h}] + s)", lacking[0])

    @staticmethod
    def linear_core(node: S.Node) -> tuple[Fraction, S.Node]:
        """``node`` as ``scale * core`` through signs and number factors (``-2*(u + v)``
        is ``-2`` and ``u + v``); ``(1, node)`` where it is not such a node."""
        if isinstance(node, S.Neg):
            scale, core = _Builder.linear_core(node.arg)
            return -scale, core
        if isinstance(node, S.Mul):
            numbers = [(op, _signed_number(item)) for op, item in node.items]
            rest = [(op, item) for (op, item), (_, k) in zip(node.items, numbers) if k is None]
            if len(rest) != 1 or rest[0][0] != "*":
                return Fraction(1), node
            scale = Fraction(1)
            for op, k in numbers:
                if k is not None:
                    if op == "/" and k == 0:
                        return Fraction(1), node  # collect() reports the division by zero
                    scale = scale / k if op == "/" else scale * k
            inner, core = _Builder.linear_core(rest[0][1])
            return scale * inner, core
        return Fraction(1), node


def _term_text(text: str, start: int, end: int) -> str:
    """The text of a term from ``start`` to the next term's start (or the arrow), for
    messages, without the operators around it; empty where that is not a whole term."""
    piece = text[start:end].strip()
    while piece and piece[-1] in "+-(":
        piece = piece[:-1].rstrip()
    while piece.endswith(")") and piece.count(")") > piece.count("("):
        piece = piece[:-1].rstrip()
    return piece if piece.count("(") == piece.count(")") else ""


def _signed_number(node: S.Node) -> Fraction | None:
    """The value of a number literal with any signs (``-2``), else None."""
    sign = 1
    while isinstance(node, S.Neg):
        node, sign = node.arg, -sign
    return sign * node.value if isinstance(node, S.Num) else None


def _pos(node: S.Node) -> int:
    return node.pos


def _label_counts(factors: Iterable[Expr]) -> dict[Index, int]:
    """How often each index label occurs on ``factors`` (a plain dict: counting into
    a ``Counter`` is slow for the few labels of a term)."""
    counts: dict[Index, int] = {}
    for f in factors:
        for i in factor_indices(f):
            counts[i] = counts.get(i, 0) + 1
    return counts


def build(ast: S.Node, text: str, ranks: dict[str, tuple[int, int]] | None = None) -> Expr:
    """The IR for a parsed AST (Einstein rule applied, index sets checked). ``ranks``
    (name -> (rank, position of first use)), where given, holds the ranks seen in
    earlier statements of the text and receives this one's."""
    with gc_paused():
        builder = _Builder(text)
        if ranks is not None:
            builder.ranks = ranks
        result = builder.build(ast)
        builder.check_sizes()
        return result
