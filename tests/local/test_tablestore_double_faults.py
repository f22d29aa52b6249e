"""The Tablestore double's request checks and fault injection, and the SDK's own retries against them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
import tablestore.client
import urllib3
from tablestore import (
    CapacityUnit,
    Condition,
    OTSClient,
    OTSServiceError,
    ReservedThroughput,
    Row,
    RowExistenceExpectation,
    TableMeta,
    TableOptions,
)
from tablestore.auth import RequestContext
from tablestore.protobuf import table_store_pb2 as pb
from tablestore.retry import DefaultRetryPolicy, NoRetryPolicy, WriteRetryPolicy

from handler.local.tablestore_double import TablestoreDouble

PK = [("pk", "a"), ("sk", 1)]


def _create(client, table: str) -> None:
    client.create_table(TableMeta(table, [("pk", "STRING"), ("sk", "INTEGER")]), TableOptions(-1, 1),
                        ReservedThroughput(CapacityUnit(0, 0)))


@pytest.fixture
def client(make_ots_client):
    return make_ots_client(retry_policy=NoRetryPolicy())


@pytest.fixture
def table(client, tablestore_table) -> str:
    _create(client, tablestore_table)
    return tablestore_table


@pytest.fixture
def sdk_sleeps(monkeypatch) -> list[float]:
    """The SDK's retry sleeps, recorded instead of slept: its real retry loop, without the wait."""
    slept: list[float] = []
    monkeypatch.setattr(tablestore.client.time, "sleep", slept.append)
    return slept


def _read_back(client, table):
    row = client.get_row(table, PK, None, None, 1)[1]
    return {c[0]: c[1] for c in row.attribute_columns} if row else None


# -- request checks ---------------------------------------------------------------------------


def test_a_wrong_secret_is_auth_failed(make_ots_client, table):
    with pytest.raises(OTSServiceError) as excinfo:
        make_ots_client(access_key_secret="wrong", retry_policy=NoRetryPolicy()).list_table()
    assert (excinfo.value.get_error_code(), excinfo.value.get_http_status()) == ("OTSAuthFailed", 403)
    assert excinfo.value.get_error_message() == "Signature mismatch."


def test_a_wrong_instance_or_key_id_is_auth_failed(make_ots_client):
    for options in ({"instance_name": "other"}, {"access_key_id": "unknown"}):
        with pytest.raises(OTSServiceError) as excinfo:
            make_ots_client(retry_policy=NoRetryPolicy(), **options).list_table()
        assert excinfo.value.get_error_code() == "OTSAuthFailed"


def _raw_post(endpoint: str, api: str, headers: dict, body: bytes) -> tuple[int, pb.Error]:
    response = urllib3.PoolManager().request("POST", f"{endpoint}/{api}", body=body, headers=headers, retries=False)
    error = pb.Error()
    error.ParseFromString(response.data)
    return response.status, error


def test_a_body_whose_md5_does_not_match_is_refused(client, tablestore_double):
    context = RequestContext(client.credentials_provider.get_credentials())
    query, headers, body = client.protocol.make_request("ListTable", client._signer, context)
    status, error = _raw_post(tablestore_double.endpoint, "ListTable", headers, body + b"\x0a\x00")
    assert (status, error.code) == (403, "OTSAuthFailed")
    assert "MD5" in error.message


def test_a_request_dated_more_than_15_minutes_off_is_refused(client, tablestore_double):
    context = RequestContext(client.credentials_provider.get_credentials())
    query, headers, body = client.protocol.make_request("ListTable", client._signer, context)
    stale = datetime.now(timezone.utc) - timedelta(minutes=16)
    headers["x-ots-date"] = stale.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    client._signer.make_request_signature_and_add_headers(query, headers, context)  # signed with the stale date
    status, error = _raw_post(tablestore_double.endpoint, "ListTable", headers, body)
    assert (status, error.code) == (403, "OTSAuthFailed")
    assert error.message.startswith("Mismatch between system time and x-ots-date")


def test_an_sts_token_is_checked_when_the_double_has_one():
    with TablestoreDouble(instance="i", access_key_id="ak", access_key_secret="sk", security_token="tok") as double:
        OTSClient(double.endpoint, "ak", "sk", "i", sts_token="tok").list_table()
        with pytest.raises(OTSServiceError) as excinfo:
            OTSClient(double.endpoint, "ak", "sk", "i", sts_token="stale", retry_policy=NoRetryPolicy()).list_table()
        assert excinfo.value.get_error_code() == "OTSAuthFailed"


