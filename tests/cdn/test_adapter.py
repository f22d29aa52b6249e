"""CdnAdapter (ports.CdnApi) against the CDN double over loopback: outcome classes per transport failure,
refresh batching, task reads and the one table of codes."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    SSLError as Urllib3SSLError,
)

from handler.cdn import errors
from handler.cdn.client import CdnClient
from handler.cdn.pushing import CdnAdapter
from handler.credentials import Credentials
from handler.local.cdn_double_model import PRELOAD, REFRESH
from handler.ports import AccountQuota, CdnApi, CdnCallFailed, Problem, SubmitOutcome
from handler.settings import CdnSettings

from .clock import FakeClock

AK, SK = "test-ak", "test-sk-secret"
T0 = 1_795_000_000.0  # 2026-11-18T11:06:40Z
OBJ = "https://cdn.example.com/app.js"


def make_adapter(endpoint: str, *, session=None, clock=time.time, secret: str = SK, **overrides) -> CdnAdapter:
    cdn = CdnSettings(endpoint=endpoint, max_retries=2, read_timeout=5.0)._replace(**overrides)
    fake = FakeClock()
    client = CdnClient(
        Credentials(AK, secret), cdn, session=session, sleep=fake.sleep, monotonic=fake.monotonic, clock=clock
    )
    return CdnAdapter(client, cdn, clock=clock)


def urls(n: int, domain: str = "cdn.example.com", start: int = 0) -> list[str]:
    return [f"https://{domain}/a/{i}.js" for i in range(start, start + n)]


def assert_partition(given: list[str], outcome: SubmitOutcome) -> None:
    places = [set(outcome.accepted), set(outcome.rejected), set(outcome.unsent), set(outcome.ambiguous)]
    assert sum(len(p) for p in places) == len(set(given)) and set().union(*places) == set(given)


def test_the_adapter_is_the_port():
    adapter: CdnApi = make_adapter("http://127.0.0.1:9")
    assert isinstance(adapter, CdnAdapter)


# ---------------------------------------------------------------- the one code table


@pytest.mark.parametrize(
    "code, kind",
    [
        ("InvalidObjectPath.Malformed", errors.REJECTED),
        ("InvalidDomain.NotFound", errors.REJECTED),
        ("InvalidDomain.Offline", errors.REJECTED),
        ("InvalidExtensiveDomain.ValueNotSupported", errors.REJECTED),
        ("InvalidObjectPath.ExceedsMaximum", errors.REJECTED),
        ("Throttling", Problem.NOT_ACCEPTED),
        ("ServiceUnavailable", Problem.NOT_ACCEPTED),
        ("InternalError", Problem.NOT_ACCEPTED),
        ("PreloadQueueFull", Problem.NOT_ACCEPTED),
        ("QuotaPerMinuteExceeded.Refresh", Problem.NOT_ACCEPTED),
        ("TooMany.Refresh", Problem.NOT_ACCEPTED),
        ("QuotaExceeded.Preload", Problem.QUOTA_SPENT),
        ("QuotaExceeded.Refresh", Problem.QUOTA_SPENT),
        ("SignatureDoesNotMatch", Problem.CONFIG),
        ("InvalidAccessKeyId.NotFound", Problem.CONFIG),
        ("InvalidSecurityToken.Expired", Problem.CONFIG),
        ("NoPermission", Problem.CONFIG),
        ("OperationDenied", Problem.CONFIG),
        ("IllegalOperation", Problem.CONFIG),
        ("MissingParameter", Problem.CONFIG),
        ("Local.TLSError", Problem.CONFIG),
        ("Local.NotSent", Problem.NOT_ACCEPTED),
        ("Local.Timeout", Problem.AMBIGUOUS),
        ("Local.ConnectionLost", Problem.AMBIGUOUS),
        ("Local.InvalidResponse", Problem.AMBIGUOUS),
        ("Some.Code.Nobody.Knows", Problem.NOT_ACCEPTED),
    ],
)
def test_each_code_has_one_outcome_class(code, kind):
    assert errors.handling_for(code, 400).kind == kind
    problem = errors.error_for(code, "m", status=400).problem()
    assert problem.kind == (Problem.NOT_ACCEPTED if kind == errors.REJECTED else kind) and problem.code == code


def test_an_unknown_code_is_retried_only_when_the_server_failed():
    assert errors.handling_for("New.Outage", 502).retry and not errors.handling_for("New.Thing", 400).retry


# ---------------------------------------------------------------- transport failures, over real sockets


def test_refused_connections_are_not_accepted_and_retried(cdn_double):
    adapter = make_adapter(cdn_double.base_url, max_retries=2)
    cdn_double.refuse_connections()
    given = urls(150)
    outcome = adapter.push(given)
    assert (outcome.problem.kind, outcome.problem.code) == (Problem.NOT_ACCEPTED, "Local.NotSent")
    assert outcome.unsent == given and outcome.ambiguous == [] and outcome.sent_at is None
    assert outcome.calls == 3  # the first attempt and two retries: nothing was sent, so retrying is safe
    cdn_double.refuse_connections(False)
    assert cdn_double.calls() == 0


def test_a_tls_handshake_failure_is_not_accepted(cdn_double):
    # HTTPS to a plain-HTTP port: the handshake fails before the request is written.
    adapter = make_adapter(cdn_double.base_url.replace("http://", "https://"), max_retries=0)
    outcome = adapter.push(urls(2))
    assert (outcome.problem.kind, outcome.problem.code) == (Problem.NOT_ACCEPTED, "Local.NotSent")
    assert outcome.unsent == urls(2) and cdn_double.pushed_urls == []


def test_a_read_timeout_is_ambiguous_never_retried_and_stops_the_submission(cdn_double):
    adapter = make_adapter(cdn_double.base_url, read_timeout=0.3, max_retries=3)
    cdn_double.inject(None, latency=0.8, action="PushObjectCache")
    given = urls(250)
    before = time.time()
    outcome = adapter.push(given)
    after = time.time()
    assert_partition(given, outcome)
    assert (outcome.problem.kind, outcome.problem.code) == (Problem.AMBIGUOUS, "Local.Timeout")
    assert outcome.ambiguous == given[:100] and outcome.unsent == given[100:] and outcome.accepted == {}
    assert before <= outcome.sent_at <= after - 0.3
    assert outcome.calls == 1
    time.sleep(0.7)
    assert cdn_double.pushed_urls == given[:100]  # the API did act: a retry would have doubled it


@pytest.mark.parametrize(
    "fault, acted", [({"drop": True}, False), ({"drop_after_accept": True}, True), ({"truncate": True}, True)]
)
def test_a_lost_or_broken_answer_is_ambiguous_whatever_the_api_did(cdn_double, fault, acted):
    adapter = make_adapter(cdn_double.base_url, max_retries=3)
    given = urls(30)
    adapter.push(given[:10])
    cdn_double.inject(None, **fault)
    outcome = adapter.refresh(given)
    assert outcome.problem.kind == Problem.AMBIGUOUS
    assert outcome.problem.code in ("Local.ConnectionLost", "Local.InvalidResponse")
    assert outcome.ambiguous == given and outcome.calls == 1 and outcome.sent_at is not None
    assert cdn_double.refreshed_urls == (given if acted else [])


def test_throttling_answers_are_retried_then_not_accepted(cdn_double):
    adapter = make_adapter(cdn_double.base_url, max_retries=2)
    cdn_double.inject("Throttling", 503, count=3)
    outcome = adapter.push(urls(5))
    assert (outcome.problem.kind, outcome.problem.code, outcome.calls) == (Problem.NOT_ACCEPTED, "Throttling", 3)
    assert outcome.unsent == urls(5) and outcome.ambiguous == []
    cdn_double.inject("InternalError", 500, count=1)
    assert len(adapter.push(urls(5)).accepted) == 5  # a 5xx with a Code: retried, then through


class _RaisingSession:
    """A session whose every call fails as requests would fail it, for failures loopback cannot produce."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls = 0

    def post(self, *args, **kwargs):
        self.calls += 1
        raise self.exc

    def close(self) -> None:
        pass


