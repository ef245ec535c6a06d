"""The real public data in ``../shared/data`` (read-only, next to the project; see its README.md).

A test that reads it skips where the data is missing, and fails under CI (``CI=true``), where a skip
would hide that the test never ran.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(path: str | Path) -> Path:
    """The path of a file or folder of the shared data; skips (fails under CI) when it is missing.

    Call it in the test or fixture that reads the data, not at module level: there a CI failure would be a
    collection error that stops the whole run, and a skip would skip tests that do not need the data.

    Args:
        path: relative to ``../shared/data`` (an absolute path is taken as it is).

    Returns:
        The absolute path, which exists.
    """
    full = SHARED_DATA / path
    if full.exists():
        return full
    message = f"shared data missing: {full} (../shared/data relative to the project root)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(message)
