"""How a run is named on every page, written once: the short label (`#12 name`) used in
legends and links, and the picker label that adds group, strategy and status."""

from __future__ import annotations

from typing import Protocol


class RunLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def strategy(self) -> str: ...
    @property
    def status(self) -> str: ...


def run_label(run: RunLike) -> str:
    """`#12 name`: legends, links, table cells."""
    return f"#{run.id} {run.name}"


def run_choice_label(run: RunLike) -> str:
    """`#12 name · group · strategy · status`: run pickers."""
    return f"{run_label(run)} · {run.group} · {run.strategy} · {run.status}"
