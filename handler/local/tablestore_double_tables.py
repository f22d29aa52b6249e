"""The tables of one instance: rows in primary-key order, writes with conditions, reads with filters.

Tables keep one version per column (max_versions 1, the only setting the double accepts), so a
cell is (value, timestamp) and `latest_version_only` makes no difference. Every method expects
the caller to hold the instance lock: a conditional write is check-then-apply, atomic per row.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from .tablestore_double_conditions import ColumnCondition
from .tablestore_double_errors import ServiceError, invalid, not_modelled
from .tablestore_double_plainbuffer import INF_MAX, INF_MIN, Bound, Cell, encoded_size, type_name

MAX_PK_VALUE_BYTES = 1024  # STRING and BINARY primary key values
MAX_ATTRIBUTE_BYTES = 2 * 1024 * 1024  # STRING and BINARY attribute values
MAX_COLUMNS_PER_WRITE = 1024
MAX_NAME_BYTES = 255
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

IGNORE, EXPECT_EXIST, EXPECT_NOT_EXIST = 0, 1, 2


def now_ms() -> int:
    return int(time.time() * 1000)


def _sort_value(value: Any) -> tuple:
    # INF_MIN < every value < INF_MAX; strings compare by their UTF-8 bytes, as the service does.
    if value is INF_MIN:
        return (0,)
    if value is INF_MAX:
        return (2,)
    return (1, value.encode("utf-8") if isinstance(value, str) else value)


@dataclass
class StoredRow:
    primary_key: list[tuple[str, Any]]
    columns: dict[str, tuple[Any, int]] = field(default_factory=dict)  # name -> (value, timestamp)

    def values(self) -> dict[str, Any]:
        return {name: cell[0] for name, cell in self.columns.items()}


@dataclass
class Table:
    name: str
    schema: list[tuple[str, str]]  # (name, INTEGER | STRING | BINARY), in key order
    created_at: float
    ready_at: float  # time.monotonic() from which data operations are served
    rows: dict[tuple, StoredRow] = field(default_factory=dict)
    order: list[tuple] = field(default_factory=list)  # the keys of `rows`, sorted

    # -- keys ---------------------------------------------------------------------------------

    def key_of(self, primary_key: Sequence[tuple[str, Any]], *, bounds: bool = False) -> tuple:
        """The sort key of a full primary key; OTSParameterInvalid unless it matches the schema."""
        names = [name for name, _ in primary_key]
        if names != [name for name, _ in self.schema]:
            raise invalid(f"Validate PK name fail. Input: {names}, Meta: {[n for n, _ in self.schema]}.")
        key = []
        for (name, value), (_, kind) in zip(primary_key, self.schema):
            if isinstance(value, Bound):
                if not bounds:
                    raise invalid(f"primary key column {name!r}: {value} is allowed only as a range bound")
            elif type_name(value) != kind:
                raise invalid(f"Validate PK type fail. Input: {type_name(value)}, Meta: {kind}.")
            elif kind in ("STRING", "BINARY"):
                size = len(value.encode("utf-8")) if kind == "STRING" else len(value)
                if size > MAX_PK_VALUE_BYTES:
                    raise invalid(f"The length of pk column: '{name}' exceeds the MaxLength:{MAX_PK_VALUE_BYTES} "
                                  f"with CurrentLength:{size}.")
            key.append(_sort_value(value))
        return tuple(key)

    def _store(self, key: tuple, row: StoredRow) -> None:
        if key not in self.rows:
            bisect.insort(self.order, key)
        self.rows[key] = row

    def _remove(self, key: tuple) -> None:
        if self.rows.pop(key, None) is not None:
            del self.order[bisect.bisect_left(self.order, key)]

    # -- writes -------------------------------------------------------------------------------

    def check(self, key: tuple, expectation: int, condition: ColumnCondition | None) -> StoredRow | None:
        """The current row if the write's condition holds (a condition sees every column of the row)."""
        current = self.rows.get(key)
        if expectation == EXPECT_EXIST and current is None:
            raise ServiceError("OTSConditionCheckFail")
        if expectation == EXPECT_NOT_EXIST and current is not None:
            raise ServiceError("OTSConditionCheckFail")
        if condition is not None and not condition.holds(current.values() if current else {}):
            raise ServiceError("OTSConditionCheckFail")
        return current

    def put(self, key: tuple, primary_key: list, cells: list[Cell], expectation: int,
            condition: ColumnCondition | None) -> None:
        _check_cells(cells, allow_ops=False)
        self.check(key, expectation, condition)
        stamp = now_ms()
        self._store(key, StoredRow(primary_key, {c.name: (c.value, c.timestamp or stamp) for c in cells}))

    def update(self, key: tuple, primary_key: list, cells: list[Cell], expectation: int,
               condition: ColumnCondition | None) -> None:
        _check_cells(cells, allow_ops=True)
        current = self.check(key, expectation, condition)
        columns = dict(current.columns) if current else {}
        stamp = now_ms()
        for cell in cells:
            if cell.op is None:
                columns[cell.name] = (cell.value, cell.timestamp or stamp)
            elif cell.op == "DELETE_ALL":
                columns.pop(cell.name, None)
            elif cell.op == "DELETE":  # one version: the one stored, if its timestamp is the one named
                if cell.name in columns and columns[cell.name][1] == cell.timestamp:
                    del columns[cell.name]
            else:  # INCREMENT: a missing column counts as 0
                old = columns.get(cell.name, (0, 0))[0]
                if type_name(old) != "INTEGER":
                    raise invalid(f"INCREMENT on column {cell.name!r} holding {type_name(old)}; it must be INTEGER")
                new = old + cell.value
                if not INT64_MIN <= new <= INT64_MAX:
                    raise invalid(f"INCREMENT on column {cell.name!r} overflows int64")
                columns[cell.name] = (new, stamp)
        if current is not None or columns:
            self._store(key, StoredRow(primary_key, columns))

    def delete(self, key: tuple, expectation: int, condition: ColumnCondition | None) -> None:
        if expectation == EXPECT_NOT_EXIST:
            raise invalid("Invalid condition: EXPECT_NOT_EXIST while deleting row.")
        self.check(key, expectation, condition)
        self._remove(key)

    # -- reads --------------------------------------------------------------------------------

    def visible(self, row: StoredRow, columns_to_get: Sequence[str], column_filter: ColumnCondition | None
                ) -> tuple[list, list] | None:
        """The row as a read returns it, or None: the filter sees only the columns read."""
        pk_names = {name for name, _ in self.schema}
        if columns_to_get:
            wanted = sorted(name for name in set(columns_to_get) if name in row.columns)
            # A row with none of the requested columns is not returned (unless a key column is asked for).
            if not wanted and not pk_names & set(columns_to_get):
                return None
        else:
            wanted = sorted(row.columns)
        if column_filter is not None and not column_filter.holds({name: row.columns[name][0] for name in wanted}):
            return None
        return row.primary_key, [(name, *row.columns[name]) for name in wanted]

    def scan(self, start: tuple, end: tuple, forward: bool) -> Iterator[tuple]:
        """Keys from `start` (inclusive) towards `end` (exclusive), in the direction asked."""
        if forward:
            index = bisect.bisect_left(self.order, start)
            while index < len(self.order) and self.order[index] < end:
                yield self.order[index]
                index += 1
        else:
            index = bisect.bisect_right(self.order, start) - 1
            while index >= 0 and self.order[index] > end:
                yield self.order[index]
                index -= 1

    def get_range(self, start: tuple, end: tuple, forward: bool, *, columns_to_get: Sequence[str],
                  column_filter: ColumnCondition | None, limit: int | None, page_rows: int, page_bytes: int,
                  ) -> tuple[list, list | None]:
        """One page: the rows returned and the next start primary key (None: the range is done).

        A page ends after `page_rows` rows or `page_bytes` bytes *scanned*, as the service's
        5,000 rows / 4 MB; rows a filter drops count too, so a page may be short or empty and
        still have a next key. `limit` bounds the rows returned.
        """
        if (start >= end) if forward else (start <= end):
            raise invalid("Begin key must less than end key in FORWARD" if forward
                          else "Begin key must more than end key in BACKWARD")
        out: list = []
        scanned = size = 0
        keys = self.scan(start, end, forward)
        for key in keys:
            if scanned >= page_rows or size >= page_bytes or (limit is not None and len(out) >= limit):
                return out, self.rows[key].primary_key
            row = self.rows[key]
            scanned += 1
            size += encoded_size(row.primary_key, [(n, *cell) for n, cell in row.columns.items()])
            seen = self.visible(row, columns_to_get, column_filter)
            if seen is not None:
                out.append(seen)
        return out, None


