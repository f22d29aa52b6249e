"""The `store` fixture: every test of the contract suite runs once per adapter.

- sqlite: a fresh file in tmp_path;
- dynamodb: a fresh table in the session's dynalite, over real HTTP on loopback;
- tablestore: a fresh table on the session's local Tablestore double, through the real SDK
  over HTTP, its pages cut at 7 rows so every range read has to follow next start keys.

`backend` opens further stores on the same state (as separate invocations would), and
gives a store URL where another process can open it too (each backend's credentials are in
the environment, which processes started by the test inherit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest

ADAPTERS = ["sqlite", "dynamodb", "tablestore"]
TABLESTORE_PAGE_ROWS = 7  # the service may cut a page anywhere: callers must follow next start keys


@dataclass
class Backend:
    name: str
    open: Callable[[], object]  # another Store on the same shared state
    url: str  # for other processes


@pytest.fixture(params=ADAPTERS)
def backend(request: pytest.FixtureRequest, tmp_path) -> Backend:
    opened: list = []

    def tracked(factory: Callable[[], object]) -> Callable[[], object]:
        def open_store() -> object:
            store = factory()
            opened.append(store)
            return store
        return open_store

    if request.param == "sqlite":
        try:
            from handler.stores.sqlite import SqliteStore
        except ImportError as exc:  # the adapter is not there yet: an error, never a silent skip
            pytest.fail(f"handler.stores.sqlite.SqliteStore cannot be imported: {exc}")
        path = tmp_path / "state.db"
        backend = Backend("sqlite", tracked(lambda: SqliteStore(path)), f"sqlite:///{path}")
    elif request.param == "dynamodb":
        endpoint = request.getfixturevalue("dynamodb_endpoint")
        request.getfixturevalue("aws_dummy_credentials")
        table = request.getfixturevalue("dynamodb_table_name")
        from handler.stores.dynamodb import DynamoDbStore

        url = f"dynamodb://{table}?region=cn-hangzhou&endpoint_url={endpoint}"
        DynamoDbStore.from_url(url).create_schema()
        backend = Backend("dynamodb", tracked(lambda: DynamoDbStore.from_url(url)), url)
    else:
        double = request.getfixturevalue("tablestore_double")
        request.getfixturevalue("tablestore_env")
        url = request.getfixturevalue("tablestore_store_url")
        from handler.stores.tablestore import TablestoreStore

        double.configure(page_rows=TABLESTORE_PAGE_ROWS)
        TablestoreStore.from_url(url).create_schema()
        backend = Backend("tablestore", tracked(lambda: TablestoreStore.from_url(url)), url)
    yield backend
    for store in opened:
        store.close()


@pytest.fixture
def store(backend: Backend):
    return backend.open()
