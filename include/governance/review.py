"""The batch review of a run's pending lines: its text for the Required Action, and applying the answer.

A Required Action answer (*Approve all pending*, *Reject all pending*, *I have reviewed the lines*)
decides every pending line the answering user's roles may decide; lines of a tier they may not decide
stay pending for someone who may, and are counted.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from include.governance.policy import Policy
from include.runs import REVIEW_APPROVE_ALL, REVIEW_DONE, REVIEW_OPTIONS, REVIEW_REJECT_ALL

log = logging.getLogger(__name__)


def review_markdown(lines: pd.DataFrame, ds: str, top: int = 10, currency: str = "USD") -> str:
    """Markdown summary of the lines waiting for a planner; empty when none waits.

    It is the body of the run's Required Action in the Airflow UI: counts and value by document type
    and tier, the largest lines with the sentence that says why each exists
    (:func:`include.reporting.line_text.line_story`, else its tier's reasons), and how many involve a demand
    anomaly.

    Args:
        lines: pending lines, largest value first (``include.erp.staging.pending_lines``).
        ds: the run's logical date.
        top: how many of the largest lines to list.
        currency: the policy's currency, for the values.
    """
    from include.reporting.line_text import line_story

    if lines.empty:
        return ""
    lines = lines.assign(value=lines["value"].astype(float))
    by = lines.groupby(["doc_type", "risk_tier"]).agg(lines=("value", "size"), value=("value", "sum"))
    text = [f"**{len(lines)} lines worth {lines['value'].sum():,.2f} {currency}** wait for a planner for {ds}.", "",
            f"| document | tier | lines | value ({currency}) |", "| --- | --- | ---: | ---: |"]
    text += [f"| {d} | {t} | {int(r.lines)} | {r.value:,.2f} |" for (d, t), r in by.iterrows()]
    text += ["", f"Largest {min(top, len(lines))} lines:", "",
             f"| document | tier | qty | value ({currency}) | why |", "| --- | --- | ---: | ---: | --- |"]
    for line in lines.head(top).to_dict("records"):
        why = line_story(line, currency) or "tier reasons: " + (", ".join(line["tier_reasons"] or []) or "none")
        text.append(f"| {line['doc_type']} #{line['line_id']} | {line['risk_tier']} | {float(line['quantity']):g} |"
                    f" {line['value']:,.2f} | {_cell(why)} |")
    anomalous = int(lines["explanation"].map(lambda e: bool((e or {}).get("anomalies"))).sum())
    text += ["", f"{anomalous} of these lines involve a demand anomaly.", "",
             f"*{REVIEW_APPROVE_ALL}* / *{REVIEW_REJECT_ALL}* decide every line you may decide; decide line by "
             f"line in the Shelfwise approvals page, then choose *{REVIEW_DONE}*."]
    return "\n".join(text)


def _cell(text: str) -> str:
    """``text`` as one Markdown table cell: no pipe or line break ends it early."""
    return text.replace("|", "\\|").replace("\n", " ")


def check_choice(choice: str) -> None:
    """Raise ``ValueError`` for an answer that is not one of :data:`include.runs.REVIEW_OPTIONS`."""
    if choice not in REVIEW_OPTIONS:
        raise ValueError(f"unknown review choice {choice!r}; expected one of {REVIEW_OPTIONS}")


def lines_to_decide(pending: pd.DataFrame, roles: set[str], policy: Policy) -> tuple[dict[str, list[int]], int]:
    """Split pending lines into those the roles may decide (by document type) and a count of the rest."""
    allowed: dict[str, list[int]] = {}
    not_allowed = 0
    for r in pending.sort_values("line_id", kind="stable").itertuples():
        if policy.may_decide(roles, r.risk_tier, r.doc_type):
            allowed.setdefault(r.doc_type, []).append(int(r.line_id))
        else:
            not_allowed += 1
    return allowed, not_allowed


def apply_review(conn_factory, dag_id: str, ds: str, *, choice: str, user: str, roles: set[str],
                 policy: Policy) -> dict[str, Any]:
    """Apply a Required Action answer to the run's pending lines, as ``user``.

    Args:
        conn_factory: opens an ERP staging connection (not called when ``choice`` decides nothing).
        dag_id: the workflow whose lines are decided.
        ds: the run's logical date.
        choice: one of :data:`include.runs.REVIEW_OPTIONS`.
        user: who answered.
        roles: that user's Shelfwise roles.
        policy: the governance policy (who decides which tier).

    Returns:
        ``{"choice", "user", "decided", "not_allowed"}``.

    Raises:
        ValueError: for an unknown choice, before anything is touched.
    """
    check_choice(choice)
    decided = not_allowed = 0
    if choice != REVIEW_DONE:
        from include.erp.staging import decide, pending_lines

        with conn_factory() as conn:
            allowed, not_allowed = lines_to_decide(pending_lines(conn, dag_id, ds), roles, policy)
            for doc_type, ids in allowed.items():
                decided += len(decide(conn, doc_type, ids, approve=choice == REVIEW_APPROVE_ALL, user=user,
                                      note=f"Required Action: {choice}")["decided"])
    if not_allowed:
        log.warning("%s may not decide %d pending lines (tier); they stay pending", user, not_allowed)
    return {"choice": choice, "user": user, "decided": decided, "not_allowed": not_allowed}
