"""Expr.structure(), einderiv.plot and `einderiv inspect` (docs/inspect.md).

Values: the compressed form, expanded, equals the dense derivative on random data with
distinct sizes (4, 3, 5), and the deltas' pattern covers every nonzero. Text: the
report of notes 003_* X.20 and X.22. Pictures: rendered to PNG with Agg, checked
pixel by pixel for the expected block pattern. CLI: the inspect subcommand.
"""

import re
import sys

import matplotlib
import numpy as np
import pytest

import einderiv
from einderiv.cli import main
from einderiv.tools.inspect import StructureReport

matplotlib.use("Agg")

X20 = ("W[j,i]*A[j]", "W", {"W": (4, 3), "A": (4,)})
X22 = ("tanh(z[i])", "z", {"z": (5,)})

# (expression, wrt, shapes, compressed form (text, or its number of axes, or None:
# not compressed), structural nonzeros)
CASES = [
    (*X20, "A[b]", 12),
    (*X22, "1 - tanh(z[i])**2", 5),
    ("tanh(W[j,i]*A[j])", "W", {"W": (4, 3), "A": (4,)},
     2, 12),
    ("x[i]", "x", {"x": (4,)}, "1", 4),
    ("X[i,j]", "X", {"X": (4, 3)}, "1", 12),
    ("X[i,i]", "X", {"X": (4, 4)}, "1", 4),
    ("x[i]*y[j]", "x", {"x": (4,), "y": (5,)}, "y[j]", 20),
    ("exp(x[i])*y[j]", "x", {"x": (4,), "y": (5,)}, 2, 20),
    ("W[i,j,k]*A[j]*B[k] -> [i]", "W", {"W": (4, 3, 5), "A": (3,), "B": (5,)},
     2, 60),
    ("A[i,j]*x[j] -> [i,j]", "x", {"A": (4, 3), "x": (3,)}, 2, 12),
    ("sum[i](x[i])", "x", {"x": (4,)}, "1", 4),
    ("W[j,i]*A[j]", "A", {"W": (4, 3), "A": (4,)}, "W[b,i]", 12),
    ("A[i,k]*X[k,l]*B[l,j]", "X", {"A": (4, 3), "X": (3, 5), "B": (5, 4)},
     4, 3 * 5 * 4 * 4),
    ("sigmoid(W[j,i]*A[j] + b[i])", "b", {"W": (4, 3), "A": (4,), "b": (3,)}, 1, 3),
    ("x[i]*A[i,j]*x[j]", "x", {"x": (4,), "A": (4, 4)}, 1, 4),
    ("x[i]*x[j]", "x", {"x": (4,)}, None, 4 * 4 + 4 * 4 - 4),
    ("x[i]*y[j] + x[j]*y[i]", "x", {"x": (4,), "y": (4,)}, None, 28),
    ("y[i]", "x", {"x": (4,), "y": (3,)}, "0", 0),
]


def _arrays(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=v) for k, v in shapes.items()}


@pytest.mark.parametrize("expr, wrt, shapes, compressed, nonzeros", CASES,
                         ids=[c[0] + " / " + c[1] for c in CASES])
def test_compressed_form_rebuilds_the_derivative(expr, wrt, shapes, compressed, nonzeros):
    d = einderiv.diff(expr, wrt, shapes)
    s = d.structure(wrt, shapes=shapes)
    arrays = _arrays(shapes)
    dense = d.evaluate(**arrays)
    assert s.shape == dense.shape
    assert s.dense_size == dense.size
    values = s.compressed.evaluate(**arrays)
    assert np.allclose(s.expand(values), dense)
    assert np.allclose(s.expand(values, **arrays), dense)   # sizes from the arrays too
    assert not np.any(dense[~s.mask()])                    # zeros where the deltas say
    assert int(s.mask().sum()) == s.nonzeros
    if isinstance(compressed, str):
        assert str(s.compressed) == compressed
    elif isinstance(compressed, int):
        assert len(s.compressed.free) == compressed
    else:
        assert s.compressed == d
    if nonzeros is not None:
        assert s.nonzeros == nonzeros
    assert len(s.compressed.free) <= len(d.free)


