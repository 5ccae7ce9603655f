"""The weight derivative dZ/dW of one layer and its compression, notes 003_* X.20.

Z = W^T A (Z_i = sum_j W[j,i] A[j]). dZ/dW is a 3-tensor (W's two axes, then Z's
axis: Concept 20) that is zero off the diagonal "W's column == Z's entry"
(Concept 26) and repeats A on it, so it compresses to the vector A (Concept 27,
Notation 28). structure() reads this off the index expression A[b]*delta[c,i].

Run: python examples/weight_derivative.py
"""

import numpy as np

import einderiv

m, n = 4, 3                               # inputs, neurons: distinct sizes
rng = np.random.default_rng(20)
W, A = rng.normal(size=(m, n)), rng.normal(size=m)

dZ_dW = einderiv.diff("W[j,i]*A[j]", "W")
report = dZ_dW.structure("W", shapes={"W": (m, n), "A": (m,)}, function="Z")
print(report)

# The report's claims, checked against the dense tensor.
T = dZ_dW.evaluate(W=W, A=A)
assert T.shape == (m, n, n) == report.shape
assert report.deltas == (("c", "i"),)             # nonzero only where c == i
assert str(report.compressed) == "A[b]"           # Notation 28: dZ/dW "=" A
assert report.nonzeros == m * n and report.dense_size == m * n * n
assert np.count_nonzero(T) == report.nonzeros
C = report.compressed.evaluate(A=A)
assert np.allclose(report.expand(C), T)           # compressed form rebuilds T
for i in range(n):                                # eq. 70: A in column i, zero elsewhere
    assert np.allclose(T[:, i, i], A) and np.allclose(np.delete(T[:, :, i], i, axis=1), 0)

# Flattened column-major it is eq. 71: A blocks on the diagonal.
J = einderiv.flatten(T, 2, "F")
assert np.allclose(J, np.kron(np.eye(n), A[:, None]))

# In the chain rule (eq. 59) the compressed form needs no matrix product:
# dL/dW = A (dL/dZ)^T, an outer product.
G = rng.normal(size=n)                            # some upstream dL/dZ
print("chain rule:", report.chain)
assert np.allclose(report.chain.evaluate(A=A, G=G), np.outer(A, G))
assert np.allclose(report.chain.evaluate(A=A, G=G), np.einsum("bci,i->bc", T, G))
