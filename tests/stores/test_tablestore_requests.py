"""The exact requests the Tablestore store sends, as recorded by the fake client; and the fake's own fidelity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import urllib3.exceptions
from tablestore import (
    INF_MAX,
    INF_MIN,
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

from fakes.tablestore_client import FakeOTSClient, FakeUnsupported
from handler.credentials import Credentials
from handler.ports import StoreError
from handler.stores import keys
from handler.stores.tablestore import TablestoreStore

ROOT = Path(__file__).resolve().parents[2]
TABLE = "prewarm_state"
T0 = 1_700_000_000.0
W = 28_333_333
URL = "https://cdn.example.com/a.jpg"
EXIST = RowExistenceExpectation.EXPECT_EXIST
NOT_EXIST = RowExistenceExpectation.EXPECT_NOT_EXIST
IGNORE = RowExistenceExpectation.IGNORE


@pytest.fixture
def fake() -> FakeOTSClient:
    return FakeOTSClient()


@pytest.fixture
def store(fake) -> TablestoreStore:
    store = TablestoreStore("prewarm", TABLE, client=fake)
    store.create_schema()
    fake.calls.clear()
    return store


def singles(condition) -> list[SingleColumnCondition]:
    """Every SingleColumnCondition inside a column condition."""
    if condition is None:
        return []
    if isinstance(condition, CompositeColumnCondition):
        return [s for sub in condition.sub_conditions for s in singles(sub)]
    return [condition]


def described(condition: Condition) -> tuple:
    """A condition as plain data: (expectation, {(column, comparator, value, pass_if_missing)})."""
    return condition.row_existence_expectation, {
        (s.column_name, s.comparator, s.column_value, s.pass_if_missing) for s in singles(condition.column_condition)
    }


def writes(fake, method=None):
    return [c for c in fake.calls if c.method in ("put_row", "update_row", "delete_row") and method in (None, c.method)]


def url_pk(url=URL):
    return [("pk", keys.url_pk(url)), ("sk", "-")]


def test_a_new_url_is_written_record_first_then_row_then_index(store, fake):
    assert store.add_pending(W, [URL], T0) == [URL]
    calls = writes(fake)
    assert [(c.method, c.table) for c in calls] == [("put_row", TABLE)] * 2 + [("update_row", TABLE)]
    record, row, index = calls
    assert record.primary_key == url_pk()
    assert described(record.condition) == (NOT_EXIST, set())
    columns = dict((c[0], c[1]) for c in record.row.attribute_columns)
    assert columns["state"] == "pending" and columns["win"] == W and columns["url"] == URL
    shard = keys.shard_of(URL)
    assert row.primary_key == [("pk", keys.pending_pk(W, shard)), ("sk", keys.url_hash(URL))]
    assert described(row.condition) == (IGNORE, set())  # idempotent re-put of a derived row
    assert index.primary_key == [("pk", keys.windows_pk(shard)), ("sk", keys.window_key(W))]


def test_re_adding_after_the_horizon_is_conditioned_on_the_dedupe_gate(store, fake):
    store.add_pending(W, [URL], T0)
    store.claim(max_window=None, now=T0 + 100, limit=5, owner="o", lease_seconds=60)
    store.mark_pushed({URL: "t"}, now=T0 + 101, keep_until=T0 + 200)
    fake.calls.clear()
    assert store.add_pending(W + 5, [URL], T0 + 300) == [URL]
    puts = [c for c in writes(fake, "put_row") if c.primary_key == url_pk()]
    assert [described(c.condition) for c in puts] == [
        (NOT_EXIST, set()),
        (EXIST, {("state", ComparatorType.NOT_EQUAL, "pending", False),
                 ("keep_until", ComparatorType.LESS_EQUAL, T0 + 300, False)}),
    ]


def test_a_lease_is_taken_on_condition_that_the_url_is_still_free_and_due(store, fake):
    store.add_pending(W, [URL], T0)
    fake.calls.clear()
    store.claim(max_window=None, now=T0 + 100, limit=5, owner="o", lease_seconds=60)
    (lease,) = [c for c in writes(fake, "update_row") if c.primary_key == url_pk()]
    expectation, conditions = described(lease.condition)
    assert expectation == EXIST
    ref = next(value for column, _, value, _ in conditions if column == "ref")
    assert conditions == {
        ("state", ComparatorType.EQUAL, "pending", False),
        ("ref", ComparatorType.EQUAL, ref, False),
        ("lease_until", ComparatorType.LESS_EQUAL, T0 + 100, False),
        ("not_before", ComparatorType.LESS_EQUAL, T0 + 100, False),
        ("attempts", ComparatorType.EQUAL, 0, False),
    }
    assert lease.condition.column_condition.combinator == LogicalOperator.AND
    assert ("lease_owner", "o") in [tuple(c[:2]) for c in lease.row.attribute_columns["PUT"]]


def test_defer_and_mark_dead_are_conditioned_on_the_owner(store, fake):
    store.add_pending(W, [URL, URL + "2"], T0)
    store.claim(max_window=None, now=T0 + 100, limit=5, owner="o", lease_seconds=60)
    fake.calls.clear()
    store.defer("o", [URL], not_before=T0 + 500, reason="retry", count_attempt=True)
    store.mark_dead("o", {URL + "2": "bad"}, now=T0 + 101, keep_until=T0 + 900)
    deciding = [c for c in writes(fake, "update_row") if c.primary_key[0][1].startswith("url#")]
    assert len(deciding) == 2
    for call in deciding:
        expectation, conditions = described(call.condition)
        assert expectation == EXIST
        assert ("state", ComparatorType.EQUAL, "pending", False) in conditions
        assert ("lease_owner", ComparatorType.EQUAL, "o", False) in conditions
    assert "lease_owner" in deciding[0].row.attribute_columns["DELETE_ALL"]


def test_quota_is_a_compare_and_set_on_the_value_read(store, fake):
    store.reserve_quota("2026-01-01", 5, 10)
    store.reserve_quota("2026-01-01", 9, 10)
    pk = [("pk", "quota#2026-01-01"), ("sk", "-")]
    calls = [c for c in writes(fake) if c.primary_key == pk]
    assert [(c.method, described(c.condition)) for c in calls] == [
        ("put_row", (NOT_EXIST, set())),
        ("update_row", (EXIST, {("used", ComparatorType.EQUAL, 5, False)})),
    ]
    assert calls[1].row.attribute_columns == {"PUT": [("used", 10)]}


def test_request_flush_is_a_put_if_absent(store, fake):
    assert store.request_flush(W) is True
    assert store.request_flush(W) is False
    calls = writes(fake)
    assert [(c.primary_key, described(c.condition)) for c in calls] == [
        ([("pk", keys.flush_pk(W)), ("sk", "-")], (NOT_EXIST, set()))
    ] * 2


def test_no_column_condition_ever_passes_a_missing_column(store, fake):
    """The SDK's pass_if_missing defaults to True: every condition the store builds says False."""
    store.add_pending(W, [f"https://a/{i}" for i in range(6)], T0)
    store.add_pending(W, ["https://a/0"], T0 + 1)
    store.claim(max_window=None, now=T0 + 100, limit=10, owner="o", lease_seconds=60)
    store.mark_pushed({"https://a/0": "t"}, now=T0 + 101, keep_until=T0 + 200)
    store.mark_dead("o", {"https://a/1": "bad"}, now=T0 + 101, keep_until=T0 + 200)
    store.mark_dead("x", {"https://a/2": "bad"}, now=T0 + 101, keep_until=T0 + 200)
    store.defer("o", ["https://a/2", "https://a/3"], not_before=T0 + 150, reason="r", count_attempt=True)
    store.add_pending(W + 9, ["https://a/0"], T0 + 300)
    store.record_dead(W, {"https://a/9": "too long"}, now=T0, keep_until=T0 + 10)
    store.reserve_quota("d", 5, 10)
    store.release_quota("d", 3)
    store.claim(max_window=None, now=T0 + 1000, limit=10, owner="p", lease_seconds=60)
    store.claim(max_window=None, now=T0 + 1000, limit=10, owner="q", lease_seconds=60)
    conditions = [s for c in fake.calls for s in singles(getattr(c.condition, "column_condition", None))]
    conditions += [s for c in fake.calls for s in singles(c.extra.get("column_filter"))]
    assert len(conditions) > 20
    assert all(s.pass_if_missing is False for s in conditions)
    assert {c.table for c in fake.calls} == {TABLE}
    assert {c.method for c in fake.calls} <= {"put_row", "update_row", "delete_row", "get_row", "get_range"}


