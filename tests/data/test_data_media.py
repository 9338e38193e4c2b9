"""Media decoding: the papers' spectrogram, tiling, frame sampling, restricted unpickling."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bml_core.data.base import DatasetError
from bml_core.data.media import (
    AUDIO_SAMPLE_RATE_HZ,
    STFT_HOP_SAMPLES,
    STFT_N_FFT,
    check_array_file,
    cremad_audio,
    first_middle_last,
    list_frames,
    load_array_file,
    log_spectrogram,
    resample,
    segment_indices,
    tile_to_length,
)


def reference_log_spectrogram(x: np.ndarray) -> np.ndarray:
    """librosa.stft(center=True, reflect padding, periodic Hann) + log, written out in numpy."""
    pad = STFT_N_FFT // 2
    padded = np.pad(x.astype(np.float64), pad, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(STFT_N_FFT) / STFT_N_FFT)
    n_frames = 1 + (len(padded) - STFT_N_FFT) // STFT_HOP_SAMPLES
    frames = np.stack(
        [padded[i * STFT_HOP_SAMPLES : i * STFT_HOP_SAMPLES + STFT_N_FFT] for i in range(n_frames)]
    )
    spec = np.fft.rfft(frames * window, axis=1).T
    return np.log(np.abs(spec) + 1e-7)


def test_log_spectrogram_matches_a_numpy_stft() -> None:
    rng = np.random.default_rng(0)
    x = np.clip(0.3 * rng.standard_normal(AUDIO_SAMPLE_RATE_HZ * 3), -1, 1).astype(np.float32)
    ours = log_spectrogram(x)
    ref = reference_log_spectrogram(x)
    assert tuple(ours.shape) == (1, 257, 188)
    assert ref.shape == (257, 188)
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=2e-3)


def test_tile_repeats_short_clips_to_fill_the_length() -> None:
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(tile_to_length(x, 12), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
    np.testing.assert_array_equal(tile_to_length(np.arange(20, dtype=np.float32), 7), np.arange(7))


def test_resample_16k_to_22050_keeps_duration_and_pitch() -> None:
    t = np.arange(16000) / 16000
    y = resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000, 22050)
    assert y.shape == (22050,)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 22050 / len(y) - 440) < 2


@pytest.mark.parametrize("seconds", [0.4, 1.7, 5.0])
def test_cremad_audio_is_1x257x188_whatever_the_length(tmp_path: Path, seconds: float) -> None:
    wav = tmp_path / "clip.wav"
    t = np.arange(int(16000 * seconds)) / 16000
    soundfile.write(str(wav), (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000)
    spec = cremad_audio(wav)
    assert tuple(spec.shape) == (1, 257, 188)
    assert np.isfinite(spec.numpy()).all()
    # energy sits near 300 Hz: bin 300 / (22050 / 512) = 7
    assert int(spec[0].mean(1).argmax()) in (6, 7, 8)


def test_stereo_wav_is_averaged_to_mono(tmp_path: Path) -> None:
    wav = tmp_path / "stereo.wav"
    left = 0.5 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)
    soundfile.write(str(wav), np.stack([left, left], 1).astype(np.float32), 16000)
    mono = tmp_path / "mono.wav"
    soundfile.write(str(mono), left.astype(np.float32), 16000)
    np.testing.assert_allclose(cremad_audio(wav).numpy(), cremad_audio(mono).numpy(), atol=1e-5)


def test_corrupt_and_empty_wavs_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(DatasetError, match="bad.wav"):
        cremad_audio(bad)
    empty = tmp_path / "empty.wav"
    soundfile.write(str(empty), np.zeros(0, np.float32), 16000)
    with pytest.raises(DatasetError, match="empty.wav: the WAV file holds no samples"):
        cremad_audio(empty)


def test_segment_indices_random_in_training_middle_in_evaluation() -> None:
    assert segment_indices(9, 3, None) == [1, 4, 7]
    assert segment_indices(4, 1, None) == [1]
    assert segment_indices(2, 3, None) == [0, 0, 1]  # fewer frames than wanted: repeats
    seen = set()
    for seed in range(50):
        idx = segment_indices(9, 3, np.random.default_rng(seed))
        assert 0 <= idx[0] < 3 <= idx[1] < 6 <= idx[2] < 9
        seen.add(tuple(idx))
    assert len(seen) > 10
    assert first_middle_last(10) == [0, 4, 9]
    assert first_middle_last(1) == [0, 0, 0]


def test_frames_sort_in_natural_order(tmp_path: Path) -> None:
    for k in (1, 2, 10):
        (tmp_path / f"frame_{k}.jpg").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("ignored")
    assert [p.name for p in list_frames(tmp_path)] == ["frame_1.jpg", "frame_2.jpg", "frame_10.jpg"]


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_pickles_need_trust_and_even_then_only_numpy_arrays(tmp_path: Path) -> None:
    good = tmp_path / "audio" / "clip.pkl"
    good.parent.mkdir()
    good.write_bytes(pickle.dumps(np.ones((3, 4), np.float32)))
    with pytest.raises(DatasetError, match="pickle file.*--trust-pickle"):
        load_array_file(good, [], "audio")
    with pytest.raises(DatasetError, match="--trust-pickle"):
        check_array_file(good, [], "audio")
    np.testing.assert_array_equal(load_array_file(good, [good.parent], "audio"), np.ones((3, 4)))
    np.testing.assert_array_equal(load_array_file(good, [good], "audio"), np.ones((3, 4)))
    evil = tmp_path / "audio" / "evil.pkl"
    evil.write_bytes(pickle.dumps(_RunsCode()))
    with pytest.raises(DatasetError, match="refusing to load posix.system|refusing to load nt.system"):
        load_array_file(evil, [tmp_path], "audio")


def test_npy_is_read_without_pickle(tmp_path: Path) -> None:
    arr = tmp_path / "a.npy"
    np.save(arr, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert load_array_file(arr, [], "audio").shape == (2, 3)
    obj = tmp_path / "o.npy"
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    obj.write_bytes(buf.getvalue())
    with pytest.raises(DatasetError, match="o.npy"):
        load_array_file(obj, [], "audio")
