"""Flush-on-full: a full window asks the flush function to run now, once, through a signed async FC invocation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from eventdata import oss_event
from fixtures.cdn_double import TEST_AK, TEST_SK
from handler import entry

INVOKE_PATH = "/2016-08-15/services/cdn-prewarm/functions/flush/invocations"


def fc_signature(secret: str, method: str, path: str, headers: dict[str, str]) -> str:
    """Function Compute's request signature, computed here from its published definition."""
    lowered = {k.lower(): v for k, v in headers.items()}
    fc_headers = "".join(f"{k}:{lowered[k]}\n" for k in sorted(k for k in lowered if k.startswith("x-fc-")))
    to_sign = "\n".join(
        [method, lowered.get("content-md5", ""), lowered.get("content-type", ""), lowered.get("date", ""), fc_headers + path]
    )
    return base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).digest()).decode()


class FakeFunctionCompute:
    """An FC invoke endpoint on loopback that checks the path, the async header and the signature."""

    def __init__(self, status: int = 202) -> None:
        self.requests: list[dict] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = dict(self.headers.items())
                expected = f"FC {TEST_AK}:{fc_signature(TEST_SK, 'POST', self.path, headers)}"
                outer.requests.append(
                    {
                        "path": self.path,
                        "async": headers.get("x-fc-invocation-type") == "Async",
                        "signed": headers.get("authorization") == expected,
                        "body": json.loads(body or b"null"),
                    }
                )
                self.send_response(outer.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_fc():
    servers = []

    def make(status: int = 202) -> FakeFunctionCompute:
        servers.append(FakeFunctionCompute(status))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _upload(keys: list[str]) -> dict:
    payload = {"events": [oss_event("my-bucket", key)["events"][0] for key in keys]}
    context = SimpleNamespace(request_id="r", credentials=None, region="cn-hangzhou", account_id="1")
    return json.loads(entry.upload(json.dumps(payload).encode(), context))


def test_a_full_window_asks_for_one_flush(deploy, fake_fc):
    fc = fake_fc()
    deploy(
        window_seconds=3600,
        cdn={"max_urls_per_call": 5},
        flush_function={"service": "cdn-prewarm", "function": "flush", "endpoint": fc.url},
    )
    _upload(["a", "b", "c"])
    assert fc.requests == []  # 3 of 5: not full yet
    _upload(["d", "e", "f"])
    _upload(["g", "h"])  # the window is still full, but it already asked
    assert len(fc.requests) == 1
    request = fc.requests[0]
    assert request["path"] == INVOKE_PATH
    assert request["async"] and request["signed"]
    assert request["body"]["all"] is True


def test_a_failed_flush_request_never_fails_the_upload(deploy, fake_fc):
    fc = fake_fc(status=500)
    deploy(
        window_seconds=3600,
        cdn={"max_urls_per_call": 2},
        flush_function={"service": "cdn-prewarm", "function": "flush", "endpoint": fc.url},
    )
    report = _upload(["a", "b", "c"])
    assert report["added"] == 3
    assert len(fc.requests) == 1  # asked, was refused, and the Timer trigger remains the safety net
