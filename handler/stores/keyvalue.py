"""The Store policy shared by the key-value adapters (DynamoDB, Tablestore), on a few primitives each provides.

`KeyValueStore` decides what is written in which order, what a failed condition means, and
when to retry; an adapter says how one read or one conditional write is done with its SDK,
and translates that SDK's errors. Rows and keys are those of `keys.py`. No SDK is imported here.

A URL's record holds its lifecycle state plus two tokens: `rev`, new on every write, which
each write is conditioned on (compare-and-set), and `ref`, new each time the URL needs a due
row (it becomes active, or moves window), copied onto that row. Crash safety comes from the
order of writes: a new due row (and its windows index touch) is written before the record that
points to it, and an old row is deleted only after; a crash leaves at worst a row whose ref is
not its record's, which `claim` deletes once it is older than any write still under way could
be. `claim` deletes an index entry only if the shard has no rows and nobody touched the entry
since it was read.
"""

from __future__ import annotations

import random
import time
import uuid
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from ..lifecycle import ACTIVE, DEAD, UrlState, leased
from ..ports import DeadLetter, StoreCounts, StoreError
from . import keys
from .reports import count_states, dead_letter

if TYPE_CHECKING:
    from ..ports import Change

MAX_CAS_ROUNDS = 64  # a compare-and-set that loses this often is contended beyond reason


@dataclass(frozen=True)
class PendingRow:
    """A due row as read: the URL may be due in `window`, as long as `ref` is still its record's."""

    url: str
    window: int
    ref: str


@dataclass(frozen=True)
class StoredRecord:
    """A URL record as read: its state and the tokens the next conditional write needs."""

    state: UrlState
    ref: str  # the token of its due row ("" when it has none)
    rev: str  # the token every write of this record is conditioned on
    dead_at: int  # µs of its dead-letter entry (0 when it has none)


# A due row is written before the record that points to it, so for a moment a live upload's row
# has no record (or one with the old ref) yet: such a row is taken for stale only once it is
# older than this, long past any upload's time between its two writes.
ORPHAN_GRACE_SECONDS = 300


def new_ref(now: float) -> str:
    """A due row's token: when it was made (µs, so a row can tell its age), and a random part."""
    return f"{keys.micros(now):020d}.{uuid.uuid4().hex}"


def _is_stale(row: PendingRow, record: StoredRecord | None, now: float) -> bool | None:
    """True when the URL settled or moved since this due row was written (delete the row); None when the
    row may belong to a write still under way (leave it); False when it is the record's row."""
    if record is not None and record.state.phase in ACTIVE and record.ref == row.ref:
        return False
    made, _, _ = row.ref.partition(".")
    young = made.isdigit() and now - int(made) / 1_000_000 < ORPHAN_GRACE_SECONDS
    return None if young else True


