"""What reading a landed extract raises when the file cannot be read as a whole."""

from __future__ import annotations


class ExtractUnreadable(ValueError):
    """The file cannot be read at all; the message starts with ``file:line:column`` where known.

    Attributes:
        kind: short name of the problem (``encoding``, ``delimiter``, ``header``, ``truncated``, ``format``),
            recorded as the ``parse:<kind>`` breach.
    """

    def __init__(self, message: str, kind: str = "unreadable"):
        super().__init__(message)
        self.kind = kind


def line_col(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in bytes) of a byte offset.

    Args:
        data: the file's bytes.
        offset: a position in them.

    Returns:
        ``(line, column)``.
    """
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1