def _wrapped(reason: Exception) -> MaxRetryError:
    return MaxRetryError(None, "/", reason)


@pytest.mark.parametrize(
    "exc, kind, code",
    [
        (requests.exceptions.ConnectTimeout(_wrapped(ConnectTimeoutError(None, "connect timed out"))),
         Problem.NOT_ACCEPTED, "Local.NotSent"),
        (requests.ConnectionError(_wrapped(NameResolutionError("cdn.aliyuncs.com", None, socket.gaierror(-2, "x")))),
         Problem.NOT_ACCEPTED, "Local.NotSent"),
        (requests.ConnectionError(_wrapped(NewConnectionError(None, "Connection refused"))),
         Problem.NOT_ACCEPTED, "Local.NotSent"),
        (requests.exceptions.SSLError(_wrapped(Urllib3SSLError("EOF occurred in violation of protocol"))),
         Problem.NOT_ACCEPTED, "Local.NotSent"),
        (requests.exceptions.SSLError(_wrapped(Urllib3SSLError("certificate verify failed: self-signed certificate"))),
         Problem.CONFIG, "Local.TLSError"),
        (requests.exceptions.ReadTimeout(_wrapped(Exception("read timed out"))), Problem.AMBIGUOUS, "Local.Timeout"),
        (requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))),
         Problem.AMBIGUOUS, "Local.ConnectionLost"),
        (requests.exceptions.ChunkedEncodingError(ProtocolError("IncompleteRead")),
         Problem.AMBIGUOUS, "Local.ConnectionLost"),
    ],
)
def test_each_transport_failure_is_classified_by_whether_the_request_could_have_arrived(exc, kind, code):
    session = _RaisingSession(exc)
    adapter = make_adapter("https://cdn.aliyuncs.com", session=session, max_retries=2)
    outcome = adapter.push(urls(3))
    assert (outcome.problem.kind, outcome.problem.code) == (kind, code)
    retried = kind == Problem.NOT_ACCEPTED
    assert session.calls == outcome.calls == (3 if retried else 1)
    assert (outcome.ambiguous, outcome.unsent) == ((urls(3), []) if kind == Problem.AMBIGUOUS else ([], urls(3)))


