"""Key layout shared by the key-value store adapters (DynamoDB, Tablestore): one table, string keys pk + sk.

Every row of the store is one of these (`H` = hex SHA-1 of the URL, `W` = window, `S` = shard):

    pk                      sk           what                                         written by
    url#H                   -            the URL record: its lifecycle state           update, claim
    pending#W#S             H#REF        a due row: "URL H may be due in W"            update (while the URL is active)
    windows#S               W            the windows index: shard S of W has rows      update (deleted by claim when empty)
    dead                    T#H          a dead-letter entry, newest last (T = µs)     update (while the URL is dead)
    quota#C#DAY             -            counter C's quota used that day (`used`)      reserve_quota, release_quota
    flush#W                 -            "an early flush of W was requested"           request_flush

Why this shape:
- A hot window's pending rows spread over SHARDS partitions (the shard is a stable hash of
  the URL), so thousands of uploads in one window do not pile onto one partition; the
  windows index is spread the same way.
- URL keys are hashes, so no URL length ever meets a key size limit (DynamoDB: 2,048 bytes
  partition / 1,024 bytes sort key; Tablestore: 1 KB per primary key column).
- Fixed-width numbers make lexical order numeric order, so a range read of `windows#S`
  returns windows oldest first and `dead` returns dead letters in time order.

SHARDS is part of the data layout: every writer and reader of one table must agree on it.
"""

from __future__ import annotations

import hashlib

SHARDS = 16
NO_SORT_KEY = "-"  # the sort key of rows that are alone in their partition
DEAD_PK = "dead"
URL_PREFIX = "url#"
# Rows of a dead or pushed URL outlive its dedupe horizon by this long, then may be expired
# by the store's TTL: long enough for an operator to still read recent dead letters.
RETAIN_AFTER_KEEP_SECONDS = 7 * 86400
_WINDOW_DIGITS = 16
_MICROS_DIGITS = 20


def url_hash(url: str) -> str:
    """Hex SHA-1 of the URL's UTF-8 bytes: a fixed-size key for URLs of any length."""
    return hashlib.sha1(url.encode("utf-8")).hexdigest()


def shard_of(url: str) -> int:
    """The URL's shard, stable across processes and releases (unlike the built-in hash())."""
    return int(url_hash(url)[:8], 16) % SHARDS


def window_key(window: int) -> str:
    """Zero-padded so that string order is numeric order; windows are never negative (epoch based)."""
    if window < 0:
        raise ValueError(f"window must not be negative: {window}")
    return f"{window:0{_WINDOW_DIGITS}d}"


def url_pk(url: str) -> str:
    return URL_PREFIX + url_hash(url)


def pending_pk(window: int, shard: int) -> str:
    return f"pending#{window_key(window)}#{shard:02d}"


def windows_pk(shard: int) -> str:
    return f"windows#{shard:02d}"


def quota_pk(counter: str, day: str) -> str:
    return f"quota#{counter}#{day}"


def flush_pk(window: int) -> str:
    return f"flush#{window_key(window)}"


def micros(t: float) -> int:
    """Epoch seconds as whole microseconds: an exact, comparable integer for keys and CAS checks."""
    return int(round(t * 1_000_000))


def dead_sk(at_micros: int, url: str) -> str:
    return f"{at_micros:0{_MICROS_DIGITS}d}#{url_hash(url)}"


def group_by_shard(urls: list[str]) -> dict[int, list[str]]:
    """Group URLs by shard, keeping their order within each shard."""
    groups: dict[int, list[str]] = {}
    for url in urls:
        groups.setdefault(shard_of(url), []).append(url)
    return groups


def pending_key(window: int, url: str, ref: str) -> tuple[str, str]:
    """(pk, sk) of the URL's due row in `window` made with token `ref`.

    The token is part of the key: two uploads of one URL racing each write a row of their own, so
    the loser's row can never overwrite the row the winner's record points to."""
    return pending_pk(window, shard_of(url)), f"{url_hash(url)}#{ref}"


def window_entry_key(window: int, shard: int) -> tuple[str, str]:
    """(pk, sk) of the windows index entry that says shard `shard` of `window` has rows."""
    return windows_pk(shard), window_key(window)
