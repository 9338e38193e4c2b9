"""Dataset specs (bml_core/dataspecs.py): torch-free parameter models, modalities and
recommended configs; `dataset.params` is validated with the config, so a bad parameter is a
ConfigError naming `dataset.params.<x>` before anything is queued (issue 14)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bml_core.config import ConfigError, _merge, validate_config
from bml_core.dataspecs import dataset_specs, get_dataset_spec


def _errors(raw: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    return info.value.as_dict()


def test_unknown_view_wrong_type_and_unknown_key_name_the_parameter() -> None:
    errs = _errors({"dataset": {"name": "mfeat", "params": {"views": ["pix", "nonsense"]}}})
    assert (
        list(errs) == ["dataset.params.views"]
        and "unknown view(s) ['nonsense']" in errs["dataset.params.views"]
    )
    errs = _errors({"dataset": {"name": "synthetic", "params": {"num_samples": "many"}}})
    assert list(errs) == ["dataset.params.num_samples"] and "integer" in errs["dataset.params.num_samples"]
    errs = _errors(
        {"dataset": {"name": "synthetic", "params": {"modalities": [{"name": "a", "coverage": 2}]}}}
    )
    assert list(errs) == ["dataset.params.modalities.0.coverage"]
    errs = _errors({"dataset": {"name": "mfeat", "params": {"view": ["pix"]}}})
    assert (
        "unknown parameter of mfeat" in errs["dataset.params.view"] and "views" in errs["dataset.params.view"]
    )
    errs = _errors({"dataset": {"name": "nosuch"}})
    assert "unknown dataset 'nosuch'" in errs["dataset.name"] and "mfeat" in errs["dataset.name"]


def test_path_valued_parameters_stay_inside_the_dataset_path() -> None:
    spec = get_dataset_spec("cremad")
    assert spec is not None and "audio_dir" in spec.path_params
    base = {"name": "cremad", "path": "/data/cremad"}
    for bad, word in (("/etc", "absolute"), ("../other", "leaves dataset.path")):
        errs = _errors({"dataset": {**base, "params": {"audio_dir": bad}}})
        assert word in errs["dataset.params.audio_dir"]
    validate_config({"dataset": {**base, "params": {"audio_dir": "wav/AudioWAV"}}})
    described = {p["name"]: p["path"] for p in spec.parameters()}
    assert described["audio_dir"] is True and described["frames"] is False


def test_modalities_follow_the_parameters() -> None:
    mfeat = get_dataset_spec("mfeat")
    assert mfeat is not None and mfeat.default_modalities() == ["pix", "zer"]
    assert mfeat.modalities(mfeat.params(views=["fou", "kar", "mor"])) == ["fou", "kar", "mor"]
    assert dataset_specs()["synthetic"].default_modalities() == ["audio", "visual"]
    assert dataset_specs()["ucf101"].default_modalities() == ["rgb", "flow"]


def test_every_recommended_config_is_valid_and_mfeat_matches_its_example() -> None:
    import yaml

    for name, spec in dataset_specs().items():
        raw = _merge(
            {"dataset": {"name": name, "path": "/data/x" if spec.needs_path else None}}, spec.recommended
        )
        validate_config(raw)
    example = yaml.safe_load((Path(__file__).parents[1] / "examples" / "mfeat-imbalance.yaml").read_text())
    rec = get_dataset_spec("mfeat").recommended  # type: ignore[union-attr]
    for section in ("model", "optim", "train"):
        assert rec[section] == {k: v for k, v in example[section].items()}, section
    assert rec["dataset"]["params"] == example["dataset"]["params"]


def test_builders_parse_the_spec_models_and_notes_agree() -> None:
    """With torch: the registry's builders and notes are the specs' (no second copy)."""
    code = (
        "from bml_core.data import DATASETS, DATASET_NOTES, mfeat, synthetic\n"
        "from bml_core.dataspecs import dataset_specs\n"
        "specs = dataset_specs()\n"
        "assert sorted(DATASETS) == sorted(specs), (sorted(DATASETS), sorted(specs))\n"
        "assert {n: s.description for n, s in specs.items()} == DATASET_NOTES\n"
        "assert mfeat.MfeatParams is specs['mfeat'].params and synthetic.SyntheticParams is specs['synthetic'].params\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_specs_load_without_torch() -> None:
    code = (
        "import sys\nfrom bml_core.config import validate_config\n"
        "validate_config({'dataset': {'name': 'mfeat'}})\nassert 'torch' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
