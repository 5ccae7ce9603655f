"""einderiv's derivatives on data larger than the workers' memory (issue 20).

Makes an on-disk float64 design matrix ``X`` (n x d, default ~1.2 GB, a ``numpy``
``.npy`` file read through ``numpy.memmap``) in a temporary folder, starts a
``dask.distributed`` LocalCluster (default 2 worker processes x 256 MB, one thread
each: the data is over twice the memory given to all workers), and computes with
``compile(backend="dask")``:

* the least-squares gradient ``2/n X^T (X theta - Y)``;
* the logistic-loss gradient ``-X^T (y sigmoid(-y X theta))``;
* the logistic-loss Hessian ``X^T diag(s (1 - s)) X``.

Each chunk of rows is read from the file by the worker that needs it (the graph holds
the path and the row range, never the data). While a result is computed, the resident
memory of every worker process is sampled (psutil, every 20 ms): the table reports the
peak. The reference is numpy on the same file, one chunk in memory at a time (the
hand-written formula, summed over chunks); the baseline time is numpy's time on one
in-memory chunk times the number of chunks (no I/O). The folder is deleted at the end.

Run ``python benchmarks/outofcore.py`` (``--gb 1.2 --workers 2 --memory 256MB
--chunk-mb 12.5 --d 100``; ``--scheduler tcp://host:8786`` uses a running cluster instead
of a local one: its workers must see the same temporary folder, see ``--dir``). Needs the
``dask`` extra (``pip install "einderiv[dask]"``). Prints a Markdown table (docs/scale.md).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread per worker process (and in the reference)

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import einderiv  # noqa: E402

LSQ = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"
LOGISTIC = "sum[a](log(1 + exp(-(y[a]*X[a,b]*theta[b] -> [a]))))"


def rows(path: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of the ``.npy`` file at ``path``, read on the worker."""
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def make_data(folder: Path, n: int, d: int, chunk: int, seed: int = 0) -> dict:
    """X (n x d) written chunk by chunk to ``folder/X.npy``; y, Y and theta in memory."""
    rng = np.random.default_rng(seed)
    X = np.lib.format.open_memmap(folder / "X.npy", mode="w+", dtype=np.float64, shape=(n, d))
    theta_true = rng.normal(size=d) / np.sqrt(d)
    Y = np.empty(n)
    y = np.empty(n)
    for start in range(0, n, chunk):
        block = rng.normal(size=(min(chunk, n - start), d))
        X[start:start + len(block)] = block
        z = block @ theta_true
        Y[start:start + len(block)] = z + rng.normal(size=len(block))
        y[start:start + len(block)] = np.where(rng.random(len(block)) < 1 / (1 + np.exp(-z)),
                                               1.0, -1.0)
    X.flush()
    del X
    return {"path": str(folder / "X.npy"), "Y": Y, "y": y, "theta": rng.normal(size=d) / np.sqrt(d)}


def dask_inputs(data: dict, n: int, d: int, chunk: int) -> dict:
    import dask
    import dask.array as da
    load = dask.delayed(rows, pure=True)
    blocks = [da.from_delayed(load(data["path"], s, min(s + chunk, n)),
                              shape=(min(s + chunk, n) - s, d), dtype=np.float64)
              for s in range(0, n, chunk)]
    return {"X": da.concatenate(blocks, axis=0),
            "Y": da.from_array(data["Y"], chunks=chunk), "y": da.from_array(data["y"], chunks=chunk),
            "theta": da.from_array(data["theta"], chunks=-1), "n": float(n)}


# The hand-written numpy formulas, on one chunk of rows (summed over the chunks).
def _sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))


def ref_lsq(X, d):
    return (2.0 / d["n"]) * (X.T @ (X @ d["theta"] - d["Y"]))


def ref_logistic_grad(X, d):
    y = d["y"]
    return X.T @ (-y * _sigmoid(-y * (X @ d["theta"])))


def ref_logistic_hess(X, d):
    s = _sigmoid(d["y"] * (X @ d["theta"]))
    Z = X * np.sqrt(s * (1.0 - s))[:, None]
    return Z.T @ Z


