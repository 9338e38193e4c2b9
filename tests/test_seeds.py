"""One seed-list parser (bml_core.seeds) for the Launch form, `bml submit --seeds`,
`bml report --reproduce --seeds` and the actions API: same syntax, same cap (issues 24, 25)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bml_core.config import ConfigError
from bml_core.seeds import MAX_SEEDS, MAX_SWEEP_RUNS, SeedError, check_seeds, parse_seeds

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "synthetic-joint.yaml"


def test_syntax_ranges_lists_and_duplicates() -> None:
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0-2, 7, 2") == [0, 1, 2, 7]
    assert parse_seeds("5") == [5]
    assert parse_seeds(f"0-{MAX_SEEDS - 1}") == list(range(64))
    for bad, text in (
        ("", "at least one seed"),
        ("3-1", "backwards; write it as 1-3"),
        ("-1", "not a seed"),
        ("a", "not a seed"),
        ("0-99", "at most 64"),
        (",".join(str(i) for i in range(65)), "65 seeds; at most 64"),
    ):
        with pytest.raises(SeedError, match=text):
            parse_seeds(bad)


def test_api_list_check_has_the_same_cap() -> None:
    assert check_seeds([3, 1, 3]) == [3, 1]
    with pytest.raises(SeedError, match="65 seeds; at most 64"):
        check_seeds(range(65))
    with pytest.raises(SeedError, match="integers >= 0"):
        check_seeds([0, -1, True])


def test_every_way_in_uses_the_one_parser() -> None:
    from app.views.launch import fields as launch_fields
    from app.views.launch import parse as launch_parse
    from bml_cli import report_cmd, worker_cmd

    assert launch_parse.parse_seeds is parse_seeds and report_cmd.parse_seeds is parse_seeds
    assert worker_cmd.parse_seeds is parse_seeds
    assert launch_fields.max_seeds == MAX_SEEDS and launch_fields.max_sweep_runs == MAX_SWEEP_RUNS


def test_actions_api_refuses_more_than_64_seeds_and_256_sweep_runs() -> None:
    from services.actions import expand_grid, prepare

    with pytest.raises(ConfigError) as exc:
        prepare({"name": "x"}, list(range(65)))
    assert "at most 64" in exc.value.as_dict()["seeds"]
    grid = {"optim.lr": [0.1 * (i + 1) for i in range(5)]}
    with pytest.raises(ConfigError) as exc:  # 5 values x 64 seeds = 320 runs
        expand_grid({"name": "x"}, grid, list(range(64)), "sw")
    assert "320 runs; at most 256 per sweep" in exc.value.as_dict()["seeds"]


def _bml(bml_exe: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([bml_exe, *args], capture_output=True, text=True, timeout=120)


def test_cli_submit_refuses_1000_seeds_and_stores_nothing(bml_exe: str) -> None:
    assert _bml(bml_exe, "db", "upgrade").returncode == 0
    seeds = ",".join(str(i) for i in range(1000))
    r = _bml(bml_exe, "submit", str(CONFIG), "--seeds", seeds)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "--seeds: 1000 seeds; at most 64 per launch" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = _bml(bml_exe, "submit", str(CONFIG), "--seeds", "4-0")
    assert r.returncode == 2 and "backwards; write it as 0-4" in r.stderr
    runs = _bml(bml_exe, "runs")
    assert runs.returncode == 0 and "synthetic" not in runs.stdout, runs.stdout
