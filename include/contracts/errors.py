"""Contract errors that name the file, the line and the field.

A contract is validated by pydantic against the data ``yaml.safe_load`` gives; the error's ``loc``
(``("schema", 3, "min")``) is walked down the composed YAML nodes to find the line it comes from, so
every problem reads ``data_contracts/pos_sales.yaml:14: schema[3].min: should be a valid number, got '5'``.
Validators report their own problems with :func:`problem`, optionally pointing below the model they
check (``at``), e.g. at the primary key entry that names no column.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

Loc = tuple[str | int, ...]


class ContractError(ValueError):
    """A contract file that cannot be used; the message names the file, line and field."""


def problem(kind: str, message: str, at: Loc = ()) -> PydanticCustomError:
    """A problem found by a validator, for :func:`contract_error` to place in the file.

    Args:
        kind: short error type (``pattern``, ``primary_key``...).
        message: the complete message, without file, line or field.
        at: keys and indexes below the model being validated that the problem is about (a model
            validator's own location is the model).

    Returns:
        The error to raise from the validator.
    """
    # The message goes through the context: pydantic would read braces in it (a regex) as placeholders.
    return PydanticCustomError(kind, "{message}", {"message": message, "at": at})


def contract_error(path: str | Path, root: yaml.Node, error: ValidationError) -> ContractError:
    """One :class:`ContractError` for every problem pydantic found, one line each, in file order.

    Args:
        path: the contract file.
        root: the file's composed YAML document, for the lines.
        error: what validating the file's data raised.

    Returns:
        The error to raise; its first line is the file's first problem.
    """
    located = sorted((_located(path, root, detail) for detail in error.errors(include_url=False)),
                     key=lambda item: item[0])
    return ContractError("\n".join(text for _, text in located))


def duplicate_key(path: str | Path, root: yaml.Node) -> ContractError | None:
    """The first key written twice in one mapping, which ``yaml.safe_load`` would silently take the last of.

    Args:
        path: the contract file.
        root: its composed YAML document.

    Returns:
        The error naming the second occurrence, or None when every key is written once.
    """
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    visited: set[int] = set()
    found: list[tuple[int, Loc, str]] = []
    while stack:
        node, loc = stack.pop()
        if id(node) in visited:  # an alias: the same node again
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        found.append((key.start_mark.line + 1, loc, key.value))
                    seen.add(key.value)
                stack.append((value, (*loc, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*loc, index)) for index, item in enumerate(node.value))
    if not found:
        return None
    line, loc, key = min(found, key=lambda item: item[0])
    text = _field_text(loc)
    return ContractError(f"{path}:{line}: {text + ': ' if text else ''}duplicate key {key!r}")


def line_of(root: yaml.Node, loc: Loc) -> int:
    """Where an entry of a YAML document is.

    Args:
        root: the composed document.
        loc: keys and list indexes down to the entry, as pydantic reports them.

    Returns:
        The 1-based line of the entry (of its key, for a mapping entry), or of the deepest part of ``loc``
        the document has; 1 for the document itself.
    """
    return _walk(root, loc)[0]


def _located(path: str | Path, root: yaml.Node, detail: dict[str, Any]) -> tuple[int, str]:
    ctx = detail.get("ctx") or {}
    loc: Loc = (*detail["loc"], *ctx.get("at", ()))
    kind = detail["type"]
    # Problems about a key name the mapping that holds it: the field shown is the parent.
    key_problem = kind in ("missing", "extra_forbidden", "unknown_key")
    if kind == "missing":
        message = f"missing required key {loc[-1]!r}"
    elif kind == "union_tag_not_found":
        message = f"missing required key {_discriminator(ctx)!r}"
    elif kind == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}"
    elif kind == "union_tag_invalid":
        loc = (*loc, _discriminator(ctx))
        allowed = ", ".join(sorted(re.findall(r"'([^']*)'", ctx["expected_tags"])))
        message = f"unknown {loc[-1]} {ctx['tag']!r} (allowed: {allowed})"
    else:
        message = _message(kind, detail)
    # A missing key is not in the file: its line is the mapping's. An unknown key's is its own.
    line, shown = _walk(root, loc[:-1] if kind == "missing" else loc)
    if kind == "missing":
        shown = (*shown, loc[-1])
    text = _field_text(shown[:-1] if key_problem else shown)
    return line, f"{path}:{line}: {text + ': ' if text else ''}{message}"


def _discriminator(ctx: dict[str, Any]) -> str:
    return ctx["discriminator"].strip("'")  # pydantic quotes the key: "'rule'"


#: What a type error expects, in the words of the YAML file (the policy loader words them the same way).
_EXPECTED = {
    "float_type": "a number", "int_type": "a whole number", "bool_type": "true or false", "string_type": "a string",
    "tuple_type": "a list", "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "finite_number": "a finite number",
}


def _message(kind: str, detail: dict[str, Any]) -> str:
    ctx = detail.get("ctx") or {}
    if "message" in ctx:
        return detail["msg"]  # a validator's own problem, already complete
    got = _shown(detail.get("input"))
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, got {got}"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", ctx["expected"])
        return f"must be {options[0] if len(options) == 1 else 'one of ' + ', '.join(options)}, got {got}"
    if kind == "greater_than_equal":
        return f"must be at least {_bound(ctx['ge'])}, got {got}"
    if kind == "less_than_equal":
        return f"must be at most {_bound(ctx['le'])}, got {got}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} character{'s' if ctx['max_length'] != 1 else ''}, got {got}"
    return f"{detail['msg']}, got {got}"


def _bound(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _field_text(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _walk(root: yaml.Node, loc: Loc) -> tuple[int, Loc]:
    """Line of ``loc`` in the document, and ``loc`` without the tags of discriminated unions.

    A tag (``("quality", 1, "row_count", "min_rows")``) names the model pydantic chose for a mapping: it is
    not a key of the file but the value of one (``rule: row_count``), so it is skipped.
    """
    node, line_node, shown = root, root, []
    for part in loc:
        if node is None:
            shown.append(part)
            continue
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            pairs = {key.value: (key, value) for key, value in node.value if isinstance(key, yaml.ScalarNode)}
            if part in pairs:
                line_node, node = pairs[part]
            elif any(isinstance(value, yaml.ScalarNode) and value.value == part for _, value in pairs.values()):
                continue
            else:
                node = None
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            line_node = node = node.value[part]
        else:
            node = None
        shown.append(part)
    line = 1 if line_node is root else line_node.start_mark.line + 1
    return line, tuple(shown)
