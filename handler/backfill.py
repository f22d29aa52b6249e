"""Backfill: warm objects that already exist in a bucket, behind live uploads and within their share of the quota.

Objects come from a listing of the bucket (OSS with `oss2`, S3 with `boto3`, each imported only
here and only when asked for) or from a file of keys. They go through the same rules as uploads
and are queued at backfill priority; URLs the store already knows are left alone, so a rerun with
the same arguments adds nothing new and an interrupted backfill resumes where it stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from .events import ObjectWritten
from .lifecycle import is_known
from .ports import Store
from .prewarm import ingest
from .settings import Settings
from .urls import urls_for

BATCH = 500  # records per store round: bounded memory whatever the bucket's size


class MissingSdk(Exception):
    """The listing needs an SDK that is not installed; the message names the extra to install."""


@dataclass
class BackfillReport:
    listed: int = 0  # objects listed (or keys read)
    urls: int = 0  # URLs they map to
    queued: int = 0  # newly queued (dry run: would be)
    known: int = 0  # already known to the store: left alone
    days: float = 0.0  # days the queued URLs take at today's backfill share of the quota

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def keys_from_file(lines: Iterable[str], bucket: str) -> Iterator[ObjectWritten]:
    """One object key per line; blank lines skipped. No ETag is known, so no version is recorded."""
    for line in lines:
        key = line.rstrip("\r\n")
        if key.strip():
            yield ObjectWritten(bucket, key, "Backfill", "backfill")


def s3_objects(bucket: str, prefix: str, since: float | None, *, endpoint_url: str | None, region: str | None
               ) -> Iterator[ObjectWritten]:
    """The objects of an S3 bucket under `prefix`, modified at or after `since`, through boto3's usual credentials."""
    try:
        import boto3
    except ImportError:
        raise MissingSdk("listing S3 needs boto3: pip install 'oss-cdn-prewarm[s3]'") from None
    client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if since is None or item["LastModified"].timestamp() >= since:
                yield ObjectWritten(bucket, item["Key"], "Backfill", "s3", etag=_etag(item.get("ETag")),
                                    size=item.get("Size"))


def oss_objects(bucket: str, prefix: str, since: float | None, *, endpoint: str, credentials: Any
                ) -> Iterator[ObjectWritten]:
    """The objects of an OSS bucket under `prefix`, modified at or after `since`."""
    try:
        import oss2
    except ImportError:
        raise MissingSdk("listing OSS needs oss2: pip install 'oss-cdn-prewarm[oss]'") from None
    if credentials.security_token:
        auth = oss2.StsAuth(credentials.access_key_id, credentials.access_key_secret, credentials.security_token)
    else:
        auth = oss2.Auth(credentials.access_key_id, credentials.access_key_secret)
    for item in oss2.ObjectIteratorV2(oss2.Bucket(auth, endpoint, bucket), prefix=prefix):
        if since is None or item.last_modified >= since:
            yield ObjectWritten(bucket, item.key, "Backfill", "oss", etag=_etag(item.etag), size=item.size)


def backfill(
    objects: Iterable[ObjectWritten], settings: Settings, store: Store, now: float, *, dry_run: bool = False,
    progress: Callable[[BackfillReport], None] | None = None,
) -> BackfillReport:
    """Queue the URLs of `objects` that the store does not know, at backfill priority."""
    report = BackfillReport()
    batch: list[ObjectWritten] = []
    for record in objects:
        if record.key.endswith("/"):
            continue  # a directory marker, not an object
        batch.append(record)
        if len(batch) >= BATCH:
            _queue(batch, settings, store, now, dry_run, report)
            batch = []
            if progress is not None:
                progress(report)
    if batch:
        _queue(batch, settings, store, now, dry_run, report)
    share = settings.cdn.daily_limit * settings.backfill_share
    report.days = math.ceil(10 * report.queued / share) / 10 if share else float("inf")
    return report


def _queue(batch: list[ObjectWritten], settings: Settings, store: Store, now: float, dry_run: bool,
           report: BackfillReport) -> None:
    report.listed += len(batch)
    urls = [url for record in batch for url in urls_for(record, settings.rules).urls]
    report.urls += len(urls)
    if dry_run:
        known = store.states(urls)
        fresh = {url for url in urls if not is_known(known.get(url), now)}
        report.queued += len(fresh)
        report.known += len(set(urls)) - len(fresh)
        return
    queued = ingest(batch, settings, store, now, backfill=True).added
    report.queued += queued
    report.known += len(set(urls)) - queued


def _etag(value: Any) -> str | None:
    return value.strip('"') if isinstance(value, str) and value.strip('"') else None
