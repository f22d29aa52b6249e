"""The DynamoDB store's data layout and write discipline, observed on a real client talking to dynalite."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from functools import partial
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from handler import lifecycle as lc
from handler.ports import PREFETCH, StoreError
from handler.stores import keys
from handler.stores.dynamodb import DynamoDbStore
from handler.stores.keyvalue import ORPHAN_GRACE_SECONDS, new_ref

T0 = 1_700_000_000.0
W = 28_333_333
ROOT = Path(__file__).resolve().parents[2]
WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


@pytest.fixture
def client(dynamodb_endpoint, aws_dummy_credentials):
    return boto3.session.Session().client("dynamodb", region_name="cn-hangzhou", endpoint_url=dynamodb_endpoint)


@pytest.fixture
def store(client, dynamodb_table_name):
    store = DynamoDbStore(dynamodb_table_name, client=client)
    store.create_schema()
    yield store
    store.close()


@pytest.fixture
def requests_sent(client):
    """Every (operation, parameters) the client sends, captured by a botocore event hook."""
    sent: list[tuple[str, dict]] = []

    def capture(params, model, **_):
        sent.append((model.name, dict(params)))

    client.meta.events.register("provide-client-params.dynamodb.*", capture)
    return sent


def items(client, table: str) -> list[dict]:
    found, request = [], {"TableName": table}
    while True:
        page = client.scan(**request)
        found.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return found
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def upload(store, urls, *, version="v1", window=W, now=T0):
    return store.update(
        {u: partial(lc.written, url=u, version=version, window=window, now=now, mode=lc.AUTO) for u in urls}, now
    )


def claim(store, now, owner="o"):
    return store.claim(max_window=None, now=now, limit=10, owner=owner, lease_seconds=60)


def settle(store, urls, step, now, **kwargs):
    store.update({u: partial(step, owner="o", now=now, **kwargs) for u in urls}, now)


def test_one_hot_window_spreads_over_many_partitions(store, client):
    urls = [f"https://cdn.example.com/hot/{i}.jpg" for i in range(1000)]
    assert len(upload(store, urls)) == 1000
    pending = Counter(i["pk"]["S"] for i in items(client, store.table) if i["pk"]["S"].startswith("pending#"))
    assert len(pending) >= 8
    assert max(pending.values()) < 1000 / 8  # no shard holds a lion's share
    assert sum(pending.values()) == 1000
    index = {i["pk"]["S"] for i in items(client, store.table) if i["pk"]["S"].startswith("windows#")}
    assert len(index) == len(pending)  # the windows index is spread the same way


def test_every_write_is_conditional(store, requests_sent):
    upload(store, ["https://a/1", "https://a/2", "https://a/3", "https://a/4"])
    upload(store, ["https://a/1"], now=T0 + 1)  # a redelivery: a read, no write
    assert len(claim(store, T0 + 100)) == 4
    settle(store, ["https://a/1"], lc.push_accepted, T0 + 101, task_id="t", pushed="v1", mode=lc.AUTO)
    settle(store, ["https://a/2"], lc.refused, T0 + 101, reason="bad", keep_until=T0 + 200)
    settle(store, ["https://a/3", "https://a/4"], lc.released, T0 + 101, not_before=T0 + 150, reason="r")
    upload(store, ["https://a/2"], version="v2", window=W + 9, now=T0 + 300)  # a new version of a dead URL
    store.update({"https://a/3": lambda state: None}, T0 + 300)
    store.reserve_quota(PREFETCH, "d", 5, 10)
    store.reserve_quota(PREFETCH, "d", 10, 10)  # partial: the compare-and-set path
    store.release_quota(PREFETCH, "d", 3)
    store.request_flush(W)
    claim(store, T0 + 1000, owner="p")
    claim(store, T0 + 1000, owner="q")  # drains the index
    writes = [(op, params) for op, params in requests_sent if op in WRITES]
    assert {op for op, _ in writes} == WRITES
    unconditional = [(op, params.get("Key") or params.get("Item", {}).get("pk")) for op, params in writes
                     if not params.get("ConditionExpression")]
    assert unconditional == []
    used = {op for op, _ in requests_sent}
    assert used <= {"PutItem", "UpdateItem", "DeleteItem", "GetItem", "Query"}, used  # no batch or scan here


def test_a_crash_between_the_due_row_and_the_record_leaves_only_a_stale_row(store, client):
    url = "https://cdn.example.com/crash.jpg"
    # The invocation died after writing the due row, before writing the URL record.
    orphan = new_ref(T0)
    store._put_pending_row(url, W, orphan, 0.0)
    store._touch_window_entry(W, keys.shard_of(url), "t")
    assert claim(store, T0 + 100) == []  # the row names no record (yet): nothing to claim
    assert len(upload(store, [url], now=T0 + 1)) == 1  # the retried invocation queues it
    assert [(c.url, c.window) for c in claim(store, T0 + 100)] == [(url, W)]
    claim(store, T0 + ORPHAN_GRACE_SECONDS + 1)  # long past any write under way: the orphan goes
    rows = [i for i in items(client, store.table) if i["pk"]["S"].startswith("pending#")]
    assert orphan not in {i["ref"]["S"] for i in rows}


def test_stale_rows_and_drained_index_entries_are_cleaned_by_claim(store, client):
    url = "https://cdn.example.com/stale.jpg"
    upload(store, [url])
    (stale_row,) = [i for i in items(client, store.table) if i["pk"]["S"].startswith("pending#")]
    row_key = {"pk": stale_row["pk"], "sk": stale_row["sk"]}
    claim(store, T0 + 100)
    settle(store, [url], lc.refused, T0 + 101, reason="bad", keep_until=T0 + 10_000)
    client.put_item(TableName=store.table, Item=stale_row)  # as if the delete after settling had been lost
    assert claim(store, T0 + 200, owner="p") == []  # young: it might be a write still under way; left alone
    assert row_key["pk"]["S"] in {i["pk"]["S"] for i in items(client, store.table)}
    assert claim(store, T0 + ORPHAN_GRACE_SECONDS + 1, owner="p") == []
    remaining = {i["pk"]["S"] for i in items(client, store.table)}
    assert row_key["pk"]["S"] not in remaining  # the URL record says dead: the row went
    claim(store, T0 + ORPHAN_GRACE_SECONDS + 2, owner="p")
    remaining = {i["pk"]["S"] for i in items(client, store.table)}
    assert not any(pk.startswith("windows#") for pk in remaining)  # and so did the empty window's entry


def test_keys_are_bounded_whatever_the_url_length(store, client):
    url = "https://cdn.example.com/" + "x" * 5000
    dead = lc.dead(lc.UrlState(url, lc.DEAD, W), "too long", now=T0, keep_until=T0 + 10)
    store.update({url: lambda state: dead}, T0)
    upload(store, ["https://cdn.example.com/" + "y" * 1000])
    for item in items(client, store.table):
        assert len(item["pk"]["S"].encode()) <= 64 and len(item["sk"]["S"].encode()) <= 96


def test_create_schema_is_idempotent_and_on_demand(store, client):
    store.create_schema()
    table = client.describe_table(TableName=store.table)["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    assert table.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST"


def test_a_missing_table_is_a_store_error_naming_the_cure(client):
    store = DynamoDbStore("no-such-table", client=client)
    with pytest.raises(StoreError, match="init-store"):
        store.quota_used(PREFETCH, "d")


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException",
                                  "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable"])
def test_throttling_and_outages_become_store_errors(code, aws_dummy_credentials):
    client = boto3.session.Session().client(
        "dynamodb", region_name="cn-hangzhou", config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    with Stubber(client) as stub:  # the SDK's own stub of the service: no network
        stub.add_client_error("get_item", service_error_code=code, http_status_code=400)
        with pytest.raises(StoreError, match=code) as caught:
            DynamoDbStore("t-table", client=client).quota_used(PREFETCH, "d")
    assert caught.value.__cause__ is not None
    assert "testing" not in str(caught.value)  # no credentials in the message


def test_an_unreachable_endpoint_is_a_store_error(aws_dummy_credentials):
    import socket

    with socket.socket() as sock:  # a loopback port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = boto3.session.Session().client(
        "dynamodb", region_name="cn-hangzhou", endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1))
    with pytest.raises(StoreError, match="EndpointConnectionError"):
        DynamoDbStore("t-table", client=client).quota_used(PREFETCH, "d")


def test_from_url():
    store = DynamoDbStore.from_url("dynamodb://prewarm_state?region=cn-hangzhou&endpoint_url=http://127.0.0.1:8000")
    assert store.table == "prewarm_state"
    assert store._client.meta.region_name == "cn-hangzhou"
    assert store._client.meta.endpoint_url == "http://127.0.0.1:8000"
    for bad in ["dynamodb://", "dynamodb://t?colour=red", "dynamodb://t/extra",
                "dynamodb://t?endpoint_url=http://db.example.com"]:
        with pytest.raises(ValueError):
            DynamoDbStore.from_url(bad)


def test_importing_the_adapter_loads_neither_tablestore_nor_requests():
    code = ("import sys, handler.stores.dynamodb; "
            "print(sorted(m for m in ('tablestore', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_keys_module_is_stdlib_only():
    code = ("import sys; before = set(sys.modules); import handler.stores.keys; "
            "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] not in ('handler',) "
            "and not m.startswith('_') and m.split('.')[0] in ('boto3', 'botocore', 'tablestore', 'requests')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
