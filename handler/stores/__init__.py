"""Store adapters, opened by URL. Each adapter imports its own SDK, so only the configured one is paid for."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..settings import ConfigError

TYPE_CHECKING = False  # typing is for type checkers only: see handler/values.py
if TYPE_CHECKING:
    from ..credentials import Credentials
    from ..ports import Store

# The top-level modules each adapter's SDK brings, and the extra that installs them.
SDK_EXTRAS = {"boto3": "dynamodb", "botocore": "dynamodb", "tablestore": "tablestore"}


def open_store(url: str, *, credentials: "Credentials | None" = None) -> "Store":
    """The Store for a URL: sqlite:///PATH, dynamodb://TABLE?region=..., tablestore://INSTANCE/TABLE?endpoint=..."""
    scheme = urlsplit(url).scheme
    try:
        if scheme == "sqlite":
            from .sqlite import SqliteStore

            return SqliteStore.from_url(url)
        if scheme == "dynamodb":
            from .dynamodb import DynamoDbStore

            return DynamoDbStore.from_url(url)
        if scheme == "tablestore":
            from .tablestore import TablestoreStore

            return TablestoreStore.from_url(url, credentials=credentials)
    except ImportError as exc:
        extra = SDK_EXTRAS.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        raise ConfigError(
            f"store {scheme}:// needs the {exc.name} package: pip install 'oss-cdn-prewarm[{extra}]'"
        ) from None
    raise ValueError(f"unknown store URL scheme {scheme!r} in {url!r}")
