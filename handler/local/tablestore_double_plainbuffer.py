"""PlainBuffer, Tablestore's row encoding, read and written from the service's side.

The SDK's own readers are written for answers, not requests: the pure-Python one fails on an
UpdateRow cell carrying DELETE_ALL or INCREMENT, and neither accepts the INF_MIN / INF_MAX
bounds of a GetRange. So the double reads requests with this module, verifying every cell and
row CRC-8 the way the SDK's writer computes them, and writes answer rows the way the SDK's
reader expects them.

Layout (little-endian): int32 header 0x75, then per row
    TAG_ROW_PK cell* [TAG_ROW_DATA cell*] [TAG_DELETE_ROW_MARKER] TAG_ROW_CHECKSUM crc
    cell = TAG_CELL TAG_CELL_NAME len name [TAG_CELL_VALUE len type payload]
           [TAG_CELL_TYPE op] [TAG_CELL_TIMESTAMP int64] TAG_CELL_CHECKSUM crc
A cell's CRC covers name, value, timestamp, then op (in that order, whatever the tag order).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from tablestore.plainbuffer.plain_buffer_crc8 import CRC8_TABLE

HEADER = 0x75
TAG_ROW_PK, TAG_ROW_DATA, TAG_CELL, TAG_CELL_NAME, TAG_CELL_VALUE = 0x1, 0x2, 0x3, 0x4, 0x5
TAG_CELL_TYPE, TAG_CELL_TIMESTAMP, TAG_DELETE_ROW_MARKER, TAG_ROW_CHECKSUM, TAG_CELL_CHECKSUM = 0x6, 0x7, 0x8, 0x9, 0xA
VT_INTEGER, VT_DOUBLE, VT_BOOLEAN, VT_STRING, VT_BLOB = 0x0, 0x1, 0x2, 0x3, 0x7
VT_INF_MIN, VT_INF_MAX, VT_AUTO_INCREMENT = 0x9, 0xA, 0xB
OPS = {0x1: "DELETE_ALL", 0x3: "DELETE", 0x4: "INCREMENT"}


class Bound:
    """INF_MIN or INF_MAX: a range bound that sorts before / after every value of its column."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


INF_MIN = Bound("INF_MIN")
INF_MAX = Bound("INF_MAX")


class PlainBufferError(ValueError):
    """The bytes are not a well-formed PlainBuffer row (the service answers OTSParameterInvalid)."""


@dataclass
class Cell:
    name: str
    value: Any = None  # None: no value (DELETE_ALL)
    op: str | None = None  # None (put), DELETE_ALL, DELETE (one version) or INCREMENT
    timestamp: int | None = None


@dataclass
class ParsedRow:
    primary_key: list[tuple[str, Any]]
    cells: list[Cell] = field(default_factory=list)
    delete_marker: bool = False


def type_name(value: Any) -> str:
    """The Tablestore type of a decoded value (bool before int: a bool is an int in Python)."""
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, (bytes, bytearray)):
        return "BINARY"
    if isinstance(value, Bound):
        return value.name
    raise TypeError(f"no Tablestore type for {type(value).__name__}")


def _crc_bytes(crc: int, data: bytes) -> int:
    for byte in data:
        crc = CRC8_TABLE[(crc ^ byte) & 0xFF]
    return crc


def _crc_int(crc: int, value: int, size: int) -> int:
    for i in range(size):
        crc = CRC8_TABLE[(crc ^ ((value >> (8 * i)) & 0xFF)) & 0xFF]
    return crc


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise PlainBufferError("truncated PlainBuffer")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def int32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def int64(self) -> int:
        return struct.unpack("<q", self.take(8))[0]

    def peek(self) -> int | None:
        return self.data[self.pos] if self.pos < len(self.data) else None

    def expect(self, tag: int, what: str) -> None:
        if self.peek() != tag:
            raise PlainBufferError(f"expected {what} at byte {self.pos}")
        self.pos += 1


