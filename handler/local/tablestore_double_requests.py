"""What the double's call log says about each request: the parts a test asserts on.

Tests of an adapter want to know what it asked for, not only how many calls arrived: which
row a write touched, under which row-existence expectation, with which column conditions
(and whether each passes a missing column), which columns a read named and what its filter
looked at. This decodes that from the request bytes into plain JSON-able data, so the admin
path can serve it to another process as well.

Decoding never decides an answer: a request it cannot read is described as {} and the
operation itself then refuses it with the service's error.
"""

from __future__ import annotations

from typing import Any

from tablestore.protobuf import table_store_filter_pb2 as filter_pb
from tablestore.protobuf import table_store_pb2 as pb

from .tablestore_double_conditions import ColumnCondition, Composite, SingleColumn, parse_filter
from .tablestore_double_plainbuffer import read_row

EXPECTATIONS = {pb.IGNORE: "IGNORE", pb.EXPECT_EXIST: "EXPECT_EXIST", pb.EXPECT_NOT_EXIST: "EXPECT_NOT_EXIST"}
_SINGLE_WRITES = {
    "PutRow": (pb.PutRowRequest, "row"),
    "UpdateRow": (pb.UpdateRowRequest, "row_change"),
    "DeleteRow": (pb.DeleteRowRequest, "primary_key"),
}
_READS = {"GetRow": pb.GetRowRequest, "GetRange": pb.GetRangeRequest}


def describe_request(api: str, body: bytes) -> dict[str, Any]:
    """{table, key, expectation, conditions} of a single-row write; {table, columns, filter} of a read.

    `conditions` / `filter` list each single column condition as
    {"column", "comparator", "pass_if_missing"}; `key` is the row's primary key values.
    """
    try:
        if api in _SINGLE_WRITES:
            message_class, row_field = _SINGLE_WRITES[api]
            request = message_class.FromString(body)
            return {
                "table": request.table_name,
                "key": [value for _, value in read_row(getattr(request, row_field)).primary_key],
                "expectation": EXPECTATIONS.get(request.condition.row_existence, "?"),
                "conditions": _singles(parse_filter(request.condition.column_condition)),
            }
        if api in _READS:
            request = _READS[api].FromString(body)
            return {
                "table": request.table_name,
                "columns": list(request.columns_to_get),
                "filter": _singles(parse_filter(request.filter)) if request.HasField("filter") else [],
            }
        if api == "CreateTable":
            return {"table": pb.CreateTableRequest.FromString(body).table_meta.table_name}
    except Exception:  # noqa: BLE001 - unreadable requests are the operation's to refuse
        return {}
    return {}


def _singles(condition: ColumnCondition | None) -> list[dict[str, Any]]:
    if condition is None:
        return []
    if isinstance(condition, Composite):
        return [single for sub in condition.subs for single in _singles(sub)]
    assert isinstance(condition, SingleColumn)
    return [{
        "column": condition.column,
        "comparator": filter_pb.ComparatorType.Name(condition.comparator).removeprefix("CT_"),
        "pass_if_missing": condition.pass_if_missing,
    }]
