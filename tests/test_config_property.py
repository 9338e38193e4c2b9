"""Property-based tests (Hypothesis) over the run config (issue 15): whatever the keys and
values, validation either returns a config that is storable and inside its bounds, or raises
ConfigError with (field, message) pairs; never another exception. Covers `validate_config`,
`load_config` on a mapping, and what `bml train` runs before training (`read_run_config`:
a YAML/JSON file, `--set` overrides and a preset).

Derandomized with a fixed number of examples so CI is stable."""

from __future__ import annotations

import contextlib
import json
import math
import string
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bml_cli.common import read_run_config
from bml_core.config import (
    PRESETS,
    ConfigError,
    DatasetConfig,
    EncoderConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    SchedulerConfig,
    TrainConfig,
    load_config,
    strategy_params,
    validate_config,
)
from bml_core.schema import MAX_EPOCHS, MAX_INT64

PROFILE = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- values

EXTREME_INTS = [0, 1, -1, 2**31, 2**53 + 1, MAX_INT64, MAX_INT64 + 1, 2**70, -(2**70), 10**21, 10**400]
EXTREME_FLOATS = [0.0, -0.0, -0.5, 1e21, 1e308, 5e-324, math.inf, -math.inf, math.nan]
TRICKY_STRINGS = [
    "",
    " ",
    "a\x00b",
    "\x1b[31mred",
    "line\nbreak",
    "\x7f\x9f",
    "1e21",
    "inf",
    ".nan",
    "true",
    "off",
    "null",
    "../../etc/passwd",
    "/etc/shadow",
    "cuda:7",
    "cuda:99999999999999999999",
    "é" * 300,
    "x" * 5000,
    "![i](http://198.51.100.7/t.png)",
    "{{7*7}}",
    "$(touch /tmp/pwned)",
]
# every literal the schema knows, so that validation gets past the first wrong value
KNOWN_WORDS = [
    "mlp",
    "cnn",
    "resnet18",
    "concat",
    "sum",
    "film",
    "gated",
    "split",
    "aux",
    "shared",
    "torch",
    "official",
    "none",
    "step",
    "cosine",
    "sgd",
    "adam",
    "adamw",
    "auto",
    "cpu",
    "cuda",
    "cuda:0",
    "mps",
    "bf16",
    "fp16",
    "zero",
    "skip",
    "input",
    "feature",
    "synthetic",
    "features",
    "audio",
    "visual",
    "pairwise_mean",
    "vs_rest",
    "vs_min",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(EXTREME_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(EXTREME_FLOATS),
    st.integers(min_value=0, max_value=300),
    st.floats(min_value=0.0, max_value=1.0),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=40),
    st.text(max_size=20),  # anything Python holds, lone surrogates included
    st.sampled_from(TRICKY_STRINGS),
    st.sampled_from(KNOWN_WORDS),
)

wild = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(KNOWN_WORDS)), inner, max_size=4),
    ),
    max_leaves=12,
)

SECTIONS: dict[str, type] = {
    "dataset": DatasetConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
}
UNKNOWN_KEYS = ["epoch", "lr", "Name", "", "__class__", "strategies ", "x" * 300, "a\x00"]


def _keys(model: type) -> list[str]:
    return sorted(model.model_fields)  # type: ignore[attr-defined]


