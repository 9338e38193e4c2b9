"""`bml data prepare` (raw layout -> features file) and `bml train` on raw and prepared data:
round trip, cache, atomic writes, and bad input failing with exit 2 and the file named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile
import torch
from typer.testing import CliRunner

from bml_cli.main import app
from bml_core.config import DatasetConfig
from bml_core.data import build_dataset
from bml_core.data.media import check_image_header
from bml_core.data.prepare import prepare_features

SIZE = 16
runner = CliRunner()


def sets(*overrides: str) -> list[str]:
    """`--set OVERRIDE` for each one, as `bml train` takes them."""
    return [arg for override in overrides for arg in ("--set", override)]


def cremad_sets(root: Path) -> list[str]:
    return sets("dataset.name=cremad", f"dataset.path={root}", f"dataset.params.image_size={SIZE}")


CNN_ENCODERS = sets(
    "model.encoders.audio.name=cnn",
    "model.encoders.audio.channels=4",
    "model.encoders.visual.name=cnn",
    "model.encoders.visual.channels=4",
)


def prepare_cli(*args: str):
    return runner.invoke(app, ["data", "prepare", *args, "--no-progress", "--param", f"image_size={SIZE}"])


@pytest.mark.parametrize(
    ("cli_name", "registered", "root_fixture", "suffix"),
    [
        ("cremad", "cremad", "cremad_root", ".h5"),
        ("kinetics-sounds", "kinetics_sounds", "ks_root", ".npz"),
        ("ucf101", "ucf101", "ucf_root", ".h5"),
    ],
)
def test_prepared_features_equal_direct_evaluation_items(
    cli_name: str,
    registered: str,
    root_fixture: str,
    suffix: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    root: Path = request.getfixturevalue(root_fixture)
    dst = tmp_path / "out" / f"{registered}{suffix}"
    result = prepare_cli(cli_name, str(root), str(dst))
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and dst.is_file()
    assert not dst.with_name(dst.name + ".partial").exists()
    params = {"image_size": SIZE}
    direct = build_dataset(DatasetConfig(name=registered, path=str(root), params=params))
    prepared = build_dataset(DatasetConfig(name="features", path=str(dst)))
    assert prepared.input_shapes == direct.input_shapes
    assert prepared.class_names == direct.class_names
    for split in ("train", "val", "test"):
        d, p = getattr(direct, split), getattr(prepared, split)
        assert len(d) == len(p)
        assert p.labels().tolist() == d.labels().tolist()
        d.training = False
        for i in (0, len(d) - 1):
            xd, _ = d[i]
            xp, _ = p[i]
            for m in xd:
                torch.testing.assert_close(xp[m], xd[m])
    again = prepare_cli(cli_name, str(root), str(dst))
    assert again.exit_code == 0 and "up to date" in again.output


def test_prepare_cache_and_force(cremad_root: Path, tmp_path: Path) -> None:
    dst = tmp_path / "c.h5"
    assert prepare_cli("cremad", str(cremad_root), str(dst)).exit_code == 0
    mtime = dst.stat().st_mtime_ns
    assert prepare_cli("cremad", str(cremad_root), str(dst)).exit_code == 0
    assert dst.stat().st_mtime_ns == mtime  # reused, not rewritten
    other = runner.invoke(
        app,
        ["data", "prepare", "cremad", str(cremad_root), str(dst), "--no-progress", "--param", "image_size=8"],
    )
    assert other.exit_code == 2 and "--force" in other.output
    forced = runner.invoke(
        app,
        [
            "data",
            "prepare",
            "cremad",
            str(cremad_root),
            str(dst),
            "--no-progress",
            "--param",
            "image_size=8",
            "--force",
        ],
    )
    assert forced.exit_code == 0
    with h5py.File(dst) as f:
        assert f["x_visual"].shape[-1] == 8


def test_interrupted_prepare_resumes_and_never_looks_complete(cremad_root: Path, tmp_path: Path) -> None:
    dst = tmp_path / "c.h5"
    calls = {"n": 0}

    def stop_after_five(done: int, total: int) -> None:
        calls["n"] += 1
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_features("cremad", cremad_root, dst, {"image_size": SIZE}, progress=stop_after_five)
    assert not dst.exists()
    partial = dst.with_name("c.h5.partial")
    assert partial.exists()
    result = prepare_features("cremad", cremad_root, dst, {"image_size": SIZE})
    assert result.resumed_rows == 5 and dst.exists() and not partial.exists()
    with h5py.File(dst) as f:
        assert "_rows_done" not in f
        assert np.all(np.abs(f["x_audio"][()]).reshape(len(f["y"]), -1).sum(1) > 0)


def corrupt_wav(root: Path) -> Path:
    wav = sorted((root / "AudioWAV").glob("*.wav"))[4]
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    return wav


def corrupt_jpg(root: Path) -> Path:
    jpg = sorted((root / "Image-01-FPS").glob("*/*.jpg"))[9]
    jpg.write_bytes(b"\xff\xd8\xff\xe0 broken")
    return jpg


def missing_wav(root: Path) -> Path:
    wav = sorted((root / "AudioWAV").glob("*.wav"))[2]
    wav.unlink()
    return wav


def unknown_label(root: Path) -> Path:
    csv = root / "test.csv"
    csv.write_text(csv.read_text() + "1200_IEO_XXX_XX,CALM\n")
    return csv


def empty_split(root: Path) -> Path:
    csv = root / "test.csv"
    csv.write_text("\n")
    return csv


@pytest.mark.parametrize("breakage", [corrupt_wav, corrupt_jpg, missing_wav, unknown_label, empty_split])
def test_bad_cremad_input_fails_prepare_and_train_with_exit_2(
    breakage, cremad_root: Path, tmp_path: Path
) -> None:
    named = breakage(cremad_root)
    dst = tmp_path / "bad.h5"
    result = prepare_cli("cremad", str(cremad_root), str(dst))
    assert result.exit_code == 2, result.output
    assert named.name in result.output
    assert not dst.exists()
    trained = runner.invoke(
        app,
        [
            "train",
            "--no-progress",
            "--out",
            str(tmp_path / "run"),
            *cremad_sets(cremad_root),
            *sets("train.epochs=1"),
        ],
    )
    assert trained.exit_code == 2, trained.output
    assert named.name in trained.output


def test_a_file_that_breaks_only_on_decoding_fails_training_with_exit_2(
    cremad_root: Path, tmp_path: Path
) -> None:
    """A truncated JPEG passes the header check; it fails when a worker decodes it."""
    from PIL import Image

    jpg = sorted((cremad_root / "Image-01-FPS").glob("*/*.jpg"))[1]
    noise = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(jpg, format="JPEG")
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    check_image_header(jpg)  # the header still parses
    common = [
        "--no-progress",
        *cremad_sets(cremad_root),
        *sets("dataset.params.frames=4", "train.epochs=1", "train.num_workers=2"),
        *CNN_ENCODERS,
    ]
    trained = runner.invoke(app, ["train", "--out", str(tmp_path / "run"), *common])
    assert trained.exit_code == 2, trained.output
    assert jpg.name in trained.output
    prepared = prepare_cli("cremad", str(cremad_root), str(tmp_path / "x.npz"))
    assert prepared.exit_code == 2 and jpg.name in prepared.output
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "x.npz.partial").exists()


def test_bad_hdf5_fails_kinetics_prepare(ks_root: Path, tmp_path: Path) -> None:
    video = sorted((ks_root / "video").glob("*.hdf5"))[3]
    video.write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    result = prepare_cli("kinetics-sounds", str(ks_root), str(tmp_path / "ks.h5"))
    assert result.exit_code == 2 and video.name in result.output
    assert not (tmp_path / "ks.h5").exists()


def test_pickle_needs_the_trust_flag(tmp_path: Path) -> None:
    from bml_core.data.tiny_layouts import write_kinetics_sounds

    root = write_kinetics_sounds(tmp_path / "ks", pickle_audio=True)
    refused = prepare_cli("kinetics-sounds", str(root), str(tmp_path / "ks.h5"))
    assert refused.exit_code == 2 and "--trust-pickle" in refused.output
    ok = prepare_cli(
        "kinetics-sounds", str(root), str(tmp_path / "ks.h5"), "--trust-pickle", str(root / "audio")
    )
    assert ok.exit_code == 0, ok.output


def test_train_directly_and_on_prepared_data(cremad_root: Path, tmp_path: Path) -> None:
    small_cnn = [*CNN_ENCODERS, *sets("train.epochs=1", "train.batch_size=8")]
    direct = runner.invoke(
        app,
        [
            "train",
            "--no-progress",
            "--out",
            str(tmp_path / "direct"),
            "--summary-json",
            str(tmp_path / "direct.json"),
            *cremad_sets(cremad_root),
            *sets("train.num_workers=2"),
            *small_cnn,
        ],
    )
    assert direct.exit_code == 0, direct.output
    dst = tmp_path / "c.h5"
    assert prepare_cli("cremad", str(cremad_root), str(dst)).exit_code == 0
    prepared = runner.invoke(
        app,
        [
            "train",
            "--no-progress",
            "--out",
            str(tmp_path / "prepared"),
            "--summary-json",
            str(tmp_path / "prepared.json"),
            *sets("dataset.name=features", f"dataset.path={dst}"),
            *small_cnn,
        ],
    )
    assert prepared.exit_code == 0, prepared.output
    for name in ("direct", "prepared"):
        summary = json.loads((tmp_path / f"{name}.json").read_text())
        assert set(summary["test"]["acc_per_modality"]) == {"audio", "visual"}


def test_data_list_shows_the_registered_datasets() -> None:
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0
    for name in ("cremad", "kinetics_sounds", "ucf101", "mfeat", "features", "synthetic_seq"):
        assert name in result.output


def test_unknown_dataset_and_bad_param(cremad_root: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "prepare", "vggsound", str(cremad_root), str(tmp_path / "x.h5")])
    assert result.exit_code == 2 and "cremad, kinetics-sounds, ucf101" in result.output
    bad = runner.invoke(
        app, ["data", "prepare", "cremad", str(cremad_root), str(tmp_path / "x.h5"), "--param", "fps=3"]
    )
    assert bad.exit_code == 2 and "dataset.params.fps" in bad.output
    copy = tmp_path / "copy"
    shutil.copytree(cremad_root, copy)
    wrong_suffix = runner.invoke(app, ["data", "prepare", "cremad", str(copy), str(tmp_path / "x.csv")])
    assert wrong_suffix.exit_code == 2 and ".h5" in wrong_suffix.output


def test_soundfile_fixture_is_real_wav(cremad_root: Path) -> None:
    info = soundfile.info(str(next((cremad_root / "AudioWAV").glob("*.wav"))))
    assert info.format == "WAV" and info.samplerate == 16000


def test_a_bad_file_mid_encoding_keeps_a_partial_that_resumes(cremad_root: Path, tmp_path: Path) -> None:
    from PIL import Image

    victim = sorted((cremad_root / "Image-01-FPS").glob("*/*.jpg"))[-1]  # a test clip: encoded late
    good = victim.read_bytes()
    noise = np.random.default_rng(1).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(victim, format="JPEG")
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    dst = tmp_path / "c.h5"
    failed = runner.invoke(
        app,
        ["data", "prepare", "cremad", str(cremad_root), str(dst), "--no-progress"]
        + ["--param", f"image_size={SIZE}", "--param", "frames=4"],
    )
    assert failed.exit_code == 2 and victim.name in failed.output
    assert not dst.exists() and "kept in" in failed.output
    victim.write_bytes(good)
    resumed = runner.invoke(
        app,
        ["data", "prepare", "cremad", str(cremad_root), str(dst), "--no-progress"]
        + ["--param", f"image_size={SIZE}", "--param", "frames=4"],
    )
    assert resumed.exit_code == 0, resumed.output
    assert "kept from an interrupted run" in resumed.output and dst.is_file()
