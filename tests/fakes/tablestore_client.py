"""An in-memory stand-in for `tablestore.OTSClient`: the calls the store adapter makes, with the service's semantics.

There is no Tablestore emulator, so this fake carries the weight an emulator would: it must
pass the same contract suite as the real adapters, and it is strict. It honours
- row existence expectations IGNORE / EXPECT_EXIST / EXPECT_NOT_EXIST;
- SingleColumnCondition with every comparator and `pass_if_missing` (True by default, as in
  the SDK: a missing column passes), CompositeColumnCondition AND / OR / NOT (AND and OR need
  at least two sub-conditions, NOT exactly one);
- put_row / update_row (PUT, DELETE_ALL, INCREMENT) / delete_row / get_row / get_range with
  limit, column_filter and paging by next start primary key (a page also stops after
  `page_size` rows scanned, so a filtered page may be empty and still have a next key);
- the SDK's return shapes: `(consumed, return_row)` for writes, `(consumed, row, next_token)`
  for get_row, `(consumed, next_start_primary_key, rows, next_token)` for get_range; rows as
  `Row(primary_key=[(name, value)], attribute_columns=[(name, value, timestamp)])`;
- errors as the service raises them: OTSServiceError 403 OTSConditionCheckFail when a
  condition fails, 404 OTSObjectNotExist for a missing table, 409 OTSObjectAlreadyExist,
  400 OTSParameterInvalid for a malformed request.
One lock serialises every call, so racing threads see atomic conditional writes.

Tables keep one version per column (the adapter creates them with max_version=1), so
`latest_version_only` makes no difference here. Anything the adapter must not rely on
(comparing columns of different types, deleting one version of a column) raises
`FakeUnsupported`, which fails the test instead of guessing what the service would do.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tablestore import (
    INF_MAX,
    INF_MIN,
    CapacityUnit,
    ComparatorType,
    CompositeColumnCondition,
    Condition,
    Direction,
    LogicalOperator,
    OTSClientError,
    OTSServiceError,
    Row,
    RowExistenceExpectation,
    SingleColumnCondition,
)

MAX_PK_STRING_BYTES = 1024
MAX_COLUMN_CONDITIONS = 10


class FakeUnsupported(Exception):
    """The adapter asked for something whose real behaviour this fake does not model."""


@dataclass
class FakeCall:
    """One call as the fake received it: the objects themselves, for tests to inspect."""

    method: str
    table: str | None
    primary_key: list | None = None
    row: Row | None = None
    condition: Condition | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Table:
    schema: list[tuple[str, str]]
    options: Any
    rows: dict[tuple, dict[str, tuple[Any, int]]] = field(default_factory=dict)
    order: list[tuple] = field(default_factory=list)  # the keys of `rows`, sorted


def _service_error(status: int, code: str, message: str) -> OTSServiceError:
    return OTSServiceError(status, code, message, "fake-request-id")


def _condition_failed() -> OTSServiceError:
    return _service_error(403, "OTSConditionCheckFail", "Condition check failed.")


def _invalid(message: str) -> OTSServiceError:
    return _service_error(400, "OTSParameterInvalid", message)


def _type_of(value: Any) -> str:
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
    raise OTSClientError(f"unsupported column value type {type(value).__name__}")


_COMPARE = {
    ComparatorType.EQUAL: lambda a, b: a == b,
    ComparatorType.NOT_EQUAL: lambda a, b: a != b,
    ComparatorType.GREATER_THAN: lambda a, b: a > b,
    ComparatorType.GREATER_EQUAL: lambda a, b: a >= b,
    ComparatorType.LESS_THAN: lambda a, b: a < b,
    ComparatorType.LESS_EQUAL: lambda a, b: a <= b,
}


def _holds(condition: Any, columns: dict[str, tuple[Any, int]], depth: int = 0) -> bool:
    """Whether a column condition holds for a row's columns (a missing row has none)."""
    if isinstance(condition, SingleColumnCondition):
        if condition.column_name not in columns:
            return condition.pass_if_missing
        current = columns[condition.column_name][0]
        if _type_of(current) != _type_of(condition.column_value):
            raise FakeUnsupported(
                f"column {condition.column_name!r} is {_type_of(current)} but the condition compares it with "
                f"{_type_of(condition.column_value)}; do not rely on cross-type comparison"
            )
        return _COMPARE[condition.comparator](current, condition.column_value)
    if isinstance(condition, CompositeColumnCondition):
        subs = condition.sub_conditions
        if condition.combinator == LogicalOperator.NOT:
            if len(subs) != 1:
                raise _invalid("NOT needs exactly one sub-condition")
            return not _holds(subs[0], columns, depth + 1)
        if len(subs) < 2:
            raise _invalid("AND / OR need at least two sub-conditions")
        results = [_holds(sub, columns, depth + 1) for sub in subs]
        return all(results) if condition.combinator == LogicalOperator.AND else any(results)
    raise FakeUnsupported(f"column condition {type(condition).__name__}")


