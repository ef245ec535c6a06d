"""What ingesting one source came to: every contract's result, whether an extract blocked, the summary."""

from __future__ import annotations

from typing import Any


def ingest_results(source: str, ds: str, root: str | None = None,
                   contracts: dict | None = None) -> tuple[list, Exception | None]:
    """Ingest and validate every extract of ``source`` for ``ds`` (against ``contracts``, else the nightly's).

    Returns:
        ``(results, blocked)``: one ``ContractResult`` per contract, and the ``ContractViolation`` to
        raise once the results are recorded (None when no extract blocked).
    """
    from include.contracts.validate import ContractViolation
    from include.ingest.pipeline import ingest_source

    try:
        return ingest_source(source, ds, root=root, contracts=contracts), None
    except ContractViolation as exc:
        return exc.all_results, exc


def source_summary(source: str, results: list) -> dict[str, Any]:
    """Rows in, passed and quarantined per contract and in all, with each contract's outcome.

    A contract whose last good partition stood in for its extract is also listed under ``stale_sources``
    (the date used and why), and the summary is ``degraded``.
    """
    stale = {r.contract_id: {"substituted_from": r.substituted_from, "reason": r.reasons[-1]}
             for r in results if r.substituted_from}
    return {
        "source": source,
        "contracts": {r.contract_id: {"outcome": r.outcome, "rows_in": r.rows_in, "rows_passed": r.rows_passed,
                                      "rows_quarantined": r.rows_quarantined} for r in results},
        "rows_in": sum(r.rows_in for r in results),
        "rows_passed": sum(r.rows_passed for r in results),
        "rows_quarantined": sum(r.rows_quarantined for r in results),
        **({"degraded": True, "stale_sources": stale} if stale else {}),
    }