def _check_cells(cells: list[Cell], *, allow_ops: bool) -> None:
    if len(cells) > MAX_COLUMNS_PER_WRITE:
        raise invalid(f"The number of attribute columns exceeds the limit, limit count: {MAX_COLUMNS_PER_WRITE}.")
    seen: set[str] = set()
    for cell in cells:
        if not 1 <= len(cell.name.encode("utf-8")) <= MAX_NAME_BYTES:
            raise invalid(f"column name {cell.name[:40]!r} must be 1 to {MAX_NAME_BYTES} bytes")
        if cell.name in seen:
            raise invalid(f"Duplicated attribute column name: '{cell.name}' while writing row.")
        seen.add(cell.name)
        if cell.op is not None and not allow_ops:
            raise invalid(f"column {cell.name!r}: an update type ({cell.op}) in a PutRow")
        if cell.op in (None, "INCREMENT") and cell.value is None:
            raise invalid(f"column {cell.name!r} has no value")
        if cell.op in ("DELETE_ALL", "DELETE") and cell.value is not None:
            raise invalid(f"column {cell.name!r}: {cell.op} carries no value")
        if cell.op == "DELETE" and cell.timestamp is None:
            raise invalid(f"column {cell.name!r}: deleting one version needs its timestamp")
        if cell.op == "INCREMENT":
            if type_name(cell.value) != "INTEGER":
                raise invalid(f"INCREMENT on column {cell.name!r} needs an INTEGER, not {type_name(cell.value)}")
            if cell.timestamp is not None:
                raise not_modelled(f"a timestamp on INCREMENT of column {cell.name!r}")
        if isinstance(cell.value, Bound):
            raise invalid(f"column {cell.name!r}: {cell.value} is not a column value")
        if isinstance(cell.value, (str, bytes)):
            size = len(cell.value.encode("utf-8")) if isinstance(cell.value, str) else len(cell.value)
            if size > MAX_ATTRIBUTE_BYTES:
                raise invalid(f"The length of attribute column: '{cell.name}' exceeds the MaxLength:"
                              f"{MAX_ATTRIBUTE_BYTES} with CurrentLength:{size}.")


def table_name_error(name: str) -> ServiceError | None:
    ok = 1 <= len(name) <= 255 and (name[0].isalpha() or name[0] == "_") and all(
        c.isascii() and (c.isalnum() or c == "_") for c in name)
    return None if ok else invalid(f"Invalid table name: '{name}'.")

