"""The package's layers (issue 16): imports run one way, and the folders show how.

    errors <- core <- symbolic <- matrix
              core <- numeric              (matrix and numeric never import each other)
    api imports the wings; tools import api; web (einderiv serve) imports tools and
    below; the face (__init__, cli, console) imports anything (cli imports web lazily).

Every import of an einderiv module is checked, at module level and inside functions
(a lazy import hides an edge, it does not remove it), and the graph has no loop. The
one sanctioned upward edge
is core/ir.py's ``_face``: the convenience methods of ``Expr`` (``compile``,
``to_matrix``, ...) call the package face. Lazy imports are allowed only where they
break a real cycle, listed in LAZY with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "einderiv"

#: layer -> the layers its modules may import.
ALLOWED: dict[str, set[str]] = {
    "errors": {"errors"},
    "core": {"errors", "core"},
    "symbolic": {"errors", "core", "symbolic"},
    "matrix": {"errors", "core", "symbolic", "matrix"},
    "numeric": {"errors", "core", "numeric"},
    "api": {"errors", "core", "symbolic", "matrix", "numeric", "api"},
    "tools": {"errors", "core", "symbolic", "matrix", "numeric", "api", "tools"},
    "web": {"errors", "core", "symbolic", "matrix", "numeric", "api", "tools", "web"},
    "face": {"errors", "core", "symbolic", "matrix", "numeric", "api", "tools", "web", "face"},
}

#: (importing module, imported module) -> why the import sits inside a function.
LAZY: dict[tuple[str, str], str] = {
    ("einderiv.core.ir", "einderiv"): "the sanctioned upward edge: Expr's convenience methods",
    ("einderiv.core.ir", "einderiv.core.printing"): "printing builds on ir (str, to_latex)",
    ("einderiv.cli", "einderiv.web"): "the web page is optional (einderiv serve): the other "
                                      "commands do not load the server",
}

#: The longest a module may grow (issue 16: modules of a few hundred lines, none over ~600).
MAX_LINES = 650


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("cli", "console", "__main__"):
        return "face"
    return parts[1]


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported einderiv module, line, inside a function) for each import in ``path``."""
    return _imports_in(_module_name(path), path.name == "__init__.py", path.read_text())


def _imports_in(module: str, is_package: bool, source: str) -> list[tuple[str, int, bool]]:
    tree = ast.parse(source)
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if _under_type_checking(tree, node):
            continue  # for annotations only: no edge at run time
        lazy = id(node) not in top
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, lazy) for a in node.names
                      if a.name.split(".")[0] == "einderiv"]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.split(".")[0] == "einderiv":
                    found.append((node.module, node.lineno, lazy))
                continue
            base = module.split(".")
            base = base if is_package else base[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:  # from . import syntax: each name is a module
                found += [(f"{target}.{a.name}", node.lineno, lazy) for a in node.names]
            else:
                found.append((target, node.lineno, lazy))
    return found


def _under_type_checking(tree: ast.Module, node: ast.AST) -> bool:
    for n in tree.body:
        if isinstance(n, ast.If) and isinstance(n.test, ast.Name) and \
                n.test.id == "TYPE_CHECKING" and any(c is node for c in ast.walk(n)):
            return True
    return False


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        assert _layer(_module_name(path)) in ALLOWED, path


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_run_one_way(path: Path) -> None:
    module = _module_name(path)
    layer = _layer(module)
    wrong = []
    for target, line, lazy in _imports(path):
        if (module, target) in LAZY:
            continue
        if _layer(target) not in ALLOWED[layer]:
            wrong.append(f"line {line}: {module} ({layer}) imports {target} ({_layer(target)})")
    assert not wrong, "upward imports:\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_lazy_import_without_a_reason(path: Path) -> None:
    module = _module_name(path)
    lazy = [f"line {line}: {target}" for target, line, is_lazy in _imports(path)
            if is_lazy and (module, target) not in LAZY]
    assert not lazy, (f"imports inside functions in {module} (move them to the top, or "
                      f"add the cycle they break to LAZY):\n" + "\n".join(lazy))


def test_the_sanctioned_edges_exist() -> None:
    """LAZY lists no edge that is gone (so the list stays true)."""
    edges = {(_module_name(p), t) for p in MODULES for t, _, lazy in _imports(p) if lazy}
    assert set(LAZY) <= edges, set(LAZY) - edges


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{_module_name(path)} has {lines} lines: split it"


def test_no_import_loops() -> None:
    """Apart from the sanctioned edges (LAZY), the imports form no loop: a depth-first
    search over the module graph finds no edge back to a module on its path."""
    graph: dict[str, set[str]] = {}
    names = {_module_name(p) for p in MODULES}
    for path in MODULES:
        module = _module_name(path)
        for target, _, _ in _imports(path):
            while target not in names and "." in target:
                target = target.rsplit(".", 1)[0]  # from .x import name: the module
            if target != module and (module, target) not in LAZY:
                graph.setdefault(module, set()).add(target)
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            assert state.get(t) != 1, "import loop: " + " -> ".join(path + [m, t])
            if t not in state:
                visit(t, path + [m])
        state[m] = 2

    for m in sorted(names):
        if m not in state:
            visit(m, [])


def test_the_checker_sees_upward_and_lazy_imports() -> None:
    """The check itself, on made-up modules: the edges it must report."""
    source = ("from ..symbolic.simplify import simplify\n"
              "def f():\n    from .printing import to_text\n    import einderiv.api\n")
    found = _imports_in("einderiv.core.canonical", False, source)
    assert found == [("einderiv.symbolic.simplify", 1, False),
                     ("einderiv.core.printing", 3, True), ("einderiv.api", 4, True)]
    assert [_layer(t) for t, _, _ in found] == ["symbolic", "core", "api"]
    assert "symbolic" not in ALLOWED["core"] and "matrix" not in ALLOWED["numeric"]
    package = _imports_in("einderiv.matrix", True, "from . import nodes\nfrom .. import api\n")
    assert [t for t, _, _ in package] == ["einderiv.matrix.nodes", "einderiv.api"]
