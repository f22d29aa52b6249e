"""SQLite store: the embedded default for local runs, safe across processes on one machine.

WAL lets readers run beside the one writer; every write that decides something runs
inside `BEGIN IMMEDIATE`, which takes the write lock up front, so a read and the
update that depends on it can never interleave with another process.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from ..ports import ClaimedUrl, DeadLetter, StoreCounts, StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS urls (
    url TEXT PRIMARY KEY,
    state TEXT NOT NULL,                      -- pending | pushed | dead
    win INTEGER NOT NULL,
    not_before REAL NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    task_id TEXT,
    keep_until REAL NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS urls_by_state_window ON urls (state, win);
CREATE TABLE IF NOT EXISTS quota (day TEXT PRIMARY KEY, used INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS flush_requests (win INTEGER PRIMARY KEY);
"""

# A URL may be (re)queued when it has no record, or its pushed/dead record has expired.
UPSERT_PENDING = """
INSERT INTO urls (url, state, win, updated_at) VALUES (?, 'pending', ?, ?)
ON CONFLICT (url) DO UPDATE SET
    state = 'pending', win = excluded.win, not_before = 0, lease_owner = NULL, lease_until = 0,
    attempts = 0, reason = NULL, task_id = NULL, keep_until = 0, updated_at = excluded.updated_at
WHERE urls.state != 'pending' AND urls.keep_until <= ?
"""

UPSERT_DEAD = """
INSERT INTO urls (url, state, win, reason, keep_until, updated_at) VALUES (?, 'dead', ?, ?, ?, ?)
ON CONFLICT (url) DO UPDATE SET
    state = 'dead', win = excluded.win, not_before = 0, lease_owner = NULL, lease_until = 0,
    reason = excluded.reason, task_id = NULL, keep_until = excluded.keep_until,
    updated_at = excluded.updated_at
WHERE urls.state != 'pending' AND urls.keep_until <= ?
"""


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

    def add_pending(self, window: int, urls: Sequence[str], now: float) -> list[str]:
        added = []
        with self._write() as db:
            for url in dict.fromkeys(urls):
                if db.execute(UPSERT_PENDING, (url, window, now, now)).rowcount:
                    added.append(url)
        return added

    def record_dead(self, window: int, reasons: Mapping[str, str], *, now: float, keep_until: float) -> None:
        with self._write() as db:
            for url, reason in reasons.items():
                db.execute(UPSERT_DEAD, (url, window, reason, keep_until, now, now))

    def claim(
        self, *, max_window: int | None, now: float, limit: int, owner: str, lease_seconds: float
    ) -> list[ClaimedUrl]:
        top = max_window if max_window is not None else 2**62
        with self._write() as db:
            rows = db.execute(
                "SELECT url, win, attempts FROM urls"
                " WHERE state = 'pending' AND win <= ? AND not_before <= ? AND lease_until <= ?"
                " ORDER BY win, rowid LIMIT ?",
                (top, now, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE urls SET lease_owner = ?, lease_until = ?, updated_at = ? WHERE url = ?",
                [(owner, now + lease_seconds, now, url) for url, _, _ in rows],
            )
        return [ClaimedUrl(url, window, attempts) for url, window, attempts in rows]

    def mark_pushed(self, task_ids: Mapping[str, str], *, now: float, keep_until: float) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE urls SET state = 'pushed', task_id = ?, keep_until = ?, lease_owner = NULL,"
                " lease_until = 0, reason = NULL, updated_at = ? WHERE url = ?",
                [(task_id, keep_until, now, url) for url, task_id in task_ids.items()],
            )

    def mark_dead(self, owner: str, reasons: Mapping[str, str], *, now: float, keep_until: float) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE urls SET state = 'dead', reason = ?, keep_until = ?, lease_owner = NULL,"
                " lease_until = 0, updated_at = ? WHERE url = ? AND state = 'pending' AND lease_owner = ?",
                [(reason, keep_until, now, url, owner) for url, reason in reasons.items()],
            )

    def defer(
        self, owner: str, urls: Sequence[str], *, not_before: float, reason: str, count_attempt: bool
    ) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE urls SET not_before = ?, reason = ?, attempts = attempts + ?, lease_owner = NULL,"
                " lease_until = 0 WHERE url = ? AND state = 'pending' AND lease_owner = ?",
                [(not_before, reason, int(count_attempt), url, owner) for url in urls],
            )

    def reserve_quota(self, day: str, wanted: int, limit: int) -> int:
        with self._write() as db:
            row = db.execute("SELECT used FROM quota WHERE day = ?", (day,)).fetchone()
            used = row[0] if row else 0
            granted = max(0, min(wanted, limit - used))
            if granted:
                db.execute(
                    "INSERT INTO quota (day, used) VALUES (?, ?)"
                    " ON CONFLICT (day) DO UPDATE SET used = used + excluded.used",
                    (day, granted),
                )
        return granted

    def release_quota(self, day: str, amount: int) -> None:
        if amount > 0:
            with self._write() as db:
                db.execute("UPDATE quota SET used = MAX(0, used - ?) WHERE day = ?", (amount, day))

    def quota_used(self, day: str) -> int:
        rows = self._read("SELECT used FROM quota WHERE day = ?", (day,))
        return rows[0][0] if rows else 0

    def counts(self, now: float) -> StoreCounts:
        (pending, deferred, pushed, dead), = self._read(
            "SELECT"
            " COALESCE(SUM(state = 'pending'), 0),"
            " COALESCE(SUM(state = 'pending' AND not_before > ?), 0),"
            " COALESCE(SUM(state = 'pushed' AND keep_until > ?), 0),"
            " COALESCE(SUM(state = 'dead' AND keep_until > ?), 0)"
            " FROM urls",
            (now, now, now),
        )
        return StoreCounts(pending=pending, deferred=deferred, pushed=pushed, dead=dead)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._read(
            "SELECT url, reason, win, updated_at FROM urls WHERE state = 'dead'"
            " ORDER BY updated_at DESC, url LIMIT ?",
            (limit,),
        )
        return [DeadLetter(url, reason or "", window, at) for url, reason, window, at in rows]

    def request_flush(self, window: int) -> bool:
        with self._write() as db:
            return db.execute("INSERT OR IGNORE INTO flush_requests (win) VALUES (?)", (window,)).rowcount == 1

    def pending_in_window(self, window: int) -> int:
        (count,), = self._read("SELECT COUNT(*) FROM urls WHERE state = 'pending' AND win = ?", (window,))
        return count

    def close(self) -> None:
        with self._lock:
            self._db.close()
