"""The Tablestore double's HTTP side: stdlib ThreadingHTTPServer on loopback.

POST /<ApiName> goes to the double; /_double/... are unsigned admin paths for loopback callers
(other processes inject faults and read call counts there, see tablestore_double.py).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

from .loopback_server import LoopbackServer

if TYPE_CHECKING:
    from .tablestore_double import TablestoreDouble

ADMIN_PREFIX = "/_double/"
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
MAX_BODY_BYTES = 5 * 1024 * 1024  # the service's limit on a request body


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering


class DoubleServer:
    """Owns the listening socket and every open connection, so stop() really stops answering."""

    def __init__(self, double: "TablestoreDouble", host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"double": double})
        self._http = LoopbackServer((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,),
                                            name="tablestore-double", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._http.close_connections()
        self._http.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's urllib3 pool expects
    disable_nagle_algorithm = True
    server_version = "aliyun-tablestore-local-double"
    sys_version = ""
    timeout = 60
    double: "TablestoreDouble"

    def log_message(self, format: str, *args: object) -> None:
        if self.double.verbose:
            sys.stderr.write(f"tablestore-double {self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            return self._send(self.double.refuse_too_large(self.path.lstrip("/")))
        body = self.rfile.read(length) if length > 0 else b""
        if self.path.startswith(ADMIN_PREFIX):
            return self._admin(self.path[len(ADMIN_PREFIX):], body)
        api = self.path.split("?", 1)[0].lstrip("/")
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            answer = self.double.handle(self.command, api, headers, body)
        except Exception:  # a bug in the double: say so loudly instead of hanging up
            traceback.print_exc()
            answer = self.double.internal_error(api)
        self._send(answer)

    def _send(self, answer: Answer) -> None:
        if answer.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def _admin(self, route: str, body: bytes) -> None:
        if self.client_address[0] not in LOOPBACK:
            return self._json(403, {"error": "the admin paths answer loopback callers only"})
        try:
            data = json.loads(body) if body.strip() else {}
            status, result = self.double.admin(self.command, route, data)
        except (ValueError, TypeError) as exc:
            status, result = 400, {"error": str(exc)}
        self._json(status, result)

    def _json(self, status: int, result: dict) -> None:
        payload = json.dumps(result).encode("utf-8")
        self._send(Answer(status, payload, {"Content-Type": "application/json"}))
