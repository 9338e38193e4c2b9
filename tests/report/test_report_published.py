"""The published numbers table (bml_core.compare.published) holds the values of
METHODS.md section 9 and STRATEGIES.md section 5, each with its source and protocol."""

from __future__ import annotations

from bml_core.compare.published import BB_PROTOCOL, PUBLISHED, published_for


def _acc(dataset: str, method: str, source_prefix: str) -> float:
    rows = [p for p in published_for(dataset) if p.method == method and p.source.startswith(source_prefix)]
    assert len(rows) == 1, (dataset, method, source_prefix)
    return rows[0].accuracy_pct


def test_balancebenchmark_values_per_dataset() -> None:
    assert [_acc("cremad", m, "BalanceBenchmark") for m in ("joint", "OGM", "OPM")] == [65.50, 67.76, 68.75]
    assert [_acc("kinetics_sounds", m, "BalanceBenchmark") for m in ("joint", "OGM", "OPM")] == [
        65.63,
        67.04,
        66.89,
    ]
    assert _acc("CREMA-D", "audio only", "BalanceBenchmark") == 59.38
    assert _acc("kinetics-sounds", "visual only", "BalanceBenchmark") == 45.31
    assert _acc("cremad", "MMPareto", "BalanceBenchmark") == 79.97
    assert _acc("kinetics_sounds", "ReconBoost", "BalanceBenchmark") == 68.38
    assert [_acc("ucf101", m, "BalanceBenchmark") for m in ("joint", "OGM", "OPM")] == [81.80, 82.07, 85.28]
    assert all(p.protocol == BB_PROTOCOL for p in PUBLISHED if p.source.startswith("BalanceBenchmark"))
    bb_cd = [p for p in published_for("cremad") if p.source.startswith("BalanceBenchmark")]
    assert len(bb_cd) == 16 and all("ResNet-18" in p.backbone for p in bb_cd)


def test_paper_and_reproduction_on_cremad() -> None:
    assert _acc("cremad", "concat baseline", "OGM-GE") == 51.7 and _acc("cremad", "OGM-GE", "OGM-GE") == 61.9
    repro = {
        p.strategy: p.accuracy_pct for p in published_for("cremad") if p.source.startswith("independent")
    }
    assert repro == {"joint": 59.2, "ogm_ge": 63.7, "opm": 65.4, "opm+ogm_ge": 69.8}
    assert published_for("kinetics_sounds", strategies=["opm"])[0].accuracy_pct == 66.89
    assert published_for("synthetic") == []
