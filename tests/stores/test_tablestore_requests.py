"""What the Tablestore store asks of the service, as the local double received it through the real SDK.

The contract suite checks what the store does; these tests check how: every write that decides
anything is conditional, no column condition lets a missing column pass, filtered reads name
the columns their filter looks at, errors are translated by code after a bounded number of the
SDK's own retries, and a new table is waited for.
"""

from __future__ import annotations

import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import tablestore.client

from handler import lifecycle as lc
from handler.credentials import Credentials
from handler.ports import PREFETCH, StoreError
from handler.stores import keys
from handler.stores.tablestore import TablestoreStore

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0
W = 28_333_333
URL = "https://cdn.example.com/a.jpg"
WRITES = ("PutRow", "UpdateRow", "DeleteRow")
FAST = {"max_retry_delay": 0.01, "ready_poll": 0.05}  # the budget's shape, without the waiting


@pytest.fixture
def open_store(tablestore_store_url, tablestore_credentials):
    opened: list[TablestoreStore] = []

    def make(**options) -> TablestoreStore:
        store = TablestoreStore.from_url(tablestore_store_url, credentials=tablestore_credentials, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store, tablestore_double) -> TablestoreStore:
    store = open_store(**FAST)
    store.create_schema()
    tablestore_double.clear_calls()
    return store


@pytest.fixture
def slept(monkeypatch) -> list[float]:
    """The SDK's retry sleeps, recorded instead of slept."""
    delays: list[float] = []
    monkeypatch.setattr(tablestore.client.time, "sleep", delays.append)
    return delays


def writes(double) -> list:
    return [r for r in double.requests() if r.operation in WRITES]


def partition(request) -> str:
    return request.request["key"][0].partition("#")[0]


def upload(store, urls, *, version="v1", window=W, now=T0):
    return store.update({u: partial(lc.written, url=u, version=version, window=window, now=now, mode=lc.AUTO)
                         for u in urls}, now)


def claim(store, *, now=T0 + 120, owner="flusher", limit=100):
    return store.claim(max_window=None, now=now, limit=limit, owner=owner, lease_seconds=300)


def a_day_of_work(store) -> None:
    """Every kind of write the store makes: uploads, claims, pushes, releases, refusals, forgetting, quota."""
    urls = [f"https://cdn.example.com/{i}.png" for i in range(6)]
    upload(store, urls)
    upload(store, urls[:2])  # a redelivery
    claim(store)
    states = store.states(urls)
    store.update({u: partial(lc.push_accepted, owner="flusher", task_id="t", pushed=states[u].version, now=T0 + 121,
                             mode=lc.AUTO) for u in urls[:2]}, T0 + 121)
    store.update({urls[2]: partial(lc.released, owner="flusher", not_before=T0 + 900, reason="quota", now=T0 + 121)},
                 T0 + 121)
    store.update({urls[3]: partial(lc.refused, owner="flusher", reason="bad", now=T0 + 121, keep_until=T0 + 9e9)},
                 T0 + 121)
    store.update({urls[4]: lambda state: None}, T0 + 122)
    upload(store, [urls[5]], version="v2", window=W + 3, now=T0 + 130)  # an overwrite moves it to another window
    claim(store, now=T0 + 10**4, owner="checker")
    store.reserve_quota(PREFETCH, "d", 5, 10)
    store.reserve_quota(PREFETCH, "d", 9, 10)
    store.release_quota(PREFETCH, "d", 3)
    store.request_flush(W)
    store.request_flush(W)
    store.dead_letters()
    store.counts(T0)


# -- conditions -------------------------------------------------------------------------------


def test_a_new_url_writes_its_due_row_then_the_index_then_its_record_if_absent(store, tablestore_double):
    assert set(upload(store, [URL])) == {URL}
    row, index, record = writes(tablestore_double)
    shard = keys.shard_of(URL)
    assert (row.operation, row.request["key"][0], row.request["expectation"]) == (
        "PutRow", keys.pending_pk(W, shard), "IGNORE")  # re-putting a due row is idempotent
    assert row.request["key"][1].startswith(keys.url_hash(URL) + "#")  # keyed by the row's own token
    assert (index.operation, index.request["key"], index.request["expectation"]) == (
        "UpdateRow", list(keys.window_entry_key(W, shard)), "IGNORE")  # touching the index too
    assert (record.operation, record.request["key"], record.request["expectation"], record.request["conditions"]) == (
        "PutRow", [keys.url_pk(URL), keys.NO_SORT_KEY], "EXPECT_NOT_EXIST", [])