def _read_payload(reader: _Reader, value_type: int, crc: int) -> tuple[Any, int]:
    """A typed value after its type byte; returns the value and the CRC updated over it."""
    crc = _crc_int(crc, value_type, 1)
    if value_type == VT_INTEGER:
        value = reader.int64()
        return value, _crc_int(crc, value, 8)
    if value_type == VT_DOUBLE:
        raw = reader.take(8)
        return struct.unpack("<d", raw)[0], _crc_int(crc, struct.unpack("<q", raw)[0], 8)
    if value_type == VT_BOOLEAN:
        flag = reader.byte()
        return bool(flag), _crc_int(crc, flag, 1)
    if value_type in (VT_STRING, VT_BLOB):
        size = reader.int32()
        data = reader.take(size)
        crc = _crc_bytes(_crc_int(crc, size, 4), data)
        if value_type == VT_BLOB:
            return bytes(data), crc
        try:
            return data.decode("utf-8"), crc
        except UnicodeDecodeError:
            raise PlainBufferError("a STRING value is not UTF-8") from None
    if value_type == VT_INF_MIN:
        return INF_MIN, crc
    if value_type == VT_INF_MAX:
        return INF_MAX, crc
    if value_type == VT_AUTO_INCREMENT:
        raise PlainBufferError("not modelled by the local double: auto-increment primary key columns")
    raise PlainBufferError(f"unknown value type {value_type}")


def _read_cell(reader: _Reader) -> tuple[Cell, int]:
    reader.expect(TAG_CELL, "a cell")
    reader.expect(TAG_CELL_NAME, "a cell name")
    name_bytes = reader.take(reader.int32())
    crc = _crc_bytes(0, name_bytes)
    cell = Cell(name_bytes.decode("utf-8", "replace"))
    if reader.peek() == TAG_CELL_VALUE:
        reader.pos += 1
        size = reader.int32()
        start = reader.pos
        cell.value, crc = _read_payload(reader, reader.byte(), crc)
        if reader.pos - start != size:
            raise PlainBufferError(f"cell {cell.name!r}: value length {size} does not match its content")
    op_code = None
    if reader.peek() == TAG_CELL_TYPE:
        reader.pos += 1
        op_code = reader.byte()
        if op_code not in OPS:
            raise PlainBufferError(f"cell {cell.name!r}: unknown update type {op_code}")
        cell.op = OPS[op_code]
    if reader.peek() == TAG_CELL_TIMESTAMP:
        reader.pos += 1
        cell.timestamp = reader.int64()
        crc = _crc_int(crc, cell.timestamp, 8)
    if op_code is not None:
        crc = _crc_int(crc, op_code, 1)
    reader.expect(TAG_CELL_CHECKSUM, "a cell checksum")
    if reader.byte() != crc:
        raise PlainBufferError(f"cell {cell.name!r}: checksum mismatch")
    return cell, crc


def read_row(data: bytes) -> ParsedRow:
    """One row of a request (a primary key, a put or update row, a delete row), CRCs verified."""
    reader = _Reader(data)
    if len(reader.data) < 4 or reader.int32() != HEADER:
        raise PlainBufferError("PlainBuffer header missing")
    reader.expect(TAG_ROW_PK, "the row's primary key")
    row_crc = 0
    row = ParsedRow([])
    while reader.peek() == TAG_CELL:
        cell, cell_crc = _read_cell(reader)
        if cell.value is None or cell.op is not None or cell.timestamp is not None:
            raise PlainBufferError(f"primary key column {cell.name!r} must carry a value and nothing else")
        row.primary_key.append((cell.name, cell.value))
        row_crc = _crc_int(row_crc, cell_crc, 1)
    if reader.peek() == TAG_ROW_DATA:
        reader.pos += 1
        while reader.peek() == TAG_CELL:
            cell, cell_crc = _read_cell(reader)
            row.cells.append(cell)
            row_crc = _crc_int(row_crc, cell_crc, 1)
    if reader.peek() == TAG_DELETE_ROW_MARKER:
        reader.pos += 1
        row.delete_marker = True
    row_crc = _crc_int(row_crc, 1 if row.delete_marker else 0, 1)
    reader.expect(TAG_ROW_CHECKSUM, "the row checksum")
    if reader.byte() != row_crc:
        raise PlainBufferError("row checksum mismatch")
    if reader.peek() is not None:
        raise PlainBufferError("bytes after the row")
    return row