def test_reads_retry_a_lost_answer_and_raise_the_problem_when_it_persists(cdn_double):
    adapter = make_adapter(cdn_double.base_url, max_retries=1)
    cdn_double.inject(None, drop=True, action="DescribeRefreshQuota")
    assert adapter.account_quota().preload_remain == 1000  # a read is safe to ask twice
    cdn_double.inject(None, drop=True, action="DescribeRefreshQuota", count=2)
    with pytest.raises(CdnCallFailed) as caught:
        adapter.account_quota()
    assert caught.value.problem.kind == Problem.AMBIGUOUS
    with pytest.raises(CdnCallFailed) as caught:
        make_adapter(cdn_double.base_url, secret="wrong").task_statuses(["1"])
    assert (caught.value.problem.kind, caught.value.problem.code) == (Problem.CONFIG, "SignatureDoesNotMatch")
    assert "wrong" not in str(caught.value)


# ---------------------------------------------------------------- refresh


def test_refresh_calls_carry_at_most_1000_urls_and_10_domains(make_cdn_double):
    domains = [f"d{i}.example.com" for i in range(12)]
    double = make_cdn_double(domains=domains, refresh_quota=100_000)
    given = [f"https://{domains[i % 12]}/f/{i}.css" for i in range(2500)]  # domains interleaved
    outcome = make_adapter(double.base_url).refresh(given)
    assert len(outcome.accepted) == 2500 and outcome.problem is None
    calls = [r for r in double.received if r.action == "RefreshObjectCaches"]
    assert [len(r.urls) for r in calls] == [1000, 1000, 500] and outcome.calls == 3
    assert all(len({u.split("/")[2] for u in r.urls}) <= 10 for r in calls)
    assert all(r.params["ObjectType"] == "File" for r in calls)
    few = [f"https://{d}/x.js" for d in domains] + [f"https://{d}/y.js" for d in domains]
    second = make_adapter(double.base_url).refresh(few)
    assert second.calls == 2 and len(second.accepted) == 24  # by domain count, not URL count


def test_refresh_isolates_a_foreign_domain_and_shrinks_its_cap_when_told(make_cdn_double):
    double = make_cdn_double(refresh_cap=300)
    given = urls(700) + ["https://not-ours.example.org/x.js"]
    adapter = make_adapter(double.base_url)
    outcome = adapter.refresh(given)
    assert len(outcome.accepted) == 700 and list(outcome.rejected) == ["https://not-ours.example.org/x.js"]
    assert outcome.rejected["https://not-ours.example.org/x.js"].startswith("InvalidDomain.NotFound")
    assert adapter.caps["refresh"] <= 300 and adapter.caps["push"] == 100


def test_refresh_quota_spent_leaves_the_rest_unsent(cdn_double):
    cdn_double.set_quota(remain=0, kind=REFRESH)
    outcome = make_adapter(cdn_double.base_url).refresh(urls(3))
    assert (outcome.problem.kind, outcome.problem.code) == (Problem.QUOTA_SPENT, "QuotaExceeded.Refresh")
    assert outcome.unsent == urls(3) and cdn_double.quota_counters()["preload"]["used"] == 0


