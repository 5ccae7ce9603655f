"""Numbers: an expression lowered to a program of typed steps and run with numpy,
opt_einsum and BLAS, or written out as code.

``program`` (the step kinds, one typed table) <- ``lowering`` (IR -> program, shared
subexpressions) -> ``planning`` (shapes, per-kind planners), ``paths``,
``contraction``, ``direct_products``, ``gram``, ``kernels``, ``rewrites`` (in place,
releases), ``axis_sizes`` -> ``execution`` (binders and runners per kind),
``straightline``, ``compiled`` (``CompiledExpr``, ``compile_expr``); ``code_writer``,
``dialects``, ``codegen`` (``to_python``, the jax/torch backends); ``layout``
(``flatten``). Imports errors and core only: never symbolic, matrix, tools or api.
"""
