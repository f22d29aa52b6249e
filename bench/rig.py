"""What every run shares: the test account, CDN doubles, configs, and child processes that always end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
ACCESS_KEY_ID = "bench-access-key"
ACCESS_KEY_SECRET = "bench-secret-never-printed"
BUCKET = "my-bucket"
DOMAINS = ("cdn.example.com", "img.example.com")
CAP = 100  # PushObjectCache's per-call cap
HUGE_QUOTA = 100_000_000  # a daily quota that never binds
CHILD_TIMEOUT = 300.0


def start_double(*, quota: int = HUGE_QUOTA, calls_per_second: int = 50, **options: Any):
    """A started local CDN API double on 127.0.0.1 for the bench account; the caller stops it."""
    from handler.local.cdn_double import CdnDouble

    double = CdnDouble(
        ACCESS_KEY_ID, ACCESS_KEY_SECRET, list(DOMAINS), quota=quota, cap=CAP,
        calls_per_second=calls_per_second, host="127.0.0.1", port=0, **options,
    )
    double.start()
    return double


def config(store: str, endpoint: str = "http://127.0.0.1:9", **cdn: Any) -> dict:
    """A deployment: one rule mapping the bucket to both CDN domains; a quota that never binds."""
    return {
        "window_seconds": 60,
        "store": store,
        "cdn": {"endpoint": endpoint, "max_urls_per_call": CAP, "daily_quota": HUGE_QUOTA, **cdn},
        "rules": [{"bucket": BUCKET, "domains": list(DOMAINS)}],
    }


def settings(config_data: dict):
    from handler.settings import parse_settings

    return parse_settings(config_data)


def credentials():
    from handler.credentials import Credentials

    return Credentials(ACCESS_KEY_ID, ACCESS_KEY_SECRET)


def child_env(config_data: dict | None = None, **extra: str) -> dict[str, str]:
    """The environment of a child: this repository importable, the bench account, the config inline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREWARM_", "AWS_"))}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = ACCESS_KEY_ID
    env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = ACCESS_KEY_SECRET
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    if config_data is not None:
        env["PREWARM_CONFIG"] = json.dumps(config_data)
    env.update(extra)
    return env


def run_child(
    args: Sequence[str], env: dict[str, str], *, timeout: float = CHILD_TIMEOUT, stdin: bytes | None = None
) -> tuple[int, bytes, bytes]:
    """Run a child to its end (killed at `timeout`); (exit status, stdout, stderr)."""
    proc = subprocess.Popen(
        list(args), cwd=ROOT, env=env, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        raise RuntimeError(f"{' '.join(args[:4])} ... took longer than {timeout:g}s and was killed") from None
    except BaseException:
        _kill_group(proc)
        raise
    return proc.returncode, out, err


def run_child_rusage(args: Sequence[str], env: dict[str, str], *, timeout: float = CHILD_TIMEOUT):
    """Run a child, reaped with os.wait4 so that its own rusage (max RSS) is known; (status, stdout, stderr, rusage)."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            list(args), cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{' '.join(args[:4])} ... took longer than {timeout:g}s and was killed")
                time.sleep(0.02)
        except BaseException:
            _kill_group(proc)
            try:
                os.waitpid(proc.pid, 0)
            except ChildProcessError:
                pass
            proc.returncode = -9
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), rusage


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass


def child_json(args: Sequence[str], env: dict[str, str], *, timeout: float = CHILD_TIMEOUT, stdin: bytes | None = None) -> Any:
    """Run a child that prints one JSON document on its last stdout line; raise with its stderr if it fails."""
    status, out, err = run_child(args, env, timeout=timeout, stdin=stdin)
    if status != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(args[1:4])} exited {status}: {' | '.join(tail)}")
    lines = out.decode("utf-8").strip().splitlines()
    return json.loads(lines[-1])
