"""Worker processes with a time budget per request.

A derivation cannot be interrupted from another thread (Python threads cannot be
killed, and einderiv's passes do not poll a clock), and ``guard_recursion`` changes
the interpreter-wide recursion limit. So each request runs in a worker process: the
server's thread sends the request down a pipe and waits at most ``time_limit``
seconds; a worker still busy then is ended and replaced, and the request gets a
:class:`~einderiv.errors.LimitError`, while the other workers go on with theirs.

Workers start from a ``forkserver`` that has imported einderiv once (a fresh one
takes milliseconds, not the second a cold import takes); where ``forkserver`` is
missing (Windows, macOS before 3.14 defaults), ``spawn``.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any

from ..errors import EinderivError, LimitError
from .compute import RequestError, answer, error_answer

__all__ = ["WorkerPool", "Busy"]


class Busy(Exception):
    """Every worker stayed busy for the whole wait: the server answers 503."""


def _work(conn: Connection) -> None:
    """A worker's loop: one request in, ``("ok", answer)``, ``("error", body)`` or
    ``("bug", traceback)`` out."""
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, Any] = ("ok", answer(request))
        except (EinderivError, RequestError) as exc:
            reply = ("error", error_answer(exc))
        except Exception:  # a bug: the server answers 500 and logs this
            reply = ("bug", traceback.format_exc())
        conn.send(reply)


def _context() -> Any:
    try:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["einderiv.web.compute"])
        return ctx
    except ValueError:
        return multiprocessing.get_context("spawn")


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_work, args=(child,), daemon=True)
        self.process.start()
        child.close()

    def stop(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()


class WorkerPool:
    """``size`` worker processes; :meth:`run` sends one request to a free one."""

    def __init__(self, size: int = 2, time_limit: float = 10.0, wait_limit: float = 60.0):
        self.time_limit = time_limit
        self.wait_limit = wait_limit
        self._ctx = _context()
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self.restarts = 0
        for _ in range(size):
            self._add()

    def _add(self) -> None:
        w = _Worker(self._ctx)
        with self._lock:
            self._all.add(w)
        self._idle.put(w)

    def _replace(self, w: _Worker) -> None:
        w.stop()
        with self._lock:
            self._all.discard(w)
            self.restarts += 1
        self._add()

    def run(self, request: Any) -> tuple[str, Any]:
        """``("ok", answer)``, ``("error", body)`` or ``("bug", text)``; a request over
        the time budget gives ``("error", ...)`` with a LimitError. Raises :class:`Busy`."""
        try:
            w = self._idle.get(timeout=self.wait_limit)
        except queue.Empty:
            raise Busy(f"every worker stayed busy for {self.wait_limit:g} s") from None
        try:
            w.conn.send(request)
            if w.conn.poll(self.time_limit):
                reply = w.conn.recv()
                self._idle.put(w)
                return reply
        except (EOFError, OSError, BrokenPipeError):  # the worker died (out of memory, ...)
            self._replace(w)
            return ("bug", "the worker process ended while working on the request")
        self._replace(w)
        exc = LimitError(f"the derivation took longer than the server's time budget of "
                         f"{self.time_limit:g} s per request; simplify the expression or "
                         f"use the Python API")
        return ("error", error_answer(exc))

    def close(self) -> None:
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for w in workers:
            w.stop()
