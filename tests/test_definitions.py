"""Definitions (issue 22): ``Z[i,n] = W[j,i]*X[j,n]; A[i,n] = tanh(Z[i,n]); L = ...``.

The notes' two-layer network (003_*, X.18-X.23) written with names: values against
central finite differences of an independent numpy loss, derivatives by an
intermediate name (dL/dZ, dL/dA) against the closed forms of backpropagation, printed
forms in the names; a deeper network; every mistake an error with a caret; an unused
definition a warning.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import einderiv
from fd import assert_close_to_fd, central_diff

TWO_LAYER = """
Z[i,n] = W[j,i]*X[j,n]
A[i,n] = tanh(Z[i,n])
L = sum[o,n]((V[o,i]*A[i,n] - T[o,n])**2)
"""


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # inputs d=4, hidden h=3, outputs o=2, samples n=5: all distinct
    return {"W": rng.normal(size=(4, 3)), "X": rng.normal(size=(4, 5)),
            "V": rng.normal(size=(2, 3)), "T": rng.normal(size=(2, 5))}


def _loss(a) -> np.ndarray:
    """The loss in numpy, written independently of einderiv."""
    A = np.tanh(a["W"].T @ a["X"])
    return np.asarray(np.sum((a["V"] @ A - a["T"]) ** 2))


@pytest.mark.parametrize("wrt", ["W", "V", "X", "T"])
def test_two_layer_gradients_match_finite_differences(wrt):
    arrays = _arrays()
    g = einderiv.diff(TWO_LAYER, wrt)
    assert_close_to_fd(g.evaluate(**arrays), central_diff(_loss, arrays, wrt))


def test_value_equals_the_expression_written_out():
    arrays = _arrays(1)
    e = einderiv.parse(TWO_LAYER)
    assert np.isclose(e.evaluate(**arrays), _loss(arrays))
    by_hand = einderiv.parse("sum[o,n]((V[o,i]*tanh(W[j,i]*X[j,n]) - T[o,n])**2)")
    assert einderiv.parse(TWO_LAYER, expand=True) == by_hand


def test_derivatives_by_intermediate_names_are_backpropagation():
    """dL/dA = V^T 2 (V A - T) and dL/dZ = dL/dA .* (1 - A^2) (X.21-X.23)."""
    a = _arrays(2)
    A = np.tanh(a["W"].T @ a["X"])
    dA = a["V"].T @ (2 * (a["V"] @ A - a["T"]))
    np.testing.assert_allclose(einderiv.diff(TWO_LAYER, "A").evaluate(**a), dA, rtol=1e-10)
    np.testing.assert_allclose(einderiv.diff(TWO_LAYER, "Z").evaluate(**a),
                               dA * (1 - A ** 2), rtol=1e-10)
    # and dL/dZ is what finite differences give in Z, with A = tanh(Z)
    Z = a["W"].T @ a["X"]
    numeric = central_diff(lambda b: np.sum((a["V"] @ np.tanh(b["Z"]) - a["T"]) ** 2),
                           {"Z": Z}, "Z")
    assert_close_to_fd(einderiv.diff(TWO_LAYER, "Z").evaluate(**a), numeric)


def test_printed_in_the_names():
    assert str(einderiv.diff(TWO_LAYER, "V")).split("; ") == [
        "Z[i,n] = W[a,i]*X[a,n]", "A[i,n] = tanh(Z[i,n])",
        "2*A[e,a]*(A[b,a]*V[d,b] - T[d,a])"]
    w = str(einderiv.diff(TWO_LAYER, "W"))
    assert "tanh" not in w.split("; ")[-1] and re.search(r"\(1 - A\[\w,\w\]\*\*2\)", w)
    expanded = str(einderiv.diff(TWO_LAYER, "W", expand=True))
    assert "A[" not in expanded and expanded.count("tanh(") == 2


def test_printed_text_parses_back_to_the_same_expression():
    for wrt in ["V", "W", "Z"]:
        g = einderiv.diff(TWO_LAYER, wrt)
        assert einderiv.parse(str(g), expand=True) == einderiv.diff(TWO_LAYER, wrt, expand=True)


def test_semicolons_and_definitions_used_twice():
    a = _arrays(3)
    text = "Z[i,n] = W[j,i]*X[j,n]; A[i,n] = tanh(Z[i,n]); sum[i,n](A[i,n]*A[i,n] + Z[i,n])"
    Z = a["W"].T @ a["X"]
    assert np.isclose(einderiv.parse(text).evaluate(**a), np.sum(np.tanh(Z) ** 2 + Z))
    g = einderiv.diff(text, "W").evaluate(**a)
    f = lambda b: np.sum(np.tanh(b["W"].T @ b["X"]) ** 2 + b["W"].T @ b["X"])  # noqa: E731
    assert_close_to_fd(g, central_diff(f, a, "W"))


def test_indices_are_renamed_at_each_use():
    """Z's own i and the j it sums never meet the indices around a use: Z[j,i] is Z^T."""
    rng = np.random.default_rng(4)
    M, x = rng.normal(size=(4, 3)), rng.normal(size=4)
    e = einderiv.parse("Z[i,j] = M[i,k]*P[k,j]; y[j] = Z[k,j]*x[k]; y[i]*w[i]")
    P, w = rng.normal(size=(3, 5)), rng.normal(size=5)
    assert np.isclose(e.evaluate(M=M, P=P, x=x, w=w), x @ M @ P @ w)
    t = einderiv.parse("Z[i,j] = M[i,k]*P[k,j]; Z[j,i]").evaluate(M=M, P=P)
    np.testing.assert_allclose(t, (M @ P).T)


