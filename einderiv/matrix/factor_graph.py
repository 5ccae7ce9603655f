"""The factor graph of a product, for the index -> matrix conversion
(:mod:`einderiv.matrix.from_index`; docs/matrix.md).

Each factor is a :class:`Piece`: a matrix, vector or scalar with at most two labelled
ends, built in any orientation on demand. Summed labels join the ends, so the pieces
form paths (matrix-product chains) and cycles (traces): :class:`Component`. Where a
summed label joins three or more matrices, :func:`series_parallel` first reduces
the pieces as a series-parallel graph (two chains between the same two labels are
one, ``A ⊙ B``). This module knows matrix expressions and index labels only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..core.ir import Index
from ..errors import NotMatrixExpressible
from .algebra import Orient, choose_form, hadamard, mat_mul, reading_cost, transpose
from .nodes import MATRIX, Diag, MatrixExpr, Reduce, Transpose

T = TypeVar("T")

__all__ = ["Piece", "Component", "short", "flip", "vector_piece", "matrix_piece",
           "relabelled", "vector_hadamard", "sum_all", "merge_free_hadamards",
           "matrix_ends", "series_parallel", "components"]


@dataclass(eq=False)  # pieces are told apart by identity
class Piece:
    """A factor seen as a matrix: ``ends`` = (row label, column label) in its natural
    orientation (a vector: (label, None)); ``make(orient)`` builds it oriented."""

    ends: Orient
    make: Callable[[Orient], MatrixExpr]

    @property
    def is_vector(self) -> bool:
        return self.ends[1] is None and self.ends[0] is not None

    def column(self) -> MatrixExpr:
        return self.make((self.ends[0], None))


def short(e: object, limit: int = 60) -> str:
    """``str(e)``, cut to ``limit`` characters (for messages)."""
    text = str(e)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def flip(o: Orient) -> Orient:
    """The orientation with rows and columns swapped."""
    return (o[1], o[0])


def vector_piece(label: Index, column: MatrixExpr) -> Piece:
    def make(o: Orient) -> MatrixExpr:
        return column if o[0] == label else transpose(column)
    return Piece((label, None), make)


def matrix_piece(ends: tuple[Index, Index], natural: MatrixExpr) -> Piece:
    def make(o: Orient) -> MatrixExpr:
        return natural if o == ends else transpose(natural)
    return Piece(ends, make)


def relabelled(pc: Piece, old: tuple, new: tuple) -> Callable[[Orient], MatrixExpr]:
    """``pc.make`` for a piece whose end labels were renamed from ``old`` to ``new``."""
    def make(o: Orient) -> MatrixExpr:
        return pc.make(old if o == new else flip(old))
    return make


def vector_hadamard(vectors: list[Piece]) -> Piece:
    lab = vectors[0].ends[0]
    assert lab is not None
    return vector_piece(lab, hadamard([v.column() for v in vectors]))


def sum_all(m: MatrixExpr) -> MatrixExpr:
    if isinstance(m, Diag) and m.arg.kind == MATRIX:
        return Reduce("tr", m.arg)
    return Reduce("sum", m)


def merge_free_hadamards(pieces: list[Piece], out: set[Index]) -> list[Piece]:
    """Matrix pieces on the same two labels, one of them free: one piece, ``A ⊙ B``."""
    result: list[Piece] = []
    for pc in pieces:
        if not pc.is_vector and None not in pc.ends and set(pc.ends) & out:
            for k, q in enumerate(result):
                if not q.is_vector and None not in q.ends and set(q.ends) == set(pc.ends):
                    result[k] = _hadamard_piece(q, pc)
                    break
            else:
                result.append(pc)
        else:
            result.append(pc)
    return result


def matrix_ends(pieces: list[Piece], lab: Index | None) -> int:
    return sum(pc.ends.count(lab) for pc in pieces if not pc.is_vector)


def series_parallel(pieces: list[Piece], out: set[Index],
                     scalars: list[MatrixExpr]) -> list[Piece]:
    """Reduce the matrix pieces as a series-parallel graph (labels are vertices,
    matrices edges): two matrices on the same two labels are one, ``A ⊙ B``
    (parallel); a summed label joining exactly two matrices is a product (series).
    Used where a summed label joins three or more matrices, as in the gradient of a
    layer, ``((W2^T R) ⊙ (1 - tanh(W1 X).^2)) X^T``."""
    pieces = list(pieces)
    while True:
        merged = _parallel_step(pieces, out) or _series_step(pieces, out, scalars)
        if not merged:
            return pieces


def _degree(pieces: list[Piece], lab: Index | None) -> int:
    return sum(pc.ends.count(lab) for pc in pieces)


def _parallel_step(pieces: list[Piece], out: set[Index]) -> bool:
    mats = [pc for pc in pieces if not pc.is_vector and None not in pc.ends
            and pc.ends[0] != pc.ends[1]]
    for k, a in enumerate(mats):
        for b in mats[k + 1:]:
            if set(a.ends) != set(b.ends):
                continue
            if all(lab not in out and _degree(pieces, lab) == 2 for lab in a.ends):
                continue  # an isolated pair: a trace, tr(A B^T)
            pieces[pieces.index(a)] = _hadamard_piece(a, b)
            pieces.remove(b)
            return True
    return False


def _series_step(pieces: list[Piece], out: set[Index], scalars: list[MatrixExpr]) -> bool:
    """One series reduction, in place: a vector into its matrix, else two matrices
    into their product; False where there is none."""
    return _vector_step(pieces, out) or _matrix_step(pieces, out, scalars)


def _vector_step(pieces: list[Piece], out: set[Index]) -> bool:
    for v in pieces:  # a vector on a label it shares with one matrix only: A x
        lab = v.ends[0]
        if not v.is_vector or lab in out or _degree(pieces, lab) != 2:
            continue
        found = [(b, j) for b in pieces if b is not v and not b.is_vector
                 and None not in b.ends and b.ends[0] != b.ends[1]
                 for j in (0, 1) if b.ends[j] == lab]
        if len(found) != 1:
            continue
        b, j = found[0]
        other = b.ends[1 - j]
        assert other is not None
        column = mat_mul(1, [b.make((other, lab)), v.column()])
        pieces[pieces.index(v)] = vector_piece(other, column)
        pieces.remove(b)
        return True
    return False


def _matrix_step(pieces: list[Piece], out: set[Index], scalars: list[MatrixExpr]) -> bool:
    for a in pieces:  # a summed label joining exactly two matrices: their product
        if a.is_vector or None in a.ends:
            continue
        for k in (0, 1):
            lab = a.ends[k]
            if lab in out or _degree(pieces, lab) != 2 or a.ends[1 - k] == lab:
                continue
            found = [(b, j) for b in pieces if b is not a and not b.is_vector
                     and None not in b.ends for j in (0, 1) if b.ends[j] == lab]
            if len(found) != 1:
                continue
            b, j = found[0]
            chain = _chain_piece(a, k, b, j)
            pieces[pieces.index(a)] = chain
            pieces.remove(b)
            x = chain.ends[0]
            assert x is not None  # a and b are matrices: no end is missing
            if x == chain.ends[1]:  # a loop: a trace, or a diagonal on a shared label
                pieces.remove(chain)
                if x not in out and _degree(pieces, x) == 0:
                    scalars.append(Reduce("tr", chain.make((x, "\0"))))
                else:
                    pieces.append(vector_piece(x, Diag(chain.make((x, "\0")))))
            return True
    return False


def _chain_piece(a: Piece, k: int, b: Piece, j: int) -> Piece:
    """Pieces ``a`` and ``b`` joined at a's end ``k`` and b's end ``j``: a product."""
    x, y = a.ends[1 - k], b.ends[1 - j]
    lab = a.ends[k]

    def build(first: Index | None) -> MatrixExpr:
        if first == x:  # a then b
            return mat_mul(1, [a.make((x, lab)), b.make((lab, y))])
        return mat_mul(1, [b.make((y, lab)), a.make((lab, x))])

    def make(o: Orient) -> MatrixExpr:
        if x == y:  # a loop (x, x): orientation by the marker in o[1]
            return build(x)
        first = o[0]
        direct = build(first)
        wrapped = transpose(build(y if first == x else x))
        return choose_form(direct, wrapped, row=False)

    return Piece((x, y), _once_per_orientation(make))


def _once_per_orientation(make: Callable[[Orient], MatrixExpr]) -> Callable[[Orient], MatrixExpr]:
    """``make``, each orientation built once: a chain tries both orientations of each
    part, so without it a chain nested ``d`` deep (a network's backpropagation through
    ``d`` layers) is built ``2**d`` times."""
    built: dict[Orient, MatrixExpr] = {}

    def once(o: Orient) -> MatrixExpr:
        found = built.get(o)
        if found is None:
            found = built[o] = make(o)
        return found
    return once


def _hadamard_piece(a: Piece, b: Piece) -> Piece:
    def make(o: Orient) -> MatrixExpr:
        direct = hadamard([a.make(o), b.make(o)])
        if None in o or o != a.ends[::-1]:
            return direct
        # read against its natural orientation: one transpose around the element-wise
        # product, X (G .* H)^T as the notes write dL/dW (003_*, X.21), rather than
        # transposes inside its factors (((V A - T)^T V) .* (1 - (A^T).^2)) at no fewer
        wrapped = Transpose(hadamard([a.make(a.ends), b.make(a.ends)]))
        return wrapped if wrapped.transposes <= direct.transposes else direct
    return Piece(a.ends, _once_per_orientation(make))


# ======================================================================= components


class Component:
    """Pieces joined by summed labels: a path (a chain) or a cycle (a trace)."""

    def __init__(self, pieces: list[Piece], out: set[Index]):
        self.pieces = pieces
        self.out = out
        self.terminals = [(pc, k) for pc in pieces for k in (0, 1)
                          if pc.ends[k] is None or pc.ends[k] in out]
        if self.terminals and len(self.terminals) != 2:  # pragma: no cover - by construction
            raise NotMatrixExpressible("a factor graph that is not a chain")
        self.labels = tuple(pc.ends[k] for pc, k in self.terminals if pc.ends[k] is not None)

    def walk(self, start: tuple[Piece, int]) -> list[tuple[Piece, Orient]]:
        pc, k = start
        steps: list[tuple[Piece, Orient]] = []
        seen = 0
        while True:
            o = (pc.ends[k], pc.ends[1 - k])
            steps.append((pc, o))
            nxt = o[1]
            seen += 1
            if nxt is None or nxt in self.out or seen > len(self.pieces):
                return steps
            found = [(q, j) for q in self.pieces for j in (0, 1)
                     if q.ends[j] == nxt and not (q is pc and j == 1 - k)]
            if not found:  # pragma: no cover
                raise NotMatrixExpressible(f"index {nxt!r} joins nothing")
            pc, k = found[0]
            if seen >= len(self.pieces) and (pc, k) == (self.pieces[0], 0):
                return steps

    @staticmethod
    def chain(steps: list[tuple[Piece, Orient]]) -> MatrixExpr:
        return mat_mul(1, [pc.make(o) for pc, o in steps])

    def scalar(self) -> MatrixExpr:
        if not self.terminals:
            return self.trace()
        a, b = (self.chain(self.walk(t)) for t in self.terminals)
        return min((a, b), key=reading_cost)

    def trace(self) -> MatrixExpr:
        options = []
        for start in self.pieces:
            for k in (0, 1):
                steps = self._cycle(start, k)
                options.append(Reduce("tr", self.chain(steps)))
        return min(options, key=reading_cost)

    def _cycle(self, start: Piece, k: int) -> list[tuple[Piece, Orient]]:
        steps = []
        pc, end = start, k
        for _ in range(len(self.pieces)):
            o = (pc.ends[end], pc.ends[1 - end])
            steps.append((pc, o))
            nxt = o[1]
            found = [(q, j) for q in self.pieces for j in (0, 1)
                     if q.ends[j] == nxt and not (q is pc and j == 1 - end)]
            pc, end = found[0]
        return steps

    def oriented(self, o: Orient) -> MatrixExpr:
        """The component with rows ``o[0]`` and columns ``o[1]``."""
        t0, t1 = self.terminals
        lab0, lab1 = t0[0].ends[t0[1]], t1[0].ends[t1[1]]
        if lab0 is not None and lab0 == lab1:  # both ends on one free label: a diagonal
            d = [Diag(self.chain(self.walk(t))) for t in self.terminals]
            best = min(d, key=reading_cost)
            return best if o[0] is not None else transpose(best)
        start, other = (t0, t1) if lab0 == o[0] else (t1, t0)
        direct = self.chain(self.walk(start))
        wrapped = transpose(self.chain(self.walk(other)))
        return choose_form(direct, wrapped, row=o[0] is None)


def linked_groups(items: Sequence[T], labels: Callable[[T], Iterable[Index | None]]
                  ) -> list[list[T]]:
    """``items`` grouped by shared labels (union-find; None links nothing), each group
    in the order of its first item, items in order."""
    parent = list(range(len(items)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    first: dict[Index, int] = {}
    for k, item in enumerate(items):
        for lab in labels(item):
            if lab is None:
                continue
            if lab in first:
                parent[find(k)] = find(first[lab])
            else:
                first[lab] = k
    groups: dict[int, list[T]] = {}
    for k, item in enumerate(items):
        groups.setdefault(find(k), []).append(item)
    return list(groups.values())


def components(pieces: list[Piece], out: set[Index]) -> list[Component]:
    """The pieces linked by summed labels (a free label links nothing)."""
    groups = linked_groups(pieces, lambda pc: (lab for lab in pc.ends if lab not in out))
    return [Component(g, out) for g in groups]
