"""Which text encoding a landed extract is in, decided before a single value is parsed.

A byte order mark names the encoding and wins over the contract's ``file.encoding``: UTF-8 with a mark is
read as UTF-8 (the mark dropped), UTF-16 and UTF-32 (little or big endian) with a mark are decoded and
parsed like any other file. Without a mark the file must be in the contract's encoding. NUL bytes in a
file the contract declares as UTF-8 or another ASCII-based encoding mean UTF-16 without a mark (or a
binary file): the file is rejected, naming what was found, because guessing the byte order could turn
every value into something else. Bytes that do not decode reject the file at ``file:line:column``.

What the parsers get back is always in an ASCII-compatible encoding (a decoded UTF-16 file is handed over
as UTF-8), so delimiters, quotes and newlines can be found in the bytes.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from include.ingest.errors import ExtractUnreadable, line_col

#: Byte order marks, UTF-32 first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32 LE"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32 BE"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16 LE"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16 BE"),
)
#: Characters whose bytes the parsers look for directly.
_PROBE = "\n\r,;|\t\"{}[]:0123456789 abcxyzABCXYZ-_."
#: Bytes looked at to tell UTF-16 without a mark from binary data.
_SNIFF = 4096


@dataclass(frozen=True)
class Text:
    """An extract's bytes ready to parse.

    Attributes:
        data: the bytes, without a byte order mark, in an ASCII-compatible encoding.
        encoding: how ``data`` decodes.
        marked: the encoding a byte order mark named (``"UTF-16 LE"``...), None without a mark.
    """

    data: bytes
    encoding: str
    marked: str | None = None

    @property
    def as_delivered(self) -> bool:
        """Whether :attr:`data` is the file's bytes unchanged (so the file can be read again from disk)."""
        return self.marked is None


def ascii_compatible(encoding: str) -> bool:
    """Whether an encoding writes delimiters, quotes, digits and newlines as their ASCII bytes.

    Args:
        encoding: a codec name.

    Returns:
        True for UTF-8, latin-1, cp1252...; False for UTF-16, UTF-32.
    """
    try:
        return _PROBE.encode(encoding) == _PROBE.encode("ascii")
    except (LookupError, UnicodeError):
        return False


def is_utf8(encoding: str) -> bool:
    """Whether a codec name spells UTF-8."""
    return codecs.lookup(encoding).name == "utf-8"


def decode_extract(data: bytes, encoding: str, path: str) -> Text:
    """Decide a landed file's encoding and check that every byte decodes.

    Args:
        data: the file's bytes.
        encoding: the contract's ``file.encoding``.
        path: the file, for messages.

    Returns:
        The bytes to parse and their encoding.

    Raises:
        ExtractUnreadable: (``encoding``) naming ``file:line:column`` and the encoding found, when bytes do not
            decode, or when NUL bytes show UTF-16 without a byte order mark.
    """
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            return _marked(data[len(bom):], codec, name, path, len(bom))
    if not ascii_compatible(encoding):
        # A contract that declares UTF-16 or UTF-32 without a mark: decoded and parsed as UTF-8.
        return Text(_transcode(data, encoding, encoding, path), "utf-8", None)
    nul = data.find(b"\x00")
    if nul >= 0:
        line, col = line_col(data, nul)
        raise ExtractUnreadable(f"{path}:{line}:{col}: NUL byte: {_nul_guess(data)}, not {encoding} text "
                                "(export the file as UTF-8, or as UTF-16 with a byte order mark)", "encoding")
    check_encoding(data, encoding, path)
    return Text(data, encoding, None)


def _marked(body: bytes, codec: str, name: str, path: str, skipped: int) -> Text:
    if codec == "utf-8":
        check_encoding(body, codec, path, found=name)
        return Text(body, "utf-8", name)
    return Text(_transcode(body, codec, name, path, skipped=skipped), "utf-8", name)


def _transcode(data: bytes, codec: str, name: str, path: str, *, skipped: int = 0) -> bytes:
    """``data`` decoded from ``codec`` and encoded as UTF-8 (``skipped``: bytes of the file before ``data``)."""
    try:
        return data.decode(codec).encode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode(codec, errors="replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise ExtractUnreadable(
            f"{path}:{line}:{col}: not valid {name}: bytes {data[exc.start:exc.end].hex(' ')} at byte "
            f"{exc.start + skipped} of the file cannot be decoded ({exc.reason})", "encoding") from exc


def _nul_guess(data: bytes) -> str:
    """What NUL bytes in a file most likely mean."""
    head = data[:_SNIFF - _SNIFF % 2]
    even = head[0::2].count(0)
    odd = head[1::2].count(0)
    half = len(head) // 2
    if half and odd >= 0.3 * half and even < 0.05 * half:
        return "the file looks like UTF-16 LE without a byte order mark"
    if half and even >= 0.3 * half and odd < 0.05 * half:
        return "the file looks like UTF-16 BE without a byte order mark"
    return "the file is binary or in an encoding with NUL bytes"


def check_encoding(data: bytes, encoding: str, path: str, *, found: str | None = None) -> None:
    """Check that every byte of ``data`` decodes as ``encoding``.

    Args:
        data: the bytes.
        encoding: the codec.
        path: the file, for messages.
        found: the encoding a byte order mark named, when it did.

    Raises:
        ExtractUnreadable: (``encoding``) at the first byte that does not decode, with ``file:line:column``.
    """
    if is_utf8(encoding) and data.isascii():
        return  # the common case, checked without decoding a copy of the file
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        line, col = line_col(data, exc.start)
        if found is not None:
            hint = f" (the file starts with the byte order mark of {found})"
        elif is_utf8(encoding):
            hint = " (was the file exported as latin-1 or cp1252?)"
        else:
            hint = ""
        raise ExtractUnreadable(
            f"{path}:{line}:{col}: not valid {encoding}: byte 0x{data[exc.start]:02x} cannot be decoded{hint}",
            "encoding") from exc
