"""The step kinds of the numeric program (einderiv.numeric.program, issue 16): one table of
kinds, and every module that does something per kind covers every kind.

A new kind added to KINDS without its planner, binder, runner, code writer or size
links fails here, not at run time on the first expression that lowers to it."""

import dataclasses

import numpy as np
import pytest

import einderiv
from einderiv.numeric import axis_sizes, code_writer, execution, planning, rewrites
from einderiv.numeric.program import KINDS, Step

ALL = set(KINDS.values())

#: Tables with an entry for every kind.
COMPLETE = {
    "planning.PLANNERS": planning.PLANNERS,
    "execution.BINDERS": execution.BINDERS,
    "execution.RUNNERS": execution.RUNNERS,
    "code_writer.WRITERS": code_writer.WRITERS,
    "axis_sizes.LINKS": axis_sizes.LINKS,
}
#: Tables for some kinds only (the others never write in place, never own their value).
PARTIAL = {
    "rewrites.IN_PLACE": rewrites.IN_PLACE,
    "rewrites.OWNS_VALUE": rewrites.OWNS_VALUE,
}


def test_kinds_are_named_frozen_dataclasses():
    for name, cls in KINDS.items():
        assert issubclass(cls, Step) and cls.kind == name
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, name
        for method in ("rank", "shape"):  # the rules every kind must state
            assert getattr(cls, method) is not getattr(Step, method), (name, method)
    assert len({cls.kind for cls in ALL}) == len(KINDS)


@pytest.mark.parametrize("table", COMPLETE, ids=list(COMPLETE))
def test_every_kind_is_in_every_table(table):
    keys = set(COMPLETE[table])
    assert keys == ALL, (f"{table}: missing {sorted(k.kind for k in ALL - keys)}, "
                         f"unknown {sorted(map(str, keys - ALL))}")


@pytest.mark.parametrize("table", PARTIAL, ids=list(PARTIAL))
def test_partial_tables_name_only_kinds(table):
    assert set(PARTIAL[table]) <= ALL


def _spd(n, rng):
    b = rng.normal(size=(n, n))
    return b @ b.T + n * np.eye(n)


#: Expressions that together lower to every kind: (text, simplify, variables to
#: differentiate by in turn, shapes).
CORPUS = [
    ("x[i]*delta[i,i]", False, (), {"x": (3,)}),                              # ones
    ("A[i,j] -> [j,i]", False, (), {"A": (2, 3)}),                            # transpose
    ("A[i,j]*delta[j,k]*B[k,l]", False, (), {"A": (2, 3), "B": (3, 4)}),     # eye
    ("log(sum[j](exp(x[j])))", False, (), {"x": (4,)}),                       # logsumexp
    ("exp(A[i,j])*sum[k](exp(A[i,k]))**-1 -> [i,j]", False, (), {"A": (3, 4)}),  # softmax
    ("x[i]*inv(S)[i,j]*b[j]", True, (), {"x": (3,), "S": (3, 3), "b": (3,)}),   # solve
    ("inv(S)[i,j]", True, (), {"S": (3, 3)}),                                  # inv
    ("logdet(S) + det(S)", True, (), {"S": (3, 3)}),                           # det, logdet
    ("x[i]**p + x[i]**1.5", True, (), {"x": (3,), "p": ()}),                   # powslot, pow
    ("2*tanh(A[i,j]*x[j])", True, (), {"A": (2, 3), "x": (3,)}),             # func, scale
    ("2*3", True, (), {}),                                                    # const
    ("y[j]", True, ("x[i]",), {"x": (3,), "y": (2,)}),                             # zeros
    ("sum[j](x[j])*z[k]", True, ("x",), {"x": (3,), "z": (2,)}),                   # broadcast
    ("log(sum[j](exp(x[j])))", True, ("x", "x"), {"x": (4,)}),                        # embed
]


def _compiled(text, simplify, wrt, shapes):
    e = einderiv.parse(text, simplify=simplify)
    for w in wrt:
        e = einderiv.diff(e, w, shapes)
    return e.compile()


def _arrays(shapes, rng):
    return {n: _spd(s[0], rng) if len(s) == 2 and s[0] == s[1] else np.abs(rng.normal(size=s)) + 0.5
            for n, s in shapes.items()}


def test_the_corpus_lowers_to_every_kind():
    seen = {type(s) for case in CORPUS for s in _compiled(*case).program.steps}
    assert seen == ALL, sorted(k.kind for k in ALL - seen)


@pytest.mark.parametrize("case", CORPUS, ids=[c[0] + "".join(f" /d{w}" for w in c[2]) for c in CORPUS])
def test_rules_agree_with_the_plan(case):
    """Each step reads earlier slots only; its rank rule gives the rank of the shape
    planned; its FLOP count is a non-negative int; the value equals evaluate's."""
    rng = np.random.default_rng(16)
    f = _compiled(*case)
    arrays = _arrays(case[3], rng)
    plan = f.plan_for(**arrays)
    given = {n: len(s) for n, s in case[3].items()}
    ranks = axis_sizes.program_ranks(f.program, given, case[3])
    for k, step in enumerate(f.program.steps):
        assert all(0 <= r < k for r in step.reads()), (k, step)
        assert ranks[k] is None or ranks[k] == len(plan.shapes[k]), (k, step, plan.shapes[k])
        cost = step.flops(plan.shapes, plan.shapes[k])
        assert isinstance(cost, int) and cost >= 0
    np.testing.assert_allclose(f(**arrays), f.expr.evaluate(**arrays))
