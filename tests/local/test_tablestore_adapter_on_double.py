"""The project's Tablestore adapter on the real SDK path: TablestoreStore -> OTSClient -> HTTP -> the double.

A smoke test that the adapter works end to end, and tests pinning what the real SDK path shows
about the adapter. Tests marked xfail(strict=True) state the behaviour the adapter should have;
they fail loudly (XPASS) once it does, so the marker can go.
"""

from __future__ import annotations

import struct

import pytest
import tablestore.client

from handler.ports import StoreError
from handler.stores.tablestore import TablestoreStore

NOW = 1_800_000_000.0
URLS = [f"https://cdn.example.com/img/{i}.png" for i in range(5)]


@pytest.fixture
def store(tablestore_store_url, tablestore_credentials):
    opened = TablestoreStore.from_url(tablestore_store_url, credentials=tablestore_credentials)
    yield opened
    opened.close()


def test_the_adapter_creates_its_table_adds_and_claims_urls_over_the_real_sdk(store, tablestore_double):
    store.create_schema()
    store.create_schema()  # again: an existing table is fine
    window = 100
    assert sorted(store.add_pending(window, URLS, NOW)) == sorted(URLS)
    assert store.add_pending(window, URLS, NOW) == []  # already pending: deduplicated
    assert store.pending_in_window(window) == len(URLS)
    first = store.claim(max_window=None, now=NOW, limit=3, owner="worker-1", lease_seconds=60)
    second = store.claim(max_window=None, now=NOW, limit=10, owner="worker-2", lease_seconds=60)
    claimed = [c.url for c in first + second]
    assert len(first) == 3 and sorted(claimed) == sorted(URLS)  # each URL leased once
    store.mark_pushed({c.url: "task-1" for c in first}, now=NOW + 1, keep_until=NOW + 3600)
    assert store.counts(NOW + 2).pending == 2
    assert tablestore_double.calls("GetRange") > 0 and tablestore_double.calls("UpdateRow") > 0


def test_the_adapters_own_retry_policy_bounds_a_busy_service(store, tablestore_double, monkeypatch):
    """from_url's client retries 3 times, sleeping at most 1 s each: a busy service costs 4 calls, < 2.5 s of sleep."""
    slept: list[float] = []
    monkeypatch.setattr(tablestore.client.time, "sleep", slept.append)
    store.create_schema()
    tablestore_double.clear_calls()
    tablestore_double.inject(operation="GetRow", code="OTSServerBusy", probability=1.0)
    with pytest.raises(StoreError, match="OTSServerBusy"):
        store.quota_used("2026-11-26")
    assert tablestore_double.calls("GetRow") == 4 and sum(slept) <= 2.5


def test_a_client_passed_in_keeps_the_sdks_default_retries(tablestore_double, tablestore_table, make_ots_client,
                                                           monkeypatch):
    """TablestoreStore(..., client=OTSClient(...)) gets none of from_url's bounds: 21 calls and ~41 s of sleep."""
    slept: list[float] = []
    monkeypatch.setattr(tablestore.client.time, "sleep", slept.append)
    store = TablestoreStore(tablestore_double.credentials.instance, tablestore_table, client=make_ots_client())
    store.create_schema()
    tablestore_double.clear_calls()
    tablestore_double.inject(operation="GetRow", code="OTSServerBusy", probability=1.0)
    with pytest.raises(StoreError):
        store.quota_used("2026-11-26")
    assert tablestore_double.calls("GetRow") == 21 and sum(slept) > 25


@pytest.mark.xfail(strict=True, raises=StoreError, reason="create_schema returns before the new table is ready; the first writes "
                                       "fail with OTSTableNotReady once the SDK's 3 retries (< 2.5 s) are spent")
def test_the_adapter_waits_for_a_new_table_to_be_ready(store, tablestore_double):
    tablestore_double.configure(table_not_ready_seconds=4.0)
    store.create_schema()
    assert store.add_pending(100, URLS[:1], NOW) == URLS[:1]


@pytest.mark.xfail(strict=True, raises=struct.error,
                   reason="an int beyond int64 makes the SDK's encoder raise struct.error, which _call lets through")
def test_an_int_beyond_int64_is_a_store_error(store):
    store.create_schema()
    with pytest.raises(StoreError):
        store.reserve_quota("2026-11-26", 2**63, 2**64)


def test_an_applied_write_whose_answer_is_lost_surfaces_as_store_error_and_is_done(store, tablestore_double):
    """The adapter cannot tell a lost answer from a failed write: the record exists although add failed."""
    store.create_schema()
    tablestore_double.inject(operation="PutRow", applied=True, drop=True)
    with pytest.raises(StoreError, match="network"):
        store.add_pending(100, URLS[:1], NOW)
    # A repeat of the add finds the record and re-puts its pending row (the adapter's crash-safety path).
    assert store.add_pending(100, URLS[:1], NOW) == []
    assert store.pending_in_window(100) == 1
    assert [c.url for c in store.claim(max_window=None, now=NOW, limit=5, owner="w", lease_seconds=60)] == URLS[:1]


def test_from_url_refuses_plain_http_off_loopback(tablestore_credentials):
    from handler.settings import ConfigError

    with pytest.raises(ConfigError):
        TablestoreStore.from_url("tablestore://inst/tbl?endpoint=http://10.0.0.1:80", credentials=tablestore_credentials)

