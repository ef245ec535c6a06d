"""Data contract of the returns system's extract, kept apart from the nightly's.

The nightly loads every ``data_contracts/*.yaml`` and expects each of them every night (its own
``returns.yaml`` feeds the return-spike report), so the returns-routing contract lives in
``data_contracts/returns/``. It references master data (items, locations), so it is loaded together with
the nightly's contracts and its references checked against both.
"""

from __future__ import annotations

from pathlib import Path

from include.config import CONTRACTS_DIR
from include.contracts.contract import Contract, load_contracts_with

RETURNS_CONTRACTS_DIR = CONTRACTS_DIR / "returns"
#: Contract ids of the returns-routing extracts.
RETURNS_CONTRACT_IDS = ("returns_detail",)


def load_returns_contracts(directory: str | Path = RETURNS_CONTRACTS_DIR,
                           base: str | Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """The nightly's contracts plus the returns ones in ``directory``, references checked across both
    (:func:`include.contracts.contract.load_contracts_with`)."""
    return load_contracts_with(directory, base)
