"""The two layouts of a derivative (docs/layout.md, "Choosing the layout").

``d f / d x`` has one axis per axis of ``x`` and one per axis of ``f`` (notes 003_*,
Concept 20). The *layout* says which come first:

* ``"denominator"`` (the default; notes 001_*, A.1): ``x``'s axes, then ``f``'s. A
  gradient has the variable's shape; ``d(A x)/dx`` is ``A^T``.
* ``"numerator"`` (the Jacobian layout): ``f``'s axes, then ``x``'s. ``d(A x)/dx``
  is ``A``; a gradient of a scalar is a row vector.

The two are axis permutations of each other; einderiv computes the denominator
form and reorders the free indices.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LayoutError

__all__ = ["DerivativeOf", "LAYOUTS", "DENOMINATOR", "NUMERATOR", "check_layout", "derivative_axes",
           "leading_rank"]

DENOMINATOR = "denominator"
NUMERATOR = "numerator"

#: The valid layout names and what each means.
LAYOUTS: dict[str, str] = {
    DENOMINATOR: "d f/d x has x's axes first, then f's; the default",
    NUMERATOR: "d f/d x has f's axes first, then x's; the Jacobian",
}


def check_layout(layout: object) -> str:
    """``layout`` if it names a layout, else a :class:`~einderiv.errors.LayoutError`
    that lists the valid names.

    >>> check_layout("numerator")
    'numerator'
    >>> check_layout("row")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    einderiv.errors.LayoutError: unknown layout 'row'; valid layouts are 'denominator' (...)...
    """
    if not isinstance(layout, str) or layout not in LAYOUTS:
        valid = ", ".join(f"{k!r} ({v})" for k, v in LAYOUTS.items())
        raise LayoutError(f"unknown layout {layout!r}; valid layouts are {valid}")
    return layout


def derivative_axes(var: tuple[str, ...], fun: tuple[str, ...], layout: str
                    ) -> tuple[str, ...]:
    """The free indices of ``d f / d x`` in ``layout``: ``var + fun`` or ``fun + var``."""
    return var + fun if check_layout(layout) == DENOMINATOR else fun + var


def leading_rank(n_free: int, var_rank: int, layout: str) -> int:
    """How many leading axes of a derivative with ``n_free`` axes belong to the
    matrix's rows: the variable's (``var_rank``) in denominator layout, the
    function's (``n_free - var_rank``) in numerator layout."""
    return var_rank if check_layout(layout) == DENOMINATOR else n_free - var_rank


@dataclass(frozen=True)
class DerivativeOf:
    """What :func:`einderiv.diff` records on its result: the variable, the labels of
    its axes, and the layout (``"denominator"``: those axes lead; ``"numerator"``:
    they trail, after the function's; see :mod:`einderiv.core.layouts`)."""

    variable: str
    axes: tuple[str, ...]
    layout: str = "denominator"

    def fits(self, free: tuple[str, ...]) -> bool:
        """Whether ``free`` has the variable's axes where the layout puts them."""
        k = len(self.axes)
        where = free[:k] if self.layout == "denominator" else free[len(free) - k:]
        return k <= len(free) and where == self.axes