def test_an_operation_the_double_does_not_model_is_refused_clearly(client, table):
    from tablestore import TableOptions as Options

    with pytest.raises(OTSServiceError) as excinfo:
        client.update_table(table, Options(-1, 1), None)
    assert excinfo.value.get_error_code() == "OTSParameterInvalid"
    assert excinfo.value.get_error_message() == "not modelled by the local double: operation UpdateTable"


# -- injected errors and the SDK's retries ----------------------------------------------------


def test_the_sdk_retries_server_busy_and_the_double_counts_every_call(make_ots_client, table, tablestore_double,
                                                                       sdk_sleeps):
    client = make_ots_client()  # the SDK's DefaultRetryPolicy
    tablestore_double.clear_calls()
    tablestore_double.inject(operation="PutRow", code="OTSServerBusy", count=3)
    client.put_row(table, Row(PK, [("v", 1)]))
    assert tablestore_double.calls("PutRow") == 4
    assert len(sdk_sleeps) == 3 and 0.25 <= sdk_sleeps[0] <= 0.5  # 0.5 s * 2^n, jittered to [50%, 100%]


def test_the_default_retry_policy_rides_out_server_busy_for_about_40_seconds(make_ots_client, table,
                                                                              tablestore_double, sdk_sleeps):
    """20 retries, sleeps 0.5 * 2^n capped at 3 s, each jittered to 50-100 %: 27-55 s, about 41 s on average.

    That is the time an adapter on the default policy can block on one call; the adapter's own
    policy (3 retries, at most 1 s apart) gives up after at most 2.5 s of sleeping.
    """
    client = make_ots_client()
    tablestore_double.clear_calls()
    tablestore_double.inject(operation="GetRow", code="OTSServerBusy", probability=1.0)
    with pytest.raises(OTSServiceError) as excinfo:
        client.get_row(table, PK, None, None, 1)
    assert excinfo.value.get_error_code() == "OTSServerBusy"
    assert tablestore_double.calls("GetRow") == 21
    assert 27.25 <= sum(sdk_sleeps) <= 54.5


def test_writes_are_not_retried_on_timeout_by_default_and_update_row_never_is(make_ots_client, table,
                                                                                tablestore_double, sdk_sleeps):
    """OTSTimeout is retried for reads only; WriteRetryPolicy adds writes but misspells UpdateRow ("UpdatRow")."""
    for policy, operation, write, expected_calls in (
        (DefaultRetryPolicy(), "PutRow", lambda c: c.put_row(table, Row(PK, [("v", 1)])), 1),
        (WriteRetryPolicy(), "PutRow", lambda c: c.put_row(table, Row(PK, [("v", 1)])), 2),
        (WriteRetryPolicy(), "UpdateRow",
         lambda c: c.update_row(table, Row(PK, {"PUT": [("v", 2)]}), Condition(RowExistenceExpectation.IGNORE)), 1),
    ):
        tablestore_double.clear_calls()
        tablestore_double.inject(operation=operation, code="OTSTimeout")
        client = make_ots_client(retry_policy=policy)
        try:
            write(client)
            outcome = "ok"
        except OTSServiceError as exc:
            outcome = exc.get_error_code()
        assert tablestore_double.calls(operation) == expected_calls
        assert outcome == ("ok" if expected_calls == 2 else "OTSTimeout")


def test_quota_exhausted_is_retried_only_with_the_services_exact_message(make_ots_client, table, tablestore_double,
                                                                          sdk_sleeps):
    client = make_ots_client()
    tablestore_double.clear_calls()
    tablestore_double.inject(operation="GetRow", code="OTSQuotaExhausted")  # "Too frequent table operations."
    client.get_row(table, PK, None, None, 1)
    assert tablestore_double.calls("GetRow") == 2
    tablestore_double.inject(operation="GetRow", code="OTSQuotaExhausted", message="Too frequent row operations.")
    with pytest.raises(OTSServiceError):
        client.get_row(table, PK, None, None, 1)
    assert tablestore_double.calls("GetRow") == 3


def test_internal_server_error_is_retried_on_reads(make_ots_client, table, tablestore_double, sdk_sleeps):
    tablestore_double.clear_calls()
    tablestore_double.inject(operation="GetRange", code="OTSInternalServerError", count=2)
    from tablestore import INF_MAX, INF_MIN, Direction

    make_ots_client().get_range(table, Direction.FORWARD, [("pk", INF_MIN), ("sk", INF_MIN)],
                                [("pk", INF_MAX), ("sk", INF_MAX)], max_version=1)
    assert tablestore_double.calls("GetRange") == 3


