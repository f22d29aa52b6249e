"""The life of a URL, with plain data: uploads, overwrites, deletes, tasks, failures."""

from __future__ import annotations

import pytest

from handler import lifecycle as lc
from handler.lifecycle import UrlState

URL = "https://cdn.example.com/app/main.js"
NOW = 1_800_000_000.0
OWNER = "flusher-1"


def up(state, version, *, now=NOW, mode=lc.AUTO, window=1):
    return lc.written(state, URL, version, window=window, now=now, mode=mode)


def rm(state, *, now=NOW, mode=lc.AUTO):
    return lc.removed(state, URL, window=1, now=now, mode=mode)


def lease(state, now=NOW):
    return lc.leased(state, OWNER, now=now, lease_seconds=300)


def pushed(state, now=NOW, mode=lc.AUTO):
    leased = lease(state, now)
    return lc.push_accepted(leased, OWNER, "task-p", pushed=leased.version, now=now, mode=mode)


def verified(version="v1"):
    state = pushed(up(None, version))
    return lc.task_completed(lease(state, NOW + 600), OWNER, now=NOW + 600, keep_until=NOW + 86400 * 30)


def test_a_first_upload_is_pending_without_a_refresh():
    state = up(None, "v1")
    assert (state.phase, state.version, state.refresh) == (lc.PENDING, "v1", False)


def test_always_mode_refreshes_even_a_first_upload():
    assert up(None, "v1", mode=lc.ALWAYS).refresh is True


def test_a_redelivery_or_identical_reupload_changes_nothing_in_any_phase():
    for state in (up(None, "v1"), pushed(up(None, "v1")), verified("v1")):
        assert up(state, "v1") is state


def test_an_overwrite_of_a_verified_url_is_refreshed_before_its_prefetch():
    state = up(verified("v1"), "v2", now=NOW + 3600, window=99)
    assert (state.phase, state.version, state.refresh, state.window) == (lc.PENDING, "v2", True, 99)
    assert state.pushed_version == "v1"


def test_never_mode_prefetches_an_overwrite_without_a_refresh():
    state = up(verified("v1"), "v2", mode=lc.NEVER)
    assert (state.phase, state.refresh) == (lc.PENDING, False)


def test_overwrites_before_the_prefetch_coalesce_into_the_newest_version():
    state = up(up(up(verified("v1"), "v2"), "v3"), "v4")
    assert (state.version, state.refresh) == ("v4", True)
    refreshing = lc.refresh_accepted(lease(state), OWNER, "task-r", now=NOW)
    assert up(refreshing, "v5").version == "v5"  # still one refresh, then one prefetch of v5


def test_an_overwrite_of_a_never_pushed_url_needs_no_refresh():
    assert up(up(None, "v1"), "v2").refresh is False


def test_the_prefetch_waits_for_its_refresh_to_complete():
    state = lc.refresh_accepted(lease(up(verified("v1"), "v2")), OWNER, "task-r", now=NOW)
    assert state.phase == lc.REFRESHING
    running = lc.task_running(lease(state, NOW + 60), OWNER, now=NOW + 60, settle_seconds=360, keep_until=0)
    assert running.phase == lc.REFRESHING and running.not_before > NOW + 60
    done = lc.task_completed(lease(running, running.not_before), OWNER, now=running.not_before, keep_until=0)
    assert (done.phase, done.not_before) == (lc.READY, running.not_before)


def test_a_refresh_whose_status_cannot_be_read_counts_as_done_after_the_settle_time():
    state = lc.refresh_accepted(lease(up(verified("v1"), "v2")), OWNER, "task-r", now=NOW)
    early = lc.task_running(lease(state, NOW + 300), OWNER, now=NOW + 300, settle_seconds=360, keep_until=0)
    assert early.phase == lc.REFRESHING
    at = early.not_before
    late = lc.task_running(lease(early, at), OWNER, now=at, settle_seconds=360, keep_until=0)
    assert (late.phase, late.lease_owner) == (lc.READY, None)


def test_a_failed_prefetch_task_is_pushed_again_and_counted():
    state = lc.task_failed(lease(pushed(up(None, "v1")), NOW + 600), OWNER, "origin timeout", now=NOW + 600,
                           give_up_after=3 * 86400)
    assert (state.phase, state.refresh, state.task_failures) == (lc.PENDING, False, 1)
    assert "origin timeout" in state.reason and state.not_before > NOW + 600


def test_a_failed_refresh_task_keeps_the_refresh_owed():
    state = lc.refresh_accepted(lease(up(verified("v1"), "v2")), OWNER, "task-r", now=NOW)
    again = lc.task_failed(lease(state, NOW + 60), OWNER, "", now=NOW + 60, give_up_after=86400)
    assert (again.phase, again.refresh) == (lc.PENDING, True)


def test_a_prefetch_never_seen_to_end_in_three_days_is_unverified():
    state = pushed(up(None, "v1"))
    later = NOW + lc.TASK_WINDOW_SECONDS + 1
    assert lc.task_running(lease(state, later), OWNER, now=later, settle_seconds=360, keep_until=later + 1).phase == lc.UNVERIFIED


def test_a_delete_before_the_prefetch_cancels_it():
    assert rm(up(None, "v1")) is None


