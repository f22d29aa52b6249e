"""The CDN API double's HTTP side: stdlib ThreadingHTTPServer on loopback, RPC calls and the /_double/ admin paths."""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from .cdn_double_admin import admin_route
from .cdn_double_auth import Incoming
from .cdn_double_rules import ApiError, error_body, new_request_id, render
from .loopback_server import LoopbackServer

if TYPE_CHECKING:
    from .cdn_double import CdnDouble

ADMIN_PREFIX = "/_double/"
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str
    request_id: str
    drop: bool = False
    truncate: bool = False  # send the headers and half the body, then close

    @classmethod
    def dropped(cls) -> Answer:
        """Close the connection without a word: the caller cannot know what happened."""
        return cls(0, b"", "", "", drop=True)


class DoubleServer:
    """Owns the listening socket and every open connection, so stop() really stops answering."""

    def __init__(self, double: CdnDouble, host: str, port: int) -> None:
        self._handler = _handler_for(double)
        self._verbose = double.verbose
        self._http = self._listen((host, port))
        self._address = self._http.server_address[:2]  # the port stays the same across refuse()
        self._thread: threading.Thread | None = None
        self._refusing = False
        self._state_lock = threading.Lock()

    def _listen(self, address) -> LoopbackServer:
        http = LoopbackServer(address, self._handler)
        http.verbose = self._verbose
        return http

    @property
    def base_url(self) -> str:
        host, port = self._address
        return f"http://{host}:{port}"

    def start(self) -> None:
        if self._thread is None and not self._refusing:
            self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), name="cdn-double", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._http.close_connections()
        self._http.server_close()

    def refuse(self, refuse: bool) -> None:
        """Close the listener, so connections are refused before anything is sent; or listen again on the same port."""
        with self._state_lock:
            if refuse and not self._refusing:
                self.stop()
                self._refusing = True
            elif not refuse and self._refusing:
                self._refusing = False
                self._http = self._listen(self._address)
                self.start()

    def refuse_for(self, seconds: float) -> None:
        """Refuse connections for `seconds`, from a thread of its own (an admin call answers first)."""

        def run() -> None:
            time.sleep(0.05)  # let the admin answer leave before its connection is closed
            self.refuse(True)
            time.sleep(seconds)
            self.refuse(False)

        threading.Thread(target=run, name="cdn-double-refuse", daemon=True).start()


def _handler_for(double: CdnDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.double = double
    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server_version = "Tengine"
    sys_version = ""
    timeout = 30
    double: CdnDouble

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: object) -> None:
        if self.double.verbose:
            sys.stderr.write(f"cdn-double {self.address_string()} {format % args}\n")

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        if url.path.startswith(ADMIN_PREFIX):
            self._admin(url.path[len(ADMIN_PREFIX):], url.query, body)
        elif url.path in ("", "/") and self.command in ("GET", "POST"):
            self._rpc(url.query, body)
        else:
            error = ApiError("InvalidAction.NotFound")
            request_id = new_request_id()
            payload, content_type = render(error_body(error, request_id), "Error", True)
            self._send(Answer(error.status, payload, content_type, request_id))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _rpc(self, query: str, body: bytes) -> None:
        content_type = self.headers.get("Content-Type", "").lower()
        form = body.decode("utf-8", "replace") if content_type.startswith("application/x-www-form-urlencoded") else ""
        request = Incoming(
            method=self.command,
            query=dict(parse_qsl(query, keep_blank_values=True)),
            form=dict(parse_qsl(form, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        try:
            answer = self.double.handle(request)
        except Exception:  # a bug in the double: say so loudly instead of hanging up
            traceback.print_exc()
            error, request_id = ApiError("InternalError", 500, "The local CDN API double failed."), new_request_id()
            payload, content_type = render(error_body(error, request_id), "Error", True)
            answer = Answer(500, payload, content_type, request_id)
        self._send(answer)

    def _send(self, answer: Answer) -> None:
        if answer.drop:
            self.close_connection = True
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        if answer.request_id:
            self.send_header("x-acs-request-id", answer.request_id)
        self.end_headers()
        if answer.truncate:
            self.wfile.write(answer.body[: len(answer.body) // 2])  # fewer bytes than Content-Length says
            self.close_connection = True
            return
        self.wfile.write(answer.body)

    # ------------------------------------------------------------ admin: unsigned, loopback callers only

    def _admin(self, route: str, query: str, body: bytes) -> None:
        if self.client_address[0] not in LOOPBACK:
            return self._json(403, {"error": "the admin paths answer loopback callers only"})
        try:
            data = json.loads(body) if body.strip() else {}
            if not isinstance(data, dict):
                raise ValueError("the body must be a JSON object")
            status, result = admin_route(self.double, self.command, route, dict(parse_qsl(query)), data)
        except (ValueError, TypeError, KeyError) as exc:
            status, result = 400, {"error": str(exc)}
        self._json(status, result)

    def _json(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode("utf-8")
        self._send(Answer(status, payload, "application/json;charset=utf-8", ""))
