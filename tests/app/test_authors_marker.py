"""Issue 21: the Launch form and /methods say which value of a method's option is its
authors' (the `authors` mark of the parameter's metadata, bml_core.schema.authors): a
generic marker, `official (authors')`, in the choices, the default and the help."""

from __future__ import annotations

import typing

from sqlalchemy import Engine

from app.form_fields import model_field_specs
from app.views.methods.data import parameter_rows
from bml_core.schema import authors_label, authors_value
from bml_core.strategies import all_specs, get_spec
from bml_core.strategies.mla import MLAParams
from bml_core.strategies.pmr import PMRParams
from tests.helpers.apptest import errors_of, open_page


def test_authors_label_marks_only_the_authors_value() -> None:
    assert authors_label("official", "official") == "official (authors')"
    assert authors_label("paper", "official") == "paper"
    assert authors_label(True, True) == "true (authors')"
    assert authors_label(1, True) == "1"  # 1 == True in Python, but not the same value
    assert authors_label(80, 80) == "80 (authors')"
    assert authors_label("official", None) == "official"


def test_every_mark_is_a_legal_value_of_its_field() -> None:
    marked = 0
    for spec in all_specs():
        for name, info in spec.params.model_fields.items():
            value = authors_value(info)
            if value is None:
                continue
            marked += 1
            spec.params.model_validate({name: value})  # a wrong mark would not validate
            ann = info.annotation
            if typing.get_origin(ann) is typing.Literal:
                assert value in typing.get_args(ann), (spec.name, name)
    assert marked >= 15  # agm, infreg, mla, mmcosine, mmpareto, mslr, mses, pmr, reconboost


def test_form_fields_and_methods_rows_carry_the_mark() -> None:
    form = {f.name: f for f in model_field_specs(PMRParams)}["form"]
    assert form.authors == "switch"
    assert [form.option_label(o) for o in form.options] == ["switch (authors')", "smooth"]
    assert "authors' value: switch" in form.help
    projection = {f.name: f for f in model_field_specs(MLAParams)}["projection"]
    assert projection.default is True and projection.authors is False  # the released code never projects
    assert "authors' value: false" in projection.help
    spec = get_spec("pmr")
    assert spec is not None
    rows = {r["parameter"]: r for r in parameter_rows(spec)}
    assert rows["form"]["type"] == "switch (authors') | smooth"
    assert rows["form"]["default"] == "switch (authors')"
    assert rows["form"]["authors"] == "switch"
    assert rows["alpha"]["authors"] == ""  # unmarked


def test_methods_page_and_launch_form_show_the_authors_value(engine: Engine) -> None:
    at = open_page("methods")
    assert not at.exception and not errors_of(at)
    tables = [df.value for df in at.dataframe if "parameter" in df.value.columns]
    infreg = next(t for t in tables if "preset" in set(t["parameter"]))
    row = infreg[infreg["parameter"] == "preset"].iloc[0]
    assert row["type"] == "official (authors') | paper" and row["authors"] == "official"

    launch = open_page("launch", strategy="infreg")
    assert not launch.exception
    boxes = [b for b in launch.selectbox if "official (authors')" in b.options]
    assert boxes, [b.options for b in launch.selectbox]
    assert boxes[0].options == ["official (authors')", "paper"]
    assert boxes[0].value == "official"  # the config value is unmarked
