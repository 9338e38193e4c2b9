"""`train.deterministic: true` turns on PyTorch's deterministic algorithms (and the cuBLAS
workspace setting GPU reruns need); two such runs with one seed give the same summary bit
for bit. (On a GPU the same holds only with the flag; this machine checks the CPU path.)"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from bml_core.config import ConfigError, load_config
from bml_core.trainer import Trainer
from tests.helpers.configs import small


@pytest.fixture
def restore_determinism(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = torch.are_deterministic_algorithms_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(before)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def test_deterministic_flag_enables_pytorch_determinism(restore_determinism: None) -> None:
    assert load_config(small()).train.deterministic is False
    raw = small(train={"epochs": 1, "deterministic": True}, strategies=["ogm_ge"])
    first = Trainer(load_config(raw)).fit()
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    second = Trainer(load_config(raw)).fit()
    assert second["test"] == first["test"] and second["val"] == first["val"]
    with pytest.raises(ConfigError) as exc:
        load_config(small(train={"deterministic": "sometimes"}))
    assert "train.deterministic" in exc.value.as_dict()
