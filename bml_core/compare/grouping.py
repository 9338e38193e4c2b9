"""Which runs are the seeds of one setting: runs are grouped by a key, by default every
config path whose value differs between the selected runs except the seed (and the name,
group and tags), so a sweep splits by strategy and swept parameters. Runs that cannot be
pooled are kept aside with the reason (failed, cancelled, still running or queued, no
summary, an older copy of a retried seed: `runs.retry_of`), never averaged in silently.

Strategies are read by name, not by list position: `strategies` is the list's label
(`opm+ogm_ge`, `joint` when empty) and `<name>.<param>` a parameter of one of them.
Plain data in (mappings or objects with the fields of `RunRecord`), plain data out."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bml_core.configpaths import flatten_into

INCLUDED_STATUSES = ("succeeded",)
IGNORED_PATHS = ("seed", "name", "group", "tags")
STRATEGIES = "strategies"

_EXCLUDED_WHY = {
    "failed": "failed",
    "cancelled": "cancelled",
    "pruned": "pruned by its tuning study",
    "running": "still running",
    "queued": "queued, not started",
    "requeued": "requeued after a lost worker, not finished",
}


def _field(run: Any, name: str, default: Any = None) -> Any:
    if isinstance(run, Mapping):
        return run.get(name, default)
    return getattr(run, name, default)


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class RunRecord:
    """What grouping and the report need of a run (a `db.RunDetail`, or a `bml runs --json`
    object plus its config)."""

    id: int
    name: str
    group: str
    status: str
    seed: int
    attempt: int
    config: dict[str, Any]
    summary: dict[str, Any] | None
    progress: float = 0.0
    error: str | None = None
    wall_s: float | None = None
    retry_of: int | None = None  # the run this one is a retry (clone) of (`runs.retry_of`)

    @classmethod
    def of(cls, run: Any) -> RunRecord:
        """From a mapping or an object with the same field names (RunDetail, RunInfo)."""
        if isinstance(run, RunRecord):
            return run
        config = _field(run, "config") or {}
        started, finished = _time(_field(run, "started_at")), _time(_field(run, "finished_at"))
        wall = (finished - started).total_seconds() if started and finished else None
        seed = _field(run, "seed")
        return cls(
            id=int(_field(run, "id")),
            name=str(_field(run, "name", "")),
            group=str(_field(run, "group", "")),
            status=str(_field(run, "status", "")),
            seed=int(seed if seed is not None else config.get("seed", 0)),
            attempt=int(_field(run, "attempt", 0) or 0),
            config=dict(config),
            summary=_field(run, "summary"),
            progress=float(_field(run, "progress", 0.0) or 0.0),
            error=_field(run, "error"),
            wall_s=wall,
            retry_of=None if _field(run, "retry_of") is None else int(_field(run, "retry_of")),
        )


def strategy_label(strategies: Any) -> str:
    """`opm+ogm_ge`, or `joint` for an empty list (the store's `runs.strategy`)."""
    names = []
    for s in strategies or []:
        name = s if isinstance(s, str) else (s or {}).get("name", "?")
        if name != "joint":
            names.append(str(name))
    return "+".join(names) or "joint"


def config_paths(config: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted paths of a config, strategies by name: {'strategies': 'opm', 'opm.q_base': 0.5,
    'optim.lr': 0.001, ...}; list positions (`strategies.0.alpha`) are also present."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        flatten_into(v, str(k), out)
    strategies = config.get(STRATEGIES) or []
    out[STRATEGIES] = strategy_label(strategies)
    for s in strategies:
        if isinstance(s, Mapping):
            for k, v in s.items():
                if k != "name":
                    flatten_into(v, f"{s.get('name', '?')}.{k}", out)
    return out


def named_paths(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config_paths` without the list positions: {'strategies': 'opm', 'opm.q_base': 0.5,
    'optim.lr': 0.001, ...}, the names the Compare tables, CSV and grouping show."""
    return {p: v for p, v in config_paths(config).items() if not p.startswith(f"{STRATEGIES}.")}


def _by_name_paths(config: Mapping[str, Any]) -> set[str]:
    """The config paths used for the default key (strategy params by name, not position)."""
    paths = config_paths(config)
    return {p for p in paths if not p.startswith(f"{STRATEGIES}.")}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def differing_paths(configs: Sequence[Mapping[str, Any]], ignore: Iterable[str] = IGNORED_PATHS) -> list[str]:
    """Config paths whose values differ between the configs (seed, name, group and tags
    left out). A strategy parameter counts only where two runs using that strategy
    disagree (joint has no `ogm_ge.alpha`; that alone is not a difference)."""
    ignored = tuple(ignore)
    flats = [config_paths(c) for c in configs]
    strategy_names = {n for f in flats for n in str(f[STRATEGIES]).split("+")}
    paths = sorted({p for c in configs for p in _by_name_paths(c)})
    out: list[str] = []
    for path in paths:
        if path in ignored or any(path.startswith(f"{i}.") for i in ignored):
            continue
        values = [f.get(path, _ABSENT) for f in flats]
        if path.split(".")[0] in strategy_names and path != STRATEGIES:
            values = [v for v in values if v is not _ABSENT]
        if any(not _same(v, values[0]) for v in values[1:]):
            out.append(path)
    if STRATEGIES in out:  # the strategy first: it is what users compare
        out.remove(STRATEGIES)
        out.insert(0, STRATEGIES)
    return out


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT: Any = _Absent()


def show_value(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


@dataclass
class GroupedRun:
    """A run with its group label, whether it is pooled, and why not."""

    record: RunRecord
    label: str
    included: bool
    reason: str | None = None
    retry_of: int | None = None
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "id": r.id,
            "name": r.name,
            "group": r.group,
            "label": self.label,
            "seed": r.seed,
            "status": r.status,
            "attempt": r.attempt,
            "included": self.included,
            "reason": self.reason,
            "retry_of": self.retry_of,
            "flags": list(self.flags),
        }


@dataclass
class RunGroup:
    """The runs sharing one value of the key; `included` are the seeds pooled."""

    label: str
    key: dict[str, Any]
    runs: list[GroupedRun]
    long_label: str = ""  # the label's form before issue 25 (`strategies=opm`), accepted as input

    @property
    def included(self) -> list[GroupedRun]:
        return [r for r in self.runs if r.included]

    @property
    def excluded(self) -> list[GroupedRun]:
        return [r for r in self.runs if not r.included]

    @property
    def n(self) -> int:
        return len(self.included)

    @property
    def seeds(self) -> list[int]:
        return [r.record.seed for r in self.included]

    @property
    def run_ids(self) -> list[int]:
        return [r.record.id for r in self.included]

    @property
    def strategy(self) -> str:
        recs = [r.record for r in self.runs]
        return strategy_label(recs[0].config.get(STRATEGIES)) if recs else "joint"


@dataclass
class Grouping:
    """Groups in first-seen order (the joint-training group, when there is one, first);
    `by` the key's paths, `auto` whether they were found from the differences."""

    by: list[str]
    auto: bool
    groups: list[RunGroup]

    @property
    def runs(self) -> list[GroupedRun]:
        return [r for g in self.groups for r in g.runs]

    @property
    def excluded(self) -> list[GroupedRun]:
        return [r for g in self.groups for r in g.excluded]

    def group(self, label: str) -> RunGroup:
        for g in self.groups:
            if g.label == label:
                return g
        raise KeyError(f"no group {label!r}; groups: {', '.join(g.label for g in self.groups)}")

    def resolve(self, name: str) -> str | None:
        """The label of the group a user names: by its label (`joint`) or in the long form
        labels had before (`strategies=joint`); None when no group has that name."""
        for g in self.groups:
            if name == g.label:
                return g.label
        for g in self.groups:
            if name == g.long_label:
                return g.label
        return None

    def label_of(self, run_id: int) -> str:
        for r in self.runs:
            if r.record.id == run_id:
                return r.label
        raise KeyError(run_id)

    def included_ids(self) -> dict[str, list[int]]:
        """{label: pooled run ids} (what the curves are averaged over)."""
        return {g.label: g.run_ids for g in self.groups if g.run_ids}


def group_label(key: Mapping[str, Any], run_groups: Sequence[str] = ()) -> str:
    """The one name of a group, on Compare, /report and in `bml report` alike (issue 25): the
    strategy alone for the `strategies` path (`joint`, `opm+ogm_ge`), `path=value` for the
    others: `opm`, `opm, opm.q_base=0.5`, `optim.lr=0.01`. With an empty key (the runs differ
    in their seeds only) the run group's name when they share one (`run_groups`), else
    `all runs`."""
    parts = [
        show_value(v) if p == STRATEGIES else f"{p}={show_value(v)}"
        for p, v in key.items()
        if v is not _ABSENT
    ]
    if parts:
        return ", ".join(parts)
    names = list(dict.fromkeys(run_groups))
    return names[0] if len(names) == 1 and names[0] else "all runs"


def long_label(key: Mapping[str, Any]) -> str:
    """The form labels had before issue 25 (`strategies=opm, opm.q_base=0.5`), still
    accepted wherever a user names a group (`--baseline`, `&baseline=`)."""
    parts = [f"{p}={show_value(v)}" for p, v in key.items() if v is not _ABSENT]
    return ", ".join(parts) or "all runs"


def _exclusion(r: RunRecord, statuses: Sequence[str]) -> str | None:
    if r.status not in statuses:
        why = _EXCLUDED_WHY.get(r.status, r.status)
        if r.status == "running":
            why += f" ({r.progress * 100:.0f} %)"
        if r.status == "failed" and r.error:
            why += f": {r.error.strip().splitlines()[0][:120]}"
        return why
    test = (r.summary or {}).get("test") if isinstance(r.summary, Mapping) else None
    if not isinstance(test, Mapping) or not isinstance(test.get("acc"), int | float):
        return "no test accuracy in its summary"
    return None


def _retry_root(r: RunRecord, by_id: Mapping[int, RunRecord]) -> int:
    """The first run of r's retry chain among the selected runs (r itself when it is no
    retry); when the chain leaves the selection, the last run it names."""
    seen = {r.id}
    while r.retry_of is not None:
        parent = by_id.get(r.retry_of)
        if parent is None or parent.id in seen:
            return r.retry_of
        seen.add(parent.id)
        r = parent
    return r.id


def _mark_retries(runs: list[GroupedRun]) -> None:
    """Retries are what the store says they are (`runs.retry_of`, set by Retry): among the
    pooled copies of one retry chain only the newest counts. An identical relaunch (same
    config and seed, not a retry) is a run of its own and counts."""
    by_id = {gr.record.id: gr.record for gr in runs}
    newest_included: dict[int, GroupedRun] = {}
    for gr in sorted(runs, key=lambda g: g.record.id):
        if gr.record.retry_of is not None:
            gr.retry_of = gr.record.retry_of
            gr.flags.append(f"retry of #{gr.record.retry_of}")
        if gr.record.attempt > 1:
            gr.flags.append(f"resumed (attempt {gr.record.attempt})")
        if gr.included:
            chain = _retry_root(gr.record, by_id)
            older = newest_included.get(chain)
            if older is not None:
                older.included = False
                older.reason = (
                    f"retried as run #{gr.record.id}, the newer copy of this seed, which counts instead"
                )
            newest_included[chain] = gr


def group_runs(
    runs: Iterable[Any],
    by: Sequence[str] | None = None,
    statuses: Sequence[str] = INCLUDED_STATUSES,
) -> Grouping:
    """Group runs (RunRecord, db.RunDetail or mappings with a `config`) by the config
    paths `by` (default: every path that differs between the selected runs, seed/name/
    group/tags aside). Runs whose status is not in `statuses` (default: succeeded only),
    or without a test accuracy, are kept in their group as excluded, with the reason.
    ValueError for a path of `by` that no run's config has."""
    records = [RunRecord.of(r) for r in runs]
    provisional = [
        GroupedRun(r, "", _exclusion(r, statuses) is None, _exclusion(r, statuses)) for r in records
    ]
    auto = by is None
    if by is None:  # over every selected run: a setting whose runs all failed still shows, with n = 0
        paths = differing_paths([r.config for r in records])
    else:
        paths = list(dict.fromkeys(by))
        known: set[str] = set()
        for r in records:
            known.update(config_paths(r.config))
        unknown = [p for p in paths if p not in known and not any(k.startswith(f"{p}.") for k in known)]
        if unknown:
            raise ValueError(
                f"group key {unknown[0]!r} is not a config path of the selected runs "
                f"(e.g. strategies, optim.lr, ogm_ge.alpha, train.epochs)"
            )
    by_label: dict[str, RunGroup] = {}
    run_groups = [r.group for r in records]
    for gr in provisional:
        flat = config_paths(gr.record.config)
        key = {p: _key_value(flat, p) for p in paths}
        gr.label = group_label(key, run_groups)
        group = by_label.setdefault(
            gr.label, RunGroup(gr.label, {p: _plain(v) for p, v in key.items()}, [], long_label(key))
        )
        group.runs.append(gr)
    _mark_retries(provisional)
    groups = list(by_label.values())
    groups.sort(key=lambda g: 0 if g.strategy == "joint" and STRATEGIES in paths else 1)
    return Grouping(by=paths, auto=auto, groups=groups)


def _key_value(flat: Mapping[str, Any], path: str) -> Any:
    if path in flat:
        return flat[path]
    sub = {k[len(path) + 1 :]: v for k, v in flat.items() if k.startswith(f"{path}.")}
    return sub if sub else _ABSENT


def _plain(value: Any) -> Any:
    return None if value is _ABSENT else value


def default_baseline(grouping: Grouping) -> str | None:
    """The joint-training group when the key separates strategies, else the first group
    with pooled runs."""
    with_runs = [g for g in grouping.groups if g.n]
    for g in with_runs:
        if g.strategy == "joint" and STRATEGIES in grouping.by:
            return g.label
    return with_runs[0].label if with_runs else None
