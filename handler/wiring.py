"""Builds the adapters the settings ask for; shared by the FC entry points and the CLI.

SDKs are imported here only inside the function that needs them, so the upload
path of a SQLite or DynamoDB deployment never pays for `requests` or Tablestore.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

TYPE_CHECKING = False  # typing is for type checkers only: see handler/values.py
if TYPE_CHECKING:
    from typing import Any, Callable

    from .settings import Settings
    from .credentials import Credentials
    from .ports import CdnApi, Store


def store_needs_credentials(settings: Settings) -> bool:
    return urlsplit(settings.store).scheme == "tablestore"


def resolve(context: Any = None) -> "Credentials":
    from .credentials import resolve_credentials

    return resolve_credentials(context=context)


def open_configured_store(settings: Settings, credentials: "Credentials | None" = None) -> "Store":
    from .stores import open_store

    return open_store(settings.store, credentials=credentials)


def open_cdn(
    settings: Settings, credentials: "Credentials", *, clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> "CdnApi":
    from .cdn.client import CdnClient
    from .cdn.pushing import CdnAdapter

    client = CdnClient(credentials, settings.cdn, sleep=sleep, clock=clock)
    return CdnAdapter(client, settings.cdn, clock=clock)


class Wiring:
    """Adapters kept for the life of a warm instance, rebuilt when the role's credentials rotate."""

    def __init__(
        self, settings: Settings, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        # The clock port: wall time on FC; in a replay of days, simulated time, and pauses (pacing,
        # back-off) that take no real time.
        self.clock = clock
        self.sleep = sleep
        self._store: "Store | None" = None
        self._store_credentials: "Credentials | None" = None
        self._cdn: "CdnApi | None" = None
        self._cdn_credentials: "Credentials | None" = None

    def store(self, context: Any = None) -> "Store":
        credentials = resolve(context) if store_needs_credentials(self.settings) else None
        if self._store is None or credentials != self._store_credentials:
            if self._store is not None:
                self._store.close()
            self._store = open_configured_store(self.settings, credentials)
            self._store_credentials = credentials
        return self._store

    def cdn(self, context: Any = None) -> "CdnApi":
        credentials = resolve(context)
        if self._cdn is None or credentials != self._cdn_credentials:
            self._cdn = open_cdn(self.settings, credentials, clock=self.clock, sleep=self.sleep)
            self._cdn_credentials = credentials
        return self._cdn
