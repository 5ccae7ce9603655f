"""``einderiv serve``'s JSON API, against a real server on a loopback port (docs/web.md).

Values are checked against closed forms with random data and distinct sizes (4, 3,
5): the index text the server returns is parsed back and evaluated, the exported
numpy code is run here (never on the server), and the heat map's numbers are
compared with the flattened closed form. Then the limits: bad input is a 400 with
``{"error", "kind", "position"}``, a request over its time budget is a 400 while
another request is answered meanwhile, and 1,000 fuzzed requests get 200 or 400.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from web_server import diff, request, running

import einderiv
from einderiv import cli
from einderiv.web import compute

ROOT = Path(__file__).resolve().parents[1]
LINREG = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"
#: Four nested tanh, 4th derivative: seconds of work (the time-budget test).
SLOW = {"expr": "tanh(tanh(tanh(tanh(tanh(W[i,j]*x[j])))))", "wrt": "x", "order": 4}


@pytest.fixture(scope="module")
def server():
    with running(workers=2, time_limit=20.0) as base:
        yield base


def _fields() -> set[str]:
    return {"input_latex", "index", "index_latex", "matrix", "matrix_latex", "free", "shape",
            "steps", "structure", "code"}


def test_linear_regression_by_value(server):
    status, d = diff(server, {"expr": LINREG, "wrt": "theta", "shapes": {"X": ["n", "d"]},
                              "order": 1})
    assert status == 200, d
    assert _fields() <= set(d)
    assert d["matrix"] == "2/n X^T (X theta - Y)"
    assert d["free"] == ["d"] and d["shape"] == ["d"] and d["notation"] == "index"
    assert "\\top" in d["matrix_latex"] and "\\theta" in d["index_latex"]
    assert d["structure"] is None and "1 axis" in d["reasons"]["structure"]
    rng = np.random.default_rng(1)
    X, theta, Y = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=4)
    expected = 2 / 4 * X.T @ (X @ theta - Y)
    got = einderiv.parse(d["index"]).evaluate(X=X, theta=theta, Y=Y, n=4)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    namespace: dict = {}
    exec(d["code"]["numpy"], namespace)  # the exported code, run here by the test
    np.testing.assert_allclose(namespace["grad"](X=X, Y=Y, n=4, theta=theta), expected, rtol=1e-12)
    assert set(d["code"]) == {"numpy", "jax", "torch"}
    assert "import torch" in d["code"]["torch"] and "import jax" in d["code"]["jax"]
    rules = [s["rule"] for s in d["steps"]]
    assert rules[0] == "index form" and rules[-1] == "matrix form"
    assert d["steps"][-1]["text"] == d["matrix"]


def test_matrix_notation_detected(server):
    status, d = diff(server, {"expr": "(X*theta - Y)'*(X*theta - Y)/n", "wrt": "theta",
                              "shapes": {"X": [4, 3], "theta": [3], "Y": [4], "n": []}})
    assert status == 200, d
    assert d["notation"] == "matrix" and d["matrix"] == "2/n X^T (X theta - Y)"


def test_detection_agrees_with_the_cli():
    """The page reads a text in the notation the command line does."""
    shapes = {"X": (4, 3), "theta": (3,), "Y": (4,), "n": (), "A": (3, 3), "x": (3,)}
    for text in ["(X*theta - Y)'*(X*theta - Y)/n", "x'*A*x", "tr(A)", "X[a,b]*theta[b]",
                 "A^-1", "x[i]*A[i,j]*x[j]", "x@x", "x[i]'"]:
        try:
            want = str(cli._parse_either(text, shapes, False))
        except einderiv.EinderivError as exc:
            with pytest.raises(einderiv.EinderivError) as got:
                compute.parse_either(text, shapes)
            assert str(got.value) == str(exc)
            continue
        assert str(compute.parse_either(text, shapes)[0]) == want


def test_third_order_structure_and_heat_map(server):
    """dZ/dW for Z = W^T A (notes 003_* X.20): T[b,c,i] = A[b] delta[c,i], a 3-tensor."""
    rng = np.random.default_rng(2)
    W, A = rng.normal(size=(4, 3)), rng.normal(size=4)
    status, d = diff(server, {"expr": "W[j,i]*A[j]", "wrt": "W", "heatmap": True,
                              "shapes": {"W": [4, 3]},
                              "values": {"W": W.tolist(), "A": A.tolist()}})
    assert status == 200, d
    assert d["matrix"] is None and "3 free axes" in d["reasons"]["matrix"]
    assert d["structure"]["compressed"] == "A[b]" and d["structure"]["nonzeros"] == 12
    assert "delta" in d["structure"]["text"]
    T = np.einsum("b,ci->bci", A, np.eye(3))       # independent closed form
    expected = T.reshape(12, 3, order="F")
    h = d["heatmap"]
    assert (h["rows"], h["cols"], h["data"]) == (12, 3, "given")
    np.testing.assert_allclose(np.array(h["values"]), expected, rtol=1e-12)


def test_hessian_heat_map_is_the_square_matrix(server):
    rng = np.random.default_rng(3)
    A = rng.normal(size=(5, 5))
    x = rng.normal(size=5)
    status, d = diff(server, {"expr": "x[i]*A[i,j]*x[j]", "wrt": "x", "order": 2, "heatmap": True,
                              "values": {"A": A.tolist(), "x": x.tolist()}})
    assert status == 200, d
    assert d["matrix"] == "A + A^T"
    np.testing.assert_allclose(np.array(d["heatmap"]["values"]), A + A.T, rtol=1e-12)


def test_random_heat_map_data_fits_the_shapes(server):
    status, d = diff(server, {"expr": "tanh(W[i,j]*x[j])", "wrt": "x", "heatmap": True,
                              "shapes": {"W": [4, 3]}})
    assert status == 200, d
    h = d["heatmap"]
    assert h["sizes"] == {"W": [4, 3], "x": [3]} and (h["rows"], h["cols"]) == (3, 4)
    assert "seed 0" in h["data"]


@pytest.mark.parametrize("payload, kind, position", [
    ({"expr": "x[i] + * y[i]", "wrt": "x"}, "ParseError", 7),
    ({"expr": "x[i]*y[j", "wrt": "x"}, "ParseError", 8),
    ({"expr": "x[i]*A[i,j]", "wrt": "x", "shapes": {"x": [3], "A": [4, 3]}}, "ShapeError", None),
    ({"expr": "x[i]", "wrt": 3}, "RequestError", None),
    ({"expr": "x[i]", "wrt": "x", "order": 9}, "RequestError", None),
    ({"expr": "x[i]", "wrt": "x", "shapes": {"x": [1.5]}}, "RequestError", None),
    ({"expr": "x[i]", "wrt": "x", "layout": "sideways"}, "LayoutError", None),
    ({"expr": "x[i]*" * 500 + "1", "wrt": "x"}, "LimitError", None),
    ([1, 2], "RequestError", None),
    (b"{not json", "RequestError", None),
    (b"\xff\xfe", "RequestError", None),
])
def test_bad_input_is_400_with_the_reason(server, payload, kind, position):
    status, d = diff(server, payload)
    assert status == 400, d
    assert set(d) == {"error", "kind", "position"}
    assert d["kind"] == kind and d["position"] == position, d
    if kind == "ParseError":
        assert d["error"].splitlines()[-1].strip() == "^"  # the caret under the offending character


def test_oversized_body_and_unknown_paths(server):
    status, d, _ = request(server, "POST", "/api/diff", b"x" * 70_000,
                           {"Content-Type": "application/json"})
    assert status == 400 and d["kind"] == "LimitError"
    assert request(server, "POST", "/api/nothing", b"{}")[0] == 404
    status, d, _ = request(server, "POST", "/api/diff", b'{"expr": "x[i]*x[i]", "wrt": "x"}',
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and "Content-Type: application/json" in d["error"]
    assert request(server, "GET", "/static/../server.py")[0] == 404
    assert request(server, "GET", "/static/%2e%2e/server.py")[0] == 404
    assert request(server, "GET", "/", headers={"Host": "evil.example:80"})[0] == 403


def test_page_and_katex_are_served(server):
    status, page, headers = request(server, "GET", "/")
    assert status == 200 and b"/static/app.js" in page
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    for path, kind in [("/static/katex/katex.min.js", "text/javascript"),
                       ("/static/katex/katex.min.css", "text/css"),
                       ("/static/katex/fonts/KaTeX_Main-Regular.woff2", "font/woff2")]:
        status, body, headers = request(server, "GET", path)
        assert status == 200 and headers["Content-Type"].startswith(kind) and len(body) > 1000


def test_every_example_answers(server):
    status, examples, _ = request(server, "GET", "/api/examples")
    assert status == 200 and len(examples) >= 5
    titles = " ".join(e["title"] for e in examples)
    for word in ("linear regression", "dZ/dW", "activation", "Hessian", "logdet"):
        assert word in titles
    for ex in examples:
        status, d = diff(server, dict(ex, heatmap=True))
        assert status == 200, (ex, d)
        assert d["heatmap"] is not None, (ex, d["reasons"])


def test_a_request_over_its_time_budget_is_answered_while_others_go_on():
    with running(workers=2, time_limit=2.0) as base:
        slow: dict = {}
        t0 = time.monotonic()

        def send_slow() -> None:
            slow["status"], slow["body"] = diff(base, SLOW)
            slow["done"] = time.monotonic() - t0

        thread = threading.Thread(target=send_slow)
        thread.start()
        time.sleep(0.1)
        status, d = diff(base, {"expr": LINREG, "wrt": "theta"})  # the other worker answers
        fast_done = time.monotonic() - t0
        thread.join(30)
        assert status == 200 and d["matrix"] == "2/n X^T (X theta - Y)"
        assert slow["status"] == 400 and slow["body"]["kind"] == "LimitError", slow
        assert "time budget of 2 s" in slow["body"]["error"]
        assert fast_done < slow["done"] and slow["done"] >= 2.0  # answered meanwhile
        status, health, _ = request(base, "GET", "/api/health")
        assert health["restarts"] == 1
        for _ in range(3):  # the replaced worker answers too
            assert diff(base, {"expr": "x[i]*x[i]", "wrt": "x"})[0] == 200


def _fuzz():
    path = ROOT / "benchmarks" / "fuzz.py"
    spec = importlib.util.spec_from_file_location("_einderiv_bench_fuzz_web", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _burst_payloads(n: int) -> list[bytes]:
    """Fuzzer inputs (token soup, mutations, matrix notation, odd shapes and
    variables) as requests, with malformed bodies mixed in: random bytes, truncated
    JSON, wrong field types."""
    fuzz = _fuzz()
    rng = random.Random(19)
    out = []
    for k in range(n):
        r = rng.random()
        if r < 0.1:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))))
            continue
        inp = fuzz.make_input(20260101, k)
        body = {"expr": inp.text, "wrt": inp.wrt, "shapes": inp.shapes,
                "order": rng.choice([1, 1, 1, 2, 3]), "heatmap": rng.random() < 0.3,
                "layout": rng.choice(["denominator", "numerator"])}
        if r < 0.2:  # a field of the wrong type
            body[rng.choice(list(body))] = rng.choice([None, 0, "2", [1], {"a": 1}, 1e300])
        text = json.dumps(body, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
        if r < 0.25:
            text = text[:rng.randrange(len(text))]
        out.append(text.encode())
    return out


def test_a_burst_of_malformed_requests():
    """1,000 requests from 8 clients at once: every answer 200 or 400, none 500, and
    the server still answers afterwards."""
    payloads = _burst_payloads(1000)
    with running(workers=2, time_limit=5.0) as base:
        with ThreadPoolExecutor(8) as ex:
            statuses = list(ex.map(lambda p: diff(base, p, timeout=120), payloads))
        counts: dict[int, int] = {}
        for status, _ in statuses:
            counts[status] = counts.get(status, 0) + 1
        bad = [(p[:200], d) for p, (s, d) in zip(payloads, statuses) if s not in (200, 400)]
        assert not bad, (counts, bad[:5])
        assert counts.get(200, 0) > 20 and counts.get(400, 0) > 500, counts
        kinds = {d["kind"] for s, d in statuses if s == 400}
        assert {"ParseError", "RequestError", "IndexMismatchError"} <= kinds, kinds
        assert all(set(d) == {"error", "kind", "position"} for s, d in statuses if s == 400)
        status, d = diff(base, {"expr": LINREG, "wrt": "theta"})
        assert status == 200 and d["matrix"] == "2/n X^T (X theta - Y)"


def test_cli_serve_prints_the_url_and_serves():
    proc = subprocess.Popen([sys.executable, "-m", "einderiv", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line + proc.stderr.read()
        base = f"http://127.0.0.1:{match.group(1)}"
        status, d = diff(base, {"expr": "x[i]*A[i,j]*x[j]", "wrt": "x"})
        assert status == 200 and d["matrix"] == "(A + A^T) x"
    finally:
        proc.terminate()
        proc.wait(20)


def test_cli_serve_on_a_busy_port_is_an_error(capsys):
    with running() as base:
        port = base.rsplit(":", 1)[1]
        assert cli.main(["serve", "--port", port]) == 2
    assert "cannot serve on 127.0.0.1:" in capsys.readouterr().err


def test_static_files_are_package_data():
    """pyproject ships the page and KaTeX in a wheel (a source checkout has them anyway)."""
    text = (ROOT / "pyproject.toml").read_text()
    assert '"einderiv.web" = ["static/*.*", "static/katex/*", "static/katex/fonts/*"]' in text
    static = ROOT / "einderiv" / "web" / "static"
    size = sum(f.stat().st_size for f in static.rglob("*") if f.is_file())
    assert (static / "katex" / "LICENSE").is_file() and size < 1_000_000
