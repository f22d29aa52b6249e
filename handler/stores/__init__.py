"""Store adapters, opened by URL. Each adapter imports its own SDK, so only the configured one is paid for."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..credentials import Credentials
    from ..ports import Store


def open_store(url: str, *, credentials: "Credentials | None" = None) -> "Store":
    """The Store for a URL: sqlite:///PATH, dynamodb://TABLE?region=..., tablestore://INSTANCE/TABLE?endpoint=..."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from .sqlite import SqliteStore

        return SqliteStore.from_url(url)
    if scheme == "dynamodb":
        from .dynamodb import DynamoDbStore

        return DynamoDbStore.from_url(url)
    if scheme == "tablestore":
        from .tablestore import TablestoreStore

        return TablestoreStore.from_url(url, credentials=credentials)
    raise ValueError(f"unknown store URL scheme {scheme!r} in {url!r}")
