"""Seed lists: one syntax and one cap for every way in (the Launch form, `bml submit --seeds`,
`bml report --reproduce --seeds`, the actions API in services/actions.py, the benchmarks).

Syntax: integers >= 0 separated by commas, ranges `lo-hi` inclusive, a mix (`0-2, 7`);
duplicates are dropped, order kept. At most MAX_SEEDS distinct seeds per launch and
MAX_SWEEP_RUNS runs per sweep. Torch-free: the CLI and the dashboard import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_SEEDS = 64
MAX_SWEEP_RUNS = 256

_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")


class SeedError(ValueError):
    """A seed list that cannot be used; the message says what to write instead."""


def parse_seeds(text: str, max_seeds: int = MAX_SEEDS) -> list[int]:
    """`0`, `0,1,2`, `0-4` or a mix (`0-2, 7`): distinct seeds in order. SeedError with the fix."""
    seeds: list[int] = []
    for part in (p.strip() for p in str(text or "").split(",")):
        if not part:
            continue
        match = _RANGE.fullmatch(part)
        if match:
            lo, hi = int(match.group(1)), int(match.group(2))
            if hi < lo:
                raise SeedError(f"seed range {part!r} runs backwards; write it as {hi}-{lo}")
            if hi - lo + 1 > max_seeds:
                raise SeedError(
                    f"seed range {part!r} has {hi - lo + 1} seeds; at most {max_seeds} per launch"
                )
            seeds.extend(range(lo, hi + 1))
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise SeedError(f"{part!r} is not a seed; write integers >= 0 like 0,1,2 or a range 0-4")
    if not seeds:
        raise SeedError("give at least one seed, e.g. 0 or 0,1,2 or 0-4")
    return check_seeds(seeds, max_seeds)


def check_seeds(seeds: Iterable[object], max_seeds: int = MAX_SEEDS) -> list[int]:
    """A list of seeds from code (the actions API): integers >= 0, at most `max_seeds`
    distinct; duplicates dropped, order kept. SeedError naming the limit otherwise."""
    items = list(seeds)
    bad = [s for s in items if not isinstance(s, int) or isinstance(s, bool) or s < 0]
    if bad:
        raise SeedError(f"seeds must be integers >= 0; got {bad[:5]}")
    distinct = list(dict.fromkeys(items))
    if len(distinct) > max_seeds:
        raise SeedError(
            f"{len(distinct)} seeds; at most {max_seeds} per launch (fewer seeds, e.g. 0-{max_seeds - 1})"
        )
    return distinct  # type: ignore[return-value]


def check_sweep_size(run_count: int, max_runs: int = MAX_SWEEP_RUNS) -> None:
    if run_count > max_runs:
        raise SeedError(f"{run_count} runs; at most {max_runs} per sweep: fewer values or seeds")
