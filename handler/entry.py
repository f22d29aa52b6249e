"""Function Compute entry points: `handler.entry.upload` (OSS trigger) and `handler.entry.flush` (Timer trigger).

Wiring only. Settings are read once per instance, on the first invocation, from
$PREWARM_CONFIG. A malformed event is logged and dropped (raising would make FC
retry it for nothing); a store failure raises, so that FC retries the event.
"""

from __future__ import annotations

import json
import logging
import os

from .events import parse_event
from .prewarm import flush as flush_windows
from .prewarm import ingest
from .settings import Settings, load_settings
from .wiring import Wiring

TYPE_CHECKING = False  # typing is for type checkers only: see handler/values.py
if TYPE_CHECKING:
    from typing import Any

    from .ports import Store

log = logging.getLogger("handler.entry")
FLUSH_MARGIN_SECONDS = 25  # a batch with the client's full retry budget (20 s by default) still fits
_wiring: Wiring | None = None


def _instance() -> Wiring:
    global _wiring
    if _wiring is None:
        level = os.environ.get("PREWARM_LOG_LEVEL", "INFO").upper()
        logging.getLogger("handler").setLevel(level if isinstance(logging.getLevelName(level), int) else "INFO")
        _wiring = Wiring(load_settings())
    return _wiring


def use(wiring: Wiring) -> None:
    """Run this instance on these adapters (a local replay on a simulated clock), not on $PREWARM_CONFIG's."""
    global _wiring
    _wiring = wiring


def upload(event: bytes | str, context: Any = None) -> str:
    """OSS / EventBridge / S3 upload events → pending URLs of the current window."""
    wiring = _instance()
    parsed = parse_event(event, include_append=wiring.settings.include_append)
    for skipped in parsed.skipped:
        log.warning("event record %s skipped: %s", skipped.index, skipped.reason)
    store = wiring.store(context)
    report = ingest(parsed.records, wiring.settings, store, now=wiring.clock())
    if report.added:
        _request_flush_if_full(wiring.settings, store, report.window, context)
    log.info("ingest %s", report.as_dict())
    return json.dumps(report.as_dict())


def flush(event: bytes | str | None = None, context: Any = None) -> str:
    """Timer trigger (or an early flush request): push the closed windows within the quota."""
    wiring = _instance()
    flush_all = _asks_for_all(event)
    report = flush_windows(
        wiring.store(context),
        wiring.cdn(context),
        wiring.settings,
        wiring.clock(),
        flush_all=flush_all,
        seconds=_time_budget(context),
    )
    return json.dumps(report.as_dict())


def _time_budget(context: Any) -> float | None:
    """Seconds to start new batches in: the function's timeout less a margin for one slow batch."""
    timeout = getattr(getattr(context, "function", None), "timeout", None)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        return None
    return max(1.0, timeout - FLUSH_MARGIN_SECONDS)


def _asks_for_all(event: bytes | str | None) -> bool:
    """A Timer payload or invocation body of `{"all": true}` flushes open windows too."""
    try:
        body = json.loads(event or b"{}")
        if isinstance(body, dict) and isinstance(body.get("payload"), str):
            body = json.loads(body["payload"] or "{}")
        return isinstance(body, dict) and body.get("all") is True
    except (ValueError, TypeError):
        return False


def _request_flush_if_full(settings: Settings, store: Store, window: int, context: Any) -> None:
    if settings.flush_function is None:
        return
    if store.pending_in_window(window) < settings.cdn.max_urls_per_call or not store.request_flush(window):
        return
    from .flush_request import request_flush  # only the one invocation that asks pays for fc2
    from .wiring import resolve

    request_flush(settings.flush_function, resolve(context), context)
