"""The demo plays uploads, an overwrite and deletes end to end on each local store, and ends current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_demo(tmp_path: Path, store: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "handler.local.demo", "--store", store, "--state", str(tmp_path / "demo.db")],
        capture_output=True, text=True, cwd=ROOT, timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def cache_beside_origin(output: str) -> str:
    return output.split("the CDN's edge cache beside the origin:\n", 1)[1]


@pytest.mark.parametrize("store", ["sqlite", "tablestore"])
def test_the_demo_ends_with_every_object_current_and_the_deleted_gone(tmp_path, store):
    output = run_demo(tmp_path, store)
    table = cache_beside_origin(output)
    assert "STALE" not in table and "9 live objects, 0 served stale or cold" in table
    assert "static/css/site.css\n        origin 5D41402ABC4B2A76B9719D911017C592, cache 5D41402ABC4B2A76B9719D911017C592" in table
    assert "app.9f3c2b.js" not in table  # deleted: purged, nothing left in the cache
    assert "refreshed 1" in output.split("2. an overwrite", 1)[1]