def test_sizes_from_arrays_when_shapes_are_symbolic():
    d = einderiv.diff("W[j,i]*A[j]", "W")
    s = d.structure("W", shapes={"W": ("m", "n"), "A": ("m",)})
    assert s.shape == ("m", "n", "n")
    assert s.nonzeros == "m*n" and s.dense_size == "m*n**2"
    arrays = _arrays({"W": (4, 3), "A": (4,)})
    values = s.compressed.evaluate(**arrays)
    assert np.allclose(s.expand(values, **arrays), d.evaluate(**arrays))
    assert s.pattern("F") is None        # no picture without numbers
    assert "row b + m*c is W[b,c]" in str(s)


def test_x20_report():
    d = einderiv.diff("W[j,i]*A[j]", "W")
    s = d.structure("W", shapes={"W": (4, 3), "A": (4,)}, function="Z")
    assert isinstance(s, StructureReport)
    text = str(s)
    assert text.startswith("Structure of T = dZ/dW = A[b]*delta[c,i]")
    for part in [
        "(4, 3, 3) = W (4, 3) + Z (3,)",
        "b, c = W's axes 0, 1 (the variable) first, then i = Z's axis 0",
        "delta[c,i]: nonzero only where c == i (W axis 1 = Z axis 0)",
        "12 of 36 entries (33%) can be nonzero",
        "along the diagonal c == i: every entry on it is the same",
        "compressed  A[b]   axes (b), 4 values",
        "T[b,c,i] = C[b]*delta[c,i]",
        "dL/dW[b,c] = A[b]*G[c]",
        "no sum over i",
        "outer product",
        'flatten(T, 2, order="F"): a 12 x 3 matrix',
        "row b + 4*c is W[b,c], column i is Z[i]",
        "row 3*b + c is W[b,c]",
    ]:
        assert part in text, part
    assert s.deltas == (("c", "i"),)
    assert s.constant_diagonals == (("c", "i"),) and s.constant_axes == ()
    assert s.var_axes == ("b", "c") and s.fun_axes == ("i",)
    # the chain rule: dL/dW = A G^T without the 3-tensor (X.20 eq. 59)
    arrays = _arrays({"W": (4, 3), "A": (4,), "G": (3,)})
    T = d.evaluate(**arrays)
    assert np.allclose(s.chain.evaluate(**arrays), np.einsum("bci,i->bc", T, arrays["G"]))


def test_x20_pattern_matches_flatten():
    d = einderiv.diff("W[j,i]*A[j]", "W")
    s = d.structure("W", shapes={"W": (4, 3), "A": (4,)}, function="Z")
    T = d.evaluate(W=np.ones((4, 3)), A=np.arange(1.0, 5.0))
    for order in "FC":
        lines = s.pattern(order).splitlines()
        rows = [line for line in lines if line.lstrip().startswith("W[")]
        drawn = np.array([[c == "#" for c in line.split()[1:]] for line in rows])
        assert np.array_equal(drawn, einderiv.flatten(T, 2, order) != 0)
        labels = [line.split()[0] for line in rows]
        first = ["W[0,0]", "W[1,0]"] if order == "F" else ["W[0,0]", "W[0,1]"]
        assert labels[:2] == first
        assert sum(set(line.strip()) == {"-"} for line in lines) == (2 if order == "F" else 3)


def test_x22_report_and_elementwise_chain_rule():
    d = einderiv.diff("tanh(z[i])", "z")
    s = d.structure("z", shapes={"z": (5,)}, function="A")
    assert str(s.compressed) == "1 - tanh(z[i])**2" and s.compressed.free == ("i",)
    text = str(s)
    assert "delta[a,i]: nonzero only where a == i" in text
    assert "5 of 25 entries (20%)" in text
    assert "element-wise multiplication instead of a matrix product" in text
    assert 'order "F" and "C" agree here' in text and "flatten C" not in text
    z, G = np.linspace(-1, 1, 5), np.arange(5.0)
    fprime = s.compressed.evaluate(z=z)
    assert np.allclose(s.expand(fprime), np.diag(1 - np.tanh(z) ** 2))
    assert np.allclose(s.chain.evaluate(z=z, G=G), fprime * G)


