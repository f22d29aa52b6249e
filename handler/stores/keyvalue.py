"""The Store policy shared by the key-value adapters (DynamoDB, Tablestore), on a few primitives each provides.

`KeyValueStore` decides what is written in which order, what a failed condition means, and
when to retry; an adapter says how one read or one conditional write is done with its SDK,
and translates that SDK's errors. Rows and keys are those of `keys.py`. No SDK is imported here.

Crash safety: add_pending writes the record, then the pending row, then touches the
windows index. A crash in between leaves a pending record without its row; the retried
invocation finds the record pending and re-puts its row and index entry (idempotent).
`claim` deletes an index entry only if the shard has no rows and nobody touched the entry
since it was read, so an entry can never vanish under a row written after the read.
"""

from __future__ import annotations

import random
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from ..ports import ClaimedUrl, DeadLetter, StoreCounts, StoreError
from . import keys
from .keys import STATE_DEAD, STATE_PENDING, STATE_PUSHED

MAX_CAS_ROUNDS = 64  # a compare-and-set that loses this often is contended beyond reason


@dataclass(frozen=True)
class UrlRecord:
    """The URL record as read: the authority on the URL's state."""

    url: str
    state: str
    win: int
    not_before: float
    lease_owner: str | None
    lease_until: float
    attempts: int
    ref: str
    keep_until: float
    reason: str
    updated_at: float
    dead_at: int


@dataclass(frozen=True)
class PendingRow:
    """A pending row as read: the URL may be due in `window`, as long as `ref` is still its record's."""

    url: str
    window: int
    ref: str


def pending_fields(url: str, window: int, ref: str, now: float) -> dict[str, Any]:
    """The attributes of a URL record that has just become pending, in the order they are written."""
    return {
        "url": url, "state": STATE_PENDING, "win": window, "not_before": 0, "lease_until": 0, "attempts": 0,
        "ref": ref, "keep_until": 0, "updated_at": now,
    }


def dead_fields(url: str, window: int, reason: str, *, now: float, keep_until: float, at: int) -> dict[str, Any]:
    """The attributes of a URL record dead-lettered before it was ever queued, in the order they are written."""
    return {
        "url": url, "state": STATE_DEAD, "win": window, "not_before": 0, "lease_until": 0, "attempts": 0,
        "reason": reason, "keep_until": keep_until, "updated_at": now, "dead_at": at,
    }


def is_stale(row: PendingRow, record: UrlRecord | None) -> bool:
    """Whether the URL was pushed, dead-lettered or re-queued since this pending row was written."""
    return record is None or record.state != STATE_PENDING or record.ref != row.ref


