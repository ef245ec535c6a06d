"""The frames of a parsed extract, and the Arrow-backed column helpers parsing and validation share.

:class:`ParsedExtract` is what :mod:`include.ingest.parse` hands to :mod:`include.contracts.validate`: the
typed rows with their lineage, the rows as delivered, and what parsing found wrong. The helpers work on
text columns made of Arrow chunks without copying them row by row: a value repeated over many rows is
built from shared blocks (:func:`repeated_strings`), recognised again (:func:`constant_chunks`), and a
few rows are taken chunk by chunk (:func:`take_rows`).

Nothing here imports :mod:`include.ingest`: ingest depends on contracts, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

LINEAGE_COLUMNS = ["_ds", "_source_file", "_source_line"]
#: The rule of a CSV line with the wrong number of fields.
FIELDS_RULE = "parse:fields"
#: Text columns as Arrow reads them (``string[pyarrow]``).
ARROW_STRING = pd.StringDtype("pyarrow")
#: Rows per shared block of a repeated lineage value (see :func:`repeated_strings`).
_REPEAT_BLOCK = 16_384


@dataclass
class ParsedExtract:
    """A typed extract plus what parsing found wrong.

    Attributes:
        frame: typed columns in contract order, plus lineage columns ``_ds``, ``_source_file``,
            ``_source_line`` (1-based line in the file; for CSV the header is line 1).
        raw: the same rows as delivered (strings), for quarantine.
        type_errors: per contract column, a boolean mask of rows whose value did not parse.
        structure_errors: per row index, the reason its line is broken (a CSV line with the wrong number of
            fields, a JSON line that is not one object).
        structure_rule: the rule those rows break (``parse:fields`` for CSV, ``parse:record`` for JSON lines).
        missing_columns: contract columns absent from the file.
        extra_columns: file columns the contract does not know.
        retyped_columns: contract columns delivered with another type, with what was found.
        type_counts: per typed contract column, ``(bad, present, first_bad)``: how many values did not
            parse, how many were delivered, and the first that did not (None if all did). What the retyped
            decision weighs; a load parsing a history in parts adds them up. Not kept by :meth:`take`.
    """

    frame: pd.DataFrame
    raw: pd.DataFrame  # a property below: stored compactly, materialised on access
    type_errors: dict[str, np.ndarray] = field(default_factory=dict)
    structure_errors: dict[int, str] = field(default_factory=dict)
    structure_rule: str = FIELDS_RULE
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    retyped_columns: dict[str, str] = field(default_factory=dict)
    column_types: dict[str, str] = field(default_factory=dict)
    type_counts: dict[str, tuple[int, int, str | None]] = field(default_factory=dict)

    @property
    def row_breaches(self) -> dict[int, list[tuple[str, str]]]:
        """Parsing breaches per row index as ``(rule, reason)``; built on demand (slow on big files)."""
        out: dict[int, list[tuple[str, str]]] = {}
        for idx, reason in self.structure_errors.items():
            out.setdefault(idx, []).append((self.structure_rule, reason))
        for name, mask in self.type_errors.items():
            for idx, reason in zip(np.flatnonzero(mask).tolist(), self.type_reasons(name, mask), strict=True):
                out.setdefault(idx, []).append((f"type:{name}", reason))
        return {k: out[k] for k in sorted(out)}

    def type_reasons(self, name: str, mask: np.ndarray) -> list[str]:
        """Reasons for the rows of ``mask`` whose ``name`` value did not parse, with line and column.

        Args:
            name: the contract column.
            mask: the rows whose value did not parse.

        Returns:
            One reason per row of ``mask``, in row order.
        """
        rows = np.flatnonzero(mask)
        values = take_rows(self._raw_store[name], rows).astype(object).tolist()
        lines = self.frame["_source_line"].to_numpy()[rows].tolist()
        position = list(self._raw_store.columns).index(name) + 1
        kind = self.column_types.get(name, "value")
        return [f"{name}={str(v)[:80]!r} is not a valid {kind} (line {line}, column {position})"
                for v, line in zip(values, lines, strict=True)]

    @property
    def raw_columns(self) -> list[str]:
        """Columns of :attr:`raw`, in file order, without materialising it."""
        return [str(c) for c in self._raw_store.columns]

    def raw_rows(self, rows: np.ndarray) -> pd.DataFrame:
        """The delivered strings of some rows (``string`` columns, fresh index): what quarantine keeps.

        Args:
            rows: row positions, in increasing order.

        Returns:
            The rows as delivered.
        """
        store = self._raw_store
        return pd.DataFrame({c: take_rows(store[c], rows).astype("string") for c in store.columns})

    def take(self, rows: np.ndarray) -> ParsedExtract:
        """The same extract restricted to ``rows`` (positions, in order), with breaches renumbered.

        Args:
            rows: row positions to keep.

        Returns:
            A new parsed extract.
        """
        position = {int(old): new for new, old in enumerate(rows)}
        return ParsedExtract(
            frame=self.frame.iloc[rows].reset_index(drop=True),
            raw=self._raw_store.iloc[rows].reset_index(drop=True),
            type_errors={k: v[rows] for k, v in self.type_errors.items() if v[rows].any()},
            structure_errors={position[k]: v for k, v in self.structure_errors.items() if k in position},
            structure_rule=self.structure_rule,
            missing_columns=self.missing_columns, extra_columns=self.extra_columns,
            retyped_columns=self.retyped_columns, column_types=self.column_types,
        )


def _get_raw(self: ParsedExtract) -> pd.DataFrame:
    store = self._raw_store
    encoded = [c for c in store.columns if isinstance(store[c].dtype, pd.CategoricalDtype)]
    return store.astype({c: ARROW_STRING for c in encoded}) if encoded else store


def _set_raw(self: ParsedExtract, value: pd.DataFrame) -> None:
    self._raw_store = value


# The delivered rows are kept compactly (dictionary-encoded columns as categoricals) and given back as
# strings: ``parsed.raw`` reads as before, without a second copy of every value alive during validation.
ParsedExtract.raw = property(_get_raw, _set_raw, doc="The rows as delivered (strings), for quarantine.")


def repeated_strings(values: list[str | None], counts: list[int], dtype=None) -> pd.Series:
    """A text column holding ``values[i]`` on ``counts[i]`` consecutive rows, built from shared blocks.

    Every chunk of the column is a view of one block of repeats of its value (None: nulls), so a file name
    stamped on millions of rows, or an optional column left empty, costs a few hundred kilobytes instead of
    a copy of the value (or an offset) per row.

    Args:
        values: the value of each run (None: nulls).
        counts: the length of each run.
        dtype: the column's pandas dtype; defaults to ``str``.

    Returns:
        The column, with a fresh index.
    """
    chunks, blocks = [], {}
    for value, count in zip(values, counts, strict=True):
        if value not in blocks:
            blocks[value] = pa.array([value] * min(count, _REPEAT_BLOCK), pa.large_string())
        block = blocks[value]
        full, rest = divmod(count, len(block)) if len(block) else (0, 0)
        chunks += [block] * full
        if rest:
            chunks.append(block.slice(0, rest))
    array = pa.chunked_array(chunks, pa.large_string())
    return pd.Series(pd.array(array, dtype=dtype or pd.StringDtype("pyarrow", na_value=np.nan)))


def constant_chunks(values: pd.Series) -> tuple[list[str | None], np.ndarray] | None:
    """Value and length of each chunk of an Arrow text column whose chunks each hold one value (or nulls).

    That is the shape :func:`repeated_strings` builds.

    Args:
        values: one column.

    Returns:
        ``(values, lengths)`` of the chunks, or None for any other column (without looking at a
        single-chunk column's values unless it is all null).
    """
    arrow = getattr(values.array, "_pa_array", None)
    if arrow is None or not pa.types.is_large_string(arrow.type) or not len(arrow):
        return None
    if arrow.num_chunks == 1 and arrow.null_count != len(arrow):
        return None
    out, lengths = [], []
    for chunk in arrow.chunks:
        if not len(chunk):
            continue
        if chunk.null_count == len(chunk):
            out.append(None)
        elif chunk.null_count == 0 and pc.all(pc.equal(chunk, chunk[0])).as_py():
            out.append(chunk[0].as_py())
        else:
            return None
        lengths.append(len(chunk))
    return out, np.asarray(lengths, dtype=np.int64)


def take_rows(values: pd.Series, rows: np.ndarray) -> pd.Series:
    """``values.iloc[rows]`` with a fresh index; an Arrow column of many chunks is taken chunk by chunk.

    Arrow's take over a chunked array concatenates the chunks first: a copy of the whole column for a few
    rows. ``rows`` in increasing order (as ``np.flatnonzero`` gives them) are cut per chunk instead.

    Args:
        values: one column.
        rows: row positions.

    Returns:
        The values of those rows.
    """
    arrow = getattr(values.array, "_pa_array", None)
    if arrow is None or arrow.num_chunks <= 1 or not len(rows) or (np.diff(rows) < 0).any():
        return values.iloc[rows].reset_index(drop=True)
    bounds = np.cumsum([0, *(len(chunk) for chunk in arrow.chunks)])
    which = np.searchsorted(bounds, rows, side="right") - 1
    cuts = np.searchsorted(which, np.arange(arrow.num_chunks + 1))
    pieces = [arrow.chunk(i).take(pa.array(rows[cuts[i]:cuts[i + 1]] - bounds[i]))
              for i in range(arrow.num_chunks) if cuts[i + 1] > cuts[i]]
    return pd.Series(pd.array(pa.chunked_array(pieces, arrow.type), dtype=values.dtype), name=values.name)
