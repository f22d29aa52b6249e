"""Pushes any number of URLs through PushObjectCache: batching, bad-URL isolation, shrinking the cap.

Implements the core's `Prefetcher` port; every input URL ends in exactly one of
pushed, rejected or unpushed, and no CdnError escapes.
"""

from __future__ import annotations

import logging
from typing import Sequence

from ..ports import PushOutcome
from ..settings import CdnSettings
from .client import CdnClient, check_url
from .errors import BadUrlError, BatchTooLargeError, CdnError, InvalidUrlError, TransientError

log = logging.getLogger("handler.cdn")

# Refusals of a whole domain: every URL of a one-domain batch shares the fate, no need to bisect.
DOMAIN_ERRORS = frozenset(
    {"InvalidDomain.NotFound", "InvalidDomain.Offline", "InvalidExtensiveDomain.ValueNotSupported"}
)


class _Stopped(Exception):
    """Internal: an error that ends this push, with the URLs of the call that met it."""

    def __init__(self, error: CdnError, urls: list[str]) -> None:
        super().__init__(str(error))
        self.error = error
        self.urls = urls


class BatchPusher:
    """The CDN prefetch API as the core needs it (`ports.Prefetcher`), over a CdnClient."""

    def __init__(self, client: CdnClient, settings: CdnSettings = CdnSettings()) -> None:
        self.client = client
        self.settings = settings
        self.cap = settings.max_urls_per_call  # lowered for good when the API says a batch is too large

    def remaining_quota(self) -> int | None:
        try:
            return self.client.describe_refresh_quota().preload_remain
        except CdnError as exc:
            log.warning("cannot read the prefetch quota: %s", exc)
            return None

    def push(self, urls: Sequence[str]) -> PushOutcome:
        outcome = PushOutcome()
        calls_before = self.client.calls_made
        good: list[str] = []
        for index, url in enumerate(dict.fromkeys(urls)):  # a duplicate is pushed once
            try:
                check_url(url, index)
            except InvalidUrlError as exc:
                outcome.rejected[url] = _reason(exc)
            else:
                good.append(url)
        done = 0
        try:
            while done < len(good):
                batch = good[done : done + self.cap]
                self._push_batch(batch, outcome)
                done += len(batch)
        except _Stopped as stop:
            outcome.error = stop.error
            outcome.unpushed = [u for u in good[done:] if u not in outcome.pushed and u not in outcome.rejected]
            if isinstance(stop.error, TransientError):
                outcome.maybe_accepted = list(stop.urls)
            log.warning("push stopped by %s; %d URLs not pushed", stop.error, len(outcome.unpushed))
        outcome.calls = self.client.calls_made - calls_before
        return outcome

    def _push_batch(self, batch: list[str], outcome: PushOutcome) -> None:
        """Push one batch; on a bad URL split it in halves until the bad ones stand alone."""
        try:
            result = self.client.push_object_cache(batch)
        except BadUrlError as exc:
            if len(batch) == 1 or (exc.code in DOMAIN_ERRORS and len({_domain(u) for u in batch}) == 1):
                outcome.rejected.update((url, _reason(exc)) for url in batch)
                return
            self._push_halves(batch, outcome)
            return
        except BatchTooLargeError as exc:
            if len(batch) == 1:
                raise _Stopped(exc, batch) from exc
            self.cap = min(self.cap, max(1, len(batch) // 2))
            log.warning("the API refused %d URLs in one call; pushing at most %d from now on", len(batch), self.cap)
            self._push_halves(batch, outcome)
            return
        except CdnError as exc:
            raise _Stopped(exc, batch) from exc
        ids = result.task_ids
        if len(ids) == len(batch):
            outcome.pushed.update(zip(batch, ids))
        else:
            joined = ",".join(ids)
            outcome.pushed.update((url, joined) for url in batch)

    def _push_halves(self, batch: list[str], outcome: PushOutcome) -> None:
        """Push a refused batch in pieces: one per domain first (a whole domain is often what the API
        refuses), then halves no larger than the current cap."""
        by_domain: dict[str, list[str]] = {}
        for url in batch:
            by_domain.setdefault(_domain(url), []).append(url)
        if len(by_domain) > 1:
            for urls in by_domain.values():
                for start in range(0, len(urls), self.cap):
                    self._push_batch(urls[start : start + self.cap], outcome)
            return
        size = min(self.cap, (len(batch) + 1) // 2)
        for start in range(0, len(batch), size):
            self._push_batch(batch[start : start + size], outcome)


def _domain(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].lower()


def _reason(error: CdnError) -> str:
    return f"{error.code}: {error.message}" if error.message else error.code
