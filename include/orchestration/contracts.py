"""Data contracts of the order orchestration extracts, kept apart from the nightly's.

The nightly loads every ``data_contracts/*.yaml`` and expects each of them every night, so the
orchestration contracts live in ``data_contracts/orchestration/``. They reference master data (items,
locations), so they are loaded together with the nightly's contracts and their references checked
against both.
"""

from __future__ import annotations

from pathlib import Path

from include.config import CONTRACTS_DIR
from include.contracts.contract import (
    Contract,
    ContractError,
    check_references,
    load_contract,
    load_contracts,
)

ORCHESTRATION_CONTRACTS_DIR = CONTRACTS_DIR / "orchestration"
#: Contract ids of the orchestration extracts.
ORCHESTRATION_CONTRACT_IDS = ("open_order_lines", "carrier_rate_card", "node_capabilities", "labour_schedule",
                              "node_on_hand")


def load_orchestration_contracts(directory: str | Path = ORCHESTRATION_CONTRACTS_DIR,
                                 base: str | Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """The nightly's contracts plus the orchestration contracts, references checked across both.

    Args:
        directory: folder of the orchestration contracts.
        base: folder of the contracts they may reference (master data).

    Returns:
        Every contract by id; pass it as ``contracts`` to :func:`include.ingest.pipeline.ingest_source`.

    Raises:
        ContractError: for a bad file, an id defined twice, or a reference no contract defines.
    """
    contracts = load_contracts(base)
    extra = [load_contract(p) for p in sorted(Path(directory).glob("*.yaml"))]
    for contract in extra:
        if contract.id in contracts:
            raise ContractError(f"{contract.path}: id {contract.id!r} is already defined in {base}")
        contracts[contract.id] = contract
    check_references(extra, contracts)
    return contracts
