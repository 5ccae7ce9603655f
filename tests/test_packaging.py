"""A tidy package (issue 18): py.typed, LICENSE, project URLs, classifiers, keywords,
the extras, a README that reads right on a package index, a quick start that says how
to begin and runs the commands CI runs, CI that installs jax, and a wheel whose
install in a fresh virtual environment runs the quick start (slow: builds it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()
REPO = "https://github.com/einderiv/einderiv"


def test_typed_and_licensed():
    assert (ROOT / "einderiv" / "py.typed").exists()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["einderiv"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the einderiv authors" in text
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]


def test_urls_classifiers_keywords():
    urls = PROJECT["urls"]
    assert urls["Homepage"] == REPO and urls["Issues"] == f"{REPO}/issues"
    assert all(u.startswith(REPO) for u in urls.values())
    assert "Typing :: Typed" in PROJECT["classifiers"]
    assert "Programming Language :: Python :: 3.11" in PROJECT["classifiers"]
    assert {"gradient", "jacobian", "einsum"} <= set(PROJECT["keywords"])


def test_extras():
    extras = PROJECT["optional-dependencies"]
    names = {k: {re.split(r"[<>=\[ ]", r)[0] for r in v} for k, v in extras.items()}
    assert names["plot"] == {"matplotlib", "tqdm"}
    assert names["dask"] == {"dask", "distributed"} and names["jax"] == {"jax"}
    assert extras["torch"] == ["torch==2.13.0"]
    assert names["plot"] | names["dask"] | names["jax"] <= names["all"]
    assert "torch" not in names["all"]          # several GB: asked for by name only
    # the test extra installs what every test needs, jax and the notebook runner included
    assert names["plot"] | names["dask"] | names["jax"] | names["notebook"] <= names["test"]
    assert {"nbclient", "nbformat", "ipykernel"} <= names["notebook"]
    for extra in extras.values():               # torch, wherever named, only 2.13.0
        assert all(r == "torch==2.13.0" for r in extra if r.startswith("torch"))


def test_readme_links_work_on_a_package_index():
    """A package index shows README.md without the repository: every link absolute."""
    prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", README, flags=re.S))
    links = re.findall(r"\]\(([^)\s]+)\)", prose)
    assert links
    relative = [u for u in links if not u.startswith(("https://", "http://", "#"))]
    assert not relative, relative
    for url in links:
        if url.startswith(f"{REPO}/blob/main/"):
            assert (ROOT / url.removeprefix(f"{REPO}/blob/main/")).exists(), url


def _quick_start_blocks() -> list[list[str]]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [[line.split("  #")[0].strip() for line in block.strip().splitlines()]
            for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_quick_start_says_how_to_begin():
    blocks = _quick_start_blocks()
    setup = blocks[0]
    assert setup[0] == f"git clone {REPO}.git"
    assert setup[1] == "cd einderiv"
    assert setup[2].startswith("python3 -m venv ") and setup[3].startswith("source ")
    assert [len(b) for b in blocks[1:3]] == [1, 1]       # then the two commands


def test_ci_runs_the_quick_start_commands_as_written():
    commands = [b[0] for b in _quick_start_blocks()[1:3]]
    assert "einderiv diff" in commands[0] and "pytest" in commands[1]
    ci_lines = [line.strip() for line in CI.splitlines()]
    for command in commands:
        assert command in ci_lines, f"{command!r} is not a line of .ci/run"
    assert '".[test]"' in commands[1]           # the test extra: jax, so its tests run in CI


@pytest.mark.slow
def test_the_wheel_installs_and_runs_the_quick_start(tmp_path):
    """``pip wheel .`` builds a wheel; installed alone in a fresh virtual environment
    (no einderiv source on the path) it runs ``einderiv diff`` and the README's first
    Python example."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, timeout=600)
    (wheel,) = wheels.glob("einderiv-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "einderiv/py.typed" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert f"Project-URL: Homepage, {REPO}" in metadata
    assert "Classifier: Typing :: Typed" in metadata and "Provides-Extra: torch" in metadata
    assert f"]({REPO}/blob/main/docs/" in metadata          # the README, links absolute
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = str(bindir) + os.pathsep + env.get("PATH", "")
    subprocess.run([str(bindir / "python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, env=env, cwd=tmp_path, timeout=600)
    done = subprocess.run([str(bindir / "einderiv"), "diff"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "d f / d theta = 2*X[a,d]*(X[a,b]*theta[b] - Y[a])/n" in done.stdout
    first = re.search(r"## A first derivative.*?```python\n(.*?)```", README, re.S)
    assert first is not None
    example = tmp_path / "first.txt"
    example.write_text(first.group(1))
    done = subprocess.run([str(bindir / "python"), "-c",
                           "import doctest, einderiv, sys; print(einderiv.__file__); "
                           "r = doctest.testfile(sys.argv[1], module_relative=False); "
                           "sys.exit(1 if r.failed or not r.attempted else 0)", str(example)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(venv) in done.stdout.splitlines()[0]        # the installed wheel ran
