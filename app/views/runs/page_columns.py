"""The Runs table's columns as the page shows them (issue 25: at 1400 px the grid clipped
the name and alert cells, "8 (8 wa", and its columns after "seed" scrolled away). The grid
shows the columns below, each wide enough for its usual text, together narrower than the
page's main area at 1400 px with the sidebar open (about 940 px); the run's dataset, owner,
attempt and creation time are shown for the picked run under "Act on a run" (and stay in
the table's data, `data.table_rows`)."""

from __future__ import annotations

CELL_PADDING_PX = 8  # the grid's padding on each side of a cell's text

# column -> width in px; the grid's own order. "status" fits every status and "cancelling",
# "strategy" two strategies (`opm+ogm_ge`), "alerts" `8 (8 warning)`, "name" a name of about
# 33 characters (longer ones: the picked run's line below the table shows it whole).
WIDTHS: dict[str, int] = {
    "id": 45,
    "name": 230,
    "status": 95,
    "progress": 70,
    "ETA": 60,
    "strategy": 98,
    "alerts": 105,
    "best val acc": 65,
    "group": 80,
    "seed": 40,
    "live": 45,
}
COLUMNS: tuple[str, ...] = tuple(WIDTHS)
LABELS = {"best val acc": "best val"}  # headers shorter than their column's name
MAIN_WIDTH_1400_PX = 940  # the main area at a 1400 px window, sidebar open
