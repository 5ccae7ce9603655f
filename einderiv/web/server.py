"""The HTTP side of ``einderiv serve``: the standard library's ThreadingHTTPServer.

One thread per connection reads and checks the request and waits on a worker
process (:mod:`einderiv.web.pool`) for the answer; the page and KaTeX are static
files shipped in the package. Routes (docs/web.md): ``GET /`` the page, ``GET
/static/...``, ``GET /api/examples``, ``GET /api/health``, ``POST /api/diff``.
Answers: 200, 400 (bad input: ``{"error", "kind", "position"}``), 404, 503 (every
worker busy), 500 only for a bug.
"""

from __future__ import annotations

import json
import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..errors import LimitError
from .compute import RequestError, error_answer
from .pool import Busy, WorkerPool

__all__ = ["make_server", "serve", "EXAMPLES", "MAX_BODY"]

STATIC = Path(__file__).resolve().parent / "static"
#: The largest request body read (bytes).
MAX_BODY = 64 * 1024

#: The page's examples, one click away (the notes' losses and Jacobians).
EXAMPLES: list[dict[str, Any]] = [
    {"title": "linear regression (A.5)", "expr": "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n",
     "wrt": "theta", "shapes": {"X": ["n", "d"]}, "order": 1},
    {"title": "dZ/dW, Z = W^T A", "expr": "W[j,i]*A[j]", "wrt": "W", "shapes": {"W": [4, 3]},
     "order": 1},
    {"title": "activation Jacobian", "expr": "tanh(W[i,j]*x[j])", "wrt": "x",
     "shapes": {"W": [4, 3]}, "order": 1},
    {"title": "Hessian of x^T A x", "expr": "x[i]*A[i,j]*x[j]", "wrt": "x", "shapes": {"x": [3]},
     "order": 2},
    {"title": "logdet", "expr": "logdet(X)", "wrt": "X", "shapes": {"X": [3, 3]}, "order": 1},
    {"title": "matrix notation", "expr": "(X*theta - Y)'*(X*theta - Y)/n", "wrt": "theta",
     "shapes": {"X": [4, 3], "theta": [3], "Y": [4], "n": []}, "order": 1},
]

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".woff2": "font/woff2", ".png": "image/png",
          ".svg": "image/svg+xml"}
# KaTeX writes style attributes; no inline or foreign script can run.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "font-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a connection may stay silent (a slow sender does not hold a thread)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        body = json.dumps(obj, allow_nan=False).encode()
        self._send(status, body, "application/json", {"Cache-Control": "no-store"})

    def _host_ok(self) -> bool:
        """A server on loopback answers only to a loopback Host (no DNS rebinding)."""
        allowed = self.server.allowed_hosts
        return not allowed or self.headers.get("Host", "").rsplit(":", 1)[0] in allowed

    def do_GET(self) -> None:  # noqa: N802 (the base class's naming)
        if not self._host_ok():
            return self._json(403, {"error": "unexpected Host header", "kind": "RequestError",
                                    "position": None})
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path == "/api/examples":
            return self._json(200, EXAMPLES)
        if path == "/api/health":
            return self._json(200, {"ok": True, "restarts": self.server.pool.restarts})
        if path in ("/", "/index.html"):
            path = "/static/index.html"
        file = (STATIC / path.removeprefix("/static/")).resolve() \
            if path.startswith("/static/") else None
        if file is None or STATIC not in file.parents or not file.is_file():
            return self._json(404, {"error": f"no such page: {path[:80]}", "kind": "NotFound",
                                    "position": None})
        self._send(200, file.read_bytes(), _TYPES.get(file.suffix, "application/octet-stream"),
                   {"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"})

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            self.close_connection = True
            return self._json(403, {"error": "unexpected Host header", "kind": "RequestError",
                                    "position": None})
        if self.path.split("?", 1)[0] != "/api/diff":
            self.close_connection = True
            return self._json(404, {"error": f"no such endpoint: {self.path[:80]}",
                                    "kind": "NotFound", "position": None})
        try:
            request = self._read_json()
        except (RequestError, LimitError) as exc:
            self.close_connection = True  # the body may be unread
            return self._json(400, error_answer(exc))
        try:
            kind, reply = self.server.pool.run(request)
        except Busy as exc:
            return self._json(503, {"error": f"the server is busy ({exc}); try again",
                                    "kind": "Busy", "position": None})
        if kind == "ok":
            return self._json(200, reply)
        if kind == "error":
            return self._json(400, reply)
        print(f"einderiv serve: internal error on {str(request)[:200]}:\n{reply}", file=sys.stderr)
        self._json(500, {"error": "internal error (a bug in einderiv; the server log has the "
                                  "trace)", "kind": "InternalError", "position": None})

    def _read_json(self) -> Any:
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            # another site's page can send a form to 127.0.0.1 without asking; JSON needs
            # a CORS preflight, which this server never grants
            raise RequestError("POST /api/diff takes a JSON body with Content-Type: "
                               "application/json")
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.strip().isdigit():
            raise RequestError("a POST needs a Content-Length header")
        length = int(length_text)
        if length > MAX_BODY:
            raise LimitError(f"the request body has {length} bytes; the server reads at most "
                             f"{MAX_BODY}")
        raw = self.rfile.read(length)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise RequestError(f"the body is not JSON: {str(exc)[:100]}") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    pool: WorkerPool
    verbose: bool
    allowed_hosts: set[str]


def make_server(host: str = "127.0.0.1", port: int = 8000, *, workers: int = 2,
                time_limit: float = 10.0, verbose: bool = False) -> _Server:
    """A server bound to ``host:port`` (port 0: a free one; ``server.server_address``
    says which), not yet serving: call ``serve_forever()`` (and ``shutdown()``,
    ``server_close()`` and ``pool.close()`` to stop). ``workers`` processes derive;
    each request may take ``time_limit`` seconds."""
    httpd = _Server((host, port), _Handler)
    httpd.pool = WorkerPool(workers, time_limit)
    httpd.verbose = verbose
    loopback = host in ("127.0.0.1", "localhost", "::1")
    httpd.allowed_hosts = {"127.0.0.1", "localhost", "[::1]"} if loopback else set()
    return httpd


def serve(host: str = "127.0.0.1", port: int = 8000, *, open_browser: bool = False,
          workers: int = 2, time_limit: float = 10.0, verbose: bool = False) -> None:
    """Serve the page until interrupted (``einderiv serve``); prints the URL."""
    httpd = make_server(host, port, workers=workers, time_limit=time_limit, verbose=verbose)
    url = f"http://{host}:{httpd.server_address[1]}/"
    print(f"einderiv serve: {url} (Ctrl-C stops)", flush=True)
    if open_browser:
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        httpd.pool.close()