def test_create_schema_declares_one_table_and_tolerates_an_existing_one(fake):
    store = TablestoreStore("prewarm", TABLE, client=fake)
    store.create_schema()
    store.create_schema()
    (first, second) = [c for c in fake.calls if c.method == "create_table"]
    assert first.table == TABLE
    assert first.extra["schema"] == [("pk", "STRING"), ("sk", "STRING")]
    options = first.extra["options"]
    assert (options.time_to_live, options.max_version) == (-1, 1)
    capacity = first.extra["reserved_throughput"].capacity_unit
    assert (capacity.read, capacity.write) == (0, 0)


@pytest.mark.parametrize("error, expected", [
    (OTSServiceError(503, "OTSServerBusy", "busy", "r1"), "OTSServerBusy"),
    (OTSServiceError(503, "OTSServerUnavailable", "down", "r1"), "OTSServerUnavailable"),
    (OTSServiceError(500, "OTSInternalServerError", "oops", "r1"), "OTSInternalServerError"),
    (OTSServiceError(503, "OTSTimeout", "slow", "r1"), "OTSTimeout"),
    (OTSServiceError(403, "OTSAuthFailed", "Signature mismatch for secret-value", "r1"), "OTSAuthFailed"),
    (OTSClientError("connection reset"), "client error"),
    (urllib3.exceptions.NewConnectionError(None, "refused"), "network"),
    (urllib3.exceptions.ReadTimeoutError(None, "/GetRow", "timed out"), "network"),
])
def test_sdk_failures_become_store_errors_by_code(store, fake, error, expected):
    fake.fail_next("get_row", error)
    with pytest.raises(StoreError, match=expected) as caught:
        store.quota_used("d")
    assert caught.value.__cause__ is error
    assert "secret-value" not in str(caught.value)


