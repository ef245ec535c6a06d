"""The look Shelfwise's pages share with the Airflow UI they are shown in: its colours, font and light or dark mode.

The pages are ``external_views`` of the Airflow UI, framed by it on the same origin. Their colours are the
Airflow UI's own design tokens (Airflow 3's gray and brand palettes and Chakra UI's semantic tokens for
backgrounds, text, borders and states), as CSS variables with a light and a dark value. :data:`THEME_SCRIPT`
follows the mode the Airflow UI is in: the ``dark``/``light`` class on the framing page, else the mode it stores
(``localStorage["theme"]``), else the operating system's; it switches with the Airflow UI's toggle without a
reload. A page opened on its own follows the stored mode or the system.
"""

from __future__ import annotations

import html

__all__ = ["THEME_CSS", "THEME_SCRIPT", "theme_head"]

#: The design tokens, light then dark, and the shared element styles (type, controls, tables, focus).
THEME_CSS = """
:root {
  color-scheme: light;
  --bg: #fff; --bg-subtle: oklch(0.985 0.004 253); --bg-muted: oklch(0.955 0.006 253);
  --bg-emphasized: oklch(0.915 0.01 253); --panel: #fff;
  --fg: #000; --fg-muted: oklch(0.45 0.055 251); --fg-subtle: oklch(0.75 0.025 252);
  --border: oklch(0.915 0.01 253); --border-emphasized: oklch(0.85 0.016 253);
  --brand: oklch(0.469 0.084 257.657); --brand-hover: oklch(0.399 0.084 257.850); --brand-fg: #fff;
  --brand-subtle: oklch(0.962 0.012 249.460); --focus: oklch(0.575 0.08 257.759);
  --error: #dc2626; --error-bg: #fef2f2; --warning: #ea580c; --warning-bg: #fff7ed;
  --success: #16a34a; --success-bg: #f0fdf4; --escalated: #6941c6;
}
html.dark {
  color-scheme: dark;
  --bg: #000; --bg-subtle: oklch(0.11 0.025 251); --bg-muted: oklch(0.18 0.03 251);
  --bg-emphasized: oklch(0.28 0.035 251); --panel: oklch(0.11 0.025 251);
  --fg: oklch(0.985 0.004 253); --fg-muted: oklch(0.75 0.025 252); --fg-subtle: oklch(0.63 0.042 252);
  --border: oklch(0.28 0.035 251); --border-emphasized: oklch(0.35 0.045 251);
  --brand: oklch(0.575 0.08 257.759); --brand-hover: oklch(0.705 0.066 256.378); --brand-fg: #fff;
  --brand-subtle: oklch(0.259 0.062 265.566); --focus: oklch(0.705 0.066 256.378);
  --error: #f87171; --error-bg: #1f0808; --warning: #fdba74; --warning-bg: #220a04;
  --success: #86efac; --success-bg: #052e16; --escalated: #b692f6;
}
body { font-family: Inter, ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       font-size: 14px; line-height: 1.45; margin: 1rem 1.5rem; background: var(--bg); color: var(--fg); }
h1 { font-size: 1.25rem; font-weight: 600; margin: 0 0 .3rem; }
h2 { font-size: .95rem; font-weight: 600; margin: 0 0 .2rem; }
a { color: var(--brand); } a:hover { color: var(--brand-hover); }
small, .muted { color: var(--fg-muted); }
button { font: inherit; font-size: .8rem; font-weight: 600; color: var(--fg); background: var(--bg);
         border: 1px solid var(--border-emphasized); border-radius: 6px; padding: .22rem .7rem; cursor: pointer; }
button:hover { background: var(--bg-muted); }
button.primary { background: var(--brand); border-color: var(--brand); color: var(--brand-fg); }
button.primary:hover { background: var(--brand-hover); border-color: var(--brand-hover); }
input, select, textarea { font: inherit; font-size: .85rem; color: var(--fg); background: var(--bg);
         border: 1px solid var(--border-emphasized); border-radius: 6px; padding: .18rem .4rem; }
label { color: var(--fg-muted); font-size: .85rem; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
thead th { background: var(--bg-subtle); color: var(--fg-muted); font-weight: 600; font-size: .78rem; }
th, td { border-bottom: 1px solid var(--border); padding: .4rem .45rem; text-align: left; vertical-align: top; }
tbody tr:hover { background: var(--bg-subtle); }
summary { cursor: pointer; color: var(--brand); }
:focus-visible { outline: 2px solid var(--focus); outline-offset: 1px; }
kbd { border: 1px solid var(--border-emphasized); border-radius: 4px; padding: 0 .25rem; background: var(--bg-subtle); }
"""

#: Sets ``html.dark`` from the Airflow UI's mode before the page paints, and follows it when it changes.
THEME_SCRIPT = """
(() => {
  const root = document.documentElement;
  const system = matchMedia("(prefers-color-scheme: dark)");
  const framing = () => { try { return window.parent !== window ? window.parent.document.documentElement : null; }
                          catch (e) { return null; } };
  function mode() {
    const top = framing();
    if (top && top.classList.contains("dark")) return "dark";
    if (top && top.classList.contains("light")) return "light";
    let stored = null;
    try { stored = localStorage.getItem("theme"); } catch (e) {}
    return stored === "dark" || stored === "light" ? stored : (system.matches ? "dark" : "light");
  }
  const apply = () => { root.classList.toggle("dark", mode() === "dark"); };
  apply();
  const top = framing();
  if (top) new MutationObserver(apply).observe(top, {attributes: true, attributeFilter: ["class"]});
  addEventListener("storage", apply);
  system.addEventListener("change", apply);
})();
"""


def theme_head(nonce: str | None = None) -> str:
    """The ``<style>`` and ``<script>`` a page puts first in its ``<head>`` (with the page's CSP nonce)."""
    attr = f' nonce="{html.escape(nonce)}"' if nonce else ""
    return f"<style{attr}>{THEME_CSS}</style><script{attr}>{THEME_SCRIPT}</script>"
