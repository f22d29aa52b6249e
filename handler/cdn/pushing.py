"""The CDN API as the core needs it (`ports.CdnApi`): batching, bad-URL isolation, outcome classes.

Every URL handed to push() or refresh() ends in exactly one of accepted, rejected,
unsent or ambiguous; submissions never raise. Reads raise `ports.CdnCallFailed`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence

from ..ports import AccountQuota, CdnCallFailed, Problem, SubmitOutcome, TaskStatus
from ..settings import CdnSettings
from .client import CdnClient, PushResult, RefreshTask, check_url
from .errors import REJECTED, CdnError, InvalidUrlError
from .signing import TIMESTAMP_FORMAT

log = logging.getLogger("handler.cdn")

MAX_DOMAINS_PER_REFRESH = 10  # RefreshObjectCaches takes URLs of at most 10 domains a call
MAX_TASK_PAGES = 50  # find_tasks stops there: one URL never has 5,000 tasks in 3 days
TASK_HISTORY_SECONDS = 3 * 86400 - 60  # the task APIs cover 3 days; ask a little less, for clock skew


@dataclass(frozen=True)
class _Submission:
    """What differs between PushObjectCache and RefreshObjectCaches for the batcher."""

    name: str
    max_domains: int | None  # distinct domains a call may carry


_PUSH = _Submission("push", None)
_REFRESH = _Submission("refresh", MAX_DOMAINS_PER_REFRESH)


class _Stopped(Exception):
    """Internal: an error that ends this submission, with the URLs of the call that met it."""

    def __init__(self, error: CdnError, urls: list[str]) -> None:
        super().__init__(str(error))
        self.error = error
        self.urls = urls


class CdnAdapter:
    """`ports.CdnApi` over a CdnClient."""

    def __init__(
        self, client: CdnClient, settings: CdnSettings = CdnSettings(), *, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.settings = settings
        self._clock = clock  # wall clock: EndTime of task searches
        # Lowered for good when the API says a call was too large (its documented caps have changed before).
        self.caps = {_PUSH.name: settings.max_urls_per_call, _REFRESH.name: settings.max_urls_per_refresh}

    @property
    def cap(self) -> int:
        return self.caps[_PUSH.name]

    # -- submissions ------------------------------------------------------------------------

    def push(self, urls: Sequence[str]) -> SubmitOutcome:
        return self._submit(urls, _PUSH)

    def refresh(self, urls: Sequence[str]) -> SubmitOutcome:
        return self._submit(urls, _REFRESH)

    def _submit(self, urls: Sequence[str], kind: _Submission) -> SubmitOutcome:
        outcome = SubmitOutcome()
        calls_before = self.client.calls_made
        good: list[str] = []
        for index, url in enumerate(dict.fromkeys(urls)):  # a duplicate is submitted once
            try:
                check_url(url, index)
            except InvalidUrlError as exc:
                outcome.rejected[url] = _reason(exc)
            else:
                good.append(url)
        if kind.max_domains is not None:
            good = _grouped_by_domain(good)  # fewer calls under the per-call domain limit
        done = 0
        try:
            while done < len(good):
                batch = self._next_batch(good, done, kind)
                self._submit_batch(batch, kind, outcome)
                done += len(batch)
        except _Stopped as stop:
            problem = stop.error.problem()
            outcome.problem = problem
            if problem.kind == Problem.AMBIGUOUS:
                outcome.ambiguous = list(stop.urls)
                outcome.sent_at = stop.error.sent_at
            settled = outcome.accepted.keys() | outcome.rejected.keys() | set(outcome.ambiguous)
            outcome.unsent = [url for url in good if url not in settled]
            log.warning(
                "%s stopped by %s (%s): %d URLs unsent, %d ambiguous",
                kind.name, stop.error, problem.kind, len(outcome.unsent), len(outcome.ambiguous),
            )
        outcome.calls = self.client.calls_made - calls_before
        return outcome

    def _next_batch(self, urls: list[str], start: int, kind: _Submission) -> list[str]:
        """The next URLs from `start`, at most the current cap and at most kind.max_domains domains."""
        cap = self.caps[kind.name]
        if kind.max_domains is None:
            return urls[start : start + cap]
        batch: list[str] = []
        domains: set[str] = set()
        for url in urls[start:]:
            domain = _domain(url)
            if len(batch) >= cap or (domain not in domains and len(domains) >= kind.max_domains):
                break
            domains.add(domain)
            batch.append(url)
        return batch

    def _call(self, batch: list[str], kind: _Submission) -> PushResult:
        if kind is _PUSH:
            return self.client.push_object_cache(batch)
        return self.client.refresh_object_caches(batch)

    def _submit_batch(self, batch: list[str], kind: _Submission, outcome: SubmitOutcome) -> None:
        """Submit one batch; on a refused URL split it until the refused ones stand alone."""
        try:
            result = self._call(batch, kind)
        except CdnError as exc:
            handling = exc.handling
            if handling.kind == REJECTED:
                one_domain = len({_domain(u) for u in batch}) == 1
                if len(batch) == 1 or (handling.domain_wide and one_domain):
                    outcome.rejected.update((url, _reason(exc)) for url in batch)
                else:
                    self._submit_pieces(batch, kind, outcome)
                return
            if handling.batch_too_large and len(batch) > 1:
                cap = self.caps[kind.name] = min(self.caps[kind.name], max(1, len(batch) // 2))
                log.warning("the API refused %d URLs in one %s; at most %d from now on", len(batch), kind.name, cap)
                self._submit_pieces(batch, kind, outcome)
                return
            raise _Stopped(exc, batch) from exc
        ids = result.task_ids
        if len(ids) == len(batch):
            outcome.accepted.update(zip(batch, ids))
        else:
            # Tasks of one domain merge into one id: keep them all; task_statuses() splits them
            # and its entries name each URL.
            joined = ",".join(ids)
            outcome.accepted.update((url, joined) for url in batch)

    def _submit_pieces(self, batch: list[str], kind: _Submission, outcome: SubmitOutcome) -> None:
        """Submit a refused batch in pieces: one per domain first (a whole domain is often what the API
        refuses), then halves no larger than the current cap."""
        cap = self.caps[kind.name]
        by_domain: dict[str, list[str]] = {}
        for url in batch:
            by_domain.setdefault(_domain(url), []).append(url)
        if len(by_domain) > 1:
            for urls in by_domain.values():
                for start in range(0, len(urls), cap):
                    self._submit_batch(urls[start : start + cap], kind, outcome)
            return
        size = min(cap, (len(batch) + 1) // 2)
        for start in range(0, len(batch), size):
            self._submit_batch(batch[start : start + size], kind, outcome)

    # -- reads ------------------------------------------------------------------------------

    def task_statuses(self, task_ids: Sequence[str]) -> list[TaskStatus]:
        # An accepted URL may carry a comma-joined id (tasks merged per domain): ask for each part.
        ids = [part.strip() for task_id in task_ids for part in str(task_id).split(",") if part.strip()]
        try:
            return [_status(task) for task in self.client.describe_refresh_task_by_id(ids)]
        except CdnError as exc:
            raise CdnCallFailed(exc.problem()) from exc

    def find_tasks(self, url: str, kind: str, since: float) -> list[TaskStatus]:
        now = self._clock()
        start, end = _utc(min(max(since, now - TASK_HISTORY_SECONDS), now)), _utc(now)
        found: list[TaskStatus] = []
        try:
            for page_number in range(1, MAX_TASK_PAGES + 1):
                page = self.client.describe_refresh_tasks(
                    object_path=url, object_type=kind, start_time=start, end_time=end, page_number=page_number
                )
                found.extend(_status(task) for task in page.tasks)
                if not page.tasks or page_number * page.page_size >= page.total:
                    break
        except CdnError as exc:
            raise CdnCallFailed(exc.problem()) from exc
        return found

    def account_quota(self) -> AccountQuota:
        try:
            quota = self.client.describe_refresh_quota()
        except CdnError as exc:
            raise CdnCallFailed(exc.problem()) from exc
        return AccountQuota(
            preload_remain=quota.preload_remain,
            refresh_remain=quota.url_remain,
            preload_quota=quota.preload_quota,
            refresh_quota=quota.url_quota,
        )


def _grouped_by_domain(urls: list[str]) -> list[str]:
    """URLs of one domain together, domains in order of first appearance, URLs in input order."""
    by_domain: dict[str, list[str]] = {}
    for url in urls:
        by_domain.setdefault(_domain(url), []).append(url)
    return [url for group in by_domain.values() for url in group]


def _domain(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].lower()


def _reason(error: CdnError) -> str:
    return f"{error.code}: {error.message}" if error.message else error.code


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime(TIMESTAMP_FORMAT)


def _epoch(text: str) -> float | None:
    try:
        return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def _status(task: RefreshTask) -> TaskStatus:
    return TaskStatus(
        task_id=task.task_id,
        url=task.object_path,
        kind=task.object_type.lower(),
        status=task.status,
        created_at=_epoch(task.creation_time),
        description=task.description or "",
    )
