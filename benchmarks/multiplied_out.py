"""What multiplying a product out costs in rounding: the low-rank fit's gradient.

``d/dU ||M - U V^T||^2 = -2 (M - U V^T) V`` as derived; where ``r`` is well below ``m``
and ``n``, einderiv's plans (``compile`` on numpy, exported code given integer shapes,
so ``compile(backend="jax" | "torch")``) compute ``2 (U (V^T V) - M V)``: half the FLOPs,
no m x n residual (``numeric.rewrites.distributions``). The long sum over ``j`` then runs
over ``M`` and ``U V^T``, which nearly cancel near an exact fit, instead of over their
small difference, so its error relative to the gradient grows as ``|M| / |M - U V^T|``:
the trade the Gram form of the normal equations and of alternating least squares makes.

For fits whose residual is a given fraction of ``M``, this prints the relative error
(Frobenius norm) of einderiv's compiled gradient, ``compile(multiply_out=False)`` (as
derived) and ``compile()`` (multiplied out at these sizes), against the derived form
in extended precision (``np.longdouble``; for float32 inputs, float64), worst of 3
draws. With ``--dask`` it times instead einderiv's gradient on dask (4000 x 4000 x 50
in chunks of 1000 x 1000, threaded scheduler, best of 5) compiled both ways (needs the
``dask`` extra).

    python benchmarks/multiplied_out.py
    python benchmarks/multiplied_out.py --dask
"""

from __future__ import annotations

import sys
import time

import numpy as np

import einderiv

GRAD = einderiv.diff("(M[i,j] - U[i,k]*V[j,k])*(M[i,j] - U[i,l]*V[j,l])", "U")
AS_DERIVED, MULTIPLIED = GRAD.compile(multiply_out=False), GRAD.compile()


def errors(m: int, n: int, r: int, residual: float, dtype: type, rng) -> tuple[float, float]:
    U = rng.normal(size=(m, r)) / np.sqrt(r)
    V = rng.normal(size=(n, r)) / np.sqrt(r)
    M = U @ V.T + residual * rng.normal(size=(m, n))
    U, V, M = (a.astype(dtype) for a in (U, V, M))
    wide = np.longdouble if dtype == np.float64 else np.float64
    Uw, Vw, Mw = (a.astype(wide) for a in (U, V, M))
    exact = -2 * (Mw - Uw @ Vw.T) @ Vw
    derived = AS_DERIVED(M=M, U=U, V=V)
    multiplied = MULTIPLIED(M=M, U=U, V=V)
    assert derived.dtype == multiplied.dtype == dtype
    size = np.linalg.norm(exact)
    return (float(np.linalg.norm(derived - exact) / size),
            float(np.linalg.norm(multiplied - exact) / size))


def main() -> None:
    rng = np.random.default_rng(1)
    print("| dtype | m x n x r | residual / M | derived | multiplied out |")
    print("| --- | --- | ---: | ---: | ---: |")
    for dtype, residuals in ((np.float64, (1e-2, 1e-6, 1e-10)), (np.float32, (1e-1, 1e-2, 1e-3))):
        for m, n, r in ((200, 150, 5), (1000, 1000, 50)):
            for residual in residuals:
                worst = np.max([errors(m, n, r, residual, dtype, rng) for _ in range(3)], axis=0)
                print(f"| {np.dtype(dtype).name} | {m} x {n} x {r} | {residual:.0e} | "
                      f"{worst[0]:.1e} | {worst[1]:.1e} |")


def dask_times() -> None:
    import dask.array as da
    rng = np.random.default_rng(0)
    m, n, r = 4000, 4000, 50
    M, U, V = rng.normal(size=(m, n)), rng.normal(size=(m, r)), rng.normal(size=(n, r))
    lazy = {"M": da.from_array(M, chunks=(1000, 1000)), "U": da.from_array(U, chunks=(1000, r)),
            "V": da.from_array(V, chunks=(1000, r))}
    want = -2 * (M - U @ V.T) @ V

    def best(f) -> float:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            got = f(**lazy).compute(scheduler="threads")
            times.append(time.perf_counter() - t0)
        np.testing.assert_allclose(got, want, rtol=1e-8)
        return min(times)
    multiplied = best(GRAD.compile(backend="dask"))
    derived = best(GRAD.compile(backend="dask", multiply_out=False))
    print(f"dask, {m} x {n} x {r} in chunks of 1000 x 1000: as derived {derived * 1e3:.0f} ms, "
          f"multiplied out {multiplied * 1e3:.0f} ms ({derived / multiplied:.2f}x)")


if __name__ == "__main__":
    dask_times() if "--dask" in sys.argv[1:] else main()
