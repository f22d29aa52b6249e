"""The Store port's semantics (handler/ports.py), checked on every adapter alike.

Transitions are the real ones from `handler.lifecycle`; times are explicit epoch seconds,
so no test waits for the clock.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from functools import partial

import pytest

from handler import lifecycle as lc
from handler.lifecycle import UrlState
from handler.ports import PREFETCH, REFRESH, StoreError

T0 = 1_700_000_000.0  # an arbitrary "now"
W = 28_333_333  # a window id (T0 // 60)
LEASE = 300.0


def url(n: int | str) -> str:
    return f"https://cdn.example.com/img/{n}.png"


def upload(store, urls, *, version="v1", window=W, now=T0, mode=lc.AUTO):
    return store.update(
        {u: partial(lc.written, url=u, version=version, window=window, now=now, mode=mode) for u in urls}, now
    )


def claim_all(store, *, now=T0 + 120, owner="flusher", limit=1000, max_window=None, lease=LEASE):
    return store.claim(max_window=max_window, now=now, limit=limit, owner=owner, lease_seconds=lease)


def claimed_urls(store, **kwargs) -> list[str]:
    return [c.url for c in claim_all(store, **kwargs)]


def push(store, urls, *, owner="flusher", now=T0 + 120, task="task-1"):
    states = store.states(urls)
    return store.update({
        u: partial(lc.push_accepted, owner=owner, task_id=task, pushed=states[u].version, now=now, mode=lc.AUTO)
        for u in urls
    }, now)


def verify(store, urls, *, keep_until=T0 + 9e9):
    """Claim pushed URLs at their check time and record their tasks as complete."""
    now = T0 + 120 + lc.CHECK_FIRST_SECONDS
    assert sorted(claimed_urls(store, now=now, owner="checker")) == sorted(urls)
    store.update({u: partial(lc.task_completed, owner="checker", now=now, keep_until=keep_until) for u in urls}, now)


# -- update: transitions land atomically ------------------------------------------------------


def test_update_writes_new_states_and_reports_only_changes(store):
    assert set(upload(store, [url(1), url(2)])) == {url(1), url(2)}
    assert upload(store, [url(1), url(2)]) == {}  # a redelivery: the transition returns the same state
    states = store.states([url(1), url(2), url(3)])
    assert set(states) == {url(1), url(2)}
    assert states[url(1)] == UrlState(url(1), lc.PENDING, W, version="v1", updated_at=T0)


def test_every_field_round_trips(store):
    full = UrlState(
        url("ü"), lc.PUSHED, W, version='"9B2CF535F27731C974343645A3985328"', pushed_version="v0", refresh=True,
        not_before=T0 + 0.25, lease_owner="o", lease_until=T0 + 300.5, task_id="123,456", task_at=T0 + 1.5,
        failing_since=T0 - 10.125, failures=3, task_failures=2, reason="retry: Throttling", keep_until=T0 + 9e5,
        updated_at=T0,
    )
    store.update({full.url: lambda _: full}, T0)
    assert store.states([full.url])[full.url] == full


def test_none_forgets_a_url(store):
    upload(store, [url(1)])
    assert store.update({url(1): lambda state: None}, T0) == {url(1): None}
    assert store.states([url(1)]) == {}
    assert claim_all(store) == []


def test_very_long_and_non_ascii_urls(store):
    long_url = "https://cdn.example.com/" + "a" * 1000 + ".png"
    cjk = "https://cdn.example.com/%E8%A7%86%E9%A2%91/%E5%A4%8F.mp4"
    upload(store, [long_url, cjk])
    assert sorted(claimed_urls(store)) == sorted([long_url, cjk])


def test_racing_read_modify_writes_lose_no_update(backend):
    store = backend.open()
    upload(store, [url(1)])
    stores = [backend.open() for _ in range(4)]

    def bump(state):
        return state._replace(failures=state.failures + 1)

    _run_threads(4, lambda i: [stores[i].update({url(1): bump}, T0) for _ in range(10)])
    assert store.states([url(1)])[url(1)].failures == 40


def _lose_the_answer_of_the_next_record_write(backend, store, request) -> None:
    """The next URL-record write is applied, and its caller sees it fail: a timed-out write that happened."""
    if backend.name == "tablestore":  # the double applies the PutRow, then drops the connection unanswered
        request.getfixturevalue("tablestore_double").inject(operation="PutRow", applied=True, drop=True)
        return
    # dynalite injects no faults: the same effect at the adapter's primitive, the write made and then lost.
    put = store._put_record

    def applied_then_lost(*args):
        put(*args)
        store._put_record = put
        raise StoreError("the answer was lost")

    store._put_record = applied_then_lost


@pytest.mark.parametrize("backend", ["dynamodb", "tablestore"], indirect=True)
def test_a_write_whose_answer_was_lost_is_not_done_twice(backend, request):
    store = backend.open()
    upload(store, [url(1)])
    claim_all(store, owner="me")
    release = {url(1): partial(lc.released, owner="me", not_before=T0 + 1000, reason="quota", now=T0 + 120)}
    _lose_the_answer_of_the_next_record_write(backend, store, request)
    with pytest.raises(StoreError):
        store.update(release, T0 + 120)
    if backend.name == "tablestore":
        (lost,) = [r for r in request.getfixturevalue("tablestore_double").requests("PutRow") if r.fault]
        assert lost.request["key"][0].startswith("url#")  # the record's write, not a due row's
    state = store.states([url(1)])[url(1)]
    assert (state.lease_owner, state.not_before) == (None, T0 + 1000)  # it was applied
    assert store.update(release, T0 + 120) == {}  # the invocation's retry finds it done
    assert claim_all(store, now=T0 + 999) == []  # the due row's stale not_before hint does not make it due
    assert claimed_urls(store, now=T0 + 1000) == [url(1)]
    assert claimed_urls(store, now=T0 + 1000, owner="other") == []


@pytest.mark.parametrize("backend", ["dynamodb", "tablestore"], indirect=True)
def test_a_claim_between_an_uploads_due_row_and_its_record_does_not_lose_the_url(backend):
    store, claimer = backend.open(), backend.open()
    touch = store._touch_window_entry

    def touch_then_claim(*args):  # the upload has put its due row and touches the index; a flusher claims now
        touch(*args)
        store._touch_window_entry = touch
        claim_all(claimer, owner="early")

    store._touch_window_entry = touch_then_claim
    upload(store, [url(1)])
    assert claimed_urls(store) == [url(1)]


# -- claim ------------------------------------------------------------------------------------


def test_claim_takes_the_oldest_window_first_and_honours_max_window(store):
    upload(store, [url("late")], window=W + 1)
    upload(store, [url("early")], window=W)
    assert claimed_urls(store, max_window=W) == [url("early")]
    assert claimed_urls(store, owner="other") == [url("late")]


def test_claim_honours_limit_and_never_returns_a_url_twice(store):
    upload(store, [url(i) for i in range(30)])
    seen: list[str] = []
    while batch := claimed_urls(store, limit=7):
        assert len(batch) <= 7
        seen.extend(batch)
    assert sorted(seen) == sorted(url(i) for i in range(30))


def test_claim_fills_its_limit_past_urls_another_flusher_holds(store):
    upload(store, [url(i) for i in range(30)])
    held = set(claimed_urls(store, owner="a", limit=10))
    taken = claimed_urls(store, owner="b", limit=15)
    assert len(held) == 10 and len(taken) == 15 and not held & set(taken)
    assert len(claimed_urls(store, owner="c")) == 5


def test_a_claim_leases_and_returns_the_leased_state(store):
    upload(store, [url(1)])
    (state,) = claim_all(store, owner="me", now=T0 + 120)
    assert (state.lease_owner, state.lease_until) == ("me", T0 + 120 + LEASE)
    assert store.states([url(1)])[url(1)] == state


def test_a_live_lease_excludes_others_and_an_expired_one_is_claimable_again(store):
    upload(store, [url(1)])
    assert claimed_urls(store, owner="a", now=T0 + 120) == [url(1)]
    assert claimed_urls(store, owner="b", now=T0 + 120 + LEASE - 1) == []
    assert claimed_urls(store, owner="b", now=T0 + 120 + LEASE) == [url(1)]


def test_not_before_delays_a_url_until_it_is_due(store):
    upload(store, [url(1)])
    claim_all(store, owner="me")
    store.update({url(1): partial(lc.released, owner="me", not_before=T0 + 1000, reason="quota", now=T0 + 120)}, T0)
    assert claim_all(store, now=T0 + 999) == []
    assert claimed_urls(store, now=T0 + 1000) == [url(1)]


def test_every_active_phase_is_claimed_when_due_and_settled_ones_never(store):
    upload(store, [url(1), url(2)])
    claim_all(store)
    push(store, [url(1)])  # pushed: due again for its task check at its not_before
    store.update({url(2): partial(lc.refused, owner="flusher", reason="bad", now=T0 + 120, keep_until=T0 + 9e9)}, T0)
    (state,) = claim_all(store, now=T0 + 120 + lc.CHECK_FIRST_SECONDS)
    assert (state.url, state.phase) == (url(1), lc.PUSHED)
    store.update({url(1): partial(lc.task_completed, owner="flusher", now=T0 + 200, keep_until=T0 + 9e9)}, T0)
    assert claim_all(store, now=T0 + 10**6) == []


def test_a_url_that_moved_window_is_claimed_once_in_its_new_window(store):
    upload(store, [url(1)])
    claim_all(store)
    push(store, [url(1)])
    verify(store, [url(1)])
    assert store.states([url(1)])[url(1)].phase == lc.VERIFIED
    upload(store, [url(1)], version="v2", window=W + 10, now=T0 + 600)  # an overwrite: a new cycle, a new window
    assert claim_all(store, now=T0 + 10**4, max_window=W + 9) == []
    (state,) = claim_all(store, now=T0 + 10**4)
    assert (state.version, state.refresh, state.window) == ("v2", True, W + 10)


def test_forgotten_urls_are_never_claimed(store):
    upload(store, [url(1), url(2)])
    store.update({url(1): lambda state: None}, T0)
    assert claimed_urls(store) == [url(2)]


# -- quota ------------------------------------------------------------------------------------


def test_reserve_quota_grants_up_to_the_limit_then_partially_then_nothing(store):
    assert store.reserve_quota(PREFETCH, "2026-11-26", 60, 100) == 60
    assert store.reserve_quota(PREFETCH, "2026-11-26", 60, 100) == 40
    assert store.reserve_quota(PREFETCH, "2026-11-26", 1, 100) == 0
    assert store.quota_used(PREFETCH, "2026-11-26") == 100


def test_counters_and_days_are_independent(store):
    store.reserve_quota(PREFETCH, "2026-11-26", 10, 100)
    store.reserve_quota(REFRESH, "2026-11-26", 3, 100)
    store.reserve_quota(PREFETCH, "2026-11-27", 5, 100)
    assert [store.quota_used(c, d) for c, d in [(PREFETCH, "2026-11-26"), (REFRESH, "2026-11-26"),
                                                (PREFETCH, "2026-11-27"), (REFRESH, "2026-11-27")]] == [10, 3, 5, 0]


def test_release_quota_gives_back_but_never_below_zero(store):
    store.reserve_quota(REFRESH, "d", 10, 100)
    store.release_quota(REFRESH, "d", 4)
    assert store.quota_used(REFRESH, "d") == 6
    store.release_quota(REFRESH, "d", 50)
    assert store.quota_used(REFRESH, "d") == 0
    store.release_quota(REFRESH, "never-used", 5)
    assert store.quota_used(REFRESH, "never-used") == 0


# -- reports and flush-on-full ------------------------------------------------------------------


def test_counts(store):
    upload(store, [url(i) for i in range(6)])
    claim_all(store)
    push(store, [url(1)])
    verify(store, [url(1)], keep_until=T0 + 900)
    push(store, [url(0)])
    store.update({url(2): partial(lc.refused, owner="flusher", reason="InvalidDomain.NotFound", now=T0 + 120,
                                  keep_until=T0 + 900)}, T0)
    store.update({url(3): partial(lc.released, owner="flusher", not_before=T0 + 9e4, reason="quota: used", now=T0)}, T0)
    counts = store.counts(T0 + 300)
    assert (counts.pending, counts.deferred, counts.pushed, counts.verified, counts.dead) == (3, 1, 1, 1, 1)
    assert counts.deferred_reasons == {"quota: used": 1}
    later = store.counts(T0 + 1000)  # past keep_until: settled URLs are no longer remembered
    assert (later.verified, later.dead) == (0, 0)


def test_dead_letters_newest_first_with_a_limit(store):
    upload(store, [url(i) for i in range(5)])
    claim_all(store)
    for i in range(5):
        store.update({url(i): partial(lc.refused, owner="flusher", reason=f"r{i}", now=T0 + i, keep_until=T0 + 9e9)},
                     T0 + i)
    letters = store.dead_letters(limit=3)
    assert [(d.url, d.reason) for d in letters] == [(url(4), "r4"), (url(3), "r3"), (url(2), "r2")]
    upload(store, [url(4)], version="v2", now=T0 + 10)  # a new version of a dead URL: tried again
    assert [d.url for d in store.dead_letters(limit=10)] == [url(3), url(2), url(1), url(0)]


def test_request_flush_is_true_once_per_window(store):
    assert store.request_flush(W) is True
    assert store.request_flush(W) is False
    assert store.request_flush(W + 1) is True


def test_pending_in_window(store):
    upload(store, [url(i) for i in range(5)])
    upload(store, [url("other")], window=W + 1)
    assert store.pending_in_window(W) >= 5
    assert store.pending_in_window(W + 2) == 0


def test_state_is_shared_between_stores_on_the_same_backend(backend):
    first, second = backend.open(), backend.open()
    upload(first, [url(1)])
    assert upload(second, [url(1)]) == {}
    assert claimed_urls(second, owner="b") == [url(1)]
    assert claim_all(first, owner="a") == []


# -- races --------------------------------------------------------------------------------------


def _run_threads(count: int, target) -> list:
    results: list = [None] * count
    errors: list = []
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def test_racing_threads_never_exceed_the_quota_and_grant_it_all(backend):
    stores = [backend.open() for _ in range(8)]

    def reserve_until_refused(i: int) -> int:
        total = 0
        while True:
            granted = stores[i].reserve_quota(PREFETCH, "race-day", 7, 100)
            assert 0 <= granted <= 7
            if granted == 0:
                return total
            total += granted

    grants = _run_threads(8, reserve_until_refused)
    assert sum(grants) == 100
    assert stores[0].quota_used(PREFETCH, "race-day") == 100


def test_racing_threads_never_claim_the_same_url_twice(backend):
    upload(backend.open(), [url(i) for i in range(80)])
    stores = [backend.open() for _ in range(4)]

    def claim_until_empty(i: int) -> list[str]:
        got: list[str] = []
        while batch := claimed_urls(stores[i], owner=f"flusher-{i}", limit=7):
            got.extend(batch)
        return got

    results = _run_threads(4, claim_until_empty)
    everything = Counter(u for batch in results for u in batch)
    assert max(everything.values()) == 1
    assert set(everything) == {url(i) for i in range(80)}


def _reserve_in_process(store_url: str, start, results) -> None:
    from handler.stores import open_store

    store = open_store(store_url)
    start.wait()
    total = 0
    while (granted := store.reserve_quota(PREFETCH, "process-day", 3, 50)) > 0:
        total += granted
    results.put(total)
    store.close()


def test_racing_processes_never_exceed_the_quota(backend):
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=_reserve_in_process, args=(backend.url, start, results)) for _ in range(4)]
    for process in processes:
        process.start()
    start.set()
    totals = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert sum(totals) == 50
    assert backend.open().quota_used(PREFETCH, "process-day") == 50
