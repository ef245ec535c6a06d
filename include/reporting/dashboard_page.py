"""The executive dashboard's HTML page: a card per KPI (latest value against target, chart across nights),
the segment selector, the legend and the decisions panel. Built by :func:`include.reporting.dashboard.render_dashboard`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from include.reporting.dashboard_svg import Axis, decisions_chart, esc, kpi_chart, night_axis
from include.reporting.theme import theme_head


def _axis(rows: pd.DataFrame) -> Axis:
    days = pd.to_datetime(rows["ds"]).to_numpy("datetime64[D]") if len(rows) else np.zeros(0, "datetime64[D]")
    degraded = rows["degraded"].to_numpy(bool) if "degraded" in rows else np.zeros(len(rows), bool)
    stale = rows["stale_sources"].tolist() if "stale_sources" in rows else [{}] * len(rows)
    notes = [f"{d}: degraded" + (" (" + ", ".join(f"{c} of {s}" for c, s in sorted((n or {}).items())) + ")"
                                 if n else "") for d, n in zip(days, stale, strict=True)]
    return night_axis(days, degraded, notes)


def _card(kpi: Any, y: np.ndarray, axis: Axis, target: float | None) -> str:
    """One KPI: latest value, its night and target, coloured by whether it meets the target, and its chart."""
    valid = np.flatnonzero(np.isfinite(y))
    latest = float(y[valid[-1]]) if len(valid) else None
    state = "neutral"
    if latest is not None and target is not None:
        state = "good" if (latest >= target if kpi.higher_is_better else latest <= target) else "bad"
    when = f" on {esc(axis.nights[valid[-1]])}" if len(valid) else ""
    aim = (f"target {esc(kpi.fmt(target))}, " if target is not None else "no target, ") + \
        ("higher is better" if kpi.higher_is_better else "lower is better")
    return (f'<section class="kpi {state}" data-kpi="{esc(kpi.key)}"><h2>{esc(kpi.label)}</h2>'
            f'<p class="latest"><strong>{esc(kpi.fmt(latest))}</strong>{when}<br><small>{aim}</small></p>'
            f"{kpi_chart(axis, y, target=target, fmt=kpi.fmt, label=kpi.label)}</section>")


def _decisions(effect: pd.DataFrame | None, rows: pd.DataFrame) -> str:
    """The panel of what became of the staged lines: totals over the period and a chart per night."""
    if effect is None or effect.empty:
        return '<section class="decisions"><h2>Decisions</h2><p>No line was staged on these nights.</p></section>'
    effect = effect.sort_values("ds", kind="stable")
    degraded = set(pd.to_datetime(rows.loc[rows["degraded"].astype(bool), "ds"])) if "degraded" in rows else set()
    days = pd.to_datetime(effect["ds"])
    axis = night_axis(days.to_numpy("datetime64[D]"), days.isin(degraded).to_numpy(),
                      [f"{d.date()}: degraded" for d in days])
    total = {c: float(effect[c].sum()) for c in effect.columns if c != "ds"}
    decided = total["approved"] + total["rejected"] + total["expired"]
    rate = f"{total['approved'] / decided:.1%}" if decided else "n/a"
    cells = [("approved", f"{total['approved']:,.0f}", f"of which auto-approved {total['auto_approved']:,.0f}"),
             ("rejected", f"{total['rejected']:,.0f}", ""), ("expired", f"{total['expired']:,.0f}", "never released"),
             ("pending", f"{total['pending']:,.0f}", "still waiting"), ("approval rate", rate, "of decided lines"),
             ("value released", f"{total['value_released']:,.2f}", f"{total['released']:,.0f} lines")]
    table = "".join(f'<tr><th>{esc(n)}</th><td class="num">{esc(v)}</td><td>{esc(w)}</td></tr>' for n, v, w in cells)
    chart = decisions_chart(axis, {c: effect[c].to_numpy(float) for c in ("approved", "rejected", "expired")})
    return (f'<section class="decisions"><h2>Decisions: what became of the proposals</h2>'
            f"<table>{table}</table>{chart}"
            '<p class="legend"><span class="sw approved"></span> approved <span class="sw rejected"></span> rejected '
            '<span class="sw expired"></span> expired, lines per night (all workflows, whole business)</p></section>')


def render_page(rows: pd.DataFrame, effect: pd.DataFrame | None, targets: Mapping[str, float], *,
                catalogue: Sequence[Any], segment: str, segments: Sequence[str], nonce: str | None, title: str,
                links: Mapping[str, str], query: Mapping[str, str] | None = None) -> str:
    """The complete page of one segment's rows (oldest night first)."""
    axis = _axis(rows)
    cards = "".join(_card(k, rows[k.key].to_numpy(float) if k.key in rows else np.full(len(rows), math.nan),
                          axis, targets.get(k.key)) for k in catalogue)
    options = "".join(f'<option value="{esc(s)}"{" selected" if s == segment else ""}>{esc(s)}</option>'
                      for s in dict.fromkeys([*segments, segment]))
    hidden = "".join(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
                     for k, v in (query or {}).items() if k != "segment" and v)
    notice = "" if len(rows) else f'<p class="notice">No night of segment {esc(segment)} in this period.</p>'
    degraded = int(rows["degraded"].sum()) if "degraded" in rows else 0
    span = f"{len(rows)} night(s), {esc(axis.first)} to {esc(axis.last)}, {degraded} degraded" if len(rows) else ""
    foot = " ".join(f'<a href="{esc(url)}">{esc(label)}</a>' for label, url in links.items())
    attr = f' nonce="{esc(nonce)}"' if nonce else ""
    return _PAGE.format(theme=theme_head(nonce), title=esc(title), nonce=attr, span=span, notice=notice, options=options, hidden=hidden,
                        cards=cards, decisions=_decisions(effect, rows), foot=foot, segment=esc(segment))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shelfwise executive dashboard</title>
{theme}
<style{nonce}>
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(310px, 1fr)); gap: .8rem; }}
section.kpi {{ background: var(--panel); border: 1px solid var(--border); border-left: 4px solid var(--fg-subtle);
              border-radius: 6px; padding: .45rem .6rem; }}
