"""What :func:`einderiv.plot` returns, and how it shrinks a large matrix to a picture.

:class:`Picture` holds the matplotlib ``Figure`` (``.figure``) and shows itself in a
notebook as a PNG (``_repr_png_``) with no ``%matplotlib`` magic; ``.save(path)``
writes it. :func:`block_extremes` aggregates a matrix given as consecutive chunks of
rows: each cell of the result is the entry of largest magnitude (with its sign) in a
block of ``rows_per_block x cols_per_block`` entries, so structural zeros stay white
and the colour scale (symmetric, by the largest magnitude) is the one the full
matrix would have. :func:`progress_bar` is tqdm's bar when tqdm is installed and
asked for, else a bar that does nothing.
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # matplotlib is optional: imported when a picture is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Picture", "block_extremes", "block_size", "progress_bar"]


@dataclass(frozen=True)
class Picture:
    """A picture of a derivative tensor (:func:`einderiv.plot`).

    ``figure`` is the matplotlib ``Figure`` (edit it freely); ``kind`` is
    ``"matrix"`` or ``"slices"``; ``shape`` the size of the matrix drawn (rows,
    columns) or of the tensor (slices); ``block`` the ``(rows, columns)`` of entries
    that each drawn cell stands for, ``(1, 1)`` when every entry is drawn. In a
    notebook the picture shows as a PNG; :meth:`save` writes a file (the format
    from the suffix: ``.png``, ``.svg``, ``.pdf``).
    """

    figure: Figure
    kind: str
    shape: tuple[int, ...]
    block: tuple[int, int] = (1, 1)

    @property
    def aggregated(self) -> bool:
        """Whether a cell stands for a block of entries (the matrix was too large)."""
        return self.block != (1, 1)

    @property
    def axes(self) -> list[Axes]:
        """The figure's axes (the heat map first, then the colour bar)."""
        return list(self.figure.axes)

    def save(self, path: str | os.PathLike[str], dpi: int = 100) -> None:
        """Write the picture to ``path``."""
        self.figure.savefig(path, dpi=dpi)

    def savefig(self, path: str | os.PathLike[str], **options: Any) -> None:
        """``Figure.savefig`` (what :func:`einderiv.plot` returned before ``Picture``)."""
        self.figure.savefig(path, **options)

    def to_png(self, dpi: int = 100) -> bytes:
        """The picture as PNG bytes."""
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.to_png()

    def __repr__(self) -> str:
        size = " x ".join(map(str, self.shape))
        cells = f", each cell a {self.block[0]} x {self.block[1]} block" if self.aggregated else ""
        return f"<einderiv Picture: {self.kind}, {size}{cells}>"


def block_size(rows: int, cols: int, max_cells: int) -> tuple[int, int]:
    """Entries per drawn cell so that at most ``max_cells`` cells lie along each side."""
    if max_cells < 1:
        raise ValueError(f"max_cells must be at least 1, got {max_cells}")
    return max(1, math.ceil(rows / max_cells)), max(1, math.ceil(cols / max_cells))


def block_extremes(chunks: Iterable[np.ndarray], rows: int, cols: int,
                   block: tuple[int, int], tick: Any = None) -> np.ndarray:
    """The signed entry of largest magnitude in each ``block`` of the ``rows x cols``
    matrix whose consecutive row chunks ``chunks`` yields (each ``(k, cols)``);
    ``tick()`` is called after each chunk. Blocks at the edges may be smaller."""
    br, bc = block
    col_starts = np.arange(0, cols, bc)
    high = np.empty((rows, len(col_starts)))
    low = np.empty((rows, len(col_starts)))
    at = 0
    for chunk in chunks:
        k = chunk.shape[0]
        high[at:at + k] = np.maximum.reduceat(chunk, col_starts, axis=1)
        low[at:at + k] = np.minimum.reduceat(chunk, col_starts, axis=1)
        at += k
        if tick is not None:
            tick()
    row_starts = np.arange(0, rows, br)
    high = np.maximum.reduceat(high, row_starts, axis=0)
    low = np.minimum.reduceat(low, row_starts, axis=0)
    return np.where(-low > high, low, high)


class _Bar(Protocol):
    def update(self, n: int = 1) -> object: ...
    def set_description(self, desc: str) -> None: ...
    def close(self) -> None: ...


class _NoBar:
    """Stands in for a progress bar when none is shown."""

    def update(self, n: int = 1) -> None:
        return None

    def set_description(self, desc: str) -> None:
        return None

    def close(self) -> None:
        return None


def progress_bar(total: int, show: bool, description: str) -> _Bar:
    """tqdm's bar on standard error when ``show`` and tqdm is installed (the ``plot``
    extra), else one that does nothing: no tqdm, no progress, no error."""
    if not show:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    bar: _Bar = tqdm(total=total, desc=description, file=sys.stderr, leave=False)
    return bar
