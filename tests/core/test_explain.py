"""explain(): a URL's state in words, from plain data."""

from handler import lifecycle as lc
from handler.explain import NOT_KNOWN, explain
from handler.lifecycle import UrlState

URL = "https://cdn.example.com/a.css"
NOW = 1_795_399_200.0  # 2026-11-23T02:00:00Z
WINDOW = int(NOW // 60)


def test_an_unknown_or_forgotten_url_is_not_in_the_store():
    assert explain(URL, None, NOW, 60) == {"url": URL, "phase": None, "next": NOT_KNOWN}
    forgotten = UrlState(URL, lc.VERIFIED, WINDOW - 10, version="v1", pushed_version="v1", keep_until=NOW - 1)
    assert explain(URL, forgotten, NOW, 60)["phase"] is None


def test_a_pending_url_waits_for_its_window_then_for_its_back_off():
    in_window = UrlState(URL, lc.PENDING, WINDOW, version="v1")
    assert explain(URL, in_window, NOW, 60)["next"] == "to be prefetched, at the first flush after 2026-11-23T02:01:00Z"
    backing_off = in_window._replace(window=WINDOW - 5, not_before=NOW + 120, reason="retry: Throttling",
                                     failures=2, failing_since=NOW - 300)
    facts = explain(URL, backing_off, NOW, 60)
    assert facts["next"] == "to be prefetched, at the first flush after 2026-11-23T02:02:00Z (waiting: retry: Throttling)"
    assert (facts["failures"], facts["failing_since"]) == (2, "2026-11-23T01:55:00Z")
    due = in_window._replace(window=WINDOW - 1)
    assert explain(URL, due, NOW, 60)["next"] == "to be prefetched, at the next flush"


def test_an_overwrite_is_refreshed_before_its_prefetch():
    overwrite = UrlState(URL, lc.PENDING, WINDOW - 1, version="v2", pushed_version="v1", refresh=True)
    assert explain(URL, overwrite, NOW, 60)["next"] == (
        "to be refreshed, then prefetched once the refresh completed, at the next flush")
    refreshing = overwrite._replace(phase=lc.REFRESHING, refresh=False, task_id="77", task_at=NOW - 30, not_before=NOW + 30)
    facts = explain(URL, refreshing, NOW, 60)
    assert (facts["task_id"], facts["task_submitted"]) == ("77", "2026-11-23T01:59:30Z")
    assert facts["next"] == ("refresh task 77: its status is checked at the first flush after 2026-11-23T02:00:30Z;"
                             " the prefetch follows once it completed")


def test_pushed_settled_and_dead_urls_say_what_the_cdn_holds_or_why_not():
    pushed = UrlState(URL, lc.PUSHED, WINDOW - 1, version="v1", pushed_version="v1", task_id=None, task_at=NOW - 10)
    assert explain(URL, pushed, NOW, 60)["next"].startswith("a prefetch whose answer was lost: its status is checked")
    verified = pushed._replace(phase=lc.VERIFIED, task_id="9", keep_until=NOW + 86400)
    assert explain(URL, verified, NOW, 60)["next"] == (
        "warm: the prefetch task completed; remembered until 2026-11-24T02:00:00Z")
    dead = pushed._replace(phase=lc.DEAD, reason="InvalidDomain.NotFound: no such domain", keep_until=NOW + 60)
    facts = explain(URL, dead, NOW, 60)
    assert facts["reason"] == "InvalidDomain.NotFound: no such domain"
    assert facts["next"].startswith("dead-lettered: InvalidDomain.NotFound: no such domain (requeue puts it back)")


def test_a_url_held_by_a_running_flush_says_until_when():
    held = UrlState(URL, lc.PENDING, WINDOW - 1, version="v1", lease_owner="f1", lease_until=NOW + 300)
    assert explain(URL, held, NOW, 60)["held_by_a_flush_until"] == "2026-11-23T02:05:00Z"
    assert "held_by_a_flush_until" not in explain(URL, held._replace(lease_until=NOW - 1), NOW, 60)
