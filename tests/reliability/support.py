"""Shared helpers of the reliability suite: configs, the command line, event payloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable

from eventdata import oss_record
from fixtures.cdn_double import TEST_AK, TEST_SK

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "my-bucket"
DOMAINS = ("cdn.example.com", "img.example.com")


def config(double_url: str, store: str, *, domains: Iterable[str] = DOMAINS, cdn: dict | None = None, **top) -> dict:
    """A deployment's config: one rule for BUCKET on `domains`, small timeouts, overrides on top."""
    return {
        "window_seconds": 60,
        "store": store,
        "cdn": {"endpoint": double_url, "max_urls_per_call": 100, "daily_quota": 1_000_000,
                "connect_timeout": 1, "read_timeout": 2, "max_retries": 2, "retry_budget_seconds": 1,
                "calls_per_second": 45, **(cdn or {})},
        "rules": [{"bucket": BUCKET, "domains": list(domains)}],
        **top,
    }


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def cli_env(extra: dict | None = None, *, key_id: str = TEST_AK, secret: str = TEST_SK) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREWARM_", "AWS_"))}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=key_id, ALIBABA_CLOUD_ACCESS_KEY_SECRET=secret)
    env.update(extra or {})
    return env


def cli(config_path: Path, *args: str, env: dict | None = None, stdin: bytes | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m handler ARGS --config PATH`, bounded in time; the caller checks the exit status."""
    return subprocess.run(
        [sys.executable, "-m", "handler", *args, "--config", str(config_path)],
        input=stdin, capture_output=True, cwd=ROOT, env=env if env is not None else cli_env(), timeout=timeout,
    )


def cli_json(config_path: Path, *args: str, env: dict | None = None, ok=(0,)) -> dict:
    result = cli(config_path, *args, "--json", env=env)
    assert result.returncode in ok, f"exit {result.returncode}: {result.stderr.decode(errors='replace')}"
    return json.loads(result.stdout)


def keys_payload(keys: Iterable[str], bucket: str = BUCKET) -> dict:
    return {"events": [oss_record(bucket, key) for key in keys]}


def urls_of(keys: Iterable[str], domains: Iterable[str] = DOMAINS) -> set[str]:
    """The canonical URLs of plain ASCII keys (no character that needs encoding)."""
    return {f"https://{d}/{k}" for k in keys for d in domains}


def duplicates(pushed: list[str]) -> int:
    """How many pushes repeated a URL already pushed."""
    return sum(n - 1 for n in Counter(pushed).values())


def preload_tasks(records: list[dict], status: str | None = None) -> Counter:
    """URL -> how many prefetch tasks the double created for it (of `status` only, if given).

    `records` is the double's `task_records()`: every task it ever made, more than its APIs show.
    """
    return Counter(
        r["ObjectPath"] for r in records
        if r["ObjectType"] == "preload" and (status is None or r["Status"] == status)
    )
