"""Object record + rules → the canonical CDN URLs of the object.

One canonical form per URL: the object key (already decoded by `events`) is
percent-encoded once, as UTF-8 per RFC 3986, upper-case hex, space as %20, and
nothing in it is ever "smartly" recognised as already encoded. Characters of the
key are never altered: "a//b" stays "a//b", a leading "/" stays (S3 allows it).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from urllib.parse import quote

from .values import ValueType

TYPE_CHECKING = False  # typing is for type checkers only: see handler/values.py
if TYPE_CHECKING:
    from typing import Sequence

    from .events import ObjectRecord
    from .settings import Rule

MAX_URL_LENGTH = 1024  # PushObjectCache refuses longer URLs
_PRINTABLE_ASCII = frozenset(chr(c) for c in range(0x21, 0x7F))  # no space, no control characters


class MappedUrls(ValueType):
    """The URLs to prefetch for one record, and those that cannot be prefetched (url → reason)."""

    urls: list[str]
    refused: dict[str, str]


def encode_path(path: str) -> str:
    """Percent-encode a path as UTF-8 per RFC 3986: "/" and A-Z a-z 0-9 - . _ ~ kept, all else %XX."""
    # A lone surrogate (json.loads accepts "\udc80") has no UTF-8 form. "surrogatepass"
    # encodes it anyway so that this never raises; `urls_for` refuses such keys with a
    # reason, so these bytes are only ever seen in a dead letter, never pushed.
    return quote(path, safe="/", encoding="utf-8", errors="surrogatepass")


def url_problem(url: str) -> str | None:
    """Why PushObjectCache cannot take this URL, or None when it can."""
    if not url:
        return "empty URL"
    if len(url) > MAX_URL_LENGTH:
        return f"URL has {len(url)} characters, over the {MAX_URL_LENGTH} that PushObjectCache accepts"
    bad = next((ch for ch in url if ch not in _PRINTABLE_ASCII), None)
    if bad is not None:
        return f"URL contains U+{ord(bad):04X}, which is not printable ASCII"
    return None


def rule_accepts(rule: Rule, record: ObjectRecord) -> bool:
    """True when the rule is for the record's bucket and its prefix, suffixes and exclude filters let the key in."""
    key = record.key
    return (
        rule.bucket == record.bucket
        and key.startswith(rule.prefix)
        and (not rule.suffixes or key.endswith(tuple(rule.suffixes)))
        and not any(fnmatchcase(key, pattern) for pattern in rule.exclude)
    )


def cdn_path(key: str, rule: Rule) -> str:
    """The unencoded URL path (without its leading "/") under which the rule's domains serve the key.

    `strip_prefix` is removed when the key starts with it, with the one "/" that
    separates it from the rest; `path_prefix` is joined on with exactly one "/".
    Slashes that belong to the key itself are kept.
    """
    rest = key
    strip = rule.strip_prefix
    if strip and key.startswith(strip):
        rest = key[len(strip):]
        if not strip.endswith("/") and rest.startswith("/"):
            rest = rest[1:]
    head = rule.path_prefix.strip("/")
    return f"{head}/{rest}" if head else rest


def priority_for(record: ObjectRecord, rules: Sequence[Rule]) -> int:
    """The highest priority of the rules that accept the record (0 when none does)."""
    return max((rule.priority for rule in rules if rule_accepts(rule, record)), default=0)


def urls_for(record: ObjectRecord, rules: Sequence[Rule]) -> MappedUrls:
    """The CDN URLs of every rule that accepts the record: deduplicated, in rule and domain order."""
    urls: dict[str, None] = {}
    refused: dict[str, str] = {}
    for rule in rules:
        if not rule_accepts(rule, record):
            continue
        path = cdn_path(record.key, rule)
        key_problem = _key_problem(record.key, path)
        encoded = encode_path(path)
        for domain in rule.domains:
            url = f"{rule.scheme}://{domain}/{encoded}"
            problem = key_problem or url_problem(url)
            if problem:
                refused.setdefault(url, problem)
            else:
                urls[url] = None
    return MappedUrls(list(urls), {url: why for url, why in refused.items() if url not in urls})


def _key_problem(key: str, path: str) -> str | None:
    """Why no URL can name this object, or None."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"object key has a lone surrogate U+{ord(key[exc.start]):04X}: not UTF-8, no URL can name it"
    if key.endswith("/"):
        return "the key names a directory: directories cannot be prefetched"
    if not path or path.endswith("/"):
        return "strip_prefix leaves nothing of the key: the URL would name a directory"
    return None