def test_every_deciding_write_is_conditional(store, tablestore_double):
    a_day_of_work(store)
    done = writes(tablestore_double)
    assert {partition(r) for r in done} == {"url", "pending", "windows", "quota", "flush", "dead"}
    unconditioned = [r for r in done if r.request["expectation"] == "IGNORE" and not r.request["conditions"]]
    # Only the two idempotent derived writes: re-putting a due row (PutRow), touching the index (UpdateRow).
    assert {(r.operation, partition(r)) for r in unconditioned} == {("PutRow", "pending"), ("UpdateRow", "windows")}
    for r in done:
        if partition(r) == "url" and r.request["expectation"] == "EXPECT_EXIST":
            assert r.request["conditions"] == [{"column": "rev", "comparator": "EQUAL", "pass_if_missing": False}]


def test_no_column_condition_or_filter_ever_passes_a_missing_column(store, tablestore_double):
    """The SDK's pass_if_missing defaults to True; a missing column passing would break every compare-and-set."""
    a_day_of_work(store)
    requests = tablestore_double.requests()
    conditions = [c for r in requests for c in r.request.get("conditions", []) + r.request.get("filter", [])]
    assert len(conditions) > 20
    assert all(c["pass_if_missing"] is False for c in conditions)
    assert any(r.request.get("filter") for r in requests)  # claim's reads were filtered
    assert {r.request.get("table") for r in requests} == {store.table}


def test_a_filtered_read_asks_for_the_columns_its_filter_looks_at(store, tablestore_double):
    """The service filters on the columns read only: a filter column left out reads as missing on every row."""
    upload(store, [URL])
    tablestore_double.clear_calls()
    assert [s.url for s in claim(store)] == [URL]
    filtered = [r.request for r in tablestore_double.requests("GetRange") if r.request["filter"]]
    assert filtered
    for read in filtered:
        assert read["columns"], "a filtered read of every column would hide the bug this pins"
        assert {c["column"] for c in read["filter"]} <= set(read["columns"])


def test_quota_is_a_compare_and_set_on_the_value_read(store, tablestore_double):
    store.reserve_quota(PREFETCH, "d", 5, 10)
    store.reserve_quota(PREFETCH, "d", 9, 10)
    counter = [r for r in writes(tablestore_double) if partition(r) == "quota"]
    assert [(r.operation, r.request["expectation"], r.request["conditions"]) for r in counter] == [
        ("PutRow", "EXPECT_NOT_EXIST", []),
        ("UpdateRow", "EXPECT_EXIST", [{"column": "used", "comparator": "EQUAL", "pass_if_missing": False}]),
    ]


def test_request_flush_is_a_put_if_absent(store, tablestore_double):
    assert (store.request_flush(W), store.request_flush(W)) == (True, False)
    assert [(r.request["key"], r.request["expectation"], r.outcome) for r in writes(tablestore_double)] == [
        ([keys.flush_pk(W), keys.NO_SORT_KEY], "EXPECT_NOT_EXIST", "OK"),
        ([keys.flush_pk(W), keys.NO_SORT_KEY], "EXPECT_NOT_EXIST", "OTSConditionCheckFail"),
    ]


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code, retried", [
    ("OTSServerBusy", True), ("OTSQuotaExhausted", True), ("OTSRowOperationConflict", True),
    ("OTSServerUnavailable", True), ("OTSInternalServerError", True), ("OTSTimeout", True),  # on a read
    ("OTSAuthFailed", False), ("OTSParameterInvalid", False),
])
def test_service_errors_become_store_errors_by_code_after_bounded_retries(store, tablestore_double, slept, code,
                                                                         retried):
    tablestore_double.inject(operation="GetRow", code=code, probability=1.0)  # with the service's own message
    with pytest.raises(StoreError, match=code) as caught:
        store.quota_used(PREFETCH, "d")
    assert caught.value.__cause__.get_error_code() == code
    assert tablestore_double.calls("GetRow") == (4 if retried else 1)
    assert sum(slept) <= 3 * FAST["max_retry_delay"]


def test_a_service_message_is_not_repeated_in_the_store_error(store, tablestore_double):
    """A service message may quote what the caller sent; only OTSParameterInvalid's detail is worth showing."""
    tablestore_double.inject(operation="GetRow", code="OTSAuthFailed", message="mismatch for secret-value")
    with pytest.raises(StoreError, match="OTSAuthFailed") as caught:
        store.quota_used(PREFETCH, "d")
    assert "secret-value" not in str(caught.value)


