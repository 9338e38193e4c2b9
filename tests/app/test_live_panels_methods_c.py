"""Live draws a panel for every step metric family of issue 10's methods (from their specs,
without naming them in app/): mmpareto cos and w, mla weights and ||P||, reconboost stage,
gblending weights, relearn alpha."""

from __future__ import annotations

from app.views.live.data import panels


def test_live_has_a_panel_per_family_of_the_new_methods() -> None:
    ids = {p.name for p in panels()}
    for key in (
        "mmpareto/cos",
        "mmpareto/w",
        "mla/weight",
        "mla/p_norm",
        "reconboost/stage",
        "reconboost/phase",
        "gblending/weight",
        "relearn/alpha",
        "relearn/purity_gap",
    ):
        assert f"family-{key.replace('/', '-')}" in ids, key
