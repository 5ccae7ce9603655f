"""einderiv.plot returns a Picture (issue 18): it shows in a notebook without magics,
takes values and shapes as the rest of the API does, and draws large tensors by
blocks, with an optional progress bar."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import einderiv

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def _xw_derivative():
    """T = d(A X)/dX: T[b,c,i,j] = A[i,b] delta[c,j] (written out independently below)."""
    return einderiv.diff("A[i,k]*X[k,j]", "X")


def _dense(A, X):
    """The same tensor in numpy, (X's axes, then f's): T[b,c,i,j] = A[i,b] * (c == j)."""
    return np.einsum("ib,cj->bcij", A, np.eye(X.shape[1]))


def test_plot_shows_in_a_notebook_and_keeps_the_figure(tmp_path):
    from matplotlib.figure import Figure

    rng = np.random.default_rng(1)
    W, A = rng.normal(size=(4, 3)), rng.normal(size=4)
    pic = einderiv.plot(einderiv.diff("W[j,i]*A[j]", "W"), "W", W=W, A=A)
    png = pic._repr_png_()                      # what Jupyter shows: no magic needed
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert isinstance(pic.figure, Figure) and pic.figure is not pic
    assert isinstance(pic, einderiv.Picture)
    path = tmp_path / "p.png"
    pic.save(path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    image = pic.axes[0].images[0].get_array()
    expected = np.reshape(np.einsum("b,ci->bci", A, np.eye(3)), (12, 3), order="F")
    assert np.allclose(image, expected)
    assert "matrix" in repr(pic) and "12 x 3" in repr(pic)


def test_plot_takes_values_and_shapes_as_the_api_does():
    rng = np.random.default_rng(2)
    W, A = rng.normal(size=(4, 3)), rng.normal(size=4)
    d = einderiv.diff("W[j,i]*A[j]", "W")
    pic = einderiv.plot(d, "W", {"W": W, "A": A}, shapes={"W": (4, 3), "A": (4,)})
    expected = np.reshape(np.einsum("b,ci->bci", A, np.eye(3)), (12, 3), order="F")
    assert np.allclose(pic.axes[0].images[0].get_array(), expected)
    assert pic.axes[0].get_ylabel() == "W[b,c]: row b + 4*c (order F)"
    with pytest.raises(einderiv.EinderivError, match=r"'W'.*\(3, 4\).*\(4, 3\)"):
        einderiv.plot(d, "W", {"W": W, "A": A}, shapes={"W": (3, 4)})
    with pytest.raises(einderiv.EinderivError, match="both in values and as a keyword"):
        einderiv.plot(d, "W", {"W": W, "A": A}, A=A)
    with pytest.raises(einderiv.EinderivError, match="mapping"):
        einderiv.plot(d, "W", [W, A])


@pytest.mark.parametrize("order", ["F", "C"])
def test_a_large_matrix_is_drawn_by_blocks(order):
    rng = np.random.default_rng(3)
    A, X = rng.normal(size=(5, 7)), rng.normal(size=(7, 4))      # T: 28 x 20 flattened
    pic = einderiv.plot(_xw_derivative(), "X", A=A, X=X, order=order, max_cells=6)
    full = np.reshape(_dense(A, X), (28, 20), order=order)
    assert pic.block == (5, 4) and pic.aggregated and pic.shape == (28, 20)
    want = np.zeros((6, 5))
    for r in range(6):
        for c in range(5):
            block = full[5 * r:5 * r + 5, 4 * c:4 * c + 4]
            want[r, c] = block.flat[np.argmax(np.abs(block))]   # largest magnitude, signed
    assert np.array_equal(pic.axes[0].images[0].get_array(), want)
    title = pic.axes[0].get_title()
    assert "28 x 20 entries drawn by blocks of 5 x 4" in title and "largest magnitude" in title
    lo, hi = pic.axes[0].images[0].get_clim()
    assert hi == pytest.approx(np.abs(full).max()) and lo == -hi


def test_slices_of_a_large_tensor_are_drawn_by_blocks():
    rng = np.random.default_rng(4)
    A, X = rng.normal(size=(3, 9)), rng.normal(size=(9, 4))      # T: (9, 4, 3, 4)
    pic = einderiv.plot(_xw_derivative(), "X", A=A, X=X, kind="slices", max_cells=3)
    T = _dense(A, X)
    assert pic.kind == "slices" and pic.block == (3, 4)
    panel = T[..., 1].reshape(9, 12)
    want = np.array([[panel[3 * r:3 * r + 3, 4 * c:4 * c + 4].flat[
        np.argmax(np.abs(panel[3 * r:3 * r + 3, 4 * c:4 * c + 4]))] for c in range(3)]
        for r in range(3)])
    assert np.array_equal(pic.axes[1].images[0].get_array(), want)
    assert "largest magnitude" in pic.figure.get_suptitle()


def test_progress_is_shown_with_tqdm_and_skipped_without(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    rng = np.random.default_rng(5)
    A, X = rng.normal(size=(5, 7)), rng.normal(size=(7, 4))
    einderiv.plot(_xw_derivative(), "X", A=A, X=X, max_cells=6, progress=True)
    assert "einderiv.plot" in capsys.readouterr().err
    einderiv.plot(_xw_derivative(), "X", A=A, X=X, max_cells=6, progress=False)
    assert capsys.readouterr().err == ""
    monkeypatch.setitem(sys.modules, "tqdm", None)   # not installed: no bar, no error
    pic = einderiv.plot(_xw_derivative(), "X", A=A, X=X, max_cells=6, progress=True)
    assert pic.aggregated and capsys.readouterr().err == ""


def test_bad_max_cells_is_an_einderiv_error():
    d = einderiv.diff("W[j,i]*A[j]", "W")
    with pytest.raises(einderiv.EinderivError, match="max_cells"):
        einderiv.plot(d, "W", W=np.ones((4, 3)), A=np.ones(4), max_cells=0)