class KeyValueStore(ABC):
    """The Store port on one key-value table: the policy here, the primitives (abstract below) in each adapter."""

    NAME = "key-value store"  # the backend, as error messages name it

    # -- changing states ----------------------------------------------------------------------

    def update(self, changes: Mapping[str, Change], now: float) -> dict[str, UrlState | None]:
        # URLs are independent: their reads and writes go out side by side, so an upload of an
        # object with several CDN domains waits for one URL's round trips, not for all of them.
        if len(changes) == 1:
            (url, change), = changes.items()
            results = [(url, self._update_one(url, change, now))]
        else:
            results = list(zip(changes, _pool().map(lambda item: self._update_one(*item, now), changes.items())))
        return {url: new for url, (changed, new) in results if changed}

    def _update_one(self, url: str, change: Change, now: float) -> tuple[bool, UrlState | None]:
        for round_ in range(MAX_CAS_ROUNDS):
            record = self._read_record(url)
            old = record.state if record is not None else None
            new = change(old)
            if new is old:
                return False, old
            if self._write_state(url, record, new, now):
                return True, new
            _backoff(round_)
        raise StoreError(f"{self.NAME}: URL record kept changing under update ({keys.url_hash(url)})")

    def _write_state(self, url: str, record: StoredRecord | None, new: UrlState | None, now: float) -> bool:
        """Write one transition on condition the record is still `record`; False if it changed meanwhile."""
        if new is None:
            if record is None:
                return True
            if not self._delete_record(url, record.rev):
                return False
            self._drop_pointers(url, record, keep_row=False, keep_dead_entry=False)
            return True
        old = record.state if record is not None else None
        active = new.phase in ACTIVE
        same_row = bool(active and old is not None and record.ref and old.phase in ACTIVE and old.window == new.window)
        ref = record.ref if same_row else new_ref(now) if active else ""
        if active and not same_row:  # the row first: a crash before the record leaves only a stale row
            self._put_pending_row(url, new.window, ref, new.not_before)
            self._touch_window_entry(new.window, keys.shard_of(url), uuid.uuid4().hex)
        keep_dead_entry = bool(record is not None and record.dead_at and new.phase == DEAD)
        dead_at = record.dead_at if keep_dead_entry else 0
        if new.phase == DEAD and not dead_at:
            dead_at = keys.micros(now)
            self._put_dead_entry(url, dead_at)  # first too: a crash leaves only a pointer to a live record
        fields = {**new.to_fields(), "ref": ref, "rev": uuid.uuid4().hex, "dead_at": dead_at}
        if not self._put_record(url, fields, record.rev if record is not None else None):
            if dead_at and not keep_dead_entry:
                self._delete_dead_entry(url, dead_at)
            return False  # a row put above is stale now; claim deletes it
        if same_row and new.not_before != old.not_before:
            # The row's copy of not_before lets claim skip rows not due without reading their records.
            self._put_pending_row(url, new.window, ref, new.not_before)
        if record is not None:
            self._drop_pointers(url, record, keep_row=same_row, keep_dead_entry=keep_dead_entry)
        return True

    def _drop_pointers(self, url: str, record: StoredRecord, *, keep_row: bool, keep_dead_entry: bool) -> None:
        """Delete what pointed to the record as it was: its due row, its dead-letter entry."""
        if record.ref and record.state.phase in ACTIVE and not keep_row:
            self._delete_pending_row(url, record.state.window, record.ref)
        if record.dead_at and not keep_dead_entry:
            self._delete_dead_entry(url, record.dead_at)

    def states(self, urls: Sequence[str]) -> dict[str, UrlState]:
        found = {}
        for url in dict.fromkeys(urls):
            record = self._read_record(url)
            if record is not None:
                found[url] = record.state
        return found

    # -- claiming -----------------------------------------------------------------------------

    def claim(
        self, *, max_window: int | None, now: float, limit: int, owner: str, lease_seconds: float
    ) -> list[UrlState]:
        claims: list[UrlState] = []
        if limit <= 0:
            return claims
        rows: list[PendingRow] = []  # read, not yet leased: never more than are still wanted
        for window, shard, touch in self._indexed_windows(max_window):
            for row in self._due_rows(window, shard, now=now, page_size=max(2 * limit, 25)):
                if row is None:  # the shard has no rows: its entry goes, unless touched since it was read
                    self._delete_window_entry(window, shard, touch)
                    continue
                rows.append(row)
                if len(claims) + len(rows) >= limit:
                    claims += self._lease_all(rows, now=now, owner=owner, lease_seconds=lease_seconds)
                    rows = []
                    if len(claims) >= limit:
                        return claims
        return claims + self._lease_all(rows, now=now, owner=owner, lease_seconds=lease_seconds)

    def _lease_all(self, rows: list[PendingRow], **lease: Any) -> list[UrlState]:
        """Lease the rows side by side (each URL is its own compare-and-set); those leased, in row order.

        Each claimer goes through the rows in its own random order, so racing flushers that read
        the same page mostly take different URLs instead of contending for the same ones."""
        order = random.sample(range(len(rows)), len(rows))
        by_row = dict(zip(order, _pool().map(lambda i: self._lease(rows[i], **lease), order)))
        return [by_row[i] for i in range(len(rows)) if by_row[i] is not None]

    def _lease(self, row: PendingRow, *, now: float, owner: str, lease_seconds: float) -> UrlState | None:
        for round_ in range(MAX_CAS_ROUNDS):
            record = self._read_record(row.url)
            stale = _is_stale(row, record, now)
            if stale is not False:
                if stale:
                    self._delete_pending_row(row.url, row.window, row.ref)
                return None
            if not record.state.is_due(now):
                return None  # leased to someone else, or not due yet
            taken = leased(record.state, owner, now=now, lease_seconds=lease_seconds)
            fields = {**taken.to_fields(), "ref": record.ref, "rev": uuid.uuid4().hex, "dead_at": record.dead_at}
            if self._put_record(row.url, fields, record.rev):
                return taken
            _backoff(round_)
        return None

    def _indexed_windows(self, max_window: int | None) -> list[tuple[int, int, str]]:
        """(window, shard, touch) of every index entry up to max_window, oldest window first."""
        return sorted(
            (window, shard, touch)
            for shard in range(keys.SHARDS)
            for window, touch in self._window_entries(shard, max_window)
        )

    # -- quota --------------------------------------------------------------------------------

    def reserve_quota(self, counter: str, day: str, wanted: int, limit: int) -> int:
        if wanted <= 0:
            return 0
        name = keys.quota_pk(counter, day)
        if wanted <= limit and self._reserve_in_one_write(name, wanted, limit):
            return wanted
        for round_ in range(MAX_CAS_ROUNDS):  # grant what is left: compare-and-set on the value read
            used, exists = self._used(name)
            granted = max(0, min(wanted, limit - used))
            if granted == 0:
                return 0
            if self._set_used(name, used, exists, used + granted):
                return granted
            _backoff(round_)
        raise StoreError(f"{self.NAME}: quota counter {name} too contended")

    def release_quota(self, counter: str, day: str, amount: int) -> None:
        if amount <= 0:
            return
        name = keys.quota_pk(counter, day)
        for round_ in range(MAX_CAS_ROUNDS):
            used, exists = self._used(name)
            if not exists or used == 0:
                return
            if self._set_used(name, used, exists, max(0, used - amount)):
                return
            _backoff(round_)
        raise StoreError(f"{self.NAME}: quota counter {name} too contended")

    def quota_used(self, counter: str, day: str) -> int:
        return self._used(keys.quota_pk(counter, day))[0]

    # -- flush-on-full and reports ------------------------------------------------------------

    def pending_in_window(self, window: int) -> int:
        return sum(self._count_pending(window, shard) for shard in range(keys.SHARDS))

    def counts(self, now: float) -> StoreCounts:
        return count_states((UrlState.from_fields(fields) for fields in self._record_fields()), now)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        if limit <= 0:
            return letters
        for url, at in self._dead_entries(page_size=max(limit, 25)):
            if len(letters) >= limit and keys.micros(letters[-1].at) != at:
                break  # past the last time that may still tie
            record = self._read_record(url)
            if record is not None and record.state.phase == DEAD and record.dead_at == at:
                letters.append(dead_letter(record.state))
        return sorted(letters, key=lambda d: (-d.at, d.url))[:limit]

    # -- the primitives: one read or one conditional write each -------------------------------

    @abstractmethod
    def _read_record(self, url: str) -> StoredRecord | None:
        """The URL record, read consistently; None if there is none."""

    @abstractmethod
    def _put_record(self, url: str, fields: Mapping[str, Any], rev: str | None) -> bool:
        """Replace the URL record by `fields` if its rev is still `rev` (None: if there is no record)."""

    @abstractmethod
    def _delete_record(self, url: str, rev: str) -> bool:
        """Delete the URL record if its rev is still `rev`."""

    @abstractmethod
    def _put_pending_row(self, url: str, window: int, ref: str, not_before: float) -> None:
        """Put the URL's due row in `window` (idempotent: a repeat re-puts the same row)."""

    @abstractmethod
    def _delete_pending_row(self, url: str, window: int, ref: str) -> None:
        """Delete the URL's due row in `window` if it still carries `ref`."""

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
        """The due rows of a shard whose not_before hint is <= now; then None if the shard has no rows at all."""

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
    def _record_fields(self) -> Iterator[dict[str, Any]]:
        """The fields of every URL record."""

    @abstractmethod
    def _count_pending(self, window: int, shard: int) -> int:
        """How many rows the due shard has."""

    @abstractmethod
    def _used(self, name: str) -> tuple[int, bool]:
        """The counter and whether it exists (0, False when it does not)."""

    @abstractmethod
    def _set_used(self, name: str, old: int, exists: bool, new: int) -> bool:
        """Compare-and-set: the counter becomes `new` only if it still is `old` (or still absent)."""

    def _reserve_in_one_write(self, name: str, wanted: int, limit: int) -> bool:
        """Add all of `wanted` in one conditional write if it fits under `limit`; by default not attempted."""
        return False


def record_from_fields(fields: Mapping[str, Any]) -> StoredRecord:
    """A StoredRecord from the fields an adapter read (tokens included)."""
    return StoredRecord(
        state=UrlState.from_fields(dict(fields)), ref=str(fields.get("ref") or ""), rev=str(fields.get("rev") or ""),
        dead_at=int(fields.get("dead_at") or 0),
    )


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """Threads for independent store requests, made on first use and kept for the warm instance."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="store")
    return _POOL


def _backoff(round_: int) -> None:
    """A short jittered pause between lost compare-and-set rounds, so racing callers spread out."""
    time.sleep(random.uniform(0, min(0.05, 0.002 * (round_ + 1))))
