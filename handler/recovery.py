"""Recovery commands: put dead letters back in the queue, forget URLs. The Store port and lifecycle only."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import asdict, dataclass
from functools import partial
from typing import Sequence

from . import lifecycle as lc
from .ports import DeadLetter, Store

DEAD_LETTER_SCAN = 1_000_000  # every dead letter the store remembers


@dataclass
class RequeueReport:
    matched: int = 0  # dead letters the selectors matched
    requeued: int = 0  # put back to pending (a URL that changed meanwhile is left as it is)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ForgetReport:
    forgotten: int = 0
    unknown: int = 0  # no record of the URL
    busy: int = 0  # held by a running flush: try again after it

    def as_dict(self) -> dict:
        return asdict(self)


def reason_codes(reason: str) -> set[str]:
    """The words of a dead letter's reason that may be an API code: "InvalidDomain.NotFound: ..." and the like."""
    return {word for word in re.split(r"[\s:,;()]+", reason) if word}


def selected(letter: DeadLetter, *, code: str | None, url_glob: str | None) -> bool:
    if code is not None and code not in reason_codes(letter.reason):
        return False
    if url_glob is not None and not fnmatch.fnmatchcase(letter.url, url_glob):
        return False
    return True


def requeue(
    store: Store, now: float, *, mode: str, code: str | None = None, url_glob: str | None = None, everything: bool = False
) -> RequeueReport:
    """Dead letters matching every selector given (or all of them) back to pending, due at once."""
    if not everything and code is None and url_glob is None:
        raise ValueError("requeue needs a selector: --code, --url-glob or --all")
    letters = [d for d in store.dead_letters(DEAD_LETTER_SCAN) if everything or selected(d, code=code, url_glob=url_glob)]
    report = RequeueReport(matched=len(letters))
    if not letters:
        return report
    changed = store.update({d.url: partial(lc.requeued, now=now, mode=mode) for d in letters}, now)
    report.requeued = sum(1 for state in changed.values() if state is not None and state.phase == lc.PENDING)
    return report


def forget(store: Store, urls: Sequence[str], now: float) -> ForgetReport:
    """Drop the URLs' records: the next upload of each is warmed as new."""
    urls = list(dict.fromkeys(urls))
    known = store.states(urls)
    report = ForgetReport(unknown=sum(1 for url in urls if url not in known))
    if not known:
        return report
    changed = store.update({url: partial(lc.dropped, now=now) for url in known}, now)
    report.forgotten = sum(1 for url in known if url in changed and changed[url] is None)
    report.busy = len(known) - report.forgotten
    return report
