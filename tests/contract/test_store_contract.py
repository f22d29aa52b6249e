"""The Store port's semantics (handler/ports.py), checked on every adapter alike.

Times are explicit epoch seconds, so no test waits for the clock.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter

import pytest

from handler.ports import StoreCounts

T0 = 1_700_000_000.0  # an arbitrary "now"
W = 28_333_333  # a window id (T0 // 60)
LEASE = 300.0


def url(n: int | str) -> str:
    return f"https://cdn.example.com/img/{n}.png"


def claim_all(store, *, now=T0 + 120, owner="flusher", limit=1000, max_window=None, lease=LEASE):
    return store.claim(max_window=max_window, now=now, limit=limit, owner=owner, lease_seconds=lease)


def claimed_urls(store, **kwargs) -> list[str]:
    return [c.url for c in claim_all(store, **kwargs)]


# -- add_pending: the dedupe gate -------------------------------------------------------------


def test_add_returns_only_new_urls_and_dedupes_within_a_call(store):
    assert store.add_pending(W, [url(1), url(2), url(1)], T0) == [url(1), url(2)]
    assert store.add_pending(W, [url(2), url(3)], T0 + 1) == [url(3)]
    assert sorted(claimed_urls(store)) == sorted([url(1), url(2), url(3)])


def test_add_across_windows_keeps_the_first_window(store):
    assert store.add_pending(W, [url(1)], T0) == [url(1)]
    assert store.add_pending(W + 1, [url(1)], T0 + 60) == []
    claims = claim_all(store, now=T0 + 180)
    assert [(c.url, c.window) for c in claims] == [(url(1), W)]
    assert store.pending_in_window(W + 1) == 0


def test_not_re_added_while_pending_however_long(store):
    store.add_pending(W, [url(1)], T0)
    assert store.add_pending(W + 1000, [url(1)], T0 + 10**6) == []


def test_pushed_url_is_not_re_added_before_keep_until_and_is_after(store):
    store.add_pending(W, [url(1)], T0)
    claim_all(store)
    store.mark_pushed({url(1): "task-1"}, now=T0 + 130, keep_until=T0 + 1000)
    assert store.add_pending(W + 5, [url(1)], T0 + 999) == []
    assert store.add_pending(W + 6, [url(1)], T0 + 1000) == [url(1)]  # keep_until <= now: known no more
    claims = claim_all(store, now=T0 + 1100)
    assert [(c.url, c.window, c.attempts) for c in claims] == [(url(1), W + 6, 0)]


def test_dead_url_is_not_re_added_before_keep_until_and_is_after(store):
    store.add_pending(W, [url(1)], T0)
    claim_all(store, owner="a")
    store.mark_dead("a", {url(1): "InvalidObjectPath.Malformed"}, now=T0 + 130, keep_until=T0 + 1000)
    assert store.add_pending(W + 5, [url(1)], T0 + 500) == []
    assert store.add_pending(W + 6, [url(1)], T0 + 1001) == [url(1)]
    assert store.dead_letters() == []  # pending again: no longer a dead letter
    assert claimed_urls(store, now=T0 + 1100) == [url(1)]


def test_very_long_and_non_ascii_urls(store):
    long_url = "https://cdn.example.com/" + "a" * 1000  # the API's 1,024-character maximum
    unicode_url = "https://cdn.example.com/图片/%E5%9B%BE.png"
    assert store.add_pending(W, [long_url, unicode_url], T0) == [long_url, unicode_url]
    assert sorted(claimed_urls(store)) == sorted([long_url, unicode_url])
    too_long = "https://cdn.example.com/" + "b" * 4000
    store.record_dead(W, {too_long: "longer than 1,024 characters"}, now=T0, keep_until=T0 + 100)
    assert [d.url for d in store.dead_letters()] == [too_long]


# -- claim --------------------------------------------------------------------------------------


def test_claim_takes_the_oldest_window_first(store):
    store.add_pending(W + 2, [url("c1"), url("c2")], T0)
    store.add_pending(W, [url("a1"), url("a2")], T0)
    store.add_pending(W + 1, [url("b1")], T0)
    claims = claim_all(store, limit=3)
    assert [c.window for c in claims] == [W, W, W + 1]
    assert {c.url for c in claims} == {url("a1"), url("a2"), url("b1")}
    assert [c.window for c in claim_all(store, limit=10)] == [W + 2, W + 2]


def test_claim_honours_max_window(store):
    store.add_pending(W, [url(1)], T0)
    store.add_pending(W + 1, [url(2)], T0)
    assert claimed_urls(store, max_window=W - 1) == []
    assert claimed_urls(store, max_window=W) == [url(1)]
    assert claimed_urls(store, max_window=None) == [url(2)]


def test_claim_honours_limit_and_never_returns_a_url_twice(store):
    urls = [url(i) for i in range(60)]
    store.add_pending(W, urls, T0)
    seen: list[str] = []
    for _ in range(7):
        batch = claimed_urls(store, limit=10)
        assert len(batch) <= 10
        seen.extend(batch)
    assert sorted(seen) == sorted(urls)
    assert len(set(seen)) == len(seen)


def test_a_live_lease_excludes_others_and_an_expired_one_is_claimable_again(store):
    store.add_pending(W, [url(1)], T0)
    first = claim_all(store, now=T0 + 100, owner="a", lease=50)
    assert [c.url for c in first] == [url(1)]
    assert claim_all(store, now=T0 + 149, owner="b") == []  # lease_until = T0 + 150 > now
    assert claim_all(store, now=T0 + 120, owner="a") == []  # the holder cannot take it twice either
    # The holder crashed: once the lease has run out, anyone may take the URL again.
    again = claim_all(store, now=T0 + 150, owner="b", lease=50)
    assert [(c.url, c.window, c.attempts) for c in again] == [(url(1), W, 0)]
    # and the old holder can no longer settle it
    store.mark_dead("a", {url(1): "late"}, now=T0 + 151, keep_until=T0 + 1000)
    store.defer("a", [url(1)], not_before=T0, reason="late", count_attempt=True)
    assert store.dead_letters() == []
    assert claim_all(store, now=T0 + 160, owner="c") == []  # still b's


def test_not_before_delays_a_url_until_it_is_due(store):
    store.add_pending(W, [url(1), url(2)], T0)
    claim_all(store, owner="a")
    store.defer("a", [url(1)], not_before=T0 + 500, reason="retry: Throttling", count_attempt=True)
    store.defer("a", [url(2)], not_before=T0 + 200, reason="retry: Throttling", count_attempt=True)
    assert claimed_urls(store, now=T0 + 199, owner="b") == []
    assert claimed_urls(store, now=T0 + 200, owner="b", lease=1000) == [url(2)]  # due at not_before exactly
    assert claimed_urls(store, now=T0 + 499, owner="c") == []
    assert claimed_urls(store, now=T0 + 500, owner="c") == [url(1)]


# -- defer, mark_dead, mark_pushed ------------------------------------------------------------


def test_defer_counts_attempts_only_when_asked(store):
    store.add_pending(W, [url(1)], T0)
    now = T0 + 100
    for expected_attempts, count in [(0, True), (1, False), (1, True), (2, True)]:
        claims = claim_all(store, now=now, owner="a")
        assert [(c.url, c.attempts) for c in claims] == [(url(1), expected_attempts)]
        store.defer("a", [url(1)], not_before=now, reason=f"retry {count}", count_attempt=count)
        now += 1
    assert [c.attempts for c in claim_all(store, now=now, owner="a")] == [3]


def test_defer_releases_the_lease_at_once(store):
    store.add_pending(W, [url(1)], T0)
    claim_all(store, now=T0 + 100, owner="a")
    store.defer("a", [url(1)], not_before=T0 + 100, reason="FatalConfig", count_attempt=False)
    assert claimed_urls(store, now=T0 + 100, owner="b") == [url(1)]


def test_defer_and_mark_dead_by_a_non_owner_are_ignored(store):
    store.add_pending(W, [url(1), url(2)], T0)
    claim_all(store, now=T0 + 100, owner="a")
    store.defer("b", [url(1)], not_before=T0, reason="not mine", count_attempt=True)
    store.mark_dead("b", {url(2): "not mine"}, now=T0 + 101, keep_until=T0 + 1000)
    assert store.dead_letters() == []
    assert claim_all(store, now=T0 + 102, owner="c") == []  # both still leased to a
    assert store.counts(T0 + 102) == StoreCounts(pending=2, deferred=0, pushed=0, dead=0)
    # and after a's lease runs out, neither was changed: attempts 0, claimable
    claims = claim_all(store, now=T0 + 100 + LEASE, owner="c")
    assert sorted((c.url, c.attempts) for c in claims) == [(url(1), 0), (url(2), 0)]


def test_defer_and_mark_dead_of_unknown_urls_do_nothing(store):
    store.defer("a", [url(9)], not_before=T0, reason="x", count_attempt=True)
    store.mark_dead("a", {url(9): "x"}, now=T0, keep_until=T0 + 10)
    assert store.counts(T0) == StoreCounts(0, 0, 0, 0)
    assert store.dead_letters() == []


def test_mark_dead_by_the_owner_makes_a_dead_letter(store):
    store.add_pending(W, [url(1), url(2)], T0)
    claim_all(store, now=T0 + 100, owner="a")
    store.mark_dead("a", {url(1): "InvalidObjectPath.Malformed: bad"}, now=T0 + 101, keep_until=T0 + 1000)
    letters = store.dead_letters()
    assert [(d.url, d.reason, d.window, d.at) for d in letters] == [
        (url(1), "InvalidObjectPath.Malformed: bad", W, T0 + 101)
    ]
    store.defer("a", [url(2)], not_before=T0 + 101, reason="r", count_attempt=False)
    assert claimed_urls(store, now=T0 + 102, owner="b") == [url(2)]  # the dead one is never claimed again
    assert store.pending_in_window(W) == 1


def test_mark_pushed_settles_urls(store):
    store.add_pending(W, [url(1), url(2), url(3)], T0)
    claim_all(store, now=T0 + 100, owner="a")
    store.mark_pushed({url(1): "t-1", url(2): "t-1"}, now=T0 + 101, keep_until=T0 + 1000)
    assert store.pending_in_window(W) == 1
    assert store.counts(T0 + 101) == StoreCounts(pending=1, deferred=0, pushed=2, dead=0)
    assert store.counts(T0 + 1000) == StoreCounts(pending=1, deferred=0, pushed=0, dead=0)  # past keep_until
    assert claimed_urls(store, now=T0 + 100 + LEASE, owner="b") == [url(3)]


def test_pushed_urls_are_never_claimed_again(store):
    store.add_pending(W, [url(1), url(2)], T0)
    claim_all(store, now=T0 + 100, owner="a")
    store.mark_pushed({url(1): "t-1"}, now=T0 + 101, keep_until=T0 + 10_000)
    store.defer("a", [url(2)], not_before=T0 + 101, reason="r", count_attempt=False)
    assert claimed_urls(store, now=T0 + 5000, owner="b") == [url(2)]
    assert claimed_urls(store, now=T0 + 9000, owner="c") == [url(2)]  # b's lease ran out; url(1) never again


# -- record_dead --------------------------------------------------------------------------------


def test_record_dead_gates_like_add(store):
    store.add_pending(W, [url(1)], T0)
    store.record_dead(W, {url(1): "too long", url(2): "too long"}, now=T0, keep_until=T0 + 100)
    assert [d.url for d in store.dead_letters()] == [url(2)]  # a pending URL is left alone
    assert store.add_pending(W, [url(2)], T0 + 50) == []  # dead, inside its horizon
    store.record_dead(W + 1, {url(2): "again"}, now=T0 + 60, keep_until=T0 + 200)
    assert [(d.reason, d.window) for d in store.dead_letters()] == [("too long", W)]  # not replaced
    store.record_dead(W + 2, {url(2): "later"}, now=T0 + 150, keep_until=T0 + 300)
    assert [(d.reason, d.window, d.at) for d in store.dead_letters()] == [("later", W + 2, T0 + 150)]
    assert store.counts(T0 + 150) == StoreCounts(pending=1, deferred=0, pushed=0, dead=1)


# -- quota --------------------------------------------------------------------------------------


def test_reserve_quota_grants_up_to_the_limit_then_partially_then_nothing(store):
    assert store.quota_used("2026-01-01") == 0
    assert store.reserve_quota("2026-01-01", 40, 100) == 40
    assert store.reserve_quota("2026-01-01", 50, 100) == 50
    assert store.reserve_quota("2026-01-01", 30, 100) == 10  # partial grant
    assert store.reserve_quota("2026-01-01", 1, 100) == 0
    assert store.quota_used("2026-01-01") == 100
    assert store.reserve_quota("2026-01-01", 0, 100) == 0


def test_reserve_quota_with_a_lowered_limit_grants_nothing(store):
    store.reserve_quota("d", 80, 100)
    assert store.reserve_quota("d", 10, 50) == 0
    assert store.quota_used("d") == 80


def test_release_quota_gives_back_but_never_below_zero(store):
    store.reserve_quota("d", 30, 100)
    store.release_quota("d", 10)
    assert store.quota_used("d") == 20
    store.release_quota("d", 500)
    assert store.quota_used("d") == 0
    store.release_quota("never-used", 5)
    assert store.quota_used("never-used") == 0
    assert store.reserve_quota("d", 100, 100) == 100


def test_quota_days_are_independent(store):
    assert store.reserve_quota("2026-01-01", 100, 100) == 100
    assert store.reserve_quota("2026-01-02", 70, 100) == 70
    assert (store.quota_used("2026-01-01"), store.quota_used("2026-01-02")) == (100, 70)


def test_filling_the_counter_as_the_flusher_does_when_the_account_is_spent(store):
    store.reserve_quota("d", 10, 1000)
    assert store.reserve_quota("d", 2**31, 2**31) == 2**31 - 10
    assert store.reserve_quota("d", 5, 1000) == 0


# -- flush requests, window sizes, reports ---------------------------------------------------------


def test_request_flush_is_true_once_per_window(store):
    assert store.request_flush(W) is True
    assert store.request_flush(W) is False
    assert store.request_flush(W + 1) is True


def test_pending_in_window(store):
    assert store.pending_in_window(W) == 0
    store.add_pending(W, [url(i) for i in range(40)], T0)
    store.add_pending(W + 1, [url("x")], T0)
    assert store.pending_in_window(W) == 40
    assert store.pending_in_window(W + 1) == 1
    claims = claim_all(store, limit=5, max_window=W)
    assert store.pending_in_window(W) == 40  # claimed is still pending
    store.mark_pushed({c.url: "t" for c in claims}, now=T0 + 130, keep_until=T0 + 1000)
    assert store.pending_in_window(W) == 35


def test_counts(store):
    store.add_pending(W, [url(i) for i in range(6)], T0)
    claims = claim_all(store, now=T0 + 100, owner="a")
    assert store.counts(T0 + 100) == StoreCounts(pending=6, deferred=0, pushed=0, dead=0)
    by_url = sorted(c.url for c in claims)
    store.mark_pushed({by_url[0]: "t", by_url[1]: "t"}, now=T0 + 101, keep_until=T0 + 500)
    store.mark_dead("a", {by_url[2]: "bad"}, now=T0 + 101, keep_until=T0 + 800)
    store.defer("a", [by_url[3]], not_before=T0 + 400, reason="quota", count_attempt=False)
    store.defer("a", [by_url[4]], not_before=T0 + 101, reason="retry", count_attempt=True)
    assert store.counts(T0 + 101) == StoreCounts(pending=3, deferred=1, pushed=2, dead=1)
    assert store.counts(T0 + 400) == StoreCounts(pending=3, deferred=0, pushed=2, dead=1)
    assert store.counts(T0 + 500) == StoreCounts(pending=3, deferred=0, pushed=0, dead=1)
    assert store.counts(T0 + 800) == StoreCounts(pending=3, deferred=0, pushed=0, dead=0)


def test_dead_letters_newest_first_with_a_limit(store):
    for i in range(5):
        store.record_dead(W, {url(i): f"reason {i}"}, now=T0 + i, keep_until=T0 + 1000)
    letters = store.dead_letters(limit=3)
    assert [(d.url, d.reason, d.at) for d in letters] == [
        (url(4), "reason 4", T0 + 4), (url(3), "reason 3", T0 + 3), (url(2), "reason 2", T0 + 2)
    ]
    assert len(store.dead_letters()) == 5


def test_state_is_shared_between_stores_on_the_same_backend(backend):
    first, second = backend.open(), backend.open()
    first.add_pending(W, [url(1)], T0)
    assert second.add_pending(W, [url(1)], T0) == []
    assert [c.url for c in claim_all(second, owner="b")] == [url(1)]
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
            granted = stores[i].reserve_quota("race-day", 7, 100)
            assert 0 <= granted <= 7
            if granted == 0:
                return total
            total += granted

    grants = _run_threads(8, reserve_until_refused)
    assert sum(grants) == 100
    assert stores[0].quota_used("race-day") == 100


def test_racing_threads_never_claim_the_same_url_twice(backend):
    backend.open().add_pending(W, [url(i) for i in range(80)], T0)
    stores = [backend.open() for _ in range(4)]

    def claim_until_empty(i: int) -> list[str]:
        got: list[str] = []
        while True:
            batch = claimed_urls(stores[i], owner=f"flusher-{i}", limit=7)
            if not batch:
                return got
            got.extend(batch)

    results = _run_threads(4, claim_until_empty)
    everything = Counter(u for batch in results for u in batch)
    assert max(everything.values()) == 1
    assert set(everything) == {url(i) for i in range(80)}


def _reserve_in_process(store_url: str, start, results) -> None:
    from handler.stores import open_store

    store = open_store(store_url)
    start.wait()
    total = 0
    while (granted := store.reserve_quota("process-day", 3, 50)) > 0:
        total += granted
    results.put(total)
    store.close()


# The fake's state lives in this process only, so processes race on the stores that have a URL.
@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"], indirect=True)
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
    assert backend.open().quota_used("process-day") == 50
