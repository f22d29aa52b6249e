"""SQLite store: the embedded default for local runs, safe across processes on one machine.

WAL lets readers run beside the one writer; every write that decides something runs
inside `BEGIN IMMEDIATE`, which takes the write lock up front, so a read and the
update that depends on it can never interleave with another process.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

from ..lifecycle import ACTIVE, UrlState, leased
from ..ports import DeadLetter, StoreError
from .reports import count_states, dead_letter

TYPE_CHECKING = False  # typing is for type checkers only: see handler/values.py
if TYPE_CHECKING:
    from typing import Iterator, Mapping, Sequence

    from ..ports import Change, StoreCounts

SCHEMA = """
CREATE TABLE IF NOT EXISTS url_lifecycle (
    url TEXT PRIMARY KEY,
    phase TEXT NOT NULL,                      -- lifecycle phase
    win INTEGER NOT NULL,
    not_before REAL NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    keep_until REAL NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    backfill INTEGER NOT NULL DEFAULT 0,      -- claim order: live first,
    priority INTEGER NOT NULL DEFAULT 0,      -- then higher priority, then older window
    state TEXT NOT NULL                       -- the whole UrlState as JSON
);
CREATE INDEX IF NOT EXISTS url_lifecycle_due ON url_lifecycle (phase, backfill, priority, win, not_before);
CREATE TABLE IF NOT EXISTS quota_counters (counter TEXT NOT NULL, day TEXT NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (counter, day));
CREATE TABLE IF NOT EXISTS flush_requests (win INTEGER PRIMARY KEY);
"""
_ACTIVE = "(" + ", ".join(f"'{phase}'" for phase in sorted(ACTIVE)) + ")"


UPSERT_STATE = """
INSERT OR REPLACE INTO url_lifecycle
    (url, phase, win, not_before, lease_until, keep_until, updated_at, backfill, priority, state)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def _row(state: UrlState) -> tuple:
    return (
        state.url, state.phase, state.window, state.not_before, state.lease_until, state.keep_until,
        state.updated_at, int(state.backfill), state.priority, json.dumps(state.to_fields(), separators=(",", ":")),
    )


def _state(text: str) -> UrlState:
    return UrlState.from_fields(json.loads(text))


class SqliteStore:
    """The Store port on one SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)  # idempotent; executescript manages its own transaction
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc

    @classmethod
    def from_url(cls, url: str) -> "SqliteStore":
        """`sqlite:///relative/path.db`, `sqlite:////absolute/path.db` or `sqlite:///:memory:`."""
        prefix = "sqlite:///"
        if not url.startswith(prefix) or len(url) == len(prefix):
            raise ValueError(f"SQLite store URL must look like sqlite:///PATH, not {url!r}")
        return cls(url[len(prefix):])

    def create_schema(self) -> None:
        """Nothing to do: the schema is created when the store opens."""

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:  # locked past busy_timeout
                raise StoreError(f"SQLite store busy: {exc}") from exc
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                try:
                    self._db.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    self._db.execute("ROLLBACK")
                    raise StoreError(f"SQLite commit failed: {exc}") from exc

    def _read(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                raise StoreError(f"SQLite read failed: {exc}") from exc

    def update(self, changes: Mapping[str, Change], now: float) -> dict[str, UrlState | None]:
        changed: dict[str, UrlState | None] = {}
        with self._write() as db:
            for url, change in changes.items():
                row = db.execute("SELECT state FROM url_lifecycle WHERE url = ?", (url,)).fetchone()
                old = _state(row[0]) if row else None
                new = change(old)
                if new is old:
                    continue
                if new is None:
                    db.execute("DELETE FROM url_lifecycle WHERE url = ?", (url,))
                else:
                    db.execute(UPSERT_STATE, _row(new))
                changed[url] = new
        return changed

    def claim(
        self, *, max_window: int | None, now: float, limit: int, owner: str, lease_seconds: float
    ) -> list[UrlState]:
        top = max_window if max_window is not None else 2**62
        with self._write() as db:
            rows = db.execute(
                f"SELECT state FROM url_lifecycle WHERE phase IN {_ACTIVE}"
                " AND win <= ? AND not_before <= ? AND lease_until <= ?"
                " ORDER BY backfill, priority DESC, win, rowid LIMIT ?",
                (top, now, now, limit),
            ).fetchall()
            claimed = [leased(_state(text), owner, now=now, lease_seconds=lease_seconds) for text, in rows]
            db.executemany(UPSERT_STATE, [_row(state) for state in claimed])
        return claimed

    def states(self, urls: Sequence[str]) -> dict[str, UrlState]:
        found: dict[str, UrlState] = {}
        unique = list(dict.fromkeys(urls))
        for start in range(0, len(unique), 500):  # under SQLite's bound-parameter limit
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for text, in self._read(f"SELECT state FROM url_lifecycle WHERE url IN ({marks})", chunk):
                state = _state(text)
                found[state.url] = state
        return found

    def reserve_quota(self, counter: str, day: str, wanted: int, limit: int) -> int:
        with self._write() as db:
            row = db.execute("SELECT used FROM quota_counters WHERE counter = ? AND day = ?", (counter, day)).fetchone()
            used = row[0] if row else 0
            granted = max(0, min(wanted, limit - used))
            if granted:
                db.execute(
                    "INSERT INTO quota_counters (counter, day, used) VALUES (?, ?, ?)"
                    " ON CONFLICT (counter, day) DO UPDATE SET used = used + excluded.used",
                    (counter, day, granted),
                )
        return granted

    def release_quota(self, counter: str, day: str, amount: int) -> None:
        if amount > 0:
            with self._write() as db:
                db.execute(
                    "UPDATE quota_counters SET used = MAX(0, used - ?) WHERE counter = ? AND day = ?",
                    (amount, counter, day),
                )

    def quota_used(self, counter: str, day: str) -> int:
        rows = self._read("SELECT used FROM quota_counters WHERE counter = ? AND day = ?", (counter, day))
        return rows[0][0] if rows else 0

    def counts(self, now: float) -> StoreCounts:
        return count_states((_state(text) for text, in self._read("SELECT state FROM url_lifecycle")), now)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._read(
            "SELECT state FROM url_lifecycle WHERE phase = 'dead' ORDER BY updated_at DESC, url LIMIT ?", (limit,)
        )
        return [dead_letter(_state(text)) for text, in rows]

    def request_flush(self, window: int) -> bool:
        with self._write() as db:
            return db.execute("INSERT OR IGNORE INTO flush_requests (win) VALUES (?)", (window,)).rowcount == 1

    def pending_in_window(self, window: int) -> int:
        (count,), = self._read("SELECT COUNT(*) FROM url_lifecycle WHERE phase = 'pending' AND win = ?", (window,))
        return count

    def close(self) -> None:
        with self._lock:
            self._db.close()
