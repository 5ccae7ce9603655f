"""The command line as shells and scripts use it (issue 18): --version, closed pipes,
non-UTF-8 consoles, the expression from standard input, one meaning per flag,
--help with examples that run, "did you mean" for --shape/--assume names, and
flags that another flag would make pointless are errors."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from einderiv.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
QUAD = "x[i]*A[i,j]*x[j]"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _cli(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "einderiv", *argv], capture_output=True,
                          env=kw.pop("env", _env()), cwd=kw.pop("cwd", ROOT), timeout=120, **kw)


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ --version


def test_version():
    done = _cli("--version")
    assert done.returncode == 0, done.stderr
    import einderiv
    assert done.stdout.decode().strip() == f"einderiv {einderiv.__version__}"


# ------------------------------------------------------------------ closed pipes


def _into_closed_pipe(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run with standard output a pipe whose reader is already gone (as after head)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "einderiv", *argv], stdout=write,
                              stderr=subprocess.PIPE, env=_env(), cwd=cwd, timeout=120)
    finally:
        os.close(write)


def test_a_closed_pipe_ends_quietly():
    done = _into_closed_pipe("diff")
    assert done.returncode == 141           # 128 + SIGPIPE, as for yes | head
    assert done.stderr == b""        # no "internal error", no traceback


def test_a_closed_pipe_still_lets_inspect_write_its_picture(tmp_path):
    pytest.importorskip("matplotlib")
    done = _into_closed_pipe("inspect", "W[j,i]*A[j]", "--wrt", "W", "--shape", "W=4,3",
                             "--plot", "p.png", cwd=tmp_path)
    assert done.returncode == 141 and done.stderr == b""
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_piped_into_head():
    done = subprocess.run(["bash", "-c", f"{shlex.quote(sys.executable)} -m einderiv diff "
                           "--steps | head -3; echo \"status ${PIPESTATUS[0]}\""],
                          capture_output=True, env=_env(), cwd=ROOT, timeout=120)
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 4 and lines[-1] in ("status 0", "status 141")
    assert done.stderr == b""


# ------------------------------------------------------------------ the console's encoding


def test_greek_names_on_an_ascii_console():
    done = _cli("diff", "θ[i]*x[i]*θ[j]*x[j]", "--wrt", "θ", env=_env(PYTHONIOENCODING="ascii"))
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode("ascii")           # ASCII only
    assert "d f / d theta = 2*x[a]*x[c]*theta[a]" in out
    assert "layout: theta's axes first" in out
    utf8 = _cli("diff", "θ[i]*x[i]*θ[j]*x[j]", "--wrt", "θ", env=_env(PYTHONIOENCODING="utf-8"))
    assert "d f / d θ = 2*x[a]*x[c]*θ[a]" in utf8.stdout.decode("utf-8")   # kept where shown


def test_greek_names_in_errors_on_an_ascii_console():
    done = _cli("diff", "θ[i]*x[i]", "--wrt", "θ", "--shape", "θθ=3",
                env=_env(PYTHONIOENCODING="ascii"))
    assert done.returncode == 2
    err = done.stderr.decode("ascii")
    assert "'thetatheta'" in err and "Traceback" not in err


def test_the_linear_regression_example_on_an_ascii_console():
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "linear_regression.py")],
                          capture_output=True, env=_env(PYTHONIOENCODING="ascii"), timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert "Newton step reaches the least-squares solution" in done.stdout.decode("ascii")


# ------------------------------------------------------------------ standard input


def test_the_expression_from_standard_input(capsys):
    code, direct, _ = _run(capsys, ["diff", QUAD, "--wrt", "x", "--order", "2"])
    assert code == 0
    done = _cli("diff", "-", "--wrt", "x", "--order", "2", input=f"{QUAD}\n".encode())
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == direct
    code, report, _ = _run(capsys, ["inspect", "W[j,i]*A[j]", "--wrt", "W", "--shape", "W=4,3"])
    done = _cli("inspect", "-", "--wrt", "W", "--shape", "W=4,3", input=b"W[j,i]*A[j]")
    assert done.returncode == 0 and done.stdout.decode() == report


def test_empty_standard_input_is_an_error():
    done = _cli("diff", "-", "--wrt", "x", input=b"  \n")
    assert done.returncode == 2
    assert "standard input is empty" in done.stderr.decode()


def test_unreadable_standard_input_is_an_error(capsys):
    """Under pytest's capture standard input cannot be read (the fuzzer found it)."""
    code, out, err = _run(capsys, ["diff", "-", "--wrt", "x"])
    assert code == 2 and out == ""
    assert "standard input, which cannot be read" in err


# ------------------------------------------------------------------ one meaning per flag


