"""Length report for the standard losses (issue 15): einderiv's matrix form against the
textbook's.

For each entry of the table in tests/test_textbook_losses.py (``LOSSES``), prints
``str(einderiv.diff(text, wrt).to_matrix())`` beside the textbook form and the ratio of
their lengths (characters without whitespace, ``matrix_length``), as a markdown table,
then the median and the worst ratio. The table lives in the test module only; this
script imports it.

Run: ``python benchmarks/loss_lengths.py``.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_textbook_losses import GOAL, LOSSES, printed, ratio  # noqa: E402


def _cell(text: str) -> str:
    return "`" + text.replace("|", "\\|") + "`"


def main() -> None:
    rows = []
    for loss in LOSSES:
        form = printed(loss)
        rows.append((loss, form, ratio(loss, form)))
    print("| loss | textbook | einderiv | ratio |")
    print("|---|---|---|---|")
    for loss, form, r in rows:
        mark = " **over**" if r > GOAL else ""
        print(f"| {loss.name} | {_cell(loss.textbook)} | {_cell(form)} | {r:.2f}{mark} |")
    ratios = [r for *_, r in rows]
    worst = max(rows, key=lambda row: row[2])
    print(f"\n{len(ratios)} entries: median ratio {statistics.median(ratios):.2f}, worst "
          f"{worst[2]:.2f} ({worst[0].name}); {sum(r > GOAL for r in ratios)} over the goal "
          f"of {GOAL}")


if __name__ == "__main__":
    main()