def test_a_throttled_write_is_retried_and_a_timed_out_one_is_not(store, tablestore_double, slept):
    """The SDK retries writes only on throttling codes: a timed-out write may have been applied."""
    tablestore_double.inject(operation="PutRow", code="OTSServerBusy", count=2)
    assert store.request_flush(W) is True
    assert tablestore_double.calls("PutRow") == 3
    tablestore_double.inject(operation="PutRow", code="OTSTimeout")
    with pytest.raises(StoreError, match="OTSTimeout"):
        store.request_flush(W + 1)
    assert tablestore_double.calls("PutRow") == 4


def test_a_dropped_connection_is_a_network_store_error(store, tablestore_double):
    tablestore_double.inject(operation="GetRow", drop=True)
    with pytest.raises(StoreError, match="network"):
        store.quota_used(PREFETCH, "d")


def test_the_default_budget_bounds_a_busy_service(open_store, tablestore_double, slept):
    store = open_store()
    store.create_schema()
    tablestore_double.clear_calls()
    tablestore_double.inject(operation="GetRow", code="OTSServerBusy", probability=1.0)
    with pytest.raises(StoreError, match="OTSServerBusy"):
        store.quota_used(PREFETCH, "d")
    assert tablestore_double.calls("GetRow") == 4 and sum(slept) <= 3.0
    assert store.client.socket_timeout == 3.0


def test_a_client_passed_in_gets_the_same_bounded_retries(tablestore_double, tablestore_table, make_ots_client, slept):
    """Without it, the SDK's default would try 21 times and sleep ~40 s: longer than the function may run."""
    store = TablestoreStore(tablestore_double.credentials.instance, tablestore_table, client=make_ots_client())
    store.create_schema()
    tablestore_double.clear_calls()
    tablestore_double.inject(operation="GetRow", code="OTSServerBusy", probability=1.0)
    with pytest.raises(StoreError):
        store.quota_used(PREFETCH, "d")
    assert tablestore_double.calls("GetRow") == 4 and sum(slept) <= 3.0


def test_a_missing_table_is_a_store_error_naming_the_cure(open_store):
    with pytest.raises(StoreError, match="init-store"):
        open_store().quota_used(PREFETCH, "d")


def test_an_int_beyond_int64_is_a_store_error(store):
    with pytest.raises(StoreError, match="does not fit"):
        store.reserve_quota(PREFETCH, "d", 2**63, 2**64)


# -- a new table ------------------------------------------------------------------------------


def test_create_schema_declares_the_key_and_waits_until_the_new_table_answers(open_store, tablestore_double):
    tablestore_double.configure(table_not_ready_seconds=0.6)
    store = open_store(**FAST)
    store.create_schema()
    assert tablestore_double.instance.tables[store.table].schema == [("pk", "STRING"), ("sk", "STRING")]
    probes = tablestore_double.requests("GetRow")
    assert probes[0].outcome == "OTSTableNotReady" and probes[-1].outcome == "OK"
    assert store.request_flush(W) is True  # the first write after create_schema does not meet a table not ready


def test_create_schema_waits_also_for_a_table_someone_else_just_created(open_store, tablestore_double):
    open_store(**FAST).create_schema()
    second = open_store(**FAST)
    # As if another process had created the table a moment ago: it is not ready again yet.
    tablestore_double.instance.tables[second.table].ready_at = tablestore_double.instance.clock() + 0.6
    tablestore_double.clear_calls()
    second.create_schema()
    assert [r.outcome for r in tablestore_double.requests("CreateTable")] == ["OTSObjectAlreadyExist"]
    assert tablestore_double.requests("GetRow")[0].outcome == "OTSTableNotReady"
    assert second.request_flush(W) is True


def test_create_schema_gives_up_on_a_table_that_never_gets_ready(open_store, tablestore_double):
    tablestore_double.configure(table_not_ready_seconds=60)
    with pytest.raises(StoreError, match="not ready after"):
        open_store(ready_timeout=0.3, **FAST).create_schema()


def test_create_schema_tolerates_an_existing_table(store, tablestore_double):
    store.create_schema()
    assert [r.outcome for r in tablestore_double.requests("CreateTable")] == ["OTSObjectAlreadyExist"]


# -- opening ----------------------------------------------------------------------------------


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


def test_from_url_refuses_malformed_urls_and_plain_http_off_loopback():
    for bad in ["tablestore://prewarm", "tablestore://prewarm/t?colour=red", "tablestore://prewarm/t",
                "tablestore://prewarm/t?endpoint=http://prewarm.cn-hangzhou.ots.aliyuncs.com",
                "tablestore://inst/tbl?endpoint=http://10.0.0.1:80"]:
        with pytest.raises(ValueError):
            TablestoreStore.from_url(bad)


def test_importing_the_adapter_loads_neither_boto3_nor_requests():
    code = ("import sys, handler.stores.tablestore; "
            "print(sorted(m for m in ('boto3', 'botocore', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
