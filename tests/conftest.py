"""pytest hooks: the header says which optional array libraries the tests exercise."""

from __future__ import annotations

import importlib.util


def pytest_report_header(config) -> str:
    optional = ("jax", "torch")
    have = [m for m in optional if importlib.util.find_spec(m) is not None]
    missing = [m for m in optional if m not in have]
    line = "einderiv: code export tested for numpy, opt_einsum"
    line += "".join(f", {m}" for m in have)
    return line + (f" ({', '.join(missing)} not installed)" if missing else "")
