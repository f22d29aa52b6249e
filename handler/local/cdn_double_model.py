"""What the CDN API double models behind the API: a clock, an origin, an edge cache, tasks and daily quotas.

The point of the model is that ordering matters as it does on a real CDN: a prefetch
fills the edge only where it holds nothing, so an overwritten object stays stale until
a refresh has *completed*; a prefetch that completes before its refresh does changes
nothing. Task state is computed lazily: every observation first settles, in completion
order, the tasks that are due on the double's clock. Not thread-safe: the double holds its lock.
"""

from __future__ import annotations

import heapq
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable

PRELOAD = "preload"  # ObjectType of a PushObjectCache task
REFRESH = "file"  # ObjectType of a RefreshObjectCaches task with ObjectType=File
HISTORY_SECONDS = 3 * 86400  # the task APIs cover the last 3 days
QUOTA_DAY_OFFSET = 8 * 3600  # the daily quotas refill at 00:00 UTC+8
ORIGIN_MISSING = "origin returned 404 Not Found"
OPEN_ORIGIN_VERSION = "origin"  # what an open origin serves for an object no test has set
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def quota_day(epoch_seconds: float) -> int:
    """The index of the quota day: days change at 00:00 UTC+8, i.e. 16:00 UTC."""
    return int((epoch_seconds + QUOTA_DAY_OFFSET) // 86400)


def object_key(url: str) -> str:
    """Origin and cache key: the URL without its scheme (http and https are one object)."""
    lowered = url[:8].lower()
    for scheme in ("http://", "https://"):
        if lowered.startswith(scheme):
            return url[len(scheme):]
    return url


def utc_text(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime(TIME_FORMAT)


class SimClock:
    """The double's time: real time (or an injected base) by default; set() pins it, advance() moves it.

    Signatures and the per-second limit keep using the base clock, so a test can jump days
    ahead without its real-time signatures going stale.
    """

    def __init__(self, base: Callable[[], float] = time.time) -> None:
        self.base = base
        self._pinned: float | None = None
        self._offset = 0.0

    def __call__(self) -> float:
        return self._pinned if self._pinned is not None else self.base() + self._offset

    def set(self, now: float) -> None:
        self._pinned = float(now)

    def advance(self, seconds: float) -> None:
        if self._pinned is not None:
            self._pinned += float(seconds)
        else:
            self._offset += float(seconds)

    def follow_base(self) -> None:
        self._pinned, self._offset = None, 0.0

    def as_dict(self) -> dict:
        return {"now": self(), "pinned": self._pinned is not None, "offset": self._offset}


@dataclass
class Task:
    """One URL of a task. Tasks of one call and domain may share a task_id."""

    task_id: str
    url: str
    kind: str  # PRELOAD | REFRESH
    created: float
    done_at: float
    seq: int
    fail_reason: str | None = None  # injected at creation; the origin may add one at completion
    result: str | None = None  # "Complete" | "Failed" once settled
    description: str = ""

    def view(self, now: float) -> dict:
        """The entry both task APIs return for this URL."""
        finished = self.result is not None and now >= self.done_at
        return {
            "TaskId": self.task_id,
            "ObjectPath": self.url,
            "ObjectType": self.kind,
            "Status": self.result if finished else "Refreshing",
            "Process": "100%" if finished else "0%",
            "CreationTime": utc_text(self.created),
            "Description": self.description if finished else "",
        }


@dataclass
class TaskFault:
    """Make tasks end Failed: the listed URLs (any scheme), or a seeded fraction, of one kind or both."""

    reason: str = "origin timeout"
    urls: frozenset[str] | None = None  # object keys
    fraction: float | None = None
    kind: str | None = None


@dataclass
class CdnModel:
    """Origin, edge cache, tasks and quota counters, all on one SimClock."""

    clock: SimClock
    preload_seconds: float = 180.0
    refresh_seconds: float = 300.0
    quotas: dict[str, int] = field(default_factory=lambda: {PRELOAD: 1000, REFRESH: 10000})
    task_ids: str = "per_url"  # "per_url" | "per_domain": one id for a call's URLs of one domain
    seed: int | None = None
    # Open: an object no test has set or deleted exists (the demo and pipeline tests never upload to
    # the double); closed: only objects set with put_origin exist.
    open_origin: bool = True
    origin: dict[str, str] = field(default_factory=dict)  # object key -> version
    deleted: set[str] = field(default_factory=set)  # object keys deleted at an open origin
    cache: dict[str, str] = field(default_factory=dict)  # object key -> cached version
    tasks: list[Task] = field(default_factory=list)
    next_task_id: int = 17_000_000_000

    def __post_init__(self) -> None:
        self._used: dict[tuple[str, int], int] = {}
        self._due: list[tuple[float, int, Task]] = []  # unsettled tasks by completion time
        self._by_id: dict[str, list[Task]] = {}
        self._faults: list[TaskFault] = []
        self._rng = random.Random(self.seed)

    # -- origin and cache ----------------------------------------------------------------------

    def put_origin(self, url: str, version: str) -> None:
        self.settle()  # tasks due before the change fetch what the origin held then
        self.origin[object_key(url)] = str(version)
        self.deleted.discard(object_key(url))

    def delete_origin(self, url: str) -> None:
        self.settle()
        self.origin.pop(object_key(url), None)
        self.deleted.add(object_key(url))

    def set_open_origin(self, open_origin: bool) -> None:
        self.settle()
        self.open_origin = open_origin

    def origin_version(self, key: str) -> str | None:
        if key in self.origin:
            return self.origin[key]
        return OPEN_ORIGIN_VERSION if self.open_origin and key not in self.deleted else None

    def cached(self, url: str) -> str | None:
        self.settle()
        return self.cache.get(object_key(url))

    def cache_view(self) -> dict[str, str]:
        self.settle()
        return dict(self.cache)

    def viewer_get(self, url: str) -> str | None:
        """A viewer's request: a hit serves the cached copy, a miss fills the edge from the origin."""
        self.settle()
        key = object_key(url)
        version = self.origin_version(key)
        if key not in self.cache and version is not None:
            self.cache[key] = version
        return self.cache.get(key)

    # -- quotas --------------------------------------------------------------------------------

    def used(self, kind: str, now: float | None = None) -> int:
        return self._used.get((kind, quota_day(self.clock() if now is None else now)), 0)

    def remain(self, kind: str, now: float | None = None) -> int:
        return max(0, self.quotas[kind] - self.used(kind, now))

    def set_used(self, kind: str, used: int) -> None:
        self._used[(kind, quota_day(self.clock()))] = max(0, int(used))

    def spend(self, kind: str, count: int, now: float) -> None:
        key = (kind, quota_day(now))
        self._used[key] = self._used.get(key, 0) + count

    # -- tasks ---------------------------------------------------------------------------------

    def fail_tasks(self, fault: TaskFault) -> None:
        self._faults.append(fault)

    def reset_task_faults(self) -> None:
        self._faults.clear()

    def reseed(self, seed: int | None) -> None:
        self._rng = random.Random(seed)

    def create_tasks(self, urls: Iterable[str], kind: str, now: float) -> list[str]:
        """One task per URL; returns the distinct task ids in order, as the API's comma-joined answer lists them."""
        delay = self.preload_seconds if kind == PRELOAD else self.refresh_seconds
        ids: list[str] = []
        by_domain: dict[str, str] = {}
        for url in urls:
            domain = object_key(url).split("/", 1)[0].lower()
            task_id = by_domain.get(domain) if self.task_ids == "per_domain" else None
            if task_id is None:
                task_id = str(self.next_task_id)
                self.next_task_id += 1
                by_domain[domain] = task_id
                ids.append(task_id)
            task = Task(task_id, url, kind, now, now + delay, len(self.tasks), self._injected_failure(url, kind))
            self.tasks.append(task)
            self._by_id.setdefault(task_id, []).append(task)
            heapq.heappush(self._due, (task.done_at, task.seq, task))
        return ids

    def _injected_failure(self, url: str, kind: str) -> str | None:
        key = object_key(url)
        for fault in self._faults:
            if fault.kind is not None and fault.kind != kind:
                continue
            if fault.urls is not None and key in fault.urls:
                return fault.reason
            # One draw per fractional fault per task keeps a seeded run reproducible.
            if fault.fraction is not None and fault.urls is None and self._rng.random() < fault.fraction:
                return fault.reason
        return None

    def settle(self, now: float | None = None) -> None:
        """Apply, in completion order, every task due by `now` (the double's clock by default)."""
        now = self.clock() if now is None else now
        while self._due and self._due[0][0] <= now:
            _, _, task = heapq.heappop(self._due)
            self._complete(task)

    def _complete(self, task: Task) -> None:
        key = object_key(task.url)
        version = self.origin_version(key)
        if task.fail_reason is None and task.kind == PRELOAD and version is None:
            task.fail_reason = ORIGIN_MISSING
        if task.fail_reason is not None:
            task.result, task.description = "Failed", task.fail_reason
            return
        task.result = "Complete"
        if task.kind == PRELOAD:
            # A prefetch never replaces a copy the edge still holds: that is why refresh comes first.
            self.cache.setdefault(key, version)
        else:
            self.cache.pop(key, None)

    def by_ids(self, task_ids: Iterable[str], now: float) -> list[dict]:
        self.settle(now)
        found = []
        for task_id in task_ids:
            found.extend(t.view(now) for t in self._by_id.get(task_id, ()) if _recent(t, now))
        return found

    def search(
        self,
        now: float,
        *,
        task_id: str | None = None,
        object_path: str | None = None,
        kind: str | None = None,
        domain: str | None = None,
        status: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> list[dict]:
        """Task entries matching every given filter, newest first."""
        self.settle(now)
        views = []
        for task in reversed(self.tasks):
            if not _recent(task, now) or (start is not None and task.created < start):
                continue
            if end is not None and task.created > end:
                continue
            if task_id is not None and task.task_id != task_id:
                continue
            if object_path is not None and task.url != object_path:
                continue
            if kind is not None and task.kind != kind.lower():
                continue
            if domain is not None and object_key(task.url).split("/", 1)[0].lower() != domain.lower():
                continue
            view = task.view(now)
            if status is not None and view["Status"] != status:
                continue
            views.append(view)
        return views

    def records(self) -> list[dict]:
        """Every task the double ever made, with what the API hides (completion time, injected failure)."""
        self.settle()
        now = self.clock()
        return [{**t.view(now), "done_at": t.done_at, "created": t.created} for t in self.tasks]


def _recent(task: Task, now: float) -> bool:
    return now - task.created <= HISTORY_SECONDS