def test_a_delete_of_a_pushed_url_purges_it_then_forgets_it():
    state = rm(verified("v1"))
    assert (state.phase, state.version, state.refresh) == (lc.PENDING, None, True)
    refreshing = lc.refresh_accepted(lease(state), OWNER, "task-r", now=NOW)
    assert lc.task_completed(lease(refreshing, NOW + 400), OWNER, now=NOW + 400, keep_until=0) is None


def test_a_recreate_after_a_delete_is_warmed_again():
    purge = rm(verified("v1"))
    assert up(purge, "v1").version == "v1"  # same bytes again: still refreshed first, then prefetched
    assert up(None, "v1").phase == lc.PENDING  # after the purge the URL is forgotten: a fresh start


def test_a_delete_of_an_unknown_url_costs_nothing_unless_always():
    assert rm(None) is None
    assert rm(None, mode=lc.ALWAYS).refresh is True


def test_an_overwrite_during_the_prefetch_call_starts_a_new_cycle():
    leased = lease(up(None, "v1"))
    overwritten = up(leased, "v2")
    state = lc.push_accepted(overwritten, OWNER, "task-p", pushed="v1", now=NOW, mode=lc.AUTO)
    assert (state.phase, state.version, state.pushed_version, state.refresh) == (lc.PENDING, "v2", "v1", True)


def test_results_of_a_lost_lease_are_not_recorded():
    leased = lease(up(None, "v1"))
    stolen = lc.leased(leased, "other", now=NOW + 301, lease_seconds=300)
    assert lc.push_accepted(stolen, OWNER, "t", pushed="v1", now=NOW + 302, mode=lc.AUTO) is stolen


def test_not_accepted_backs_off_and_gives_up_only_after_the_give_up_time():
    state = up(None, "v1")
    now = NOW
    delays = []
    while state.phase != lc.DEAD:
        state = lc.not_accepted(lease(state, now), OWNER, "Throttling", now=now, give_up_after=86400)
        if state.phase != lc.DEAD:
            delays.append(state.not_before - now)
            now = state.not_before
    assert now - NOW >= 86400
    assert delays[0] < 61 and max(delays) <= lc.BACKOFF_CAP_SECONDS
    assert "Throttling" in state.reason


def test_an_ambiguous_call_not_found_is_due_again_as_it_was():
    refreshing = lc.refresh_accepted(lease(up(verified("v1"), "v2")), OWNER, None, now=NOW)
    again = lc.task_lost(lease(refreshing, NOW + 200), OWNER, now=NOW + 200)
    assert (again.phase, again.refresh, again.version) == (lc.PENDING, True, "v2")
    push = lc.push_accepted(lease(up(None, "v1")), OWNER, None, pushed="v1", now=NOW, mode=lc.AUTO)
    again = lc.task_lost(lease(push, NOW + 200), OWNER, now=NOW + 200)
    assert (again.phase, again.refresh, again.pushed_version) == (lc.PENDING, False, None)


def test_settled_urls_are_forgotten_after_their_horizon():
    state = verified("v1")
    assert up(state, "v1", now=state.keep_until - 1) is state
    fresh = up(state, "v1", now=state.keep_until + 1)
    assert (fresh.phase, fresh.refresh) == (lc.PENDING, False)


@pytest.mark.parametrize("state", [up(None, "v1"), verified("v1"), rm(verified("v1"))])
def test_fields_round_trip(state: UrlState):
    assert UrlState.from_fields(state.to_fields()) == state


def test_a_requeued_dead_letter_is_due_at_once_with_its_failures_forgotten():
    failing = UrlState("https://cdn.example.com/a.js", lc.PENDING, 5, version="v1", failing_since=100.0, failures=7,
                       task_failures=2)
    died = lc.dead(failing, "gave up after 259200 s of failures: Throttling", now=300.0, keep_until=9e9)
    again = lc.requeued(died, now=400.0, mode=lc.AUTO)
    assert (again.phase, again.version, again.window, again.not_before) == (lc.PENDING, "v1", 5, 0.0)
    assert (again.failures, again.failing_since, again.reason, again.refresh) == (0, 0.0, "", False)
    assert again.task_failures == 2  # still counted in status' failed_tasks
    pushed_before = lc.dead(UrlState(died.url, lc.PUSHED, 5, version="v2", pushed_version="v1"), "x", now=1, keep_until=9e9)
    assert lc.requeued(pushed_before, now=2.0, mode=lc.AUTO).refresh  # the CDN may hold v1: refresh first


def test_requeue_leaves_anything_but_a_remembered_dead_letter_alone():
    pending = UrlState("https://cdn.example.com/a.js", lc.PENDING, 5, version="v1")
    assert lc.requeued(pending, now=1.0, mode=lc.AUTO) is pending
    assert lc.requeued(None, now=1.0, mode=lc.AUTO) is None
    forgotten = lc.dead(pending, "x", now=1.0, keep_until=2.0)
    assert lc.requeued(forgotten, now=3.0, mode=lc.AUTO) is None


def test_a_dropped_url_is_forgotten_unless_a_flush_holds_it():
    state = UrlState("https://cdn.example.com/a.js", lc.VERIFIED, 5, version="v1", keep_until=9e9)
    assert lc.dropped(state, now=1.0) is None
    held = lc.leased(UrlState(state.url, lc.PENDING, 5, version="v1"), "flusher", now=1.0, lease_seconds=300)
    assert lc.dropped(held, now=2.0) is held
    assert lc.dropped(held, now=400.0) is None  # its flusher's lease ran out