def _count_conditions(condition: Any) -> int:
    if isinstance(condition, CompositeColumnCondition):
        return sum(_count_conditions(sub) for sub in condition.sub_conditions)
    return 1


class FakeOTSClient:
    """In-memory `tablestore.OTSClient`: same methods, arguments, return values and errors as used by the adapter."""

    def __init__(self, *args: Any, page_size: int = 5000, **kwargs: Any) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, _Table] = {}
        self._faults: list[tuple[str, BaseException]] = []
        self.page_size = page_size
        self.calls: list[FakeCall] = []

    # -- test controls --------------------------------------------------------------------

    def fail_next(self, method: str, error: BaseException) -> None:
        """Make the next call of `method` raise `error` (as if the service or the network had)."""
        with self._lock:
            self._faults.append((method, error))

    def rows(self, table: str) -> dict[tuple, dict[str, Any]]:
        """A snapshot of a table: primary key values -> {column: value}."""
        with self._lock:
            return {k: {c: v for c, (v, _) in cols.items()} for k, cols in self._table(table).rows.items()}

    # -- tables ---------------------------------------------------------------------------

    def create_table(self, table_meta, table_options, reserved_throughput, secondary_indexes=None):
        with self._lock:
            self._enter("create_table", table_meta.table_name, extra={
                "schema": list(table_meta.schema_of_primary_key), "options": table_options,
                "reserved_throughput": reserved_throughput,
            })
            if table_meta.table_name in self._tables:
                raise _service_error(409, "OTSObjectAlreadyExist", "Requested table already exists.")
            self._tables[table_meta.table_name] = _Table(list(table_meta.schema_of_primary_key), table_options)

    def list_table(self):
        with self._lock:
            self._enter("list_table", None)
            return tuple(sorted(self._tables))

    def delete_table(self, table_name):
        with self._lock:
            self._enter("delete_table", table_name)
            self._table(table_name)
            del self._tables[table_name]

    # -- rows -----------------------------------------------------------------------------

    def put_row(self, table_name, row, condition=None, return_type=None, transaction_id=None):
        with self._lock:
            self._enter("put_row", table_name, primary_key=row.primary_key, row=row, condition=condition)
            table = self._table(table_name)
            key = self._key(table, row.primary_key)
            self._check(condition, table.rows.get(key), "put_row")
            columns: dict[str, tuple[Any, int]] = {}
            for column in row.attribute_columns or []:
                name, value = column[0], column[1]
                _type_of(value)
                columns[name] = (value, column[2] if len(column) > 2 else self._now_ms())
            self._store(table, key, columns)
            return CapacityUnit(0, 1), None

    def update_row(self, table_name, row, condition, return_type=None, transaction_id=None):
        with self._lock:
            self._enter("update_row", table_name, primary_key=row.primary_key, row=row, condition=condition)
            table = self._table(table_name)
            key = self._key(table, row.primary_key)
            current = table.rows.get(key)
            self._check(condition, current, "update_row")
            if not isinstance(row.attribute_columns, dict):
                raise OTSClientError("the attribute columns of UpdateRow is not dict")
            columns = dict(current or {})
            touched: set[str] = set()
            now_ms = self._now_ms()
            for kind, cells in row.attribute_columns.items():
                kind = kind.upper()
                for cell in cells:
                    name = cell if kind == "DELETE_ALL" else cell[0]
                    if name in touched:
                        raise _invalid(f"column {name!r} appears twice in one update")
                    touched.add(name)
                    if kind == "PUT":
                        _type_of(cell[1])
                        columns[name] = (cell[1], cell[2] if len(cell) > 2 else now_ms)
                    elif kind == "DELETE_ALL":
                        columns.pop(name, None)
                    elif kind == "INCREMENT":
                        delta = cell[1]
                        old = columns.get(name, (0, 0))[0]
                        if _type_of(delta) != "INTEGER" or _type_of(old) != "INTEGER":
                            raise _invalid(f"INCREMENT needs INTEGER values ({name!r})")
                        columns[name] = (old + delta, now_ms)
                    else:
                        raise FakeUnsupported(f"update type {kind}")
            if current is not None or columns:
                self._store(table, key, columns)
            return CapacityUnit(0, 1), None

    def delete_row(self, table_name, row=None, condition=None, return_type=None, transaction_id=None, **kwargs):
        with self._lock:
            primary_key = kwargs.get("primary_key") if row is None else row
            if isinstance(primary_key, Row):
                primary_key = primary_key.primary_key
            self._enter("delete_row", table_name, primary_key=primary_key, condition=condition)
            table = self._table(table_name)
            key = self._key(table, primary_key)
            if condition is not None and condition.row_existence_expectation == RowExistenceExpectation.EXPECT_NOT_EXIST:
                raise _invalid("Invalid condition: EXPECT_NOT_EXIST while deleting row.")
            self._check(condition, table.rows.get(key), "delete_row")
            if key in table.rows:
                del table.rows[key]
                table.order.pop(bisect.bisect_left(table.order, key))
            return CapacityUnit(0, 1), None

    def get_row(self, table_name, primary_key, columns_to_get=None, column_filter=None, max_version=1,
                time_range=None, start_column=None, end_column=None, token=None, transaction_id=None):
        with self._lock:
            self._enter("get_row", table_name, primary_key=primary_key,
                        extra={"columns_to_get": columns_to_get, "column_filter": column_filter})
            if max_version is None and time_range is None:
                raise OTSClientError("max_version or time_range is required")
            table = self._table(table_name)
            key = self._key(table, primary_key)
            columns = table.rows.get(key)
            if columns is None or (column_filter is not None and not _holds(column_filter, columns)):
                return CapacityUnit(1, 0), None, None
            return CapacityUnit(1, 0), self._row(table, key, columns, columns_to_get), None

    def get_range(self, table_name, direction, inclusive_start_primary_key, exclusive_end_primary_key,
                  columns_to_get=None, limit=None, column_filter=None, max_version=1, time_range=None,
                  start_column=None, end_column=None, token=None, transaction_id=None):
        with self._lock:
            self._enter("get_range", table_name, primary_key=inclusive_start_primary_key, extra={
                "direction": direction, "end": exclusive_end_primary_key, "columns_to_get": columns_to_get,
                "limit": limit, "column_filter": column_filter,
            })
            table = self._table(table_name)
            start = self._bound(table, inclusive_start_primary_key)
            end = self._bound(table, exclusive_end_primary_key)
            if direction == Direction.FORWARD:
                if start > end:
                    raise _invalid("Begin key must less than end key in FORWARD")
                keys = table.order[bisect.bisect_left(table.order, start):bisect.bisect_left(table.order, end)]
            elif direction == Direction.BACKWARD:
                if start < end:
                    raise _invalid("Begin key must more than end key in BACKWARD")
                keys = table.order[bisect.bisect_right(table.order, end):bisect.bisect_right(table.order, start)]
                keys.reverse()
            else:
                raise _invalid(f"direction {direction!r}")
            if limit is not None and limit <= 0:
                raise _invalid("limit must be positive")
            rows: list[Row] = []
            next_key = None
            for scanned, key in enumerate(keys):
                if scanned >= self.page_size or (limit is not None and len(rows) >= limit):
                    next_key = key
                    break
                columns = table.rows[key]
                if column_filter is not None and not _holds(column_filter, columns):
                    continue
                found = self._row(table, key, columns, columns_to_get)
                if found is not None:
                    rows.append(found)
            next_pk = None if next_key is None else [(n, v) for (n, _), v in zip(table.schema, next_key)]
            return CapacityUnit(len(rows), 0), next_pk, rows, None

    # -- internals ------------------------------------------------------------------------

    def _enter(self, method: str, table: str | None, **details: Any) -> None:
        self.calls.append(FakeCall(method, table, **details))
        for i, (name, error) in enumerate(self._faults):
            if name == method:
                del self._faults[i]
                raise error

    def _table(self, name: str) -> _Table:
        if name not in self._tables:
            raise _service_error(404, "OTSObjectNotExist", "Requested table does not exist.")
        return self._tables[name]

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    @staticmethod
    def _key(table: _Table, primary_key: Any) -> tuple:
        if not isinstance(primary_key, list) or len(primary_key) != len(table.schema):
            raise _invalid(f"primary key must be a list of {len(table.schema)} (name, value) pairs: {primary_key!r}")
        values = []
        for (name, kind), column in zip(table.schema, primary_key):
            if column[0] != name:
                raise _invalid(f"primary key column {column[0]!r} where {name!r} was expected")
            value = column[1]
            if value is INF_MIN or value is INF_MAX or _type_of(value) != kind:
                raise _invalid(f"primary key column {name!r} must be {kind}, not {value!r}")
            if kind == "STRING" and len(value.encode("utf-8")) > MAX_PK_STRING_BYTES:
                raise _invalid(f"primary key column {name!r} is longer than {MAX_PK_STRING_BYTES} bytes")
            values.append(value)
        return tuple(values)

    @staticmethod
    def _bound(table: _Table, primary_key: Any) -> tuple:
        """A range bound as a sortable key: INF_MIN / INF_MAX become the smallest / largest values."""
        if not isinstance(primary_key, list) or len(primary_key) != len(table.schema):
            raise _invalid(f"range bound must name every primary key column: {primary_key!r}")
        values: list[Any] = []
        for (name, kind), column in zip(table.schema, primary_key):
            if column[0] != name:
                raise _invalid(f"range bound column {column[0]!r} where {name!r} was expected")
            value = column[1]
            if value is INF_MIN:
                values.append(_Smallest())
            elif value is INF_MAX:
                values.append(_Largest())
            elif _type_of(value) != kind:
                raise _invalid(f"range bound column {name!r} must be {kind}")
            else:
                values.append(value)
        return tuple(values)

    def _check(self, condition: Condition | None, current: dict | None, method: str) -> None:
        condition = condition or Condition(RowExistenceExpectation.IGNORE)
        expectation = condition.row_existence_expectation
        if expectation == RowExistenceExpectation.EXPECT_EXIST and current is None:
            raise _condition_failed()
        if expectation == RowExistenceExpectation.EXPECT_NOT_EXIST and current is not None:
            raise _condition_failed()
        column_condition = condition.column_condition
        if column_condition is not None:
            if _count_conditions(column_condition) > MAX_COLUMN_CONDITIONS:
                raise _invalid(f"at most {MAX_COLUMN_CONDITIONS} column conditions")
            if not _holds(column_condition, current or {}):
                raise _condition_failed()

    @staticmethod
    def _store(table: _Table, key: tuple, columns: dict) -> None:
        if key not in table.rows:
            bisect.insort(table.order, key)
        table.rows[key] = columns

    @staticmethod
    def _row(table: _Table, key: tuple, columns: dict, columns_to_get: list | None) -> Row | None:
        pk_names = [name for name, _ in table.schema]
        if columns_to_get:
            wanted = [name for name in columns_to_get if name in columns]
            # As the service does: a row with none of the requested columns is not returned.
            if not wanted and not any(name in pk_names for name in columns_to_get):
                return None
        else:
            wanted = list(columns)
        attributes = [(name, columns[name][0], columns[name][1]) for name in sorted(wanted)]
        return Row([(name, value) for name, value in zip(pk_names, key)], attributes)


class _Smallest:
    """Sorts before every value (INF_MIN)."""

    def __lt__(self, other: Any) -> bool:
        return not isinstance(other, _Smallest)

    def __gt__(self, other: Any) -> bool:
        return False

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Smallest)

    __hash__ = object.__hash__


class _Largest:
    """Sorts after every value (INF_MAX)."""

    def __lt__(self, other: Any) -> bool:
        return False

    def __gt__(self, other: Any) -> bool:
        return not isinstance(other, _Largest)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Largest)

    __hash__ = object.__hash__
