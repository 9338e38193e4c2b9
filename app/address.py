"""What a page's address names, parsed the same way on every page that takes it: run ids
(`?runs=1,2`) and run groups (`?group=a&group=b` or `?group=a,b`). Plain functions."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence


def parse_run_ids(text: str | None) -> tuple[list[int], list[str]]:
    """`1,2,3` -> ([1, 2, 3], []); parts that are not ids come back as the second list."""
    ids: list[int] = []
    bad: list[str] = []
    for part in re.split(r"[,\s]+", text or ""):
        if not part:
            continue
        if part.isdigit():
            ids.append(int(part))
        else:
            bad.append(part)
    return list(dict.fromkeys(ids)), bad


def parse_groups(values: Sequence[str], known: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """`?group=a&group=b` or `?group=a,b` -> (known groups in order, unknown names). A value
    that is itself a group name is taken whole (names may hold commas)."""
    wanted: list[str] = []
    for value in values:
        if not value:
            continue
        wanted.extend([value] if value in known else [p.strip() for p in value.split(",") if p.strip()])
    wanted = list(dict.fromkeys(wanted))
    return [g for g in wanted if g in known], [g for g in wanted if g not in known]