def test_push_quota_spent_under_either_code(cdn_double):
    for code in ("QuotaExceeded.Refresh", "QuotaExceeded.Preload"):
        cdn_double.set_push_quota_code(code)
        cdn_double.set_quota(remain=0)
        outcome = make_adapter(cdn_double.base_url).push(urls(3))
        assert (outcome.problem.kind, outcome.problem.code) == (Problem.QUOTA_SPENT, code)


# ---------------------------------------------------------------- task reads and quota


def test_task_statuses_ask_ten_ids_a_call_and_give_one_status_per_url(make_cdn_double):
    double = make_cdn_double()
    double.set_clock(T0)
    adapter = make_adapter(double.base_url, clock=double.clock)
    pushed = adapter.push(urls(23))
    refreshed = adapter.refresh(urls(2, "img.example.com"))
    ids = list(pushed.accepted.values()) + list(refreshed.accepted.values())
    statuses = adapter.task_statuses(ids)
    asked = [r.params["TaskId"].count(",") + 1 for r in double.received if r.action == "DescribeRefreshTaskById"]
    assert asked == [10, 10, 5]
    assert [s.url for s in statuses] == urls(23) + urls(2, "img.example.com")
    assert {s.kind for s in statuses[:23]} == {PRELOAD} and {s.kind for s in statuses[23:]} == {REFRESH}
    assert {s.status for s in statuses} == {"Refreshing"} and {s.created_at for s in statuses} == {T0}
    double.fail_tasks(["https://cdn.example.com/a/99.js"], reason="origin timeout")
    failing = adapter.push(["https://cdn.example.com/a/99.js"]).accepted
    double.advance(600)
    [status] = adapter.task_statuses(list(failing.values()))
    assert (status.status, status.description) == ("Failed", "origin timeout")
    assert adapter.task_statuses(["123456"]) == []  # ids the API does not know are simply absent


def test_ids_shared_by_a_domain_are_asked_once_and_name_each_url(make_cdn_double):
    double = make_cdn_double(task_ids="per_domain")
    adapter = make_adapter(double.base_url)
    outcome = adapter.push(urls(3) + urls(2, "img.example.com"))
    joined = set(outcome.accepted.values())
    assert len(joined) == 1 and len(next(iter(joined)).split(",")) == 2  # one id per domain, joined
    statuses = adapter.task_statuses(list(outcome.accepted.values()))
    assert sorted(s.url for s in statuses) == sorted(outcome.accepted)
    assert double.calls("DescribeRefreshTaskById") == 1


def test_find_tasks_filters_by_url_kind_and_time_and_follows_pages(make_cdn_double):
    double = make_cdn_double(calls_per_second=1000)
    double.set_clock(T0)
    with double._lock:  # set-up straight into the model: 250 tasks are 250 calls otherwise
        double.model.create_tasks([OBJ], PRELOAD, T0 - 600)  # before `since`
        for i in range(230):
            double.model.create_tasks([OBJ], PRELOAD, T0 - 300 + i)
        double.model.create_tasks([OBJ], REFRESH, T0 - 100)
        double.model.create_tasks(["https://cdn.example.com/other.js"], PRELOAD, T0 - 100)
    adapter = make_adapter(double.base_url, clock=double.clock)
    found = adapter.find_tasks(OBJ, PRELOAD, since=T0 - 300)
    assert len(found) == 230 and {(s.url, s.kind) for s in found} == {(OBJ, PRELOAD)}
    assert min(s.created_at for s in found) == T0 - 300
    calls = [r.params for r in double.received if r.action == "DescribeRefreshTasks"]
    assert [c["PageNumber"] for c in calls] == ["1", "2", "3"]
    assert calls[0]["StartTime"] == "2026-11-18T11:01:40Z" and calls[0]["EndTime"] == "2026-11-18T11:06:40Z"
    assert (calls[0]["ObjectType"], calls[0]["ObjectPath"], calls[0]["PageSize"]) == ("preload", OBJ, "100")
    assert [s.kind for s in adapter.find_tasks(OBJ, REFRESH, since=T0 - 300)] == [REFRESH]
    assert adapter.find_tasks(OBJ, PRELOAD, since=T0 - 10 * 86400)  # clamped to the API's 3 days, not refused


def test_account_quota_reads_both_counters(cdn_double):
    cdn_double.set_quota(quota=500, remain=120)
    cdn_double.set_quota(quota=10000, used=42, kind=REFRESH)
    assert make_adapter(cdn_double.base_url).account_quota() == AccountQuota(
        preload_remain=120, refresh_remain=9958, preload_quota=500, refresh_quota=10000
    )
