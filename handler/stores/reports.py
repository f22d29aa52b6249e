"""Counts and dead letters from URL states: the same report whatever store holds them."""

from __future__ import annotations

from collections import Counter

from ..lifecycle import DEAD, PENDING, PUSHED, READY, REFRESHING, SETTLED, UNVERIFIED, VERIFIED, UrlState
from ..ports import DeadLetter, StoreCounts

TYPE_CHECKING = False  # typing is for type checkers only: see handler/values.py
if TYPE_CHECKING:
    from typing import Iterable


def count_states(states: Iterable[UrlState], now: float) -> StoreCounts:
    """How many URLs are in each phase; settled ones only while they are remembered."""
    phases: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    failed_tasks = 0
    oldest: int | None = None
    last_at, last_ids = 0.0, set()
    for state in states:
        if state.phase in SETTLED and state.keep_until <= now:
            continue
        phases[state.phase] += 1
        failed_tasks += state.task_failures > 0
        if state.deferred:
            reasons[state.reason] += 1
        if state.phase in (PENDING, READY, REFRESHING) and (oldest is None or state.window < oldest):
            oldest = state.window
        if state.task_id and state.task_at >= last_at:
            if state.task_at > last_at:
                last_at, last_ids = state.task_at, set()
            last_ids.update(state.task_id.split(","))
    return StoreCounts(
        pending=phases[PENDING] + phases[READY],
        deferred=sum(reasons.values()),
        refreshing=phases[REFRESHING],
        pushed=phases[PUSHED],
        verified=phases[VERIFIED],
        unverified=phases[UNVERIFIED],
        dead=phases[DEAD],
        failed_tasks=failed_tasks,
        deferred_reasons=dict(reasons.most_common()),
        oldest_pending_window=oldest,
        last_task_at=last_at,
        last_task_ids=tuple(sorted(last_ids)),
    )


def dead_letter(state: UrlState) -> DeadLetter:
    return DeadLetter(state.url, state.reason, state.window, state.updated_at)