def test_inspect_flattens_with_flatten(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "c.png"
    code, out, err = _run(capsys, ["inspect", "W[j,i]*A[j]", "--wrt", "W", "--shape", "W=4,3",
                                   "--plot", str(path), "--flatten", "C"])
    assert code == 0, err
    assert f"picture: {path} (flattened, order C)" in out and path.exists()
    code, _, err = _run(capsys, ["inspect", "W[j,i]*A[j]", "--wrt", "W", "--shape", "W=4,3",
                                 "--plot", str(path), "--order", "C"])
    assert code == 2 and "--flatten" in err
    inspect_help = build_parser()._subparsers._group_actions[0].choices["inspect"].format_help()
    assert "--flatten {F,C}" in inspect_help and "--order" not in inspect_help


# ------------------------------------------------------------------ --help


def _examples(command: str | None) -> list[list[str]]:
    """The example command lines of ``einderiv [command] --help`` (continuations joined)."""
    parser = build_parser()
    if command is not None:
        parser = parser._subparsers._group_actions[0].choices[command]
    text = parser.format_help()
    assert "examples:" in text
    lines = re.sub(r"\s*\\\n\s*", " ", text.split("examples:", 1)[1]).splitlines()
    found = []
    for line in lines:
        line = line.strip()
        if line.startswith("einderiv ") or " | einderiv " in line:
            found.append(line)
    return found


@pytest.mark.parametrize("command", [None, "diff", "inspect", "demo"])
def test_help_shows_examples_that_run(command, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loss.txt").write_text("(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n\n")
    examples = _examples(command)
    assert len(examples) >= 1
    for line in examples:
        command_text = line.split("  ")[0]          # the words after it explain the line
        done = subprocess.run(["bash", "-c", command_text.replace(
            "einderiv ", f"{shlex.quote(sys.executable)} -m einderiv ")],
            capture_output=True, env=_env(), cwd=tmp_path, timeout=120)
        assert done.returncode == 0, (line, done.stderr.decode())
        assert done.stdout, line


# ------------------------------------------------------------------ names and flags


@pytest.mark.parametrize("argv, message", [
    (["diff", QUAD, "--wrt", "x", "--shape", "AA=3,3"],
     "--shape names 'AA', which the expression does not use (its variables: A, x); "
     "did you mean 'A'?"),
    (["diff", QUAD, "--wrt", "x", "--shape", "q=3"], "--shape names 'q'"),
    (["diff", QUAD, "--wrt", "x", "--assume", "AA=symmetric"], "did you mean 'A'?"),
    (["inspect", "W[j,i]*A[j]", "--wrt", "W", "--shape", "WW=4,3"], "did you mean 'W'?"),
])
def test_names_the_expression_does_not_use(capsys, argv, message):
    code, out, err = _run(capsys, argv)
    assert code == 2 and out == ""
    assert message in err


@pytest.mark.parametrize("argv", [
    ["diff", "--order", "9", "x"], ["diff", "--bogus"], ["diff", "--backend", "tf"],
    ["inspect"], ["demo", "--order", "7"], ["serve", "--port", "x"], ["--bogus"],
])
def test_a_usage_error_is_a_short_message(capsys, argv):
    """argparse prints the usage line with a usage error: each subcommand's fits in
    three lines of 80 columns, and the error itself in a fourth line."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert exc.value.code == 2 and out == "" and "error:" in lines[-1]
    assert len(lines) <= 4 and all(len(line) <= 80 for line in lines[:-1]), err


@pytest.mark.parametrize("argv, message", [
    (["diff", QUAD, "--wrt", "x", "--steps", "--emit", "python"], "--steps prints"),
    (["diff", QUAD, "--wrt", "x", "--steps", "--emit", "latex"], "--steps prints"),
    (["diff", QUAD, "--wrt", "x", "--emit", "python", "--latex"], "drop --latex"),
    (["diff", QUAD, "--wrt", "x", "--name", "g"], "--name names the function"),
    (["diff", QUAD, "--wrt", "x", "--emit", "latex", "--name", "g"], "--name names"),
    (["diff", QUAD, "--wrt", "x", "--backend", "jax"], "--backend chooses"),
    (["diff", QUAD, "--wrt", "x", "--emit", "latex", "--backend", "jax"], "--backend chooses"),
    (["diff", QUAD, "--wrt", "x", "--shape", "A=3,3", "--no-multiply-out"],
     "--no-multiply-out shapes"),
    (["diff", QUAD, "--wrt", "x", "--emit", "python", "--no-multiply-out"],
     "without --shape nothing is multiplied out"),
    (["diff", "--wrt", "x"], "--wrt needs an expression"),
    (["diff", "--matrix"], "--matrix reads"),
    (["inspect", "W[j,i]*A[j]", "--wrt", "W", "--slices"], "--slices chooses"),
    (["inspect", "W[j,i]*A[j]", "--wrt", "W", "--flatten", "C"], "--flatten orders"),
])
def test_flags_that_would_be_ignored_are_errors(capsys, argv, message):
    code, out, err = _run(capsys, argv)
    assert code == 2 and out == ""
    assert message in err and err.startswith("einderiv: EinderivError: ")


@pytest.mark.parametrize("argv", [
    ["diff", QUAD, "--wrt", "x", "--steps", "--latex", "--order", "2"],
    ["diff", QUAD, "--wrt", "x", "--emit", "latex", "--latex"],
    ["diff", QUAD, "--wrt", "x", "--emit", "python", "--name", "g", "--shape", "A=3,3"],
    ["diff", "--order", "2", "--emit", "python"],
    ["diff", QUAD, "--wrt", "x", "--emit", "python", "--backend", "opt_einsum",
     "--shape", "A=3,3", "--no-multiply-out"],
])
def test_flags_that_work_together(capsys, argv):
    code, out, err = _run(capsys, argv)
    assert code == 0, err
    assert out