def test_repeated_index_at_a_use_is_the_trace():
    rng = np.random.default_rng(5)
    M, P = rng.normal(size=(4, 3)), rng.normal(size=(3, 4))
    e = einderiv.parse("Z[i,j] = M[i,k]*P[k,j]; Z[a,a]")
    assert np.isclose(e.evaluate(M=M, P=P), np.trace(M @ P))


def test_scalar_definitions_and_newlines_inside_brackets():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=4), rng.normal(size=4)
    text = "s = x[i]*y[i]\nr = (s\n  + 1)**2\n  - s\nr*2"
    e = einderiv.parse(text)
    s = x @ y
    assert np.isclose(e.evaluate(x=x, y=y), 2 * ((s + 1) ** 2 - s))


def test_a_plain_expression_may_still_span_lines():
    e = einderiv.parse("x[i]\n*y[i]\n+ 2")
    assert e == einderiv.parse("x[i]*y[i] + 2")


# ---------------------------------------------------------------------------- errors

ERRORS = [
    ("Z[i] = x[i]; Z[i] = y[i]; Z[i]", "defined twice", 13),
    ("A[i] = tanh(Z[i]); Z[i] = x[i]; A[i]", "before its definition", 12),
    ("Z[i] = Z[i] + x[i]; Z[i]", "in terms of itself", 7),
    ("Z[i,n] = W[j,i]*X[j,n]; Z[i]*y[i]", "used with 1 index here", 24),
    ("Z[i,n] = W[j,i]*X[j,n] + b[k]; Z[i,n]", "'k' is free in the body", 27),
    ("Z[i,n,m] = W[j,i]*X[j,n]; Z[i,n,m]", "'m' of the left-hand side", 6),
    ("Z[i,i] = x[i]; Z[a,b]", "occurs twice", 4),
    ("x[i]*y[i]; Z[i] = x[i]; Z[i]", "only the last statement", 0),
    ("sum[i] = x[i]; 1", "cannot be defined", 0),
    ("Z[] = x; Z", "without brackets", 1),
    ("Z[i] = ; Z[i]", "nothing after '='", 7),
    ("Z[i] = x[i] = y[i]", "unexpected '='", 12),
    ("Z[i] = x[i]; size(Z, 0)", "size(Z, ...) of a definition", 13),
]


@pytest.mark.parametrize("text, message, position", ERRORS, ids=[t for t, _, _ in ERRORS])
def test_mistakes_are_errors_with_a_caret(text, message, position):
    with pytest.raises(einderiv.EinderivError) as info:
        einderiv.parse(text)
    shown = str(info.value)
    assert message in shown
    line, caret = shown.splitlines()[-2:]
    assert line.strip() == text.splitlines()[0].strip() or text in line
    assert caret.index("^") - 2 == position, shown


def test_unused_definition_is_a_warning_with_a_caret():
    with pytest.warns(einderiv.DefinitionWarning, match="'Z' is defined but never used"):
        e = einderiv.parse("Z[i] = x[i]*2; y[i]")
    assert e == einderiv.parse("y[i]")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a used definition warns nothing
        einderiv.parse("Z[i] = x[i]*2; Z[i]")


