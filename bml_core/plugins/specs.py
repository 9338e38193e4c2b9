"""Torch-free specs of the model plug-ins (CONTRACT.md "Plug-ins"): an encoder (one modality's
input -> a feature vector of width `out_dim`) and a fusion head (the dict of features ->
logits, and uni-modal logits). Each has a name, a one-line description, a pydantic parameter
model (`model.encoders.<m>.params`, `model.fusion_params`), the input it accepts and a
pointer to its implementation (`"module:attr"`, relative to the declaring module when it
starts with `.` or `:`), imported only when a model is built."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from bml_core import implref
from bml_core.schema import describe_parameters


class NoParams(BaseModel):
    """A plug-in without parameters of its own."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def params_errors(model: type[BaseModel], values: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    """(field path, message) for each problem of `values` under `model`."""
    try:
        model.model_validate(dict(values))
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                known = ", ".join(model.model_fields) or "none"
                msg = f"unknown parameter; known: {known}"
            out.append((f"{where}.{loc}" if loc else where, msg))
        return out
    return []


@dataclass(frozen=True)
class _PluginSpec:
    name: str
    description: str
    impl: str
    params: type[BaseModel] = NoParams
    listed: bool = True
    source: str = field(default="", compare=False)  # set by discovery
    module: str = field(default="", compare=False)  # the declaring module (found on construction)
    package: str = field(default="", compare=False)  # set by discovery: the distribution of a plug-in

    kind = "plug-in"

    def __post_init__(self) -> None:
        if not self.module:
            object.__setattr__(self, "module", implref.declaring_module(__name__))
        if ":" not in self.impl:
            raise ValueError(f"{self.kind} spec {self.name!r}: impl {self.impl!r} must be 'module:attr'")
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"{self.kind} spec name {self.name!r}: letters, digits, _ and - only")

    def load_impl(self) -> Any:
        return implref.load(self.kind, self.name, self.impl, self.module)

    def parse(self, values: Mapping[str, Any] | None) -> BaseModel:
        return self.params.model_validate(dict(values or {}))

    def parameters(self) -> list[dict[str, Any]]:
        return describe_parameters(self.params)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters(),
            "source": self.source,
            "package": self.package,
            "listed": self.listed,
        }


@dataclass(frozen=True)
class EncoderSpec(_PluginSpec):
    """An encoder. `impl(shape, cfg: EncoderConfig, feature_dim) -> nn.Module` with `out_dim`
    (its own parameters: `spec.parse(cfg.params)`). `ranks`: the per-sample input ranks it
    accepts (1 = [D], 2 = [F,T] or [T,D], 3 = [C,H,W], 4 = [T,C,H,W]); `sequence`: it takes
    `lengths` ([N]) with rank-2 [T, D] inputs and ignores the padding beyond them."""

    ranks: tuple[int, ...] = (1,)
    sequence: bool = False

    kind = "encoder"

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "ranks": list(self.ranks), "sequence": self.sequence}


@dataclass(frozen=True)
class FusionSpec(_PluginSpec):
    """A fusion head. `impl(dims: {m: width}, num_classes, **params) -> FusionHead` (forward
    on the dict of features; `unimodal_logits(features)`). `per_modality_blocks`: its logits
    decompose into per-modality blocks (uni-modal logits with gradient without aux heads)."""

    per_modality_blocks: bool = True
    selected_by: str = "model.fusion"

    kind = "fusion head"

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            "per_modality_blocks": self.per_modality_blocks,
            "selected_by": self.selected_by,
        }