def read_bare_value(data: bytes) -> Any:
    """A column condition's value: a type byte and a payload, no length and no CRC."""
    reader = _Reader(data)
    value, _ = _read_payload(reader, reader.byte(), 0)
    if reader.peek() is not None:
        raise PlainBufferError("bytes after the condition value")
    return value


# -- writing answers ----------------------------------------------------------------------------


def _payload(value: Any, crc: int) -> tuple[bytes, int]:
    """The bytes after TAG_CELL_VALUE (length, type, payload), and `crc` updated over the value."""
    kind = type_name(value)
    if kind == "BOOLEAN":
        vt, body = VT_BOOLEAN, bytes([int(value)])
        crc = _crc_int(_crc_int(crc, vt, 1), int(value), 1)
    elif kind == "INTEGER":
        vt, body = VT_INTEGER, struct.pack("<q", value)  # struct.error beyond int64, like the SDK
        crc = _crc_int(_crc_int(crc, vt, 1), value, 8)
    elif kind == "DOUBLE":
        vt, body = VT_DOUBLE, struct.pack("<d", value)
        crc = _crc_int(_crc_int(crc, vt, 1), struct.unpack("<q", body)[0], 8)
    elif kind in ("STRING", "BINARY"):
        data = value.encode("utf-8") if kind == "STRING" else bytes(value)
        vt = VT_STRING if kind == "STRING" else VT_BLOB
        body = struct.pack("<i", len(data)) + data
        crc = _crc_bytes(_crc_int(_crc_int(crc, vt, 1), len(data), 4), data)
    else:
        raise TypeError(f"cannot write a {kind} value into a row")
    return struct.pack("<i", 1 + len(body)) + bytes([vt]) + body, crc


def _cell_bytes(name: str, value: Any, timestamp: int | None) -> tuple[bytes, int]:
    name_bytes = name.encode("utf-8")
    crc = _crc_bytes(0, name_bytes)
    payload, crc = _payload(value, crc)
    out = bytearray([TAG_CELL, TAG_CELL_NAME]) + struct.pack("<i", len(name_bytes)) + name_bytes
    out += bytes([TAG_CELL_VALUE]) + payload
    if timestamp is not None:
        out += bytes([TAG_CELL_TIMESTAMP]) + struct.pack("<q", timestamp)
        crc = _crc_int(crc, timestamp, 8)
    out += bytes([TAG_CELL_CHECKSUM, crc])
    return bytes(out), crc


def _row_bytes(primary_key: Sequence[tuple[str, Any]], columns: Iterable[tuple[str, Any, int | None]]) -> bytes:
    out = bytearray([TAG_ROW_PK])
    row_crc = 0
    for name, value in primary_key:
        cell, crc = _cell_bytes(name, value, None)
        out += cell
        row_crc = _crc_int(row_crc, crc, 1)
    columns = list(columns)
    if columns:
        out.append(TAG_ROW_DATA)
        for name, value, timestamp in columns:
            cell, crc = _cell_bytes(name, value, timestamp)
            out += cell
            row_crc = _crc_int(row_crc, crc, 1)
    row_crc = _crc_int(row_crc, 0, 1)  # no delete marker
    out += bytes([TAG_ROW_CHECKSUM, row_crc])
    return bytes(out)


def write_rows(rows: Sequence[tuple[Sequence[tuple[str, Any]], Iterable[tuple[str, Any, int | None]]]]) -> bytes:
    """Rows as a GetRange answer carries them: one header, then the rows; no rows is b''."""
    if not rows:
        return b""
    return struct.pack("<i", HEADER) + b"".join(_row_bytes(pk, columns) for pk, columns in rows)


def write_primary_key(primary_key: Sequence[tuple[str, Any]]) -> bytes:
    """A primary key alone (next_start_primary_key, a return_type RT_PK answer)."""
    return write_rows([(primary_key, [])])


def encoded_size(primary_key: Sequence[tuple[str, Any]], columns: Iterable[tuple[str, Any, int | None]]) -> int:
    """The bytes a row takes on the wire: what GetRange's 4 MB page limit counts here."""
    return len(_row_bytes(primary_key, columns))
