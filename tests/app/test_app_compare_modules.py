"""The Compare page's data is split by subject (issue 24): address, grouping, curves,
results and tables, none of them a big room (under 500 lines), and `app.views.compare.data`
still offers every name the pages, the benchmarks and the tests import from it (the very
same objects, not copies)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

COMPARE = Path(__file__).resolve().parents[2] / "app" / "views" / "compare"
SUBJECTS = ("address", "grouping", "curves", "results", "tables")


@pytest.mark.parametrize("path", sorted(COMPARE.glob("*.py")), ids=lambda p: p.name)
def test_each_compare_module_is_under_500_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= 500, f"{path.name} has {lines} lines: split it by subject"


def test_data_reexports_the_subject_modules_objects() -> None:
    data = importlib.import_module("app.views.compare.data")
    owners = {name: importlib.import_module(f"app.views.compare.{name}") for name in SUBJECTS}
    for name in data.__all__:
        if name == "cg":
            continue
        homes = [
            s for s, mod in owners.items() if name in vars(mod) and vars(mod)[name] is getattr(data, name)
        ]
        assert homes, f"data.{name} comes from none of {SUBJECTS}"
    # the subjects hold what their names say
    assert owners["address"].parse_run_ids("1, 2 x") == ([1, 2], ["x"])
    assert owners["curves"].smooth([1.0, 3.0], 0.5) == pytest.approx(
        [0.5 / 0.5, 1.75 / 0.75]
    )  # debiased EMA by hand
    assert owners["tables"].to_csv([{"group": "=1+2"}]) == b"group\n'=1+2\n"
