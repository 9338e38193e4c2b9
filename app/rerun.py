"""Rerun one named fragment from another fragment's body (the Live page's change check
reruns its charts' fragment). Streamlit's `st.rerun("<key>")` does this only from a widget
callback; from a body it refuses, because the request preempts the run in progress, which
is what a check that draws nothing wants. So the same request `st.rerun` builds is queued
here through Streamlit's script-run context; where that context does not have the shape of
Streamlit 1.67, the whole page reruns instead (`st.rerun()`, public: slower, same result)."""

from __future__ import annotations

from typing import Any

import streamlit as st

_internals: tuple[Any, Any] | None
try:  # Streamlit 1.67's layout; another release may move them: then the fallback below
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    _internals = (RerunData, get_script_run_ctx)
except ImportError:
    _internals = None


def rerun_fragment(key: str) -> None:
    """Queue a rerun of the fragment registered as `st.fragment(key=key)`; it starts at the
    caller's next Streamlit call or when the calling fragment returns (call it last: never
    `st.stop()` after it, which would replace the request with a stop)."""
    if _internals is None:
        st.rerun()
        return
    RerunData, get_script_run_ctx = _internals  # noqa: N806
    ctx = get_script_run_ctx()
    queued = False
    try:
        if ctx is not None and ctx.script_requests is not None:
            queued = ctx.script_requests.request_rerun(
                RerunData(
                    query_string=ctx.query_string,
                    page_script_hash=ctx.page_script_hash,
                    fragment_id_queue=ctx.fragment_storage.resolve_target(key),
                    is_fragment_scoped_rerun=True,  # preempts the check that asked for it
                    cached_message_hashes=ctx.cached_message_hashes,
                    context_info=ctx.context_info,
                )
            )
    except Exception:  # another Streamlit's internals: fall back to the public call
        queued = False
    if not queued:
        st.rerun()
