"""A real ``einderiv serve`` server on a free loopback port, for the web tests."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from einderiv.web import make_server


@contextmanager
def running(**options: Any) -> Iterator[str]:
    """The server's base URL (``http://127.0.0.1:PORT``) while it serves."""
    httpd = make_server("127.0.0.1", 0, **options)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        httpd.pool.close()
        thread.join(10)


def request(base: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, Any, dict]:
    """(status, JSON body or raw bytes, headers) of one request on a fresh connection."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        raw = reply.read()
        kind = reply.getheader("Content-Type", "")
        data = json.loads(raw) if kind.startswith("application/json") else raw
        return reply.status, data, dict(reply.getheaders())
    finally:
        conn.close()


def diff(base: str, payload: Any, timeout: float = 60) -> tuple[int, Any]:
    """``POST /api/diff`` with ``payload`` as JSON (bytes are sent as they are)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload, default=str).encode()
    status, data, _ = request(base, "POST", "/api/diff", body,
                              {"Content-Type": "application/json"}, timeout)
    return status, data
