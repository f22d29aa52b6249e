"""The demo runs the main job end to end on each local store and pushes the same URLs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pushed_by_demo(tmp_path: Path, store: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "handler.local.demo", "--store", store, "--state", str(tmp_path / "demo.db")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    received = result.stdout.split("the CDN API received:\n", 1)[1].split("\n\n", 1)[0]
    return sorted(line.strip() for line in received.splitlines())


def test_the_demo_on_the_tablestore_double_pushes_what_it_pushes_on_sqlite(tmp_path):
    on_tablestore = pushed_by_demo(tmp_path, "tablestore")
    assert len(on_tablestore) == 9
    assert on_tablestore == pushed_by_demo(tmp_path, "sqlite")