class Sampler:
    """Peak resident memory of each process in ``pids`` while running (psutil)."""

    def __init__(self, pids: list[int], every_s: float = 0.02):
        import psutil
        self.procs = [psutil.Process(p) for p in pids]
        self.peak = [p.memory_info().rss for p in self.procs]
        self.every_s, self._stop = every_s, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for k, p in enumerate(self.procs):
                try:
                    self.peak[k] = max(self.peak[k], p.memory_info().rss)
                except Exception:  # a worker restarted: keep what was seen
                    pass
            self._stop.wait(self.every_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=1.2, help="size of X on disk (GB)")
    p.add_argument("--d", type=int, default=100, help="columns of X")
    p.add_argument("--chunk-mb", type=float, default=12.5, help="rows per chunk, in MB of X")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory", default="256MB", help="memory limit per worker")
    p.add_argument("--scheduler", default="", help="address of a running cluster")
    p.add_argument("--dir", default=None, help="where the data goes (default: a temp dir)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per derivative (min)")
    args = p.parse_args(argv)

    from dask.distributed import Client, LocalCluster
    from dask.utils import parse_bytes

    d = args.d
    n = int(args.gb * 1e9 / (8 * d))
    chunk = int(args.chunk_mb * 1e6 / (8 * d))
    folder = Path(tempfile.mkdtemp(prefix="einderiv-outofcore-", dir=args.dir))
    cluster = None
    try:
        t0 = time.perf_counter()
        data = make_data(folder, n, d, chunk)
        made = time.perf_counter() - t0
        if args.scheduler:
            client = Client(args.scheduler)
        else:
            cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                   memory_limit=args.memory, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        pids = list(client.run(os.getpid).values())
        limit = parse_bytes(args.memory)
        size = n * d * 8
        print(f"X: {n} x {d} float64 = {size / 1e9:.2f} GB on disk in {folder} "
              f"(written in {made:.1f} s); {-(-n // chunk)} chunks of {chunk} rows "
              f"({chunk * d * 8 / 1e6:.0f} MB); {len(pids)} workers x {args.memory} "
              f"= {len(pids) * limit / 1e9:.2f} GB; data / worker memory = "
              f"{size / (len(pids) * limit):.1f}x", flush=True)
        inputs = dask_inputs(data, n, d, chunk)
        mem = {k: v for k, v in data.items() if k != "path"}
        mem["n"] = float(n)
        rows_out = []
        for label, text, order, ref in (
                ("least-squares gradient", LSQ, 1, ref_lsq),
                ("logistic gradient", LOGISTIC, 1, ref_logistic_grad),
                ("logistic Hessian X^T diag(s(1-s)) X", LOGISTIC, 2, ref_logistic_hess)):
            e = einderiv.diff(text, "theta")
            if order == 2:
                e = einderiv.diff(e, "theta")
            f = e.compile(backend="dask")
            lazy = f(**inputs)  # names the derivative does not use are ignored
            times = []
            with Sampler(pids) as sampler:
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    got = np.asarray(client.compute(lazy).result())
                    times.append(time.perf_counter() - t)
            # numpy reference: the same file, one chunk in memory at a time
            X = np.load(data["path"], mmap_mode="r")
            want, one = None, None
            for s in range(0, n, chunk):
                block = np.array(X[s:s + chunk])
                part = {**mem, "Y": mem["Y"][s:s + chunk], "y": mem["y"][s:s + chunk]}
                if one is None:  # numpy on one in-memory chunk, best of 5
                    one = min(_timed(ref, block, part) for _ in range(5))
                r = ref(block, part)
                want = r if want is None else want + r
            del X
            err = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
            chunks = -(-n // chunk)
            best = min(times)
            rows_out.append((label, best, one * chunks, size / best / 1e9,
                             max(sampler.peak) / 1e6, limit / 1e6, err))
            print(f"{label}: {best:.2f} s ({size / best / 1e9:.2f} GB/s); numpy one chunk x "
                  f"{chunks} = {one * chunks:.2f} s; peak worker RSS {max(sampler.peak) / 1e6:.0f} MB "
                  f"of {limit / 1e6:.0f} MB; max relative difference to numpy {err:.1e}", flush=True)
        print()
        print("| derivative | einderiv on dask | GB/s | numpy, one in-memory chunk x chunks | "
              "ratio | peak worker memory (RSS) | limit | max rel. difference to numpy |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, best, base, gbs, peak, lim, err in rows_out:
            print(f"| {label} | {best:.2f} s | {gbs:.2f} | {base:.2f} s | {best / base:.2f} | "
                  f"{peak:.0f} MB | {lim:.0f} MB | {err:.1e} |")
        client.close()
    finally:
        if cluster is not None:
            cluster.close()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def _timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


if __name__ == "__main__":
    raise SystemExit(main())
