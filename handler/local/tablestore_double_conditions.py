"""Column conditions (on writes) and column filters (on reads), parsed from their protobuf form.

Both are the same `Filter` message. What differs is the columns they see: a write's condition
sees the whole stored row, a read's filter sees only the columns the read asked for, so a
filter on a column that is not in columns_to_get finds it missing and `pass_if_missing`
(the wire's negated `filter_if_missing`) decides.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Union

from tablestore.protobuf import table_store_filter_pb2 as filter_pb

from .tablestore_double_errors import invalid, not_modelled
from .tablestore_double_plainbuffer import Bound, PlainBufferError, read_bare_value, type_name

_COMPARATORS: dict[int, tuple[str, Callable[[Any, Any], bool]]] = {
    filter_pb.CT_EQUAL: ("EQUAL", operator.eq),
    filter_pb.CT_NOT_EQUAL: ("NOT_EQUAL", operator.ne),
    filter_pb.CT_GREATER_THAN: ("GREATER_THAN", operator.gt),
    filter_pb.CT_GREATER_EQUAL: ("GREATER_EQUAL", operator.ge),
    filter_pb.CT_LESS_THAN: ("LESS_THAN", operator.lt),
    filter_pb.CT_LESS_EQUAL: ("LESS_EQUAL", operator.le),
}


@dataclass
class SingleColumn:
    column: str
    comparator: int
    value: Any
    pass_if_missing: bool
    latest_version_only: bool

    def holds(self, columns: Mapping[str, Any]) -> bool:
        if self.column not in columns:
            return self.pass_if_missing
        current = columns[self.column]
        if type_name(current) != type_name(self.value):
            # The service's answer to comparing across types is not documented: refuse, never guess.
            raise not_modelled(
                f"column {self.column!r} holds {type_name(current)} but the condition compares it with "
                f"{type_name(self.value)}"
            )
        name, compare = _COMPARATORS[self.comparator]
        if isinstance(current, str):  # the service orders strings by their UTF-8 bytes
            return compare(current.encode("utf-8"), self.value.encode("utf-8"))
        return compare(current, self.value)


@dataclass
class Composite:
    combinator: int
    subs: list["ColumnCondition"]

    def holds(self, columns: Mapping[str, Any]) -> bool:
        if self.combinator == filter_pb.LO_NOT:
            return not self.subs[0].holds(columns)
        results = [sub.holds(columns) for sub in self.subs]  # every sub is evaluated, as type errors must surface
        return all(results) if self.combinator == filter_pb.LO_AND else any(results)


ColumnCondition = Union[SingleColumn, Composite]


def parse_filter(data: bytes) -> ColumnCondition | None:
    """A serialized `Filter` (empty: none) as a condition tree; OTSParameterInvalid when malformed."""
    if not data:
        return None
    message = filter_pb.Filter()
    try:
        message.ParseFromString(data)
    except Exception:
        raise invalid("the column condition is not a valid Filter message") from None
    return _parse(message)


def _parse(message: Any) -> ColumnCondition:
    if message.type == filter_pb.FT_SINGLE_COLUMN_VALUE:
        single = filter_pb.SingleColumnValueFilter()
        single.ParseFromString(message.filter)
        if single.comparator not in _COMPARATORS:
            raise not_modelled(f"comparator {filter_pb.ComparatorType.Name(single.comparator)}")
        if single.HasField("value_trans_rule"):
            raise not_modelled("regular-expression column conditions")
        try:
            value = read_bare_value(single.column_value)
        except PlainBufferError as exc:
            raise invalid(f"column condition on {single.column_name!r}: {exc}") from None
        if isinstance(value, Bound):
            raise invalid(f"column condition on {single.column_name!r}: {value} is not a column value")
        return SingleColumn(single.column_name, single.comparator, value, not single.filter_if_missing,
                            single.latest_version_only)
    if message.type == filter_pb.FT_COMPOSITE_COLUMN_VALUE:
        composite = filter_pb.CompositeColumnValueFilter()
        composite.ParseFromString(message.filter)
        subs = [_parse(sub) for sub in composite.sub_filters]
        if composite.combinator == filter_pb.LO_NOT and len(subs) != 1:
            raise invalid("a NOT column condition needs exactly one sub-condition")
        if composite.combinator in (filter_pb.LO_AND, filter_pb.LO_OR) and len(subs) < 2:
            raise invalid("an AND / OR column condition needs at least two sub-conditions")
        return Composite(composite.combinator, subs)
    raise not_modelled(f"filter type {message.type} (column pagination)")
