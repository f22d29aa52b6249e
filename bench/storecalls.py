"""Store requests per upload event, and per redelivery of it, on each store.

One native OSS event of one object, under a rule with two CDN domains (two URLs), ingested
as the upload function does (`parse_event` + `prewarm.ingest`; no flush_function configured,
so no early-flush check), then the very same event again (FC's at-least-once redelivery).

    SQLite      transactions (BEGIN) and the other SQL statements (COMMIT included), from the connection's
                trace callback
    DynamoDB    requests the boto3 client sends, from a botocore event hook (dynalite on loopback)
    Tablestore  requests the unmodified tablestore SDK sends, from the loopback wire double's call log

Request counts are exact and do not depend on the machine.
"""

from __future__ import annotations

import tempfile
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from . import rig

AT = 1_795_399_200.0  # 2026-11-23T02:00:00Z
KEY = "static/js/app.0123abcd.js"


@dataclass
class StoreCalls:
    store: str
    upload: dict = field(default_factory=dict)  # request kind -> count, for the first delivery
    redelivery: dict = field(default_factory=dict)  # ... for the same event delivered again
    unit: str = "requests"
    missing: str | None = None  # why this store could not run here

    @property
    def upload_total(self) -> int:
        return sum(self.upload.values())

    @property
    def redelivery_total(self) -> int:
        return sum(self.redelivery.values())

    def as_dict(self) -> dict:
        return {**asdict(self), "upload_total": self.upload_total, "redelivery_total": self.redelivery_total}


def run() -> list[StoreCalls]:
    results = []
    for name, measure in (("sqlite", _sqlite), ("dynamodb", _dynamodb), ("tablestore", _tablestore)):
        try:
            results.append(measure())
        except _Unavailable as exc:
            results.append(StoreCalls(name, missing=str(exc)))
    return results


class _Unavailable(Exception):
    pass


def _deliveries(store, counted: Callable[[], Counter]) -> tuple[dict, dict]:
    """Ingest the event twice; what `counted()` gathered for each delivery."""
    from handler.events import parse_event
    from handler.prewarm import ingest
    from .trace import oss_payload

    settings = rig.settings(rig.config("sqlite:///:memory:"))
    records = parse_event(oss_payload(KEY, AT)).records
    seen = []
    for delivery in range(2):
        counted().clear()
        report = ingest(records, settings, store, now=AT + delivery)
        if report.added != (2 if delivery == 0 else 0):
            raise RuntimeError(f"delivery {delivery + 1} added {report.added} URLs")
        seen.append(dict(sorted(counted().items())))
    return seen[0], seen[1]


def _sqlite() -> StoreCalls:
    from handler.stores.sqlite import SqliteStore

    with tempfile.TemporaryDirectory(prefix="bench-storecalls-") as tmp:
        store = SqliteStore(Path(tmp) / "state.db")
        seen: Counter = Counter()

        def trace(statement: str) -> None:
            word = statement.split(None, 1)[0].upper() if statement.strip() else ""
            seen["transactions" if word == "BEGIN" else "statements"] += 1

        store._db.set_trace_callback(trace)  # the store's one connection
        try:
            upload, redelivery = _deliveries(store, lambda: seen)
        finally:
            store.close()
    return StoreCalls("sqlite", upload, redelivery, unit="transactions, statements")


def _dynamodb() -> StoreCalls:
    import importlib.util

    if importlib.util.find_spec("boto3") is None:
        raise _Unavailable("boto3 missing")
    import boto3

    from handler.local.dynalite import Dynalite, EmulatorMissing
    from handler.stores.dynamodb import DynamoDbStore

    try:
        with Dynalite() as endpoint:
            client = boto3.session.Session().client(
                "dynamodb", region_name="us-east-1", endpoint_url=endpoint,
                aws_access_key_id="bench", aws_secret_access_key="bench",
            )
            store = DynamoDbStore(f"bench-calls-{uuid.uuid4().hex[:8]}", client=client)
            store.create_schema()
            seen: Counter = Counter()
            client.meta.events.register("provide-client-params.dynamodb.*",
                                        lambda model, **_: seen.update([model.name]))
            upload, redelivery = _deliveries(store, lambda: seen)
            store.close()
    except EmulatorMissing as exc:
        raise _Unavailable(f"emulator missing: {exc}") from None
    return StoreCalls("dynamodb", upload, redelivery)


def _tablestore() -> StoreCalls:
    import importlib.util

    if importlib.util.find_spec("tablestore") is None:
        raise _Unavailable("tablestore SDK missing")
    from handler.credentials import Credentials
    from handler.local.tablestore_double import TablestoreDouble
    from handler.stores.tablestore import TablestoreStore

    double = TablestoreDouble(instance="bench", access_key_id="bench-ots", access_key_secret="bench-ots-secret")
    double.start()
    try:
        url = f"tablestore://bench/calls_{uuid.uuid4().hex[:8]}?endpoint={double.endpoint}"
        store = TablestoreStore.from_url(url, credentials=Credentials("bench-ots", "bench-ots-secret", None))
        store.create_schema()

        class Log:  # the double's call log, as a Counter of operations since the last clear()
            def clear(self) -> None:
                double.clear_calls()

            def items(self):
                return Counter(r.operation for r in double.received).items()

        log = Log()
        upload, redelivery = _deliveries(store, lambda: log)
        store.close()
    finally:
        double.stop()
    return StoreCalls("tablestore", upload, redelivery)
