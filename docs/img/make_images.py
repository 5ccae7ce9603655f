"""Regenerate the pictures of docs/inspect.md (needs matplotlib: einderiv[plot]).

Run from anywhere: python docs/img/make_images.py

Fixed data, so the files only change when the drawing code does:
x20_weight_F.png   dZ/dW for Z = W^T A, flattened column-major (notes 003_* X.20, eq. 71)
x20_weight_slices.png  the same 3-tensor as one W-shaped panel per entry of Z
x22_activation.png the diagonal activation Jacobian d tanh(z)/dz (X.22)
"""

from pathlib import Path

import numpy as np

import einderiv

HERE = Path(__file__).resolve().parent


def main() -> list[Path]:
    A = np.array([1.0, -2.0, 1.5, -1.0])
    W = np.ones((4, 3))
    dZ_dW = einderiv.diff("W[j,i]*A[j]", "W")
    report = dZ_dW.structure("W", shapes={"W": (4, 3), "A": (4,)}, function="Z")
    z = np.linspace(-1.5, 1.5, 5)
    act = einderiv.diff("tanh(z[i])", "z").structure("z", shapes={"z": (5,)}, function="A")
    paths = [HERE / "x20_weight_F.png", HERE / "x20_weight_slices.png",
             HERE / "x22_activation.png"]
    einderiv.plot(report, order="F", path=paths[0], W=W, A=A)
    einderiv.plot(report, kind="slices", path=paths[1], W=W, A=A)
    einderiv.plot(act, path=paths[2], z=z)
    return paths


if __name__ == "__main__":
    for p in main():
        print(f"wrote {p} ({p.stat().st_size} bytes)")
