"""User-supplied text (run names, groups, tags, query parameters, error messages that quote
user input) on the dashboard: shown as text, never as Markdown links, images, HTML or
Streamlit directives, so a run named `![i](http://host/t.png)` cannot make visitors'
browsers load an image or offer a link. Only the characters that build those are escaped
(the rest of the text reads and compares exactly as written)."""

from __future__ import annotations

import re
from typing import Any

# Backslash escapes (CommonMark: any ASCII punctuation may be escaped) for what opens
# links, images, autolinks, raw HTML and Streamlit's `:color[...]` directives: [ ] < and the
# escape itself; and the GFM autolink literals `scheme://`, `www.` and `a@b.c`. Escapes alone
# do not stop those: the browser's Markdown (remark-gfm) finds them in the text after the
# escapes are resolved, so an invisible WORD JOINER (U+2060) also goes after `scheme:`,
# after `www` and after the `@` (tests/app/test_app_browser_plain_text.py shows the
# difference in Chromium).
_INLINE = re.compile(r"([\\\[\]<])")
_AUTOLINK = re.compile(r"(?i)(\w)(://)|\b(www)\.")
_EMAIL = re.compile(r"@(?=[-\w]+\.[-\w])")  # GFM's email autolink literal: a@b.c
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_SHOWN = 500
JOINER = "\u2060"  # WORD JOINER: invisible, breaks no line


def plain(text: object, limit: int = MAX_SHOWN) -> str:
    """The text on one line without control characters, at most `limit` characters."""
    s = _CONTROL.sub(" ", str(text))
    return s if len(s) <= limit else s[: limit - 1] + "…"


def md(text: object, limit: int = MAX_SHOWN, *, email_links: bool = False) -> str:
    """`text` made inert for st.markdown / st.write / st.caption / st.error / widget labels:
    no link, image, autolink, HTML or directive can come out of it; no control characters.
    `email_links=True` leaves an e-mail address as Markdown shows it (a mailto: link, text
    that matches exactly): for the signed-in visitor's own address from the identity provider."""
    s = _INLINE.sub(r"\\\1", plain(text, limit))
    s = _AUTOLINK.sub(
        lambda m: f"{m.group(1)}:{JOINER}\\/\\/" if m.group(2) else f"{m.group(3)}{JOINER}\\.", s
    )
    return s if email_links else _EMAIL.sub("@" + JOINER, s)


def md_cells(rows: Any) -> Any:
    """st.table renders string cells as Markdown: the same rows (a DataFrame or a list of
    dicts) with every string cell made inert by `md` (a run or group name such as
    `[g](http://…)` stays text); numbers untouched."""
    if isinstance(rows, list):
        return [{k: md(v, limit=2000) if isinstance(v, str) else v for k, v in r.items()} for r in rows]
    out = rows.copy()
    for col in out.columns:
        out[col] = [md(v, limit=2000) if isinstance(v, str) else v for v in out[col]]
    out.columns = [md(c) if isinstance(c, str) else c for c in out.columns]
    return out