@st.composite
def section(draw: st.DrawFn, model: type) -> Any:
    """Mostly a mapping of the section's own keys (sometimes an unknown one) to wild values;
    sometimes not a mapping at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(wild)
    keys = draw(
        st.lists(st.sampled_from(_keys(model) + UNKNOWN_KEYS[:2]), min_size=1, max_size=4, unique=True)
    )
    out: dict[str, Any] = {}
    for key in keys:
        if model is ModelConfig and key == "encoders":
            out[key] = draw(
                st.one_of(
                    wild,
                    st.dictionaries(st.sampled_from(["audio", "visual", "text", ""]), section(EncoderConfig)),
                )
            )
        elif model is OptimConfig and key == "scheduler":
            out[key] = draw(st.one_of(section(SchedulerConfig), wild))
        elif model is DatasetConfig and key == "params":
            out[key] = draw(st.dictionaries(st.sampled_from(["num_samples", "num_classes", "x"]), wild))
        else:
            out[key] = draw(wild)
    return out


def _strategy_names() -> list[str]:
    return sorted(strategy_params())


@st.composite
def strategy_entry(draw: st.DrawFn) -> Any:
    name = draw(st.one_of(st.sampled_from(_strategy_names()), st.sampled_from(["nope", "", "OGM"]), wild))
    pick = draw(st.integers(0, 5))
    if pick == 0:
        return name  # the shorthand `strategies: [opm]`
    if pick == 1:
        return draw(wild)
    models = strategy_params()
    params = _keys(models[name]) if isinstance(name, str) and name in models else []
    keys = draw(st.lists(st.sampled_from([*params, "bogus"]), max_size=4, unique=True)) if params else []
    entry: dict[str, Any] = {k: draw(wild) for k in keys}
    if draw(st.integers(0, 9)):
        entry["name"] = name
    return entry


@st.composite
def run_configs(draw: st.DrawFn) -> dict[str, Any]:
    top = draw(
        st.lists(
            st.sampled_from([*_keys(RunConfig), UNKNOWN_KEYS[0], UNKNOWN_KEYS[3]]),
            min_size=1,
            max_size=6,
            unique=True,
        )
    )
    raw: dict[str, Any] = {}
    for key in top:
        if key in SECTIONS:
            raw[key] = draw(section(SECTIONS[key]))
        elif key == "strategies":
            raw[key] = draw(st.one_of(st.lists(strategy_entry(), max_size=3), wild))
        elif key == "tags":
            raw[key] = draw(st.one_of(st.lists(st.one_of(st.text(max_size=120), wild), max_size=70), wild))
        else:
            raw[key] = draw(wild)
    return raw


# --------------------------------------------------------------------------- properties


def _check_outcome(raw: Any) -> None:
    try:
        cfg = validate_config(raw)
    except ConfigError as exc:
        assert exc.errors, "a ConfigError names at least one problem"
        for path, message in exc.errors:
            assert isinstance(path, str) and path and isinstance(message, str) and message
        return
    _assert_storable(cfg)


def _assert_storable(cfg: RunConfig) -> None:
    """What validates fits the store: finite, inside the bounds, strict JSON, UTF-8."""
    assert 0 <= cfg.seed <= MAX_INT64 and 1 <= cfg.train.epochs <= MAX_EPOCHS
    assert math.isfinite(cfg.optim.lr) and math.isfinite(cfg.optim.weight_decay)
    for text in (cfg.name, cfg.group, *cfg.tags):
        assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)
    text = json.dumps(cfg.to_dict(), allow_nan=False)
    text.encode("utf-8")  # PostgreSQL's JSONB takes UTF-8 only
    assert validate_config(json.loads(text)) == cfg  # what the store hands back validates the same


@PROFILE
@given(run_configs())
def test_validation_raises_only_config_errors(raw: dict[str, Any]) -> None:
    _check_outcome(raw)


@PROFILE
@given(wild)
def test_a_config_that_is_not_a_mapping_is_a_config_error(raw: Any) -> None:
    _check_outcome(raw)


@PROFILE
@given(run_configs())
def test_load_config_leaves_the_caller_s_mapping_alone(raw: dict[str, Any]) -> None:
    before = repr(raw)
    with contextlib.suppress(ConfigError):
        load_config(raw)
    assert repr(raw) == before


override_keys = st.lists(
    st.one_of(
        st.sampled_from([*_keys(RunConfig), *(k for m in SECTIONS.values() for k in _keys(m))]),
        st.sampled_from(["0", "1", "99", "name", "alpha", "scheduler", "params"]),
        st.text(alphabet=string.printable, max_size=6),
    ),
    min_size=0,
    max_size=4,
).map(".".join)
override_values = st.one_of(
    scalars.map(lambda v: yaml.safe_dump(v, default_flow_style=True).removesuffix("\n...\n").strip()),
    st.text(max_size=30),
    st.sampled_from(["[", "{a: 1", "!!python/object/apply:os.system ['true']", "*x", "&a [*a]", "1e21"]),
)


@PROFILE
@given(
    raw=run_configs(),
    fmt=st.sampled_from(["yaml", "json"]),
    overrides=st.lists(st.tuples(override_keys, override_values).map("=".join), max_size=4),
    plain_sets=st.lists(st.text(max_size=20), max_size=2),
    preset=st.one_of(st.none(), st.sampled_from(sorted(PRESETS)), st.text(max_size=8)),
)
def test_the_bml_train_path_raises_only_config_errors(
    tmp_path_factory: Any,
    raw: dict[str, Any],
    fmt: str,
    overrides: list[str],
    plain_sets: list[str],
    preset: str | None,
) -> None:
    """`bml train FILE --set ... --preset ...`: read_run_config, as the command calls it."""
    folder: Path = tmp_path_factory.mktemp("cfg")
    path = folder / f"run.{fmt}"
    try:
        text = json.dumps(raw) if fmt == "json" else yaml.safe_dump(raw, allow_unicode=True)
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    except (TypeError, ValueError, yaml.YAMLError):  # not representable in that format
        path.write_text("{}")
    try:
        cfg = read_run_config(path, [*overrides, *plain_sets], preset)
    except ConfigError as exc:
        assert exc.errors and all(p and m for p, m in exc.errors)
        return
    _assert_storable(cfg)


@PROFILE
@given(st.binary(max_size=200), st.sampled_from(["yaml", "yml", "json"]))
def test_any_bytes_in_a_config_file_are_a_config_error_or_a_config(
    tmp_path_factory: Any, data: bytes, suffix: str
) -> None:
    path = tmp_path_factory.mktemp("raw") / f"run.{suffix}"
    path.write_bytes(data)
    try:
        cfg = read_run_config(path, [])
    except ConfigError as exc:
        assert exc.errors
        return
    _assert_storable(cfg)
