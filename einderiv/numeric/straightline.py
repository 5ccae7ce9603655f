"""A plan's bound steps as one generated straight-line Python function.

:mod:`einderiv.numeric.execution` binds each step of a program to a closure
``run(values, inputs, dtype)``. Calling them in a loop costs a few hundred
nanoseconds per step on top of the arithmetic, plus the checks and the plan lookup
of each call: on a 100 x 100 ``A x + x A`` that overhead was as large as the two
matrix-vector products themselves. Here the closures of one plan are written out as
the body of one function, the common ones as the Python expression they stand for
(``v2 = a1 @ a0``; see :class:`~einderiv.numeric.execution.Inline`), the others as a call of
the closure (the values then live in a list the closures read: ``v[3] = b3(v, inputs,
dtype)``), with the early releases as assignments of None; and one entry
function per compiled expression takes the keyword arguments, checks that they are
plain numpy float arrays and finds the plan of their shapes with one dictionary
look-up. Everything else (conversions, a new plan, errors) goes the general way.

This is the numpy backend's fast path only: dask keeps the loop, and so do
programs of more than :data:`MAX_STEPS` steps (the source would take longer to
compile than the loop costs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .execution import skipped
from .program import Input, Step

__all__ = ["straight_line", "entry", "unaliased", "MAX_STEPS"]

#: Programs with more steps run as a loop over their closures.
MAX_STEPS = 2000


def unaliased(result: Any, inputs: Sequence[Any]) -> Any:
    """``result`` as an array that shares no memory with an input (a copy if it did)."""
    if type(result) is not np.ndarray:
        result = np.asarray(result)
    if (result.base is not None or any(result is v for v in inputs)) and \
            any(np.may_share_memory(result, v) for v in inputs if isinstance(v, np.ndarray)):
        return result.copy()  # never hand back (a view of) an input
    return result


def straight_line(steps: Sequence[Step], bound: Sequence[Callable[..., Any]],
                  release: Sequence[tuple[int, ...]] | None, inputs: Mapping[str, int],
                  output: int | tuple[int, ...], needs_dtype: bool) -> Callable[..., Any] | None:
    """One function ``run(*arrays)`` (the inputs in the order of ``inputs``: name ->
    slot) doing what the loop over ``bound`` does, or None for a program of more than
    :data:`MAX_STEPS` steps. ``release``: the slots to let go of after each step.
    ``output``: the slot of the result, or a tuple of slots (a tuple of results)."""
    if len(steps) > MAX_STEPS:
        return None
    names = list(inputs)
    params = [f"a{k}" for k in range(len(names))]
    namespace: dict[str, Any] = {"unaliased": unaliased, "result_type": np.result_type,
                                 "FLOAT64": np.dtype(np.float64), "ndarray": np.ndarray}
    # Values live in local variables (v3), or in a list (v[3]) where a closure reads them.
    closures = any(getattr(run, "inline", None) is None and run is not skipped
                   and not isinstance(step, Input) for step, run in zip(steps, bound))
    param_of = {inputs[n]: p for n, p in zip(names, params)}
    ref = (lambda s: f"v[{s}]") if closures else (lambda s: param_of.get(s, f"v{s}"))
    body: list[str] = []
    if closures:
        body.append(f"v = [None] * {len(steps)}")
        body += [f"v[{inputs[n]}] = {p}" for n, p in zip(names, params)]
        body.append("inputs = {" + ", ".join(f"{n!r}: {p}" for n, p in zip(names, params)) + "}")
        body.append(f"dtype = result_type({', '.join(p + '.dtype' for p in params)})"
                    if needs_dtype and params else "dtype = FLOAT64")
    for k, (step, run) in enumerate(zip(steps, bound)):
        inline = getattr(run, "inline", None)
        if isinstance(step, Input):
            pass
        elif inline is not None:
            namespace[f"f{k}"] = inline.fn
            operands = [ref(s) for s in inline.slots]
            body.append(f"{ref(k)} = " + inline.template.format(*operands, f=f"f{k}"))
        elif run is not skipped:
            namespace[f"b{k}"] = run
            body.append(f"v[{k}] = b{k}(v, inputs, dtype)")
        dropped = [ref(s) for s in (release[k] if release is not None else ())
                   if closures or s not in param_of]  # the caller holds the inputs anyway
        if dropped:
            body.append(" = ".join(dropped) + " = None")
    outputs = output if isinstance(output, tuple) else (output,)
    results = ["r"] if len(outputs) == 1 else [f"r{j}" for j in range(len(outputs))]
    for j, (r, out) in enumerate(zip(results, outputs)):
        body.append(f"{r} = {ref(out)}")
        alias = "".join(f" or {r} is {p}" for p in params)
        body.append(f"if type({r}) is not ndarray or {r}.base is not None{alias}:")
        body.append(f"    {r} = unaliased({r}, ({''.join(p + ', ' for p in params)}))")
        if out in outputs[:j]:  # one value for two results: each its own array
            body.append(f"{r} = {r}.copy()")
    body.append(f"return {results[0]}" if isinstance(output, int) else
                f"return ({', '.join(results)},)")
    source = f"def run({', '.join(params)}):\n" + "".join(f"    {line}\n" for line in body)
    exec(compile(source, "<einderiv plan>", "exec"), namespace)  # noqa: S102 - our own source
    run = namespace["run"]
    run.source = source  # for reading (tests, debugging)
    return run


def entry(names: Sequence[str], scalars: Sequence[str], runs: Mapping[tuple, Callable[..., Any]],
          general: Callable[[dict], Any]) -> Callable[[dict], Any]:
    """``call(arrays)``: the straight-line function of the plan for the arrays' shapes
    (looked up in ``runs``, shapes in the order of ``names``) where every input is a
    numpy array of floats, or a Python float or int for a name in ``scalars`` where
    the other arrays share one floating dtype (made a 0-d array of it, as the general
    way does: numbers are weak);
    ``general(arrays)`` otherwise (conversions,
    missing names, a first call with new shapes, errors)."""
    params = [f"a{k}" for k in range(len(names))]
    lines = ["def call(arrays):"]
    if params:
        lines += ["    try:"] + [f"        {p} = arrays[{n!r}]" for n, p in zip(names, params)]
        lines += ["    except KeyError:", "        return general(arrays)"]
    # Python numbers are weak (NEP 50): they take the dtype of the arrays where all
    # arrays have one floating dtype (float64 where there are none); other mixes go
    # the general way (einderiv.numeric.dtypes).
    arrays = [p for n, p in zip(names, params) if n not in scalars]
    common = f"{arrays[0]}.dtype" if arrays else "FLOAT64"
    weak = [f"        if type({p}) is float or type({p}) is int and -BIG < {p} < BIG:\n"
            f"            {p} = asarray({p}, {common})"
            for n, p in zip(names, params) if n in scalars]
    if weak:
        same = [f"type({p}) is ndarray and {p}.dtype is {common}" for p in arrays]
        lines += ["    if " + " and ".join(same + [f"{common}.kind in 'fc'"]) + ":"] + weak
    if params:
        checks = " and ".join(f"type({p}) is ndarray" for p in params) + " and " + \
            " and ".join(f"{p}.dtype.kind in 'fc'" for p in params)
        lines += [f"    if {checks}:",
                  f"        run = runs.get(({''.join(p + '.shape, ' for p in params)}))",
                  "        if run is not None:",
                  f"            return run({', '.join(params)})"]
    else:
        lines += ["    run = runs.get(())", "    if run is not None:", "        return run()"]
    lines.append("    return general(arrays)")
    namespace: dict[str, Any] = {"runs": runs, "general": general, "ndarray": np.ndarray,
                                 "asarray": np.asarray, "FLOAT64": np.dtype(np.float64),
                                 "BIG": 2**63}  # an int beyond int64 goes the general way
    exec(compile("\n".join(lines) + "\n", "<einderiv entry>", "exec"), namespace)  # noqa: S102
    return namespace["call"]