def test_a_seeded_fraction_of_calls_fails_reproducibly(client, table, tablestore_double):
    def outcomes() -> list[str]:
        seen = []
        for _ in range(30):
            try:
                client.get_row(table, PK, None, None, 1)
                seen.append("ok")
            except OTSServiceError as exc:
                seen.append(exc.get_error_code())
        return seen

    tablestore_double.seed(7)
    tablestore_double.inject(operation="GetRow", code="OTSServerBusy", probability=0.3)
    first = outcomes()
    tablestore_double.seed(7)
    assert outcomes() == first
    assert {"ok", "OTSServerBusy"} == set(first)


# -- lost answers, applied writes, latency ----------------------------------------------------


def test_an_applied_then_failed_write_is_applied_while_the_sdk_sees_an_error(client, table, tablestore_double):
    tablestore_double.inject(operation="PutRow", applied=True, code="OTSTimeout")
    with pytest.raises(OTSServiceError) as excinfo:
        client.put_row(table, Row(PK, [("v", 1)]))
    assert excinfo.value.get_error_code() == "OTSTimeout"
    assert _read_back(client, table) == {"v": 1}


def test_an_applied_write_whose_connection_drops_is_applied_while_the_sdk_sees_a_raw_network_error(
        client, table, tablestore_double):
    tablestore_double.inject(operation="UpdateRow", applied=True, drop=True)
    with pytest.raises(urllib3.exceptions.ProtocolError):  # the SDK lets urllib3's error through, unwrapped
        client.update_row(table, Row(PK, {"INCREMENT": [("n", 1)]}), Condition(RowExistenceExpectation.IGNORE))
    assert _read_back(client, table) == {"n": 1}


def test_a_dropped_connection_before_the_write_leaves_nothing(client, table, tablestore_double):
    tablestore_double.inject(operation="PutRow", drop=True)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        client.put_row(table, Row(PK, [("v", 1)]))
    assert _read_back(client, table) is None


def test_added_latency_delays_the_answer_and_trips_a_short_socket_timeout(make_ots_client, table, tablestore_double):
    tablestore_double.inject(operation="GetRow", latency=0.3)
    began = time.monotonic()
    make_ots_client(retry_policy=NoRetryPolicy()).get_row(table, PK, None, None, 1)
    assert time.monotonic() - began >= 0.3
    tablestore_double.inject(operation="GetRow", latency=0.5)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        make_ots_client(retry_policy=NoRetryPolicy(), socket_timeout=0.1).get_row(table, PK, None, None, 1)


def test_a_new_table_is_not_ready_for_a_while(client, tablestore_table, tablestore_double):
    tablestore_double.configure(table_not_ready_seconds=0.5)
    _create(client, tablestore_table)
    assert client.describe_table(tablestore_table).table_meta.table_name == tablestore_table  # not a data operation
    with pytest.raises(OTSServiceError) as excinfo:
        client.put_row(tablestore_table, Row(PK, [("v", 1)]))
    assert excinfo.value.get_error_code() == "OTSTableNotReady"
    time.sleep(0.6)
    client.put_row(tablestore_table, Row(PK, [("v", 1)]))


# -- another process ----------------------------------------------------------------------------


def test_the_double_runs_as_a_process_with_admin_paths():
    process = subprocess.Popen(
        [sys.executable, "-m", "handler.local.tablestore_double", "--port", "0", "--instance", "proc",
         "--key", "ak", "--secret", "sk", "--page-rows", "2"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        endpoint = process.stdout.readline().split(" on ")[1].split()[0]

        def admin(method: str, route: str, data: dict | None = None) -> dict:
            body = json.dumps(data).encode() if data is not None else None
            request = urllib.request.Request(f"{endpoint}/_double/{route}", data=body, method=method)
            with urllib.request.urlopen(request, timeout=5) as answer:
                return json.load(answer)

        client = OTSClient(endpoint, "ak", "sk", "proc", retry_policy=NoRetryPolicy())
        _create(client, "t")
        admin("POST", "faults", {"operation": "PutRow", "code": "OTSServerBusy"})
        with pytest.raises(OTSServiceError) as excinfo:
            client.put_row("t", Row(PK, [("v", 1)]))
        assert excinfo.value.get_http_status() == 503
        client.put_row("t", Row(PK, [("v", 1)]))
        counts = admin("GET", "calls")["counts"]
        assert counts == {"CreateTable": 1, "PutRow": 2}
        assert admin("POST", "settings", {"table_not_ready_seconds": 0})["faults"] == []
    finally:
        process.terminate()
        process.wait(timeout=10)