def test_dense_derivative_says_matrix_product():
    s = einderiv.diff("W[j,i]*A[j]", "A").structure("A", shapes={"W": (4, 3), "A": (4,)})
    text = str(s)
    assert "none: no entry is forced to zero" in text
    assert "all 12 entries can be nonzero" in text
    assert "nothing to compress" in text
    assert "a matrix product (contraction)" in text


def test_sum_without_common_structure_is_conservative():
    d = einderiv.diff("x[i]*y[j] + x[j]*y[i]", "x")
    s = d.structure("x", shapes={"x": (4,), "y": (4,)})
    assert not s.common and s.compressed == d
    text = str(s)
    assert "no common structure" in text
    assert re.search(r"term [12], y\[j\]\*delta\[a,i\]: delta\[a,i\]: nonzero only where "
                     r"a == i", text)
    assert re.search(r"term [12], y\[i\]\*delta\[a,j\]: delta\[a,j\]: nonzero only where "
                     r"a == j", text)
    assert "not compressed" in text


def test_sum_with_common_structure_compresses_each_term():
    d = einderiv.diff("tanh(z[i]) + z[i]*z[i] -> [i]", "z")
    s = d.structure("z", shapes={"z": (4,)})
    assert s.common and s.deltas == (("a", "i"),)
    z = np.linspace(-1, 1, 4)
    assert s.compressed.free == ("i",)
    assert np.allclose(s.expand(s.compressed.evaluate(z=z)), d.evaluate(z=z))


def test_broadcast_axis_is_constant():
    s = einderiv.diff("sum[i](x[i])", "x").structure("x", shapes={"x": (4,)})
    assert s.constant_axes == ("b",)
    assert "along b: T does not depend on b" in str(s)
    assert str(s.compressed) == "1"
    assert np.allclose(s.expand(1.0), np.ones(4))


def test_zero_derivative():
    s = einderiv.diff("y[i]", "x", {"x": (4,), "y": (3,)}).structure(
        "x", shapes={"x": (4,), "y": (3,)})
    assert s.nonzeros == 0 and "identically zero" in str(s)
    assert np.array_equal(s.expand(0.0), np.zeros((4, 3)))


def test_scalar_function_gradient():
    d = einderiv.diff("x[i]*x[i]", "x")
    s = d.structure("x")
    assert s.fun_axes == () and s.chain is None
    assert "f is a scalar: T is its gradient" in str(s)


def test_layout_from_diff_without_wrt():
    d = einderiv.diff("x[i]*y[j]", "x")
    assert d.structure().var_axes == ("a",)    # diff() records the variable's axes


def test_layout_unknown_without_wrt():
    d = einderiv.diff("x[i]*y[j]", "x")
    s = einderiv.parse(str(d)).structure()     # the re-parsed text carries no record
    assert s.var_axes is None
    assert "which belong to the variable is unknown" in str(s)
    assert "nonzero only where a == i" in str(s)
    with pytest.raises(einderiv.EinderivError, match="wrt="):
        s.flatten_view("F")


def test_wrt_forms():
    d = einderiv.diff("W[j,i]*A[j]", "W[p,q]")
    assert d.structure("W[p,q]").var_axes == ("p", "q")
    assert d.structure(var_axes=2).var_axes == ("p", "q")
    with pytest.raises(einderiv.IndexMismatchError, match="variable's axes come first"):
        d.structure("W[q,p]")
    assert d.structure("W").var_axes == ("p", "q")   # recorded by diff()
    with pytest.raises(einderiv.EinderivError, match="rank of 'W'"):
        einderiv.parse(str(d)).structure("W")
    with pytest.raises(einderiv.EinderivError, match="var_axes must be"):
        d.structure(var_axes=7)
    with pytest.raises(einderiv.EinderivError, match="needs an expression"):
        einderiv.tools.inspect.structure("W[j,i]*A[j]")


