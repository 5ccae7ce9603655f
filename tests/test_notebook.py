"""Rich output in notebooks (issue 18): docs/notebook.ipynb runs headless (nbclient, the
`notebook` extra, installed by the test extra) and shows an expression, a matrix form,
a derivation, a structure report, a picture, a check and a compiled plan as LaTeX,
HTML, Markdown or PNG, not as their repr text; the same through IPython's formatter."""

from __future__ import annotations

import base64
import copy
from pathlib import Path

import numpy as np
import pytest

import einderiv

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "notebook.ipynb"

#: the tag of each code cell (its metadata "einderiv") -> the rich kind it must show
RICH = {"expr": "text/latex", "matrix": "text/latex", "steps": "text/latex",
        "structure": "text/html", "plot": "image/png", "check": "text/html",
        "compiled": "text/markdown"}


def _bundles(nb) -> dict[str, dict]:
    """Tag -> the data of the cell's last displayed result."""
    found = {}
    for cell in nb.cells:
        tag = cell.get("metadata", {}).get("einderiv")
        if cell.cell_type == "code" and tag:
            results = [o for o in cell.outputs if o.get("output_type") == "execute_result"]
            assert results, f"cell {tag!r} shows nothing"
            found[tag] = results[-1]["data"]
    return found


def _check_bundles(found: dict[str, dict]) -> None:
    assert set(found) == set(RICH)
    for tag, kind in RICH.items():
        assert kind in found[tag], (tag, sorted(found[tag]))
    assert base64.b64decode(found["plot"]["image/png"])[:4] == b"\x89PNG"
    assert "Figure size" not in found["plot"]["text/plain"]
    assert "theta" in found["expr"]["text/latex"]
    assert "X^{\\top}" in found["matrix"]["text/latex"]        # 2/n X^T (X theta - Y)
    assert "align*" in found["steps"]["text/latex"]
    assert "<table>" in found["structure"]["text/html"]
    assert "agrees with central finite differences" in found["check"]["text/html"]
    assert "backend `numpy`" in found["compiled"]["text/markdown"]


def test_the_committed_notebook_keeps_its_outputs():
    nbformat = pytest.importorskip("nbformat")
    _check_bundles(_bundles(nbformat.read(NOTEBOOK, as_version=4)))


def test_the_notebook_runs_with_rich_outputs():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    fresh = copy.deepcopy(nb)
    for cell in fresh.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    nbclient.NotebookClient(fresh, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    _check_bundles(_bundles(fresh))


def _formats(obj) -> dict[str, object]:
    """The mime bundle IPython would display for ``obj`` (no kernel needed)."""
    formatters = pytest.importorskip("IPython.core.formatters")
    data, _ = formatters.DisplayFormatter().format(obj)
    return data


def test_check_result_shows_as_html_and_markdown():
    rng = np.random.default_rng(0)
    values = {"x": rng.normal(size=3), "A": rng.normal(size=(3, 4))[:, :3]}
    result = einderiv.check("x[i]*A[i,j]*x[j]", "x", values)
    data = _formats(result)
    assert "agrees with central finite differences" in data["text/html"]
    assert f"{result.max_rel_error:.2e}" in data["text/html"] and "<table>" in data["text/html"]
    assert "agrees with" in data["text/markdown"] and "$$" in data["text/markdown"]
    wrong = einderiv.CheckResult(1.0, 0.5, np.ones(3), np.zeros(3),
                                 einderiv.parse("x[i]"), "x")
    assert "differs from" in _formats(wrong)["text/html"]


def test_compiled_expression_shows_as_markdown():
    f = einderiv.diff("x[i]*A[i,j]*x[j]", "x").compile()
    md = _formats(f)["text/markdown"]
    assert "backend `numpy`" in md and "`A`, `x`" in md and "output axes c" in md
    assert f.expr.to_latex() in md


def test_a_picture_shows_as_png():
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(1)
    pic = einderiv.plot(einderiv.diff("W[j,i]*A[j]", "W"), "W",
                        {"W": rng.normal(size=(4, 3)), "A": rng.normal(size=4)})
    data = _formats(pic)
    assert data["image/png"][:4] == b"\x89PNG"