def test_a_missing_table_is_a_store_error_naming_the_cure(fake):
    with pytest.raises(StoreError, match="init-store"):
        TablestoreStore("prewarm", "nope", client=fake).quota_used("d")


def test_credentials_are_resolved_only_when_the_client_is_first_needed(monkeypatch):
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    url = "tablestore://prewarm/prewarm_state?endpoint=https://prewarm.cn-hangzhou.ots.aliyuncs.com"
    lazy = TablestoreStore.from_url(url)  # no credentials anywhere, and no complaint yet
    assert (lazy.instance, lazy.table, lazy.endpoint) == (
        "prewarm", "prewarm_state", "https://prewarm.cn-hangzhou.ots.aliyuncs.com")
    with pytest.raises(ValueError, match="ALIBABA_CLOUD_ACCESS_KEY_ID|access key|credentials"):
        lazy.client
    given = TablestoreStore.from_url(url, credentials=Credentials("AKID", "the-secret", "the-token"))
    client = given.client  # built without any network traffic
    assert type(client).__name__ == "OTSClient"
    assert "the-secret" not in repr(given.__dict__.get("_credentials"))


def test_from_url_refuses_malformed_urls():
    for bad in ["tablestore://prewarm", "tablestore://prewarm/t?colour=red", "tablestore://prewarm/t",
                "tablestore://prewarm/t?endpoint=http://prewarm.cn-hangzhou.ots.aliyuncs.com"]:
        with pytest.raises(ValueError):
            TablestoreStore.from_url(bad)


