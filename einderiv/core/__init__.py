"""The core: the index-labelled IR and what every layer above shares.

``ir`` (frozen nodes, traversal, rename), ``scopes`` (size hints by scope),
``functions`` (the element-wise function table), ``canonical`` (name-blind keys and
factor order), ``broadcast`` (ones-markers), ``softmax`` (the softmax words),
``shapes`` (shape checks), ``printing`` (text and LaTeX). Imports only
:mod:`einderiv.errors` (and, in ``ir``'s convenience methods, the package face).
"""
