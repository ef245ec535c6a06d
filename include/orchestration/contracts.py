"""Data contracts of the order orchestration extracts, kept apart from the nightly's.

The nightly loads every ``data_contracts/*.yaml`` and expects each of them every night, so the
orchestration contracts live in ``data_contracts/orchestration/``. They reference master data (items,
locations), so they are loaded together with the nightly's contracts and their references checked
against both.
"""

from __future__ import annotations

from pathlib import Path

from include.config import CONTRACTS_DIR
from include.contracts.contract import Contract, load_contracts_with

ORCHESTRATION_CONTRACTS_DIR = CONTRACTS_DIR / "orchestration"
#: Contract ids of the orchestration extracts.
ORCHESTRATION_CONTRACT_IDS = ("open_order_lines", "carrier_rate_card", "node_capabilities", "labour_schedule",
                              "node_on_hand")


def load_orchestration_contracts(directory: str | Path = ORCHESTRATION_CONTRACTS_DIR,
                                 base: str | Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """The nightly's contracts plus the orchestration ones in ``directory``, references checked across both
    (:func:`include.contracts.contract.load_contracts_with`)."""
    return load_contracts_with(directory, base)