class KeyValueStore(ABC):
    """The Store port on one key-value table: the policy here, the primitives (abstract below) in each adapter."""

    NAME = "key-value store"  # the backend, as error messages name it

    # -- adding -------------------------------------------------------------------------------

    def add_pending(self, window: int, urls: Sequence[str], now: float) -> list[str]:
        added: list[str] = []
        rows: list[tuple[str, int, str, float]] = []  # url, window, ref, not_before hint
        for url in dict.fromkeys(urls):
            ref = uuid.uuid4().hex
            existing = self._put_unless_known(url, pending_fields(url, window, ref, now), now)
            if existing is None:
                added.append(url)
                rows.append((url, window, ref, 0.0))
            elif existing.state == STATE_PENDING:
                # Already pending: its row may be missing if an earlier add crashed midway. Re-put it.
                rows.append((url, existing.win, existing.ref, existing.not_before))
        self._put_pending_rows(rows)
        return added

    def record_dead(self, window: int, reasons: Mapping[str, str], *, now: float, keep_until: float) -> None:
        at = keys.micros(now)
        for url, reason in reasons.items():
            self._put_dead_entry(url, at)  # first, so that a crash leaves only a stale pointer
            fields = dead_fields(url, window, reason, now=now, keep_until=keep_until, at=at)
            if self._put_unless_known(url, fields, now) is not None:
                self._delete_dead_entry(url, at)

    def _put_unless_known(self, url: str, fields: Mapping[str, Any], now: float) -> UrlRecord | None:
        """Write the URL record unless it is pending or inside its dedupe horizon; None if written, else the record."""
        for _ in range(MAX_CAS_ROUNDS):
            if self._put_record_if_absent(url, fields, now):
                return None
            record = self._record_of(url)
            if record is not None and not keys.may_requeue(record.state, record.keep_until, now):
                return record
            if record is not None and self._put_record_if_requeueable(url, fields, now):
                return None
            # It changed between the write and the read (expired, or removed by TTL): try again.
        raise StoreError(f"{self.NAME}: URL record kept changing under add ({keys.url_hash(url)})")

    def _put_pending_rows(self, rows: list[tuple[str, int, str, float]]) -> None:
        touched: set[tuple[int, int]] = set()
        for url, window, ref, not_before in rows:
            self._put_pending_row(url, window, ref, not_before)
            touched.add((window, keys.shard_of(url)))
        # After the rows: a claim that read the index before these rows appeared sees a new touch.
        for window, shard in sorted(touched):
            self._touch_window_entry(window, shard, uuid.uuid4().hex)

    # -- claiming -----------------------------------------------------------------------------

    def claim(
        self, *, max_window: int | None, now: float, limit: int, owner: str, lease_seconds: float
    ) -> list[ClaimedUrl]:
        claims: list[ClaimedUrl] = []
        if limit <= 0:
            return claims
        for window, shard, touch in self._indexed_windows(max_window):
            for row in self._due_rows(window, shard, now=now, page_size=max(2 * limit, 25)):
                if row is None:  # the shard has no rows: its entry goes, unless touched since it was read
                    self._delete_window_entry(window, shard, touch)
                    continue
                claimed = self._lease(row, now=now, owner=owner, lease_seconds=lease_seconds)
                if claimed is not None:
                    claims.append(claimed)
                    if len(claims) >= limit:
                        return claims
        return claims

    def _indexed_windows(self, max_window: int | None) -> list[tuple[int, int, str]]:
        """(window, shard, touch) of every index entry up to max_window, oldest window first."""
        return sorted(
            (window, shard, touch)
            for shard in range(keys.SHARDS)
            for window, touch in self._window_entries(shard, max_window)
        )

    # -- settling claimed URLs ----------------------------------------------------------------

    def _delete_row_of(self, url: str, old: UrlRecord) -> None:
        """Delete the pending row of a record as it was before it was settled, if it was pending."""
        if old.state == STATE_PENDING and old.ref:
            self._delete_pending_row(url, old.win, old.ref)

    # -- quota --------------------------------------------------------------------------------

    def reserve_quota(self, day: str, wanted: int, limit: int) -> int:
        if wanted <= 0:
            return 0
        if wanted <= limit and self._reserve_in_one_write(day, wanted, limit):
            return wanted
        for round_ in range(MAX_CAS_ROUNDS):  # grant what is left: compare-and-set on the value read
            used, exists = self._used(day)
            granted = max(0, min(wanted, limit - used))
            if granted == 0:
                return 0
            if self._set_used(day, used, exists, used + granted):
                return granted
            _backoff(round_)
        raise StoreError(f"{self.NAME}: quota counter {day} too contended")

    def release_quota(self, day: str, amount: int) -> None:
        if amount <= 0:
            return
        for round_ in range(MAX_CAS_ROUNDS):
            used, exists = self._used(day)
            if not exists or used == 0:
                return
            if self._set_used(day, used, exists, max(0, used - amount)):
                return
            _backoff(round_)
        raise StoreError(f"{self.NAME}: quota counter {day} too contended")

    def quota_used(self, day: str) -> int:
        return self._used(day)[0]

    # -- flush-on-full and reports ------------------------------------------------------------

    def pending_in_window(self, window: int) -> int:
        return sum(self._count_pending(window, shard) for shard in range(keys.SHARDS))

    def counts(self, now: float) -> StoreCounts:
        pending = deferred = pushed = dead = 0
        for state, not_before, keep_until in self._record_states():
            if state == STATE_PENDING:
                pending += 1
                deferred += not_before > now
            elif state == STATE_PUSHED and keep_until > now:
                pushed += 1
            elif state == STATE_DEAD and keep_until > now:
                dead += 1
        return StoreCounts(pending=pending, deferred=int(deferred), pushed=pushed, dead=dead)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        if limit <= 0:
            return letters
        for url, at in self._dead_entries(page_size=max(limit, 25)):
            if len(letters) >= limit and keys.micros(letters[-1].at) != at:
                break  # past the last time that may still tie
            record = self._record_of(url)
            if record is not None and record.state == STATE_DEAD and record.dead_at == at:
                letters.append(DeadLetter(record.url, record.reason, record.win, record.updated_at))
        return sorted(letters, key=lambda d: (-d.at, d.url))[:limit]

    # -- the primitives: one read or one conditional write each -------------------------------

    @abstractmethod
    def _record_of(self, url: str) -> UrlRecord | None:
        """The URL record, read consistently; None if there is none."""

    @abstractmethod
    def _put_record_if_absent(self, url: str, fields: Mapping[str, Any], now: float) -> bool:
        """Write the URL record if there is none; False if there is one. A store whose one condition can
        also admit a record that may be re-queued (keys.may_requeue) admits it here."""

    def _put_record_if_requeueable(self, url: str, fields: Mapping[str, Any], now: float) -> bool:
        """Overwrite a URL record that may be re-queued; False if it no longer may.
        By default nothing: the store's _put_record_if_absent already admits such records."""
        return False

    @abstractmethod
    def _put_pending_row(self, url: str, window: int, ref: str, not_before: float) -> None:
        """Put the URL's pending row in `window` (idempotent: a repeat re-puts the same row)."""

    @abstractmethod
    def _delete_pending_row(self, url: str, window: int, ref: str) -> None:
        """Delete the URL's pending row in `window` if it still carries `ref`."""

    @abstractmethod
    def _touch_window_entry(self, window: int, shard: int, touch: str) -> None:
        """Create or update the windows index entry of (window, shard), with a fresh `touch` token."""

    @abstractmethod
    def _window_entries(self, shard: int, max_window: int | None) -> Iterator[tuple[int, str]]:
        """(window, touch) of the shard's index entries up to max_window (all if None)."""

    @abstractmethod
    def _delete_window_entry(self, window: int, shard: int, touch: str) -> None:
        """Delete the index entry of (window, shard) if its touch token is still `touch`."""

    @abstractmethod
    def _due_rows(self, window: int, shard: int, *, now: float, page_size: int) -> Iterator[PendingRow | None]:
        """The rows of a pending shard due by `now`; then None if the shard turned out to have no rows at all."""

    @abstractmethod
    def _lease(self, row: PendingRow, *, now: float, owner: str, lease_seconds: float) -> ClaimedUrl | None:
        """Lease the row's URL if it is free and due; delete the row if it is stale (see is_stale)."""

    @abstractmethod
    def _put_dead_entry(self, url: str, at: int) -> None:
        """Put the dead-letter pointer of the URL at `at` (µs)."""

    @abstractmethod
    def _delete_dead_entry(self, url: str, at: int) -> None:
        """Delete the dead-letter pointer of the URL at `at` (µs)."""

    @abstractmethod
    def _dead_entries(self, *, page_size: int) -> Iterator[tuple[str, int]]:
        """(url, at) of every dead-letter pointer, newest first."""

    @abstractmethod
    def _record_states(self) -> Iterator[tuple[str, float, float]]:
        """(state, not_before, keep_until) of every URL record."""

    @abstractmethod
    def _count_pending(self, window: int, shard: int) -> int:
        """How many rows the pending shard has."""

    @abstractmethod
    def _used(self, day: str) -> tuple[int, bool]:
        """The day's quota counter and whether it exists (0, False when it does not)."""

    @abstractmethod
    def _set_used(self, day: str, old: int, exists: bool, new: int) -> bool:
        """Compare-and-set: the counter becomes `new` only if it still is `old` (or still absent)."""

    def _reserve_in_one_write(self, day: str, wanted: int, limit: int) -> bool:
        """Add all of `wanted` in one conditional write if it fits under `limit`; by default not attempted."""
        return False


def _backoff(round_: int) -> None:
    """A short jittered pause between lost compare-and-set rounds, so racing callers spread out."""
    time.sleep(random.uniform(0, min(0.05, 0.002 * (round_ + 1))))