def test_importing_the_adapter_loads_neither_boto3_nor_requests():
    code = ("import sys, handler.stores.tablestore; "
            "print(sorted(m for m in ('boto3', 'botocore', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


# -- the fake behaves like the service ----------------------------------------------------------


@pytest.fixture
def table(fake):
    from tablestore import CapacityUnit, ReservedThroughput, TableMeta, TableOptions

    fake.create_table(TableMeta("t", [("pk", "STRING"), ("sk", "STRING")]), TableOptions(),
                      ReservedThroughput(CapacityUnit(0, 0)))
    return "t"


def test_fake_pass_if_missing_defaults_to_true_as_in_the_sdk(fake, table):
    pk = [("pk", "a"), ("sk", "b")]
    fake.put_row(table, Row(pk, [("x", 1)]))
    loose = Condition(EXIST, SingleColumnCondition("missing", 5, ComparatorType.EQUAL))
    assert fake.update_row(table, Row(pk, {"PUT": [("y", 2)]}), loose)[1] is None  # passed
    strict = Condition(EXIST, SingleColumnCondition("missing", 5, ComparatorType.EQUAL, pass_if_missing=False))
    with pytest.raises(OTSServiceError) as caught:
        fake.update_row(table, Row(pk, {"PUT": [("y", 3)]}), strict)
    assert (caught.value.get_http_status(), caught.value.get_error_code()) == (403, "OTSConditionCheckFail")


def test_fake_row_existence_and_composites(fake, table):
    pk = [("pk", "a"), ("sk", "b")]
    fake.put_row(table, Row(pk, [("n", 5)]), Condition(NOT_EXIST))
    with pytest.raises(OTSServiceError):
        fake.put_row(table, Row(pk, [("n", 6)]), Condition(NOT_EXIST))
    with pytest.raises(OTSServiceError):
        fake.delete_row(table, Row([("pk", "zz"), ("sk", "b")]), Condition(EXIST))
    either = CompositeColumnCondition(LogicalOperator.OR)
    either.add_sub_condition(SingleColumnCondition("n", 1, ComparatorType.EQUAL, pass_if_missing=False))
    either.add_sub_condition(SingleColumnCondition("n", 5, ComparatorType.GREATER_EQUAL, pass_if_missing=False))
    fake.update_row(table, Row(pk, {"INCREMENT": [("n", 2)]}), Condition(EXIST, either))
    negated = CompositeColumnCondition(LogicalOperator.NOT)
    negated.add_sub_condition(SingleColumnCondition("n", 7, ComparatorType.EQUAL, pass_if_missing=False))
    with pytest.raises(OTSServiceError):
        fake.update_row(table, Row(pk, {"PUT": [("m", 1)]}), Condition(EXIST, negated))
    _, row, token = fake.get_row(table, pk, ["n"])
    assert (row.primary_key, [c[:2] for c in row.attribute_columns], token) == (pk, [("n", 7)], None)
    with pytest.raises(FakeUnsupported):  # comparing INTEGER with DOUBLE is not something to rely on
        fake.update_row(table, Row(pk, {"PUT": [("m", 1)]}),
                        Condition(EXIST, SingleColumnCondition("n", 7.0, ComparatorType.EQUAL)))


def test_fake_get_range_pages_by_next_start_key_in_both_directions(fake, table):
    for i in range(7):
        fake.put_row(table, Row([("pk", "p"), ("sk", f"{i}")], [("v", i)]))
    fake.put_row(table, Row([("pk", "q"), ("sk", "0")], [("v", 99)]))
    start, end, seen = [("pk", "p"), ("sk", INF_MIN)], [("pk", "p"), ("sk", INF_MAX)], []
    while start is not None:
        _, start, rows, _ = fake.get_range(table, Direction.FORWARD, start, end, None, 3)
        assert len(rows) <= 3
        seen += [r.attribute_columns[0][1] for r in rows]
    assert seen == list(range(7))
    _, nxt, rows, _ = fake.get_range(table, Direction.BACKWARD, end, [("pk", "p"), ("sk", INF_MIN)], ["v"], 2)
    assert [r.attribute_columns[0][1] for r in rows] == [6, 5] and nxt == [("pk", "p"), ("sk", "4")]
