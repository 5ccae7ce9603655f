"""The exported code of two revisions of einderiv, timed interleaved in one process.

For every case of benchmarks/cases.py whose exported code differs between ``--before``
(a git revision, unpacked with ``git archive`` into a temporary folder) and the working
tree, the two functions are checked against each other, then timed in alternating
rounds (one thread; the best of 3 x 5 samples of ~20 ms). Ratios: before / after.

    python benchmarks/export_ab.py --before 851a20e               # torch (default)
    python benchmarks/export_ab.py --before HEAD~3 --backend numpy --quick

The code is written in a subprocess of each tree; only the library the code imports
(torch, numpy, jax) runs here.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import one_thread  # noqa: F401,E402  (one thread, before numpy loads)

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
WRITE = r'''
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import einderiv
from cases import cases
out = {}
for c in cases(sys.argv[3] == "quick"):
    e = einderiv.diff(c.expr, c.wrt)
    if c.order == 2:
        e = einderiv.diff(e, c.wrt)
    shapes = {k: np.shape(v) for k, v in c.make_data().items()}
    out[c.label] = e.to_python("f", backend=sys.argv[2], shapes=shapes)
print(json.dumps(out))
'''


def sources(root: Path, backend: str, quick: bool) -> dict[str, str]:
    """Each case's exported code, written by the einderiv under ``root``."""
    env = dict(os.environ, PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, "-c", WRITE, str(HERE), backend,  # in root:
                           "quick" if quick else "full"], env=env, cwd=root,  # its einderiv
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def unpacked(rev: str, into: Path) -> Path:
    """The einderiv package of git revision ``rev``, under ``into``."""
    archive = into / "tree.tar"
    subprocess.run(["git", "archive", "-o", str(archive), rev, "einderiv"], cwd=HERE.parent,
                   check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def convert(backend: str, data: dict) -> dict:
    if backend == "torch":
        import torch
        torch.set_num_threads(1)
        return {k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray)
                else v for k, v in data.items()}
    if backend == "jax":
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        return {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in data.items()}
    return data


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="a git revision")
    p.add_argument("--backend", default="torch", choices=["torch", "numpy", "opt_einsum", "jax"])
    p.add_argument("--quick", action="store_true", help="the small sizes of cases.py")
    args = p.parse_args()
    from cases import cases
    with tempfile.TemporaryDirectory() as tmp:
        before = sources(unpacked(args.before, Path(tmp)), args.backend, args.quick)
    after = sources(HERE.parent, args.backend, args.quick)
    print(f"exported {args.backend} code: {args.before} against the working tree "
          "(best of interleaved samples; before / after)")
    for case in cases(args.quick):
        if before.get(case.label) == after.get(case.label):
            continue
        fns = {}
        for tag, src in (("before", before[case.label]), ("after", after[case.label])):
            namespace: dict = {}
            exec(compile(src, f"<{tag}>", "exec"), namespace)  # noqa: S102 - einderiv's own
            fns[tag] = namespace["f"]
        data = convert(args.backend, case.make_data())
        data = {k: data[k] for k in inspect.signature(fns["after"]).parameters}
        np.testing.assert_allclose(np.asarray(fns["after"](**data)),
                                   np.asarray(fns["before"](**data)), rtol=1e-10, atol=1e-12)
        one = timeit.timeit(lambda: fns["after"](**data), number=1)
        n = max(1, int(0.02 / max(one, 1e-7)))
        best = {"before": float("inf"), "after": float("inf")}
        for r in range(5):
            for tag in (("before", "after") if r % 2 else ("after", "before")):
                t = min(timeit.repeat(lambda: fns[tag](**data), number=n, repeat=3)) / n
                best[tag] = min(best[tag], t)
        print(f"{case.label:30s} before {best['before'] * 1e6:11.1f} us  after "
              f"{best['after'] * 1e6:11.1f} us  {best['before'] / best['after']:5.2f}x",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
