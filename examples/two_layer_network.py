"""A two-layer network's gradient assembled from compressed pieces, notes 003_* X.19-X.23.

    Z1 = W1^T x,  A1 = tanh(Z1),  Z2 = W2^T A1,  L = 1/2 |Z2 - y|^2

Backpropagation multiplies the layer derivatives from the loss backwards (eq. 59).
Each piece comes from einderiv.diff, and structure() gives its compressed form and
the way to apply it: dZ/dW by an outer product with A (X.20), dZ/dA = W by a matrix
product (X.21), the activation Jacobian by element-wise multiplication (X.22-X.23).
No 3-tensor and no diagonal matrix is ever built. The result is checked against
central finite differences of the loss.

Run: python examples/two_layer_network.py
"""

import numpy as np

import einderiv

m, h, k = 4, 3, 5                          # input, hidden, output sizes (distinct)
rng = np.random.default_rng(7)
x, y = rng.normal(size=m), rng.normal(size=k)
W1, W2 = rng.normal(size=(m, h)), rng.normal(size=(h, k))
shapes = {"W": ("m", "n"), "A": ("m",)}

# The pieces, symbolic, once: one layer Z = W^T A, the activation, the loss.
layer = "W[j,i]*A[j]"
weight = einderiv.diff(layer, "W").structure("W", shapes=shapes, function="Z")    # X.20
link = einderiv.diff(layer, "A").structure("A", shapes=shapes, function="Z")      # X.21
act = einderiv.diff("tanh(z[i])", "z").structure("z", function="A")               # X.22
loss_grad = einderiv.diff("(z[i] - y[i])*(z[i] - y[i])/2", "z")                    # X.19

for name, piece in [("dZ/dW", weight), ("dZ/dA", link), ("dA/dz", act)]:
    print(f"{name} = {piece.expr}  compressed: {piece.compressed}  "
          f"chain rule: {piece.chain}")
assert str(weight.compressed) == "A[b]" and not link.deltas and act.deltas

# Forward pass.
Z1 = W1.T @ x
A1 = np.tanh(Z1)
Z2 = W2.T @ A1

# Backward pass: each step evaluates a piece's chain-rule expression, G = dL/d(output).
G_Z2 = loss_grad.evaluate(z=Z2, y=y)                 # dL/dZ2 = Z2 - y
G_W2 = weight.chain.evaluate(A=A1, G=G_Z2)           # outer product A1 G^T (X.20)
G_A1 = link.chain.evaluate(W=W2, G=G_Z2)             # W2 G: a matrix product (X.21)
G_Z1 = act.chain.evaluate(z=Z1, G=G_A1)              # (1 - tanh^2) * G element-wise (X.23)
G_W1 = weight.chain.evaluate(A=x, G=G_Z1)            # outer product x G^T (X.20)


def loss(W1, W2):
    return 0.5 * np.sum((W2.T @ np.tanh(W1.T @ x) - y) ** 2)


def finite_differences(f, W, eps=1e-6):
    grad = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        step = np.zeros_like(W)
        step[idx] = eps
        grad[idx] = (f(W + step) - f(W - step)) / (2 * eps)
    return grad


num_W1 = finite_differences(lambda W: loss(W, W2), W1)
num_W2 = finite_differences(lambda W: loss(W1, W), W2)
err = max(np.max(np.abs(G_W1 - num_W1)), np.max(np.abs(G_W2 - num_W2)))
print(f"dL/dW1 {G_W1.shape}, dL/dW2 {G_W2.shape}: max error vs finite differences {err:.1e}")
assert G_W1.shape == W1.shape and G_W2.shape == W2.shape
assert np.allclose(G_W1, num_W1, atol=1e-6) and np.allclose(G_W2, num_W2, atol=1e-6)

# The same gradient by differentiating the whole loss symbolically.
L = "(W2[b,i]*tanh(W1[a,b]*x[a]) - y[i])*(W2[c,i]*tanh(W1[d,c]*x[d]) - y[i])/2"
full = einderiv.diff(L, "W1").evaluate(W1=W1, W2=W2, x=x, y=y)
assert np.allclose(full, G_W1)