def test_derivative_of_a_derivative_by_a_name():
    """d(dL/dV)/dA, A an intermediate name of the derivative: against central
    differences of the closed form dL/dV = 2 (V A - T) A^T in A, at A = tanh(W^T X)."""
    a = _arrays(5)
    g = einderiv.diff(TWO_LAYER, "V")
    h = einderiv.diff(g, "A")
    A = np.tanh(a["W"].T @ a["X"])

    def grad_v(arrays):
        return 2 * (a["V"] @ arrays["A"] - a["T"]) @ arrays["A"].T

    assert_close_to_fd(h.evaluate(**a), central_diff(grad_v, {"A": A}, "A"))


def test_inputs_are_not_changed():
    a = _arrays(7)
    copies = {k: v.copy() for k, v in a.items()}
    einderiv.diff(TWO_LAYER, "W").evaluate(**a)
    for k in a:
        np.testing.assert_array_equal(a[k], copies[k])


# ------------------------------------------------------------------------ evaluation


def test_each_definition_is_computed_once_in_the_plan():
    """The derivative by W holds tanh(W^T X) three times when expanded; its plan
    computes it once (shared subexpressions), as does exported code."""
    from einderiv.numeric.lowering import lower
    g = einderiv.diff(TWO_LAYER, "W")
    assert str(einderiv.diff(TWO_LAYER, "W", expand=True)).count("tanh(") == 2
    steps = lower(g).steps
    assert sum(getattr(s, "name", None) == "tanh" for s in steps) == 1
    source = g.to_python("grad")
    assert source.count("np.tanh(") == 1


def test_exported_code_names_its_variables_after_the_definitions():
    a = _arrays(8)
    g = einderiv.diff(TWO_LAYER, "W")
    source = g.to_python("grad")
    # the plan's value of each definition carries its name (Z_T where it keeps Z^T)
    assert ("    Z = np.einsum(" in source and "    A = np.tanh(Z)" in source) or \
        ("    Z_T = np.einsum(" in source and "    A_T = np.tanh(Z_T)" in source)
    namespace: dict = {}
    exec(source, namespace)
    assert_close_to_fd(namespace["grad"](**a), central_diff(_loss, a, "W"))


def test_evaluate_named_gives_the_intermediates():
    a = _arrays(9)
    value, named = einderiv.evaluate_named(TWO_LAYER, **a)
    Z = a["W"].T @ a["X"]
    np.testing.assert_allclose(named["Z"], Z, rtol=1e-12)
    np.testing.assert_allclose(named["A"], np.tanh(Z), rtol=1e-12)
    assert np.isclose(value, _loss(a))
    g_value, _ = einderiv.evaluate_named(einderiv.diff(TWO_LAYER, "W"), **a)
    assert_close_to_fd(g_value, central_diff(_loss, a, "W"))


def test_derive_steps_backpropagates_through_the_names():
    a = _arrays(10)
    steps = einderiv.derive_steps(TWO_LAYER, "W")
    assert [s.detail.split(" =")[0] for s in steps.chain] == ["d f / d A", "d f / d Z"]
    assert "through A[i,n] = tanh(Z[i,n])" in steps.chain[1].detail
    for step, name in zip(steps.chain, ["A", "Z"]):
        np.testing.assert_allclose(step.expr.evaluate(**a),
                                   einderiv.diff(TWO_LAYER, name).evaluate(**a))
    assert str(steps).startswith("chain rule through the definitions:")
    assert str(steps.result) == str(einderiv.diff(TWO_LAYER, "W"))
    assert "tanh" not in steps[-2].text


# -------------------------------------------------------------------- matrix notation

SHAPES = {"W": (4, 3), "X": (4, 5), "V": (2, 3), "T": (2, 5)}


