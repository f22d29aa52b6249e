"""The Tablestore double's operations, all through the unmodified tablestore.OTSClient over loopback HTTP."""

from __future__ import annotations

import pytest
from tablestore import (
    INF_MAX,
    INF_MIN,
    BatchGetRowRequest,
    BatchWriteRowRequest,
    CapacityUnit,
    ComparatorType,
    CompositeColumnCondition,
    Condition,
    DeleteRowItem,
    Direction,
    LogicalOperator,
    OTSServiceError,
    PutRowItem,
    ReservedThroughput,
    Row,
    RowExistenceExpectation,
    SingleColumnCondition,
    TableInBatchGetRowItem,
    TableInBatchWriteRowItem,
    TableMeta,
    TableOptions,
    UpdateRowItem,
)
from tablestore.retry import NoRetryPolicy

EXIST = RowExistenceExpectation.EXPECT_EXIST
NOT_EXIST = RowExistenceExpectation.EXPECT_NOT_EXIST
IGNORE = RowExistenceExpectation.IGNORE


def _create(client, table: str, schema=(("pk", "STRING"), ("sk", "INTEGER"))) -> None:
    client.create_table(TableMeta(table, list(schema)), TableOptions(-1, 1), ReservedThroughput(CapacityUnit(0, 0)))


