"""User text is shown as text (issue 15 item 5): names, groups and query parameters never
become Markdown links, images or HTML on the dashboard; a 40-digit run id is a message,
not a traceback. Rendered with markdown-it (CommonMark, raw HTML on) to see what a browser
would get."""

from __future__ import annotations

import random

import markdown_it
import pytest
from sqlalchemy import Engine

from app.text import md, plain
from tests.helpers.apptest import errors_of, open_page
from tests.helpers.stored_runs import add_run

RENDER = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table")
NASTY = [
    "![i](http://host/t.png)",
    "[x](http://evil.example)",
    "<https://evil.example>",
    "<img src=http://host/t.png>",
    "<script>alert(1)</script>",
    "[ref]\n\n[ref]: http://evil.example",
    "\\[x](http://evil.example)",
    "\\\\[x](http://evil.example)",
    ":red[loud] :material/home:",
    "![a](<http://x.y/z.png>)",
]


def _active(html: str) -> bool:
    return any(tag in html for tag in ("<a ", "<img", "<script", "<iframe"))


@pytest.mark.parametrize("text", NASTY)
def test_md_makes_links_images_and_html_inert(text: str) -> None:
    assert not _active(RENDER.render(md(text)))


def test_the_raw_texts_would_be_active() -> None:
    """The cases above matter: rendered as written, they load images and make links."""
    assert sum(_active(RENDER.render(t)) for t in NASTY) >= 7


def test_md_fuzz_never_yields_a_link_or_image() -> None:
    rng = random.Random(0)
    alphabet = list("[]()<>!\\:/ .wxhtp*_`") + ["http://", "www.", "img ", "src="]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20)))
        assert not _active(RENDER.render(md(text))), text


def test_plain_and_md_strip_control_characters() -> None:
    assert plain("a\x1b[31mred\x00\n") == "a [31mred  "
    assert "\x1b" not in md("a\x1b]8;;http://x\x07b")
    assert md("g1 (2 runs) >= 5") == "g1 (2 runs) >= 5"  # ordinary text reads the same


def test_a_run_named_like_an_image_is_text_on_overview_and_runs(engine: Engine) -> None:
    add_run(engine, "![i](http://host/t.png)", "[g](http://evil.example)", steps=5)
    at = open_page()
    assert not at.exception
    lines = [m.value for m in at.markdown if "http" in m.value]
    assert lines, [m.value for m in at.markdown]
    for value in lines:
        assert not _active(RENDER.render(value)), value
    labels = [el.proto.label for el in at.get("page_link") if "evil" in el.proto.label]
    assert labels and all(not _active(RENDER.render(label)) for label in labels)


def test_query_parameters_are_text_in_error_boxes(engine: Engine) -> None:
    at = open_page("compare", group="[x](http://evil.example)")
    assert not at.exception
    errors = errors_of(at)
    assert any("There is no group" in e for e in errors)
    assert all(not _active(RENDER.render(e)) for e in errors)
    at = open_page("live", run="1" * 40)
    assert not at.exception
    assert any("is not a run id" in e for e in errors_of(at))


def test_an_unreachable_store_is_called_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BML_DATABASE_URL", "postgresql+psycopg://bml@127.0.0.1:1/nowhere")
    at = open_page()
    assert any("cannot reach its store" in e and "127.0.0.1:1" in e for e in errors_of(at))
    assert not any("bml db upgrade" in m.value for m in at.markdown)
