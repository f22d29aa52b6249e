"""CdnAdapter.push against the CDN API double over loopback HTTP: every URL ends accepted, rejected, unsent or ambiguous."""

from __future__ import annotations


import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from handler.cdn.client import CdnClient
from handler.cdn.pushing import CdnAdapter
from handler.credentials import Credentials
from handler.local.cdn_double import CdnDouble
from handler.ports import CdnCallFailed, Problem, SubmitOutcome
from handler.settings import CdnSettings

from .clock import FakeClock

AK, SK = "test-ak", "test-sk-secret"


def make_pusher(endpoint: str, secret: str = SK, **overrides) -> CdnAdapter:
    cdn = CdnSettings(endpoint=endpoint, max_retries=2, read_timeout=5.0)._replace(**overrides)
    clock = FakeClock()
    client = CdnClient(Credentials(AK, secret), cdn, sleep=clock.sleep, monotonic=clock.monotonic)
    return CdnAdapter(client, cdn)


def good(n: int, start: int = 0, domain: str = "cdn.example.com") -> list[str]:
    return [f"https://{domain}/img/{i}.png" for i in range(start, start + n)]


def assert_partition(urls: list[str], outcome: SubmitOutcome) -> None:
    """Each distinct input URL is in exactly one of accepted, rejected, unsent, ambiguous; nothing else is."""
    places = [set(outcome.accepted), set(outcome.rejected), set(outcome.unsent), set(outcome.ambiguous)]
    assert len(outcome.unsent) == len(places[2]) and len(outcome.ambiguous) == len(places[3])
    assert sum(len(p) for p in places) == len(set(urls))
    assert set().union(*places) == set(urls)
    assert (outcome.sent_at is not None) == bool(outcome.ambiguous)


def test_one_bad_domain_among_99_good_urls(cdn_double):
    urls = good(50) + ["https://not-ours.example.org/x.png"] + good(49, start=50)
    outcome = make_pusher(cdn_double.base_url).push(urls)
    assert_partition(urls, outcome)
    assert len(outcome.accepted) == 99
    assert list(outcome.rejected) == ["https://not-ours.example.org/x.png"]
    assert outcome.rejected["https://not-ours.example.org/x.png"].startswith("InvalidDomain.NotFound: ")
    assert outcome.problem is None and outcome.unsent == []
    assert outcome.calls <= 16  # bisection: about two calls per halving, not one per URL
    assert set(cdn_double.pushed_urls) == set(urls) - set(outcome.rejected)
    assert all(outcome.accepted.values())


def test_a_refused_domain_costs_a_call_not_one_per_url(cdn_double):
    gone = good(50, domain="gone.example.net")
    urls = [url for pair in zip(good(50), gone) for url in pair]  # the two domains interleaved
    outcome = make_pusher(cdn_double.base_url).push(urls)
    assert_partition(urls, outcome)
    assert set(outcome.rejected) == set(gone) and len(outcome.accepted) == 50
    assert outcome.calls == 3  # the mixed batch, then one call per domain
    assert cdn_double.calls("PushObjectCache") == 3


def test_several_bad_urls_are_each_isolated(cdn_double):
    bad = ["https://not-ours.example.org/a.png", "https://*.example.com/b.png", "https://cdn.example.com/dir/"]
    urls = good(10) + bad[:1] + good(10, 10) + bad[1:] + good(5, 20)
    outcome = make_pusher(cdn_double.base_url).push(urls)
    assert_partition(urls, outcome)
    assert set(outcome.rejected) == set(bad)
    assert len(outcome.accepted) == 25


def test_locally_refused_urls_are_rejected_without_a_call(cdn_double):
    urls = good(3) + ["https://cdn.example.com/a b.png", "https://cdn.example.com/a\nhttps://cdn.example.com/evil", ""]
    outcome = make_pusher(cdn_double.base_url).push(urls)
    assert_partition(urls, outcome)
    assert len(outcome.accepted) == 3 and len(outcome.rejected) == 3
    assert all(reason.startswith("Local.InvalidUrl: ") for reason in outcome.rejected.values())
    assert outcome.calls == 1
    assert "https://cdn.example.com/evil" not in cdn_double.pushed_urls


def test_duplicates_are_pushed_once(cdn_double):
    urls = good(3) + good(3)
    outcome = make_pusher(cdn_double.base_url).push(urls)
    assert_partition(urls, outcome)
    assert sorted(cdn_double.pushed_urls) == sorted(good(3))


def test_urls_are_split_into_batches_of_the_cap(cdn_double):
    urls = good(250)
    outcome = make_pusher(cdn_double.base_url).push(urls)
    assert len(outcome.accepted) == 250
    assert outcome.calls == 3


def test_task_ids_map_one_to_one_when_the_api_gives_one_per_url(cdn_double):
    urls = good(4)
    outcome = make_pusher(cdn_double.base_url).push(urls)
    ids = [outcome.accepted[url] for url in urls]
    assert len(set(ids)) == 4 and all("," not in i for i in ids)
    client = make_pusher(cdn_double.base_url).client
    tasks = client.describe_refresh_task_by_id(ids)
    assert {t.task_id: t.object_path for t in tasks} == dict(zip(ids, urls))


def test_batch_too_large_halves_and_remembers_the_smaller_cap(make_cdn_double):
    double = make_cdn_double(cap=30)
    pusher = make_pusher(double.base_url, max_urls_per_call=100)
    urls = good(230)
    outcome = pusher.push(urls)
    assert_partition(urls, outcome)
    assert len(outcome.accepted) == 230 and outcome.problem is None
    assert pusher.cap == 25  # 100 -> 50 -> 25
    assert sorted(double.pushed_urls) == sorted(urls)
    calls_before = double.calls()
    second = pusher.push(good(50, start=1000))
    assert second.calls == 2 and double.calls() - calls_before == 2  # no more refusals