def test_matrix_forms_in_the_names():
    """dL/dV = 2 (V A - T) A^T; dL/dA = V^T 2 (V A - T) (X.21); dL/dZ = dL/dA .* f'(Z)
    (X.22-X.23); dL/dW = X (dL/dZ)^T, as the notes print it: one transpose around the
    element-wise product, none inside it."""
    forms = {w: str(einderiv.diff(TWO_LAYER, w).to_matrix()) for w in "VAZW"}
    for text in forms.values():
        assert text.startswith("Z = W^T X; A = tanh(Z); ")
    assert forms["V"].split("; ")[-1] == "2 (V A - T) A^T"
    assert forms["A"].split("; ")[-1] == "2 V^T (V A - T)"
    assert forms["Z"].split("; ")[-1] == "2 ((V^T (V A - T)) .* (1 - A.^2))"
    assert forms["W"].split("; ")[-1] == "2 X ((V^T (V A - T)) .* (1 - A.^2))^T"
    # the notes' form of dL/dW, read back, has the same value as ours
    a = _arrays(11)
    notes = einderiv.parse_matrix(
        "Z = W' X; A = tanh(Z); X ((V' 2 (V A - T)) .* (1 - A.^2))'", SHAPES)
    np.testing.assert_allclose(notes.evaluate(**a), einderiv.diff(TWO_LAYER, "W").evaluate(**a))
    assert_close_to_fd(notes.evaluate(**a), central_diff(_loss, a, "W"))


def test_matrix_form_evaluates_name_by_name():
    a = _arrays(12)
    m = einderiv.diff(TWO_LAYER, "W").to_matrix()
    assert_close_to_fd(m.evaluate(**a), central_diff(_loss, a, "W"))
    assert "\\tanh\\left(Z\\right),\\quad" in m.to_latex()


def test_parse_matrix_with_definitions_is_the_index_program():
    e = einderiv.parse_matrix("Z = W' X; A = tanh(Z)\nL = sum((V A - T).^2)", SHAPES)
    assert e == einderiv.parse(TWO_LAYER)
    assert str(e).startswith("Z[i,j] = W[a,i]*X[a,j]; A[i,j] = tanh(Z[i,j]); ")
    a = _arrays(13)
    assert_close_to_fd(einderiv.diff(e, "W").evaluate(**a), central_diff(_loss, a, "W"))
    assert str(einderiv.diff(e, "V").to_matrix()).endswith("; 2 (V A - T) A^T")


MATRIX_ERRORS = [
    ("Z = W' X; Z = X; Z", "defined twice", 10),
    ("A = tanh(Z); Z = W' X; A", "before its definition", 9),
    ("W' X; Z = X; Z", "only the last statement", 0),
    ("ones = X; ones", "cannot be defined", 0),
    ("Z = X'; V Z", "cannot multiply", 10),
]


@pytest.mark.parametrize("text, message, position", MATRIX_ERRORS,
                         ids=[t for t, _, _ in MATRIX_ERRORS])
def test_matrix_mistakes_are_errors_with_a_caret(text, message, position):
    with pytest.raises(einderiv.EinderivError) as info:
        einderiv.parse_matrix(text, SHAPES)
    shown = str(info.value)
    assert message in shown
    assert shown.splitlines()[-1].index("^") - 2 == position, shown


def test_matrix_unused_definition_warns():
    with pytest.warns(einderiv.DefinitionWarning, match="'Z' is defined but never used"):
        einderiv.parse_matrix("Z = W' X; V", SHAPES)


# ------------------------------------------------------------------- a deeper network


def network(depth: int) -> str:
    """A ``depth``-layer tanh network's squared loss with one definition pair per layer:
    the text grows by two lines per layer."""
    lines = ["A0[i,n] = X[i,n]"]
    for k in range(1, depth + 1):
        lines.append(f"Z{k}[i,n] = W{k}[j,i]*A{k - 1}[j,n]")
        lines.append(f"A{k}[i,n] = tanh(Z{k}[i,n])")
    lines.append(f"L = sum[o,n]((V[o,i]*A{depth}[i,n] - T[o,n])**2)")
    return "\n".join(lines)


def _network_arrays(depth: int, seed: int = 14) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [4, 3, 5, 4, 3, 5][: depth + 1]
    arrays = {"X": rng.normal(size=(sizes[0], 2))}
    for k in range(1, depth + 1):
        arrays[f"W{k}"] = rng.normal(size=(sizes[k - 1], sizes[k])) / 2
    arrays["V"] = rng.normal(size=(3, sizes[depth]))
    arrays["T"] = rng.normal(size=(3, 2))
    return arrays


def _network_loss(a, depth):
    A = a["X"]
    for k in range(1, depth + 1):
        A = np.tanh(a[f"W{k}"].T @ A)
    return np.asarray(np.sum((a["V"] @ A - a["T"]) ** 2))


