"""Data contracts of the procurement extracts (the supplier catalogue), kept apart from the nightly's.

The nightly loads every ``data_contracts/*.yaml`` and expects each of them every night, so the
procurement contracts live in ``data_contracts/procurement/``. They reference master data (suppliers,
items), so they are loaded together with the nightly's contracts and their references checked against both.
"""

from __future__ import annotations

from pathlib import Path

from include.config import CONTRACTS_DIR
from include.contracts.contract import Contract, load_contracts_with

__all__ = ["PROCUREMENT_CONTRACTS_DIR", "PROCUREMENT_CONTRACT_IDS", "load_procurement_contracts"]

PROCUREMENT_CONTRACTS_DIR = CONTRACTS_DIR / "procurement"
#: Contract ids of the procurement extracts.
PROCUREMENT_CONTRACT_IDS = ("supplier_catalogue",)


def load_procurement_contracts(directory: str | Path = PROCUREMENT_CONTRACTS_DIR,
                               base: str | Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """The nightly's contracts plus the procurement ones in ``directory``, references checked across both
    (:func:`include.contracts.contract.load_contracts_with`)."""
    return load_contracts_with(directory, base)
