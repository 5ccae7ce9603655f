"""Axis sizes for the structure report: numbers where known, size names (``"m"``,
``"4*k**2"``) where not. Shared by the analysis (:mod:`einderiv.tools.inspect`) and
its rendering (:mod:`einderiv.tools.render`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..core.ir import SizeHint

__all__ = ["Size", "first_size", "hint_size", "size_product"]

Size = int | str


def first_size(hints: tuple[SizeHint, ...], shapes: Mapping[str, tuple[Size, ...]],
               arrays: Mapping[str, Any]) -> Size | None:
    """The first size the hints resolve to, preferring numbers to size names."""
    sizes = [s for h in hints if (s := hint_size(h, shapes, arrays)) is not None]
    return next((s for s in sizes if isinstance(s, int)), sizes[0] if sizes else None)


def hint_size(hint: SizeHint, shapes: Mapping[str, tuple[Size, ...]], arrays: Mapping[str, Any]
              ) -> Size | None:
    """What one size hint resolves to: a number, a size name, or None."""
    if isinstance(hint, int):
        return hint
    if isinstance(hint, str):
        value = arrays.get(hint)
        return int(value) if isinstance(value, (int, np.integer)) else hint
    if isinstance(hint, tuple):
        tensor, axis = hint
        if tensor in arrays and axis < np.ndim(arrays[tensor]):
            return int(np.shape(arrays[tensor])[axis])
        if tensor in shapes and axis < len(shapes[tensor]):
            return shapes[tensor][axis]
    return None


def size_product(sizes: list[Size]) -> Size:
    """``4*k**2``: the product of sizes, a number where all are known."""
    n, names = 1, Counter[str]()
    for s in sizes:
        if isinstance(s, int):
            n *= s
        else:
            names[s] += 1
    if not names:
        return n
    parts = [str(n)] if n != 1 else []
    parts += [s if c == 1 else f"{s}**{c}" for s, c in names.items()]
    return "*".join(parts)