def test_text_of_a_network_grows_linearly_with_depth():
    lengths = [len(network(d)) for d in range(1, 9)]
    steps = {b - a for a, b in zip(lengths, lengths[1:])}
    assert max(steps) - min(steps) <= 2  # two lines per layer (digits of the layer number)


@pytest.mark.parametrize("wrt", ["W1", "W2", "W4", "V"])
def test_four_layer_network_gradients_match_finite_differences(wrt):
    a = _network_arrays(4)
    g = einderiv.diff(network(4), wrt)
    assert_close_to_fd(g.evaluate(**a), central_diff(lambda b: _network_loss(b, 4), a, wrt))


def test_four_layer_first_weight_gradient_prints_in_the_names():
    text = str(einderiv.diff(network(4), "W1")).split("; ")[-1]
    assert "tanh" not in text and "Z" not in text
    assert all(f"A{k}[" in text for k in (1, 2, 3, 4))


def test_scalar_definitions_fold_with_a_coefficient():
    rng = np.random.default_rng(15)
    x = rng.normal(size=4)
    text = "s = x[i]*x[i]; t = s*s; t + s"
    g = einderiv.diff(text, "s")
    assert str(g) == "s = x[a]*x[a]; 1 + 2*s"
    assert np.isclose(g.evaluate(x=x), 1 + 2 * x @ x)
    gx = einderiv.diff(text, "x").evaluate(x=x)
    assert_close_to_fd(gx, central_diff(lambda a: (a["x"] @ a["x"]) ** 2 + a["x"] @ a["x"],
                                        {"x": x}, "x"))


def test_statements_without_definitions_are_a_plain_expression():
    e = einderiv.parse("x[i]*y[i];")
    assert e.definitions is None and e == einderiv.parse("x[i]*y[i]")


def test_cli_reads_the_program_from_a_file(tmp_path, capsys):
    from einderiv.cli import main
    path = tmp_path / "net.ein"
    path.write_text(TWO_LAYER)
    assert main(["diff", f"@{path}", "--wrt", "V"]) == 0
    out = capsys.readouterr().out
    assert "matrix form: Z = W^T X; A = tanh(Z); 2 (V A - T) A^T" in out
    assert main(["diff", f"@{tmp_path / 'missing.ein'}", "--wrt", "V"]) == 2
    assert "cannot read the expression file" in capsys.readouterr().err


def test_an_unused_definition_names_nothing_in_results():
    """Q is never used, so results are not printed in terms of Q (which would read
    1/4*Q[a]*Q[a] for what the user wrote as Z[i]*Z[i])."""
    text = "Z[i] = W[i,j]*x[j]; Q[i] = Z[i]*2; L = Z[i]*Z[i]"
    with pytest.warns(einderiv.DefinitionWarning) as caught:
        e = einderiv.parse(text)
        d = einderiv.diff(text, "W")
    assert "Q" not in str(e) and "Q" not in str(d)
    # the warning points at the caller's line, not at einderiv's own code
    assert all(w.filename == __file__ for w in caught)
    rng = np.random.default_rng(3)
    W, x = rng.normal(size=(4, 3)), rng.normal(size=3)
    assert np.allclose(d.evaluate(W=W, x=x), 2 * np.outer(W @ x, x))  # d |W x|^2 / dW


def test_cli_shows_definitions_as_where_lines(capsys):
    from einderiv.cli import main
    text = "Z[i] = W[i,j]*x[j]; Q[i] = Z[i]*2; L = Z[i]*Z[i]"
    assert main(["diff", text, "--wrt", "W"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[1] == "where Z[i] = W[i,a]*x[a]"
    assert "f = Z[a]*Z[a]" in out and "Q" not in out
    assert err.startswith("einderiv: DefinitionWarning: 'Q' is defined but never used")


def test_latex_in_the_names():
    text = "Z[i,n] = W[j,i]*X[j,n]; A[i,n] = tanh(Z[i,n]); L = sum[o,n]((V[o,i]*A[i,n] - T[o,n])**2)"
    tex = einderiv.diff(text, "V").to_latex()
    assert tex.startswith(r"Z_{in} = W_{ai} X_{an},\quad A_{in} = \tanh\left(Z_{in}\right),\quad ")
    assert r"\tanh" not in tex.split(r",\quad ")[-1]  # the result reads A, not its body
    assert r"\tanh\left(W" in einderiv.diff(text, "V", expand=True).to_latex()