def test_expand_checks_shapes():
    s = einderiv.diff("W[j,i]*A[j]", "W").structure("W", shapes={"W": (4, 3), "A": (4,)})
    with pytest.raises(einderiv.EinderivError, match=r"shape \(4,\)"):
        s.expand(np.ones(3))
    t = einderiv.diff("x[i]", "x").structure("x", var_axes=1)
    with pytest.raises(einderiv.EinderivError, match="size of axes a, i is unknown"):
        t.expand(1.0)
    assert np.allclose(t.expand(1.0, x=np.zeros(3)), np.eye(3))


def test_notebook_reprs():
    s = einderiv.diff("W[j,i]*A[j]", "W").structure("W", shapes={"W": (4, 3), "A": (4,)})
    md = s._repr_markdown_()
    assert md.startswith("**Structure of T = df/dW = A[b]\\*delta[c,i]**")
    assert "| deltas | delta[c,i]: nonzero only where c == i" in md
    assert "```\n" in md and "W[0,0]  # . ." in md
    html = s._repr_html_()
    assert html.startswith("<div>") and "<table>" in html and "<pre>" in html
    assert "nonzero only where c == i" in html
    assert einderiv.diff("tanh(z[i])", "z")._repr_latex_().startswith("$\\displaystyle")


# ======================================================================== pictures


def _png(path):
    import matplotlib.image
    return matplotlib.image.imread(str(path))


def _cells(fig, image, ax, rows, cols):
    """Whether the centre pixel of each heat-map cell is coloured (not white/grey)."""
    box = ax.get_window_extent()
    height = image.shape[0]
    out = np.zeros((rows, cols), dtype=bool)
    for r in range(rows):
        for c in range(cols):
            x = box.x0 + (c + 0.5) * box.width / cols
            y = height - (box.y1 - (r + 0.5) * box.height / rows)
            rgb = image[int(y), int(x), :3]
            out[r, c] = rgb.max() - rgb.min() > 0.15
    return out


def test_plot_x20_heat_map(tmp_path):
    d = einderiv.diff("W[j,i]*A[j]", "W")
    path = tmp_path / "x20.png"
    fig = einderiv.plot(d, "W", path=path, W=np.ones((4, 3)), A=np.array([1.0, -2.0, 1.5, -1.0]))
    assert path.exists() and path.stat().st_size > 5000
    image = _png(path)
    assert image.shape[0] > 200 and image.shape[1] > 200
    coloured = _cells(fig, image, fig.axes[0], 12, 3)
    expected = np.kron(np.eye(3), np.ones((4, 1))).astype(bool)   # eq. 71: A blocks
    assert np.array_equal(coloured, expected)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "W[b,c]: row b + 4*c (order F)"
    assert ax.get_xlabel() == "f[i]: column i"
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["W[0,0]", "W[1,0]"]
    assert len(ax.lines) == 2          # block separators between W's columns


def test_plot_order_c_and_report_input(tmp_path):
    d = einderiv.diff("W[j,i]*A[j]", "W")
    report = d.structure("W", shapes={"W": (4, 3), "A": (4,)}, function="Z")
    path = tmp_path / "x20c.png"
    fig = einderiv.plot(report, order="C", path=path, W=np.ones((4, 3)), A=np.ones(4))
    coloured = _cells(fig, _png(path), fig.axes[0], 12, 3)
    assert np.array_equal(coloured, np.tile(np.eye(3, dtype=bool), (4, 1)))
    assert len(fig.axes[0].lines) == 3
    assert fig.axes[0].get_xlabel() == "Z[i]: column i"


