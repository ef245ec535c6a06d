"""The pages' shared look: every colour a page uses has a light and a dark value, and both pages carry the theme."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from include.reporting.dashboard_page import render_page
from include.reporting.theme import THEME_CSS, THEME_SCRIPT, theme_head


def _defined(block: str) -> set[str]:
    return set(re.findall(r"(--[a-z-]+)\s*:", block))


def _blocks() -> tuple[str, str]:
    light = re.search(r":root \{(.*?)\}", THEME_CSS, re.S).group(1)
    dark = re.search(r"html\.dark \{(.*?)\}", THEME_CSS, re.S).group(1)
    return light, dark


def test_every_token_has_a_light_and_a_dark_value():
    light, dark = _blocks()
    assert _defined(light) == _defined(dark)
    assert {"--bg", "--fg", "--border", "--brand", "--error", "--success", "--warning"} <= _defined(light)


def test_every_colour_the_pages_use_is_a_token_of_the_theme():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))
    import shelfwise_approvals  # plugins/ is Airflow's plugins folder, not a package

    tokens = _defined(_blocks()[0])
    page = render_page(pd.DataFrame(), None, {}, catalogue=[], segment="all", segments=["all"], nonce="n",
                       title="t", links={})
    for css in (THEME_CSS, shelfwise_approvals._PAGE, page):
        used = set(re.findall(r"var\((--[a-z-]+)\)", css))
        assert used and used <= tokens, used - tokens


def test_the_head_carries_the_nonce_and_follows_the_airflow_ui_mode():
    head = theme_head('a"b')
    assert head.startswith('<style nonce="a&quot;b">') and '<script nonce="a&quot;b">' in head
    # The framing Airflow UI's class first, then the mode it stores, then the system's.
    assert THEME_SCRIPT.index("classList.contains(\"dark\")") < THEME_SCRIPT.index('localStorage.getItem("theme")')
    assert "MutationObserver" in THEME_SCRIPT and "prefers-color-scheme: dark" in THEME_SCRIPT
    assert "<style>" in theme_head(None) and "nonce" not in theme_head(None)
