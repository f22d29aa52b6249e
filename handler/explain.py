"""Where a URL stands, in words: what the store holds about it, what happens next, and when.

Pure: a URL's state (or None) and the time → a plain dict that `python -m handler show` prints.
"""

from __future__ import annotations

import time

from . import lifecycle as lc

TYPE_CHECKING = False  # typing is for type checkers only: see handler/values.py
if TYPE_CHECKING:
    from .lifecycle import UrlState

NOT_KNOWN = (
    "not in the store: no rule maps an upload to it, its upload has not arrived, or it settled"
    " longer ago than dedupe_seconds and was forgotten"
)


def explain(url: str, state: UrlState | None, now: float, window_seconds: int) -> dict:
    """The URL's phase and facts (versions, task, times as ISO 8601 UTC) and one sentence on what comes next."""
    if not lc.is_known(state, now):
        return {"url": url, "phase": None, "next": NOT_KNOWN}
    assert state is not None
    facts: dict[str, object] = {"url": url, "phase": state.phase, "version": state.version,
                                "pushed_version": state.pushed_version}
    if state.task_id or state.task_at:
        facts.update(task_id=state.task_id, task_submitted=iso(state.task_at))
    if state.reason:
        facts["reason"] = state.reason
    if state.failures:
        facts.update(failures=state.failures, failing_since=iso(state.failing_since))
    if state.lease_until > now:
        facts["held_by_a_flush_until"] = iso(state.lease_until)
    facts["next"] = _next_step(state, now, window_seconds)
    return facts


def _next_step(state: UrlState, now: float, window_seconds: int) -> str:
    due = max(state.not_before, (state.window + 1) * window_seconds)
    when = "at the next flush" if due <= now else f"at the first flush after {iso(due)}"
    why = f" (waiting: {state.reason})" if state.reason else ""
    kind = "refresh" if state.phase == lc.REFRESHING else "prefetch"
    task = f"{kind} task {state.task_id}" if state.task_id else f"a {kind} whose answer was lost"
    if state.phase == lc.PENDING:
        what = "refreshed, then prefetched once the refresh completed" if state.refresh else "prefetched"
        return f"to be {what}, {when}{why}"
    if state.phase == lc.READY:
        return f"refresh completed; to be prefetched {when}{why}"
    if state.phase == lc.REFRESHING:
        return f"{task}: its status is checked {when}; the prefetch follows once it completed"
    if state.phase == lc.PUSHED:
        return f"{task}: its status is checked {when}, until it ends"
    if state.phase == lc.VERIFIED:
        return f"warm: the prefetch task completed; remembered until {iso(state.keep_until)}"
    if state.phase == lc.UNVERIFIED:
        return ("prefetched, but its task was not seen to end within the API's 3 days;"
                f" remembered until {iso(state.keep_until)}")
    return f"dead-lettered: {state.reason} (requeue puts it back); remembered until {iso(state.keep_until)}"


def iso(t: float) -> str:
    """Epoch seconds as ISO 8601 UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
