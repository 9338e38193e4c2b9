"""Page-wide layout rules that keep every page usable from 800 px to 1400 px wide (issue
14): header metrics and button or link labels wrap instead of being cut with "…"; the
metric values shrink a little on narrow windows. Applied once per script run by
app/main.py (a style-only `st.html` takes no room on the page)."""

from __future__ import annotations

import streamlit as st

LAYOUT_CSS = """
<style>
/* metrics: wrap long labels and values instead of cutting them with an ellipsis */
[data-testid="stMetric"] *, [data-testid="stMetricLabel"] *, [data-testid="stMetricValue"] *,
[data-testid="stMetricValue"], [data-testid="stMetricDelta"] * {
  white-space: normal !important;
  overflow: visible !important;
  text-overflow: clip !important;
  overflow-wrap: anywhere;
}
[data-testid="stMetricValue"] { font-size: clamp(1.15rem, 2.1vw, 2.1rem) !important; line-height: 1.2; }
/* buttons and page links: the whole label, on two lines if need be */
[data-testid="stBaseButton-secondary"] *, [data-testid="stBaseButton-primary"] *,
[data-testid="stBaseButton-tertiary"] *, [data-testid="stPageLink"] * {
  white-space: normal !important;
  overflow: visible !important;
  text-overflow: clip !important;
}
[data-testid="stBaseButton-secondary"], [data-testid="stBaseButton-primary"] { height: auto; min-height: 2.5rem; }
</style>
"""


narrow_window_px = 1024

NARROW_SIDEBAR_JS = """
export default function (component) {
  const limit = (component.data && component.data.max_width_px) || 0;
  if (window.innerWidth > limit || window.sessionStorage.getItem('bmlSidebarAuto')) return;
  for (let i = 0; i < window.localStorage.length; i++) {
    if ((window.localStorage.key(i) || '').startsWith('stSidebarCollapsed-')) return;  // the user chose
  }
  const collapse = () => {
    const sidebar = document.querySelector('[data-testid="stSidebar"]');
    const button = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
    if (!sidebar || !button) return false;
    if (sidebar.getBoundingClientRect().right > 8) button.click();
    window.sessionStorage.setItem('bmlSidebarAuto', '1');
    return true;
  };
  if (!collapse()) {
    let tries = 0;
    const timer = window.setInterval(() => { if (collapse() || ++tries > 40) window.clearInterval(timer); }, 50);
  }
}
"""

_narrow_sidebar = st.components.v2.component("bml_narrow_sidebar", js=NARROW_SIDEBAR_JS, isolate_styles=False)


def apply() -> None:
    st.html(LAYOUT_CSS)
    with st.sidebar:
        _narrow_sidebar(data={"max_width_px": narrow_window_px}, key="bml-narrow-sidebar")