def test_plot_slices(tmp_path):
    d = einderiv.diff("W[j,i]*A[j]", "W")
    path = tmp_path / "slices.png"
    fig = einderiv.plot(d, "W", kind="slices", path=path, W=np.ones((4, 3)), A=np.ones(4))
    image = _png(path)
    for i in range(3):
        coloured = _cells(fig, image, fig.axes[i], 4, 3)
        expected = np.zeros((4, 3), dtype=bool)
        expected[:, i] = True                    # dZ[i]/dW: A in column i (eq. 70)
        assert np.array_equal(coloured, expected), i
        assert fig.axes[i].get_title() == f"i = {i}"


def test_plot_x22_diagonal(tmp_path):
    d = einderiv.diff("tanh(z[i])", "z")
    path = tmp_path / "x22.png"
    fig = einderiv.plot(d, "z", path=path, z=np.linspace(-0.5, 0.5, 5))
    assert np.array_equal(_cells(fig, _png(path), fig.axes[0], 5, 5), np.eye(5, dtype=bool))
    assert len(fig.axes[0].lines) == 0           # a vector variable: no blocks


def test_plot_errors(monkeypatch):
    d = einderiv.diff("W[j,i]*A[j]", "W")
    arrays = {"W": np.ones((4, 3)), "A": np.ones(4)}
    with pytest.raises(einderiv.EinderivError, match="pass wrt="):
        einderiv.plot(einderiv.parse(str(d)), **arrays)
    with pytest.raises(einderiv.EinderivError, match="kind must be"):
        einderiv.plot(d, "W", kind="pie", **arrays)
    with pytest.raises(einderiv.EinderivError, match="needs a derivative"):
        einderiv.plot("W[j,i]*A[j]", "W", **arrays)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(einderiv.EinderivError, match=r"einderiv\[plot\]"):
        einderiv.plot(d, "W", **arrays)


# ============================================================================= CLI


def test_cli_inspect_report(capsys):
    assert main(["inspect", "W[j,i]*A[j]", "--wrt", "W", "--shape", "W=4,3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("f = A[a]*W[a,i]\nStructure of T = df/dW = A[b]*delta[c,i]")
    assert "(4, 3, 3) = W (4, 3) + f (3,)" in out
    assert "nonzero only where c == i" in out
    assert "compressed  A[b]" in out
    assert "picture" not in out


def test_cli_inspect_without_shapes_and_markdown(capsys):
    assert main(["inspect", "tanh(z[i])", "--wrt", "z", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| deltas | delta[a,i]: nonzero only where a == i" in out


def test_cli_inspect_plot(tmp_path, capsys):
    path = tmp_path / "out.png"
    assert main(["inspect", "W[j,i]*A[j]", "--wrt", "W", "--shape", "W=4,3",
                 "--plot", str(path)]) == 0
    out = capsys.readouterr().out
    assert path.exists() and _png(path).shape[0] > 200
    assert f"picture: {path} (flattened, order F); random data" in out
    assert "seed 0" in out and "A (4,), W (4, 3)" in out
    slices = tmp_path / "slices.png"
    assert main(["inspect", "W[j,i]*A[j]", "--wrt", "W", "--shape", "W=4,3", "--shape", "A=4",
                 "--plot", str(slices), "--slices", "--flatten", "C"]) == 0
    assert slices.exists()


def test_cli_inspect_plot_needs_integer_sizes(tmp_path, capsys):
    path = tmp_path / "out.png"
    assert main(["inspect", "W[j,i]*A[j]", "--wrt", "W", "--shape", "W=n,k",
                 "--plot", str(path)]) == 2
    err = capsys.readouterr().err
    assert "--plot draws random data" in err and "integer sizes" in err
    assert not path.exists()


def test_cli_inspect_errors(capsys):
    assert main(["inspect", "x[", "--wrt", "x"]) == 2
    assert "ParseError" in capsys.readouterr().err
    assert main(["--debug", "inspect", "x[", "--wrt", "x"]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["inspect", "x[i]"])                     # --wrt is required
    assert info.value.code == 2
