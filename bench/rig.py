"""What every run shares: the test account, CDN doubles, configs, and child processes that always end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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


# A tiny launcher between us and the measured child. On Linux a child's max RSS starts at the size
# of the process it was forked from (the high-water mark survives exec), so forking the measured
# child from this benchmark, which holds traces and doubles, would report our memory, not its own.
# The launcher (no site, a few MB) spawns it, waits, and writes what RUSAGE_CHILDREN says of it.
_LAUNCHER = (
    "import os, resource, sys\n"
    "pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)\n"
    "_, status = os.waitpid(pid, 0)\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    out.write(f'{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}')\n"
)


def run_child_rusage(args: Sequence[str], env: dict[str, str], *, timeout: float = CHILD_TIMEOUT):
    """Run a child through the launcher; (exit status, stdout, stderr, its max RSS in KiB)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-rusage-") as tmp:
        result = Path(tmp) / "rusage"
        status, out, err = run_child([PYTHON, "-S", "-c", _LAUNCHER, str(result), *args], env, timeout=timeout)
        if status != 0 or not result.exists():
            raise RuntimeError(f"the launcher of {' '.join(args[1:4])} failed: {err.decode(errors='replace')[-300:]}")
        child_status, max_rss_kib = (int(x) for x in result.read_text().split())
    return child_status, out, err, max_rss_kib


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
