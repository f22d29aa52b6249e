"""A configured deployment on loopback: the local CDN API double, a SQLite store, the CLI and the FC entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.cdn_double import TEST_AK, TEST_SK

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Deployment:
    double: object
    config_path: Path
    config: dict
    env: dict

    def cli(self, *args: str, stdin: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "handler", *args, "--config", str(self.config_path)],
            input=stdin,
            capture_output=True,
            cwd=ROOT,
            env=self.env,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"exit {result.returncode}: {result.stderr.decode(errors='replace')}")
        return result

    def cli_json(self, *args: str) -> dict:
        return json.loads(self.cli(*args, "--json").stdout)


def write_config(path: Path, double_url: str, store: str, **overrides) -> dict:
    config = {
        "window_seconds": 60,
        "store": store,
        "cdn": {"endpoint": double_url, "max_urls_per_call": 100, "daily_quota": 1000, "max_retries": 2,
                "retry_budget_seconds": 2},
        "rules": [
            {"bucket": "my-bucket", "domains": ["cdn.example.com"]},
            {"bucket": "my-s3-bucket", "domains": ["img.example.com"]},
        ],
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path.write_text(json.dumps(config), encoding="utf-8")
    return config


@pytest.fixture
def deploy(tmp_path, make_cdn_double, monkeypatch):
    """deploy(**config overrides, double={double kwargs}) -> Deployment; also wires the FC entry points."""

    def make(double: dict | None = None, **overrides) -> Deployment:
        cdn_double = make_cdn_double(**(double or {}))
        config_path = tmp_path / "config.json"
        config = write_config(config_path, cdn_double.base_url, f"sqlite:///{tmp_path / 'state.db'}", **overrides)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREWARM_"))}
        env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=TEST_AK, ALIBABA_CLOUD_ACCESS_KEY_SECRET=TEST_SK)
        for name in ("ALIBABA_CLOUD_SECURITY_TOKEN", "PREWARM_STORE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_AK)
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_SK)
        monkeypatch.setenv("PREWARM_CONFIG", str(config_path))
        import handler.entry

        monkeypatch.setattr(handler.entry, "_wiring", None)  # a fresh FC instance reads its settings again
        return Deployment(cdn_double, config_path, config, env)

    yield make
    import handler.entry

    if handler.entry._wiring is not None and handler.entry._wiring._store is not None:
        handler.entry._wiring._store.close()
