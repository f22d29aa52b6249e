"""The state store a demo run uses, each on a local stand-in: a SQLite file, dynalite, or the Tablestore double.

    with demo_store("tablestore", state_path, key, secret) as (url, where):
        ...  # `url` is the store URL for the configuration, `where` says what serves it

Credentials are the demo's own key, set in the environment where the adapters look for them
(the Tablestore double checks the same Alibaba Cloud key the CDN API double does).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator

STORES = ("sqlite", "dynamodb", "tablestore")
TABLESTORE_INSTANCE = "prewarm-demo"


@contextlib.contextmanager
def demo_store(kind: str, state: Path, key: str, secret: str) -> Iterator[tuple[str, str]]:
    """A fresh, empty store of `kind`, its table created; (store URL, what serves it)."""
    if kind == "sqlite":
        for leftover in (state, state.with_name(state.name + "-wal"), state.with_name(state.name + "-shm")):
            leftover.unlink(missing_ok=True)
        yield f"sqlite:///{state}", str(state)
    elif kind == "tablestore":
        from .tablestore_double import TablestoreDouble

        with TablestoreDouble(instance=TABLESTORE_INSTANCE, access_key_id=key, access_key_secret=secret) as double:
            url = f"tablestore://{TABLESTORE_INSTANCE}/prewarm_demo?endpoint={double.endpoint}"
            create_schema(url)
            yield url, f"the local Tablestore double at {double.endpoint} (instance {TABLESTORE_INSTANCE})"
    elif kind == "dynamodb":
        from .dynalite import Dynalite

        # boto3 reads the AWS variables; dynalite accepts any key, and no shared config file is read.
        os.environ.update(AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo", AWS_CONFIG_FILE=os.devnull,
                          AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        with Dynalite() as endpoint:
            url = f"dynamodb://prewarm-demo-{uuid.uuid4().hex[:8]}?region=cn-hangzhou&endpoint_url={endpoint}"
            create_schema(url)
            yield url, f"dynalite at {endpoint}"
    else:
        raise ValueError(f"unknown demo store {kind!r} (one of {', '.join(STORES)})")


def create_schema(url: str) -> None:
    """Create the tables of the store at `url`, as `python -m handler init-store` does."""
    from ..stores import open_store

    store = open_store(url)
    try:
        store.create_schema()
    finally:
        store.close()
