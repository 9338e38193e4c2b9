"""`bml strategies` and /methods name parameter types as people read them ("int or none",
"choice" with the choices listed), never a raw Python annotation (issue 25)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

import pytest
from pydantic import BeforeValidator
from typer.testing import CliRunner

from bml_cli.main import app
from bml_core.schema import _type_name


def _ident(v: Any) -> Any:
    return v


@pytest.mark.parametrize(
    ("ann", "shown"),
    [
        (int, "int"),
        (Optional[Annotated[int, BeforeValidator(_ident)]], "int or none"),  # noqa: UP045
        (Union[int, float], "int or float"),  # noqa: UP007
        (float | None, "float or none"),
        (list[float], "list of float"),
        (Literal["a", "b"], "choice"),
        (dict[str, int], "mapping"),
    ],
)
def test_type_names_are_readable(ann: Any, shown: str) -> None:
    assert _type_name(ann) == shown


def test_bml_strategies_prints_no_raw_python_types() -> None:
    out = CliRunner().invoke(app, ["strategies"])
    assert out.exit_code == 0
    for raw in ("Optional", "Annotated", "Union", "typing", "BeforeValidator", "<function", "NoneType"):
        assert raw not in out.stdout, raw
    lines = [line.split() for line in out.stdout.splitlines() if line.strip().startswith("end_epoch")]
    assert lines and all(line[1:4] == ["int", "or", "none"] for line in lines)
    # choices are listed, separated by |
    assert any("|" in line for line in out.stdout.splitlines())
