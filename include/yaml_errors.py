"""Errors of YAML files loaded into pydantic models, naming the file, the line and the field.

A data contract and the governance policy are read the same way: the file is composed with its lines,
a key written twice is refused (``yaml.safe_load`` would silently keep the last), and its data is
validated by a strict pydantic model. Each problem pydantic finds is placed in the file by walking its
``loc`` (``("schema", 3, "min")``) down the composed YAML nodes and the model's types together, and
reads, one line each in file order::

    data_contracts/pos_sales.yaml:1: missing required key 'apiVersion'
    data_contracts/pos_sales.yaml:16: schema[3].min: must be a number, got '0'
    include/governance/policy.yaml:12: gate: unknown key 'retries' (allowed: poke_interval_seconds, timeout_hours)

A problem about a key names the mapping that holds it. Validators report their own problems (a
cross-field check) with :func:`problem`, optionally pointing below the model they check (``at``).
Each loader raises its own exception class with these messages.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError
from typing_extensions import is_typeddict

__all__ = ["Loc", "YamlFile", "line_of", "problem", "read_yaml", "validate"]

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


class YamlFile(NamedTuple):
    """A YAML file whose top level is a mapping, with its composed document for the lines."""

    path: Path
    data: dict[str, Any]
    root: yaml.Node


def read_yaml(path: str | Path, error: type[ValueError], what: str) -> YamlFile:
    """Read a YAML file that must be a mapping, with each key written once.

    Args:
        path: the file.
        error: the loader's exception class, raised with the message.
        what: the file's role in the message (``a contract``, ``the policy``).

    Returns:
        The file's data and its composed document.

    Raises:
        error: naming the file (and the line, where there is one) when it cannot be read, is not valid
            YAML, is not a mapping or writes a key twice in one mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot be read: {exc}") from exc
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise error(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    finally:
        loader.dispose()
    if root is None or not isinstance(data, dict):
        raise error(f"{path}:1: {what} must be a mapping, got {_shown(data)}")
    duplicate = _duplicate_key(root)
    if duplicate is not None:
        line, loc, key = duplicate
        raise error(_at(path, line, loc, f"duplicate key {key!r}"))
    return YamlFile(path, data, root)


def validate(model: type[M], file: YamlFile, error: type[ValueError], **context: Any) -> M:
    """Validate a file's data with its model.

    Args:
        model: the strict pydantic model of the whole file.
        file: the file, as :func:`read_yaml` gives it.
        error: the loader's exception class.
        **context: the validation context the model's validators read (none when empty).

    Returns:
        The validated model.

    Raises:
        error: one line ``<file>:<line>: <field>: <problem>`` for every problem, in file order.
    """
    try:
        return model.model_validate(file.data, context=context or None)
    except ValidationError as exc:
        located = sorted((_located(file, model, detail) for detail in exc.errors(include_url=False)),
                         key=lambda item: item[0])
        raise error("\n".join(text for _, text in located)) from exc


def problem(kind: str, message: str, at: Loc = ()) -> PydanticCustomError:
    """A problem found by a validator, for :func:`validate` to place in the file.

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


def line_of(root: yaml.Node, loc: Loc) -> int:
    """Where an entry of a YAML document is.

    Args:
        root: the composed document.
        loc: keys and list indexes down to the entry, as pydantic reports them.

    Returns:
        The 1-based line of the entry (of its key, for a mapping entry), or of the deepest part of ``loc``
        the document has; 1 for the document itself.
    """
    return _walk(root, None, loc).line


def _at(path: Path, line: int, loc: Loc, message: str) -> str:
    field = ""
    for part in loc:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return f"{path}:{line}: {field + ': ' if field else ''}{message}"


def _duplicate_key(root: yaml.Node) -> tuple[int, Loc, str] | None:
    """Line, mapping and name of the first key written twice in one mapping, if any."""
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
    return min(found, key=lambda item: item[0]) if found else None


def _located(file: YamlFile, model: type[BaseModel], detail: dict[str, Any]) -> tuple[int, str]:
    ctx = detail.get("ctx") or {}
    loc: Loc = (*detail["loc"], *ctx.get("at", ()))
    kind = detail["type"]
    if kind == "missing":  # not in the file: the line is the mapping's
        place = _walk(file.root, model, loc[:-1])
        return place.line, _at(file.path, place.line, place.shown, f"missing required key {loc[-1]!r}")
    if kind == "union_tag_not_found":
        place = _walk(file.root, model, loc)
        return place.line, _at(file.path, place.line, place.shown, f"missing required key {_tag_key(ctx)!r}")
    if kind == "union_tag_invalid":
        place = _walk(file.root, model, (*loc, _tag_key(ctx)))
        allowed = ", ".join(sorted(re.findall(r"'([^']*)'", ctx["expected_tags"])))
        message = f"unknown {_tag_key(ctx)} {ctx['tag']!r} (allowed: {allowed})"
        return place.line, _at(file.path, place.line, place.shown, message)
    place = _walk(file.root, model, loc)
    if kind == "extra_forbidden":  # the key's own line, and the mapping that holds it
        allowed = sorted(_fields(place.holder))
        message = f"unknown key {loc[-1]!r}" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        return place.line, _at(file.path, place.line, place.shown[:-1], message)
    return place.line, _at(file.path, place.line, place.shown, _message(kind, detail, place.expected))


def _tag_key(ctx: dict[str, Any]) -> str:
    return ctx["discriminator"].strip("'")  # pydantic quotes the key: "'rule'"


#: What a type error expects, in the words of the YAML file.
_EXPECTED = {
    "float_type": "a number", "int_type": "a whole number", "bool_type": "true or false",
    "string_type": "a string", "tuple_type": "a list", "list_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping", "model_attributes_type": "a mapping", "finite_number": "a finite number",
}


def _message(kind: str, detail: dict[str, Any], expected: Any) -> str:
    ctx = detail.get("ctx") or {}
    if "message" in ctx:
        return detail["msg"]  # a validator's own problem, already complete
    got = _shown(detail.get("input"))
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, got {got}"
    if kind == "literal_error" and get_origin(expected) is Literal:
        options = [str(option) for option in get_args(expected)]
        return f"must be {options[0] if len(options) == 1 else 'one of ' + ', '.join(options)}, got {got}"
    if kind == "greater_than":
        bound = "a positive number" if ctx["gt"] == 0 else f"greater than {_bound(ctx['gt'])}"
        return f"must be {bound}, got {got}"
    if kind == "greater_than_equal":
        return f"must be at least {_bound(ctx['ge'])}, got {got}"
    if kind == "less_than_equal":
        return f"must be at most {_bound(ctx['le'])}, got {got}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "string_too_long":
        count = ctx["max_length"]
        return f"must be at most {count} character{'s' if count != 1 else ''}, got {got}"
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


class _Place(NamedTuple):
    line: int  #: of the deepest part of the loc the document has
    shown: Loc  #: the loc as the file writes it
    expected: Any  #: the type the model expects there, None where the types do not say
    holder: Any  #: the type of the mapping or list the last part is in


def _walk(root: yaml.Node, model: Any, loc: Loc) -> _Place:
    """Where ``loc`` is in the document, and what the model expects there.

    Two kinds of part of a pydantic ``loc`` are not in the file, and are not shown: the tag of a union
    (``("quality", 1, "row_count", "min_rows")``: the model that ``rule: row_count`` chose) and ``[key]``,
    which marks a problem with a mapping's key rather than its value.
    """
    node: yaml.Node | None = root
    line_node, shown = root, []
    expected, holder = model, None
    for part in loc:
        if part == "[key]":
            expected = _bare(get_args(holder)[0]) if get_origin(holder) is dict else None
            continue
        expected = _bare(expected)
        member = _tagged(expected, part)
        if member is not None:
            expected = member
            continue
        holder, expected = expected, _item(expected, part)
        shown.append(part)
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            entry = next(((key, value) for key, value in node.value if key.value == part), None)
            line_node, node = entry if entry is not None else (line_node, None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            line_node = node = node.value[part]
        else:
            node = None
    line = 1 if line_node is root else line_node.start_mark.line + 1
    return _Place(line, tuple(shown), _bare(expected), holder)


def _bare(tp: Any) -> Any:
    """``tp`` without ``Annotated`` metadata and without the ``None`` of an optional value."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif _is_union(tp) and len(get_args(tp)) == 2 and type(None) in get_args(tp):
            tp = next(member for member in get_args(tp) if member is not type(None))
        else:
            return tp


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _tagged(tp: Any, tag: str | int) -> Any:
    """The member of a discriminated union that ``tag`` (the value of its literal field) chose, or None."""
    members = get_args(tp) if _is_union(tp) else ()
    for member in members:
        literals = (get_args(annotation) for annotation in _fields(member).values()
                    if get_origin(annotation) is Literal)
        if any(tag in values for values in literals):
            return member
    return None


def _fields(tp: Any) -> dict[str, Any]:
    """The keys a mapping of type ``tp`` may have, with their types; empty for any other type."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return {field.alias or name: field.annotation for name, field in tp.model_fields.items()}
    if is_typeddict(tp) or (isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")):
        return get_type_hints(tp)
    return {}


def _item(tp: Any, part: str | int) -> Any:
    """The type of entry ``part`` of a value of type ``tp``, or None."""
    if get_origin(tp) is dict:
        return get_args(tp)[1]
    if get_origin(tp) in (tuple, list):
        return get_args(tp)[0]
    return _fields(tp).get(part) if isinstance(part, str) else None