def test_quota_exhausted_midway_leaves_the_rest_unpushed(cdn_double):
    cdn_double.set_quota(quota=1000, remain=150)
    urls = good(300)
    outcome = make_pusher(cdn_double.base_url).push(urls)
    assert_partition(urls, outcome)
    assert outcome.problem.kind == Problem.QUOTA_SPENT
    assert len(outcome.accepted) == 100
    assert outcome.unsent == urls[100:]
    assert outcome.ambiguous == []
    assert outcome.calls == 2


@pytest.mark.parametrize(
    "code, status, kind",
    [
        ("PreloadQueueFull", 403, Problem.NOT_ACCEPTED),
        ("Forbidden.RAM", 403, Problem.CONFIG),
        ("SomethingNew", 400, Problem.NOT_ACCEPTED),
        ("QuotaExceeded.Preload", 400, Problem.QUOTA_SPENT),
    ],
)
def test_stopping_errors_leave_the_batch_and_the_rest_unsent(cdn_double, code, status, kind):
    urls = good(150)
    pusher = make_pusher(cdn_double.base_url)
    first = pusher.push(urls[:100])
    cdn_double.inject(code, status)
    outcome = pusher.push(urls)
    assert set(first.accepted) == set(urls[:100])
    assert (outcome.problem.kind, outcome.problem.code) == (kind, code)
    assert outcome.unsent == urls and outcome.accepted == {} and outcome.ambiguous == []
    assert outcome.calls == 1


def test_error_answers_after_retries_leave_everything_unsent(cdn_double):
    urls = good(130)
    pusher = make_pusher(cdn_double.base_url, max_retries=2)
    cdn_double.inject("ServiceUnavailable", 503, count=1)  # the first batch survives one fault
    outcome_first = pusher.push(urls[:100])
    assert len(outcome_first.accepted) == 100 and outcome_first.calls == 2
    cdn_double.inject("ServiceUnavailable", 503, count=10)
    outcome = pusher.push(urls)
    assert_partition(urls, outcome)
    assert (outcome.problem.kind, outcome.problem.code) == (Problem.NOT_ACCEPTED, "ServiceUnavailable")
    assert outcome.unsent == urls and outcome.ambiguous == []  # an answer with a Code: nothing was taken
    assert outcome.calls == 3


def test_a_lost_answer_marks_that_call_ambiguous_and_stops(cdn_double):
    urls = good(250)
    pusher = make_pusher(cdn_double.base_url, max_retries=3)
    cdn_double.inject(None, drop_after_accept=True, count=1)
    outcome = pusher.push(urls)
    assert_partition(urls, outcome)
    assert (outcome.problem.kind, outcome.problem.code) == (Problem.AMBIGUOUS, "Local.ConnectionLost")
    assert outcome.ambiguous == urls[:100] and outcome.unsent == urls[100:]
    assert outcome.calls == 1  # never retried: the double did take it
    assert cdn_double.pushed_urls == urls[:100]


def test_account_quota_reads_preload_remain(cdn_double):
    cdn_double.set_quota(quota=1000, remain=321)
    assert make_pusher(cdn_double.base_url).account_quota().preload_remain == 321


def test_account_quota_refused_is_a_config_problem_without_the_secret(cdn_double):
    with pytest.raises(CdnCallFailed) as refused:
        make_pusher(cdn_double.base_url, secret="wrong-secret").account_quota()
    assert (refused.value.problem.kind, refused.value.problem.code) == (Problem.CONFIG, "SignatureDoesNotMatch")
    assert "wrong-secret" not in str(refused.value)


@pytest.fixture(scope="module")
def shared_double():
    double = CdnDouble(AK, SK, ["cdn.example.com", "img.example.com"], quota=10**9, cap=20)
    double.start()
    yield double
    double.stop()


url_kinds = st.sampled_from(["good", "img", "foreign", "spaced", "empty", "long"])


def url_of(kind: str, i: int) -> str:
    return {
        "good": f"https://cdn.example.com/p/{i}.png",
        "img": f"img.example.com/p/{i}.jpg",
        "foreign": f"https://elsewhere.example.net/{i}",
        "spaced": f"https://cdn.example.com/a {i}",
        "empty": "",
        "long": "https://cdn.example.com/" + "x" * 1100,
    }[kind]


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kinds=st.lists(st.tuples(url_kinds, st.integers(0, 40)), max_size=70),
    fault=st.sampled_from([None, "QuotaExceeded.Refresh", "Throttling", "NoPermission"]),
    fault_after=st.integers(0, 4),
)
def test_every_url_is_accounted_for(shared_double, kinds, fault, fault_after):
    shared_double.reset_faults()
    shared_double.seed(fault_after)  # probabilistic faults repeat exactly when hypothesis replays an example
    urls = [url_of(kind, i) for kind, i in kinds]
    pusher = make_pusher(shared_double.base_url, max_urls_per_call=20, max_retries=1)
    if fault:
        status = {"QuotaExceeded.Refresh": 400, "Throttling": 503, "NoPermission": 403}[fault]
        shared_double.inject(fault, status, count=1000, probability=1.0 if fault_after == 0 else 0.3)
    outcome = pusher.push(urls)
    shared_double.reset_faults()
    assert_partition(urls, outcome)
    for url in outcome.rejected:
        assert not url.startswith(("https://cdn.example.com/p/", "img.example.com/p/"))
    assert (outcome.problem is None) == (outcome.unsent == [] and outcome.ambiguous == [])