section.kpi.good {{ border-left-color: var(--success); }} section.kpi.bad {{ border-left-color: var(--error); }}
section.kpi.good strong {{ color: var(--success); }} section.kpi.bad strong {{ color: var(--error); }}
p.latest {{ margin: 0 0 .2rem; }}
svg.chart {{ display: block; }} .series {{ fill: none; stroke: var(--brand); stroke-width: 1.4; }}
.dot, .latest {{ fill: var(--brand); }} .target {{ stroke: var(--fg-muted); stroke-dasharray: 4 3; stroke-width: 1; }}
rect.degraded, .sw.degraded {{ fill: var(--warning-bg); background: var(--warning-bg); }}
.tick, .none {{ font-size: 8px; fill: var(--fg-subtle); }}
rect.approved, .sw.approved {{ fill: var(--success); background: var(--success); }}
rect.rejected, .sw.rejected {{ fill: var(--error); background: var(--error); }}
rect.expired, .sw.expired {{ fill: var(--fg-subtle); background: var(--fg-subtle); }}
.sw {{ display: inline-block; width: .9rem; height: .7rem; vertical-align: middle; }}
.sw.line {{ border-top: 2px solid var(--brand); height: 0; }} .sw.target {{ border-top: 2px dashed var(--fg-muted); height: 0; }}
section.decisions {{ margin-top: 1.2rem; }} section.decisions table {{ width: auto; }}
section.decisions th, section.decisions td {{ padding: .15rem .6rem .15rem 0; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }} .notice {{ color: var(--error); }}
.legend {{ font-size: .85rem; color: var(--fg-muted); }}
</style></head>
<body>
<h1>Executive dashboard: {title}</h1>
<p>{span}</p>
<form method="get">{hidden}<label>segment <select name="segment">{options}</select></label>
<button type="submit">Show</button></form>
<p class="legend"><span class="sw line"></span> KPI per night <span class="sw target"></span> target
<span class="sw degraded"></span> degraded night (a late extract was replaced by its last good partition);
a break in the line is a night that did not record the KPI. The value is the newest recorded; green meets
the target, red misses it.</p>
{notice}
<div class="grid" data-segment="{segment}">{cards}</div>
{decisions}
<p><small>{foot}</small></p>
</body></html>
"""
