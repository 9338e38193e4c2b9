"""The example plug-in package on the workers (issue 20 item 4): a run that uses its encoder,
fusion head and dataset, submitted where the package is installed, trains on a worker that
has it; on a worker without it the run fails with an error naming the plug-ins and the
package to install (the run's `requires`, recorded at submit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bml_core.config import read_config_file
from db import get_run, make_engine
from services import actions as client
from tests.helpers.cluster import Cluster, wait_until
from tests.plugin_package import CONFIG, DIST, installed_on_path


@pytest.fixture
def submitted_with_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from installed_on_path(tmp_path, monkeypatch)


def _submit() -> int:
    raw = read_config_file(CONFIG)
    raw["train"] = {**raw["train"], "epochs": 2}
    (run_id,) = client.submit(raw, seeds=[0])
    return run_id


def test_the_plugin_run_trains_on_a_worker_that_has_the_package(
    embedded_cluster: Cluster, submitted_with_package: Path
) -> None:
    run_id = _submit()
    eng = make_engine()
    assert get_run(eng, run_id).config["requires"]["encoder/residual_mlp"] == DIST
    embedded_cluster.env["PYTHONPATH"] = str(submitted_with_package)
    embedded_cluster.start_worker("with-plugins")
    wait_until(lambda: get_run(eng, run_id).status in ("succeeded", "failed"), 180, "the run to finish")
    run = get_run(eng, run_id)
    assert run.status == "succeeded", (run.error, run.traceback_tail)
    assert set(run.summary["test"]["acc_per_modality"]) == {"ring", "blob"}


def test_a_worker_without_the_package_fails_the_run_naming_it(
    embedded_cluster: Cluster, submitted_with_package: Path
) -> None:
    run_id = _submit()
    embedded_cluster.env.pop("PYTHONPATH", None)
    embedded_cluster.start_worker("without-plugins")
    eng = make_engine()
    wait_until(lambda: get_run(eng, run_id).status in ("succeeded", "failed"), 180, "the run to finish")
    run = get_run(eng, run_id)
    assert run.status == "failed"
    assert run.error is not None
    for name in ("residual_mlp", "weighted_sum", "two_rings"):
        assert f"{name}'" in run.error
    assert f"pip install {DIST}" in run.error
