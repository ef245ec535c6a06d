"""Data contracts of the finance review's extracts, kept apart from the nightly's.

The nightly loads every ``data_contracts/*.yaml`` and expects each of them every night, so the contracts of
the extracts only the finance review reads (shipment costs, fulfilment substitutions, shrink adjustments)
live in ``data_contracts/finance/``. They reference master data (items, locations), so they are loaded
together with the nightly's contracts and their references checked against both.
"""

from __future__ import annotations

from pathlib import Path

from include.config import CONTRACTS_DIR
from include.contracts.contract import Contract, load_contracts_with

FINANCE_CONTRACTS_DIR = CONTRACTS_DIR / "finance"
#: Contract ids of the finance review's extracts.
FINANCE_CONTRACT_IDS = ("fulfilment_substitutions", "shipment_costs", "shrink_adjustments")


def load_finance_contracts(directory: str | Path = FINANCE_CONTRACTS_DIR,
                           base: str | Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """The nightly's contracts plus the finance ones in ``directory``, references checked across both
    (:func:`include.contracts.contract.load_contracts_with`)."""
    return load_contracts_with(directory, base)