def _code(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.get_error_code()


@pytest.fixture
def client(make_ots_client):
    # No SDK retries: each test sees the double's first answer.
    return make_ots_client(retry_policy=NoRetryPolicy())


@pytest.fixture
def table(client, tablestore_table) -> str:
    _create(client, tablestore_table)
    return tablestore_table


def _columns(row) -> dict:
    return {c[0]: c[1] for c in row.attribute_columns} if row is not None else {}


def _get(client, table, pk, columns=None, column_filter=None):
    return client.get_row(table, pk, columns, column_filter, 1)[1]


def _scan(client, table, direction, start, end, **kwargs) -> tuple[list, int]:
    """Every row of a range, following next_start_primary_key; also the number of pages."""
    rows, pages = [], 0
    while start is not None:
        _, start, page, token = client.get_range(table, direction, start, end, max_version=1, **kwargs)
        assert token == b""  # the SDK hands back b'', not None
        rows += page
        pages += 1
    return rows, pages


# -- tables -----------------------------------------------------------------------------------


def test_tables_are_created_described_listed_and_deleted(client, tablestore_table):
    _create(client, tablestore_table, (("id", "STRING"), ("n", "INTEGER"), ("b", "BINARY")))
    assert tablestore_table in client.list_table()
    described = client.describe_table(tablestore_table)
    assert described.table_meta.schema_of_primary_key == [("id", "STRING"), ("n", "INTEGER"), ("b", "BINARY")]
    assert (described.table_options.max_version, described.table_options.time_to_live) == (1, -1)
    with pytest.raises(OTSServiceError) as excinfo:
        _create(client, tablestore_table)
    assert (_code(excinfo), excinfo.value.get_http_status()) == ("OTSObjectAlreadyExist", 409)
    client.delete_table(tablestore_table)
    assert tablestore_table not in client.list_table()
    with pytest.raises(OTSServiceError) as excinfo:
        client.get_row(tablestore_table, [("id", "a"), ("n", 1), ("b", bytearray(b"x"))], None, None, 1)
    assert (_code(excinfo), excinfo.value.get_http_status()) == ("OTSObjectNotExist", 404)


def test_table_settings_the_double_does_not_model_are_refused_not_guessed(client, tablestore_table):
    with pytest.raises(OTSServiceError) as excinfo:
        client.create_table(TableMeta(tablestore_table, [("pk", "STRING")]), TableOptions(86400, 1),
                            ReservedThroughput(CapacityUnit(0, 0)))
    assert _code(excinfo) == "OTSParameterInvalid"
    assert "not modelled by the local double" in excinfo.value.get_error_message()


# -- single rows ------------------------------------------------------------------------------


def test_put_and_get_every_value_type_back(client, table):
    values = [("s", "héllo"), ("i", -(2**63)), ("d", 0.1), ("b", True), ("x", bytearray(b"\x00\xff"))]
    client.put_row(table, Row([("pk", "a"), ("sk", 1)], values))
    row = _get(client, table, [("pk", "a"), ("sk", 1)])
    assert row.primary_key == [("pk", "a"), ("sk", 1)]
    assert _columns(row) == dict(values)
    assert all(isinstance(c[2], int) and c[2] > 0 for c in row.attribute_columns)  # timestamps, ms
    assert _get(client, table, [("pk", "a"), ("sk", 2)]) is None


def test_columns_to_get_narrows_the_row_and_a_row_without_them_is_not_returned(client, table):
    client.put_row(table, Row([("pk", "a"), ("sk", 1)], [("x", 1), ("y", 2)]))
    assert _columns(_get(client, table, [("pk", "a"), ("sk", 1)], ["y"])) == {"y": 2}
    assert _get(client, table, [("pk", "a"), ("sk", 1)], ["nope"]) is None


def test_row_existence_conditions(client, table):
    pk = [("pk", "a"), ("sk", 1)]
    with pytest.raises(OTSServiceError) as excinfo:
        client.put_row(table, Row(pk, [("v", 1)]), Condition(EXIST))
    assert (_code(excinfo), excinfo.value.get_http_status()) == ("OTSConditionCheckFail", 403)
    client.put_row(table, Row(pk, [("v", 1)]), Condition(NOT_EXIST))
    with pytest.raises(OTSServiceError) as excinfo:
        client.put_row(table, Row(pk, [("v", 2)]), Condition(NOT_EXIST))
    assert _code(excinfo) == "OTSConditionCheckFail"
    client.put_row(table, Row(pk, [("v", 3)]), Condition(EXIST))
    client.put_row(table, Row(pk, [("w", 4)]), Condition(IGNORE))  # a put replaces the whole row
    assert _columns(_get(client, table, pk)) == {"w": 4}


def test_column_conditions_single_composite_and_pass_if_missing(client, table):
    pk = [("pk", "a"), ("sk", 1)]
    client.put_row(table, Row(pk, [("state", "pending"), ("n", 5)]))

    def update(condition) -> bool:
        try:
            client.update_row(table, Row(pk, {"PUT": [("touched", True)]}), Condition(EXIST, condition))
            return True
        except OTSServiceError as exc:
            assert exc.get_error_code() == "OTSConditionCheckFail"
            return False

    assert update(SingleColumnCondition("state", "pending", ComparatorType.EQUAL))
    assert not update(SingleColumnCondition("n", 5, ComparatorType.GREATER_THAN))
    assert update(SingleColumnCondition("n", 5, ComparatorType.LESS_EQUAL))
    # A missing column passes by default (pass_if_missing=True), and fails with pass_if_missing=False.
    assert update(SingleColumnCondition("absent", 1, ComparatorType.EQUAL))
    assert not update(SingleColumnCondition("absent", 1, ComparatorType.EQUAL, pass_if_missing=False))
    both = CompositeColumnCondition(LogicalOperator.AND)
    both.add_sub_condition(SingleColumnCondition("state", "pending", ComparatorType.EQUAL))
    both.add_sub_condition(SingleColumnCondition("n", 6, ComparatorType.EQUAL))
    assert not update(both)
    either = CompositeColumnCondition(LogicalOperator.OR)
    either.add_sub_condition(SingleColumnCondition("state", "dead", ComparatorType.EQUAL))
    either.add_sub_condition(SingleColumnCondition("n", 5, ComparatorType.EQUAL))
    assert update(either)
    negated = CompositeColumnCondition(LogicalOperator.NOT)
    negated.add_sub_condition(SingleColumnCondition("state", "pending", ComparatorType.EQUAL))
    assert not update(negated)


def test_comparing_a_column_with_a_value_of_another_type_is_refused(client, table):
    pk = [("pk", "a"), ("sk", 1)]
    client.put_row(table, Row(pk, [("n", 5)]))
    with pytest.raises(OTSServiceError) as excinfo:
        client.update_row(table, Row(pk, {"PUT": [("x", 1)]}),
                          Condition(EXIST, SingleColumnCondition("n", 5.0, ComparatorType.EQUAL)))
    assert "not modelled" in excinfo.value.get_error_message()


def test_update_row_put_delete_all_delete_one_version_and_increment(client, table):
    pk = [("pk", "a"), ("sk", 1)]
    client.put_row(table, Row(pk, [("keep", "k"), ("gone", "g"), ("versioned", "v", 1000)]))
    client.update_row(table, Row(pk, {"PUT": [("new", 1.5)], "DELETE_ALL": ["gone"], "INCREMENT": [("count", 3)]}),
                      Condition(EXIST))
    client.update_row(table, Row(pk, {"DELETE": [("versioned", None, 1000)]}), Condition(EXIST))
    assert _columns(_get(client, table, pk)) == {"keep": "k", "new": 1.5, "count": 3}  # missing counter: 0 + 3
    client.update_row(table, Row(pk, {"INCREMENT": [("count", -5)]}), Condition(EXIST))
    assert _columns(_get(client, table, pk))["count"] == -2
    with pytest.raises(OTSServiceError) as excinfo:
        client.update_row(table, Row(pk, {"INCREMENT": [("keep", 1)]}), Condition(EXIST))
    assert _code(excinfo) == "OTSParameterInvalid"  # INCREMENT on a STRING column


def test_update_row_creates_a_missing_row_under_ignore_and_refuses_under_expect_exist(client, table):
    pk = [("pk", "new"), ("sk", 1)]
    with pytest.raises(OTSServiceError) as excinfo:
        client.update_row(table, Row(pk, {"PUT": [("v", 1)]}), Condition(EXIST))
    assert _code(excinfo) == "OTSConditionCheckFail"
    client.update_row(table, Row(pk, {"PUT": [("v", 1)]}), Condition(IGNORE))
    assert _columns(_get(client, table, pk)) == {"v": 1}


def test_delete_row_with_conditions(client, table):
    pk = [("pk", "a"), ("sk", 1)]
    client.put_row(table, Row(pk, [("ref", "r1")]))
    with pytest.raises(OTSServiceError) as excinfo:
        client.delete_row(table, Row(pk), Condition(EXIST, SingleColumnCondition("ref", "r2", ComparatorType.EQUAL)))
    assert _code(excinfo) == "OTSConditionCheckFail"
    client.delete_row(table, Row(pk), Condition(EXIST, SingleColumnCondition("ref", "r1", ComparatorType.EQUAL)))
    assert _get(client, table, pk) is None
    with pytest.raises(OTSServiceError) as excinfo:
        client.delete_row(table, Row(pk), Condition(EXIST))
    assert _code(excinfo) == "OTSConditionCheckFail"


# -- filters on reads -------------------------------------------------------------------------


def test_a_filter_on_a_column_not_read_sees_it_missing(client, table):
    """The service evaluates a read's filter on the columns read only: here `due` is not read."""
    pk = [("pk", "a"), ("sk", 1)]
    client.put_row(table, Row(pk, [("url", "u"), ("due", 1.0)]))
    due = SingleColumnCondition("due", 5.0, ComparatorType.LESS_EQUAL, pass_if_missing=False)
    assert _columns(_get(client, table, pk, None, due)) == {"url": "u", "due": 1.0}  # every column read
    assert _columns(_get(client, table, pk, ["url", "due"], due)) == {"url": "u", "due": 1.0}
    assert _get(client, table, pk, ["url"], due) is None  # `due` not read: missing, and must not be
    lenient = SingleColumnCondition("due", 0.0, ComparatorType.EQUAL, pass_if_missing=True)
    assert _columns(_get(client, table, pk, ["url"], lenient)) == {"url": "u"}  # missing passes
    rows, _ = _scan(client, table, Direction.FORWARD, [("pk", INF_MIN), ("sk", INF_MIN)],
                    [("pk", INF_MAX), ("sk", INF_MAX)], columns_to_get=["url"], column_filter=due)
    assert rows == []


# -- ranges -----------------------------------------------------------------------------------


def _fill(client, table, count: int) -> None:
    request = BatchWriteRowRequest()
    request.add(TableInBatchWriteRowItem(table, [
        PutRowItem(Row([("pk", "p"), ("sk", i)], [("i", i), ("odd", i % 2 == 1)]), Condition(IGNORE))
        for i in range(count)
    ]))
    assert client.batch_write_row(request).is_all_succeed()


def test_get_range_forward_and_backward_with_bounds_and_limit(client, table, tablestore_double):
    _fill(client, table, 10)
    client.put_row(table, Row([("pk", "q"), ("sk", 0)], [("i", 100)]))  # another partition, outside the ranges
    start, end = [("pk", "p"), ("sk", INF_MIN)], [("pk", "p"), ("sk", INF_MAX)]
    rows, pages = _scan(client, table, Direction.FORWARD, start, end)
    assert [r.primary_key[1][1] for r in rows] == list(range(10)) and pages == 1
    rows, _ = _scan(client, table, Direction.BACKWARD, end, start)
    assert [r.primary_key[1][1] for r in rows] == list(range(9, -1, -1))
    _, next_key, page, _ = client.get_range(table, Direction.FORWARD, [("pk", "p"), ("sk", 3)],
                                            [("pk", "p"), ("sk", 8)], limit=2, max_version=1)
    assert [r.primary_key[1][1] for r in page] == [3, 4] and next_key == [("pk", "p"), ("sk", 5)]
    with pytest.raises(OTSServiceError) as excinfo:  # a FORWARD range must go up
        client.get_range(table, Direction.FORWARD, end, start, max_version=1)
    assert _code(excinfo) == "OTSParameterInvalid"


def test_get_range_pages_that_the_caller_must_follow(client, table, tablestore_double):
    tablestore_double.configure(page_rows=3)
    _fill(client, table, 10)
    start, end = [("pk", "p"), ("sk", INF_MIN)], [("pk", "p"), ("sk", INF_MAX)]
    _, next_key, page, _ = client.get_range(table, Direction.FORWARD, start, end, max_version=1)
    assert len(page) == 3 and next_key == [("pk", "p"), ("sk", 3)]
    rows, pages = _scan(client, table, Direction.FORWARD, start, end)
    assert [r.primary_key[1][1] for r in rows] == list(range(10)) and pages == 4
    rows, pages = _scan(client, table, Direction.BACKWARD, end, start)
    assert [r.primary_key[1][1] for r in rows] == list(range(9, -1, -1)) and pages == 4
    # A filter drops rows but not the scan's page limit: pages may come back short, even empty.
    odd = SingleColumnCondition("odd", True, ComparatorType.EQUAL)
    _, next_key, page, _ = client.get_range(table, Direction.FORWARD, [("pk", "p"), ("sk", 4)], end,
                                            column_filter=SingleColumnCondition("i", 4, ComparatorType.LESS_THAN),
                                            max_version=1)
    assert page == [] and next_key == [("pk", "p"), ("sk", 7)]
    rows, _ = _scan(client, table, Direction.FORWARD, start, end, column_filter=odd)
    assert [r.primary_key[1][1] for r in rows] == [1, 3, 5, 7, 9]


def test_get_range_pages_by_bytes(client, table, tablestore_double):
    tablestore_double.configure(page_bytes=3000)
    for i in range(4):
        client.put_row(table, Row([("pk", "p"), ("sk", i)], [("blob", "x" * 2000)]))
    rows, pages = _scan(client, table, Direction.FORWARD, [("pk", "p"), ("sk", INF_MIN)], [("pk", "p"), ("sk", INF_MAX)])
    assert len(rows) == 4 and pages == 2


# -- batches ----------------------------------------------------------------------------------


def test_batch_write_row_reports_errors_per_row(client, table):
    client.put_row(table, Row([("pk", "a"), ("sk", 1)], [("v", 1)]))
    request = BatchWriteRowRequest()
    request.add(TableInBatchWriteRowItem(table, [
        PutRowItem(Row([("pk", "a"), ("sk", 1)], [("v", 2)]), Condition(NOT_EXIST)),  # exists: fails
        PutRowItem(Row([("pk", "a"), ("sk", 2)], [("v", 2)]), Condition(NOT_EXIST)),
        UpdateRowItem(Row([("pk", "a"), ("sk", 3)], {"INCREMENT": [("n", 1)]}), Condition(IGNORE)),
        DeleteRowItem(Row([("pk", "a"), ("sk", 9)]), Condition(EXIST)),  # missing: fails
    ]))
    result = client.batch_write_row(request)
    assert not result.is_all_succeed()
    put_ok, put_failed = result.get_put()
    assert len(put_ok) == 1 and [r.error_code for r in put_failed] == ["OTSConditionCheckFail"]
    _, delete_failed = result.get_delete()
    assert [r.error_code for r in delete_failed] == ["OTSConditionCheckFail"]
    assert _columns(_get(client, table, [("pk", "a"), ("sk", 1)])) == {"v": 1}
    assert _columns(_get(client, table, [("pk", "a"), ("sk", 2)])) == {"v": 2}
    assert _columns(_get(client, table, [("pk", "a"), ("sk", 3)])) == {"n": 1}


def test_batch_write_row_refuses_more_than_200_rows(client, table):
    request = BatchWriteRowRequest()
    request.add(TableInBatchWriteRowItem(table, [
        PutRowItem(Row([("pk", "a"), ("sk", i)], [("v", i)]), Condition(IGNORE)) for i in range(201)
    ]))
    with pytest.raises(OTSServiceError) as excinfo:
        client.batch_write_row(request)
    assert _code(excinfo) == "OTSParameterInvalid"
    assert _get(client, table, [("pk", "a"), ("sk", 0)]) is None  # nothing of it was written


def test_batch_get_row_returns_rows_in_order_with_misses(client, table):
    _fill(client, table, 3)
    request = BatchGetRowRequest()
    request.add(TableInBatchGetRowItem(table, [[("pk", "p"), ("sk", 2)], [("pk", "p"), ("sk", 7)],
                                               [("pk", "p"), ("sk", 0)]], ["i"], None, 1))
    result = client.batch_get_row(request)
    assert result.is_all_succeed()
    items = result.get_result_by_table(table)
    assert [_columns(item.row) if item.row else None for item in items] == [{"i": 2}, None, {"i": 0}]


# -- limits -----------------------------------------------------------------------------------


def test_service_limits_are_refused_with_parameter_invalid(client, table):
    with pytest.raises(OTSServiceError) as excinfo:
        client.put_row(table, Row([("pk", "k" * 1025), ("sk", 1)], [("v", 1)]))
    assert _code(excinfo) == "OTSParameterInvalid"
    client.put_row(table, Row([("pk", "k" * 1024), ("sk", 1)], [("v", 1)]))  # exactly 1 KB is fine
    with pytest.raises(OTSServiceError) as excinfo:
        client.put_row(table, Row([("pk", "a"), ("sk", 1)], [("v", "x" * (2 * 1024 * 1024 + 1))]))
    assert _code(excinfo) == "OTSParameterInvalid"
    with pytest.raises(OTSServiceError) as excinfo:  # wrong key type
        client.put_row(table, Row([("pk", "a"), ("sk", "1")], [("v", 1)]))
    assert _code(excinfo) == "OTSParameterInvalid"


def test_an_int_beyond_int64_never_reaches_the_wire(client, table, tablestore_double):
    """The SDK's PlainBuffer encoder packs with struct 'q': it raises a raw struct.error (not an OTS error)."""
    import struct

    tablestore_double.clear_calls()
    with pytest.raises(struct.error):
        client.put_row(table, Row([("pk", "a"), ("sk", 1)], [("v", 2**63)]))
    with pytest.raises(struct.error):
        client.update_row(table, Row([("pk", "a"), ("sk", 1)], {"INCREMENT": [("v", -(2**63) - 1)]}), Condition(IGNORE))
    assert tablestore_double.calls() == 0


# -- races ------------------------------------------------------------------------------------


def test_racing_conditional_writes_are_atomic(make_ots_client, table):
    """Compare-and-set from 6 threads, each with its own client: no increment is lost, no create is doubled."""
    import threading

    pk = [("pk", "counter"), ("sk", 0)]
    winners: list[int] = []
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        client = make_ots_client(retry_policy=NoRetryPolicy())
        try:
            try:
                client.put_row(table, Row(pk, [("n", 0)]), Condition(NOT_EXIST))
                winners.append(worker)
            except OTSServiceError as exc:
                assert exc.get_error_code() == "OTSConditionCheckFail"
            done = 0
            while done < 10:
                old = _columns(_get(client, table, pk))["n"]
                try:
                    client.update_row(table, Row(pk, {"PUT": [("n", old + 1)]}),
                                      Condition(EXIST, SingleColumnCondition("n", old, ComparatorType.EQUAL)))
                    done += 1
                except OTSServiceError as exc:
                    assert exc.get_error_code() == "OTSConditionCheckFail"
        except BaseException as exc:  # surfaced below: a thread's assertion must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(winners) == 1
    assert _columns(_get(make_ots_client(), table, pk))["n"] == 60


def test_a_batch_naming_a_missing_table_is_refused_as_not_modelled(client, table):
    request = BatchGetRowRequest()
    request.add(TableInBatchGetRowItem(table, [[("pk", "p"), ("sk", 0)]], None, None, 1))
    request.add(TableInBatchGetRowItem("no_such_table", [[("pk", "p"), ("sk", 0)]], None, None, 1))
    with pytest.raises(OTSServiceError) as excinfo:
        client.batch_get_row(request)
    assert "not modelled" in excinfo.value.get_error_message()
