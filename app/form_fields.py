"""Form fields generated from the pydantic config models: one `FieldSpec` per model field
(widget kind, choices, default, bounds and help taken from the model), and the conversion
of widget values back into config values. Plain Python, no Streamlit: the launch page
renders these specs, the tests check them."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bml_core.schema import authors_label, authors_value

FieldKind = Literal["choice", "int", "float", "text", "bool", "mapping", "list", "section"]

_BOUND_SYMBOLS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("max_length", "at most"))


@dataclass(frozen=True)
class FieldSpec:
    """One form field: `path` is its dotted config path below the model it came from
    (`train.epochs`); `section` fields hold the nested model's own fields in `children`."""

    path: str
    name: str
    label: str
    kind: FieldKind
    default: Any = None
    options: tuple[Any, ...] = ()
    optional: bool = False
    help: str = ""
    bounds: str = ""
    children: tuple[FieldSpec, ...] = field(default_factory=tuple)
    authors: Any = None  # the value the method's authors' code uses (bml_core.schema.authors)

    def option_label(self, value: Any) -> str:
        """A choice as the form shows it: `official (authors')` for the authors' value."""
        return authors_label(value, self.authors)


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(annotation)):
            return args[0], True
    return annotation, False


def _bounds_text(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        for attr, symbol in _BOUND_SYMBOLS:
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value:g}" if isinstance(value, float) else f"{symbol} {value}")
    return ", ".join(parts)


def _label(name: str) -> str:
    return name.replace("_", " ")


def field_spec(name: str, info: FieldInfo, prefix: str = "", label_prefix: str = "") -> FieldSpec:
    """The form field for one pydantic field (nested models become sections, whose fields
    are labelled with the section's name: `scheduler step size`)."""
    path = f"{prefix}.{name}" if prefix else name
    annotation, optional = _strip_optional(info.annotation)
    if typing.get_origin(annotation) is typing.Annotated:  # e.g. `Int | None`: validators inside
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    default = info.get_default(call_default_factory=True)
    bounds = _bounds_text(info)
    marked = authors_value(info)
    mark = f"authors' value: {authors_label(marked, None)}" if marked is not None else ""
    help_text = "; ".join(p for p in (info.description or "", bounds, mark) if p)
    label = label_prefix + _label(name)

    def spec(kind: FieldKind, **extra: Any) -> FieldSpec:
        return FieldSpec(
            path=path,
            name=name,
            label=label,
            kind=kind,
            optional=optional,
            bounds=bounds,
            help=help_text,
            authors=marked,
            **extra,
        )

    if origin is Literal:
        return spec("choice", default=default, options=typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        children = tuple(model_field_specs(annotation, path, label_prefix=f"{label} " if prefix else ""))
        return spec("section", children=children)
    if annotation is bool:
        return spec("bool", default=default)
    if annotation is int:
        return spec("int", default=default)
    if annotation is float:
        return spec("float", default=default)
    if annotation is str:
        return spec("text", default=default)
    if origin is dict:
        return spec("mapping", default=default)
    if origin is list:
        return spec("list", default=default)
    raise TypeError(f"no form field for {path} ({info.annotation!r}): add the type to app/form_fields.py")


def model_field_specs(
    model: type[BaseModel], prefix: str = "", exclude: tuple[str, ...] = (), label_prefix: str = ""
) -> list[FieldSpec]:
    """The form fields of a model, in declaration order, nested models as sections."""
    return [
        field_spec(n, info, prefix, label_prefix)
        for n, info in model.model_fields.items()
        if n not in exclude
    ]


def walk(specs: list[FieldSpec] | tuple[FieldSpec, ...]) -> list[FieldSpec]:
    """Every non-section field, depth first."""
    out: list[FieldSpec] = []
    for spec in specs:
        out.extend(walk(spec.children) if spec.kind == "section" else [spec])
    return out


def widget_value(spec: FieldSpec, config_value: Any) -> Any:
    """What the widget shows for a config value (mappings and lists as text)."""
    if spec.kind == "mapping":
        return "" if not config_value else yaml.safe_dump(config_value, default_flow_style=True).strip()
    if spec.kind == "list":
        return ", ".join(str(v) for v in config_value or [])
    if spec.kind == "text" and config_value is None:
        return ""
    return config_value


def config_value(spec: FieldSpec, widget: Any) -> Any:
    """The config value for what the widget holds; ValueError with the fix for text that
    does not parse (a mapping that is not YAML)."""
    if spec.kind == "mapping":
        text = str(widget or "").strip()
        if not text:
            return {}
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0]
            raise ValueError(f"not valid YAML ({first}); write e.g. {{num_samples: 2000}}") from None
        if parsed is None:
            return {}
        if not isinstance(parsed, dict):
            raise ValueError("must be a mapping of keys to values, e.g. {num_samples: 2000}")
        return parsed
    if spec.kind == "list":
        return [part.strip() for part in str(widget or "").split(",") if part.strip()]
    if spec.kind == "text":
        text = "" if widget is None else str(widget)
        return None if spec.optional and not text.strip() else text
    return widget


def coerce(spec: FieldSpec, value: Any) -> Any:
    """A value of the widget's own type (number inputs refuse an int where a float is kept)."""
    if spec.kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if spec.kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value
