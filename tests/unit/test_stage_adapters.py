"""The stage adapters stay adapters: small, one per task, and the owner functions hold the logic."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from include.stages import nightly

ROOT = Path(__file__).resolve().parents[2]


def _public_functions(module) -> list:
    return [f for name, f in inspect.getmembers(module, inspect.isfunction)
            if f.__module__ == module.__name__ and not name.startswith("_")]


def test_adapters_are_small():
    too_long = {f.__name__: n for f in _public_functions(nightly)
                if (n := len(inspect.getsourcelines(f)[0])) > 25}
    assert too_long == {}, f"stage adapters over 25 lines hold more than glue: {too_long}"


def test_no_sql_outside_include_erp():
    """SQL lives in include/erp; everything else calls it."""
    offenders = []
    for path in (ROOT / "include").rglob("*.py"):
        if "erp" in path.relative_to(ROOT / "include").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "execute" and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str) \
                    and node.args[0].value.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_no_parse_of_the_auth_manager_users_setting():
    """Roles come from the auth manager's user, whatever the auth manager."""
    hits = [str(p.relative_to(ROOT)) for folder in ("include", "plugins") for p in (ROOT / folder).rglob("*.py")
            if "SIMPLE_AUTH_MANAGER_USERS" in p.read_text()]
    assert hits == []
