"""The CDN client: local refusals, retry and pacing arithmetic, then real HTTP against the CDN API double."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from handler.cdn import errors
from handler.cdn.client import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    CdnClient,
    Pacer,
    backoff_delay,
    check_url,
)
from handler.credentials import Credentials
from handler.settings import CdnSettings, ConfigError

SECRET = "test-sk-secret"
TOKEN = "sts+token/value=XYZ"  # characters that percent-encoding changes


class FakeClock:
    """monotonic() and sleep() over a number that moves only when someone sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def refused_endpoint():
    """A loopback port that refuses connections: bound, never listening."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def offline_client(endpoint: str, clock: FakeClock | None = None, random=lambda: 1.0, **overrides) -> CdnClient:
    clock = clock or FakeClock()
    settings = replace(CdnSettings(endpoint=endpoint, connect_timeout=1.0, read_timeout=1.0), **overrides)
    return CdnClient(
        Credentials("test-ak", SECRET, TOKEN), settings, sleep=clock.sleep, monotonic=clock.monotonic, random=random
    )


# -- local refusals: no call is made ------------------------------------------------------


@pytest.mark.parametrize(
    "url, why",
    [
        ("", "empty"),
        ("cdn.example.com/a b.png", "space"),
        ("cdn.example.com/a\nevil.example.com/b", "newline"),
        ("cdn.example.com/a\r", "carriage return"),
        ("cdn.example.com/a\tb", "tab"),
        ("cdn.example.com/a\x00b", "NUL"),
        ("cdn.example.com/a\x7fb", "DEL"),
        ("cdn.example.com/a\u0085b", "NEL"),
        ("cdn.example.com/a\u2028b", "line separator"),
        ("cdn.example.com/a\u3000b", "ideographic space"),
        ("cdn.example.com/a\u200bb", "zero-width space"),
        ("cdn.example.com/a\u202eb", "right-to-left override"),
        ("cdn.example.com/" + "a" * 1009, "1,025 characters"),
    ],
)
def test_bad_url_is_refused_before_any_call(refused_endpoint, url, why):
    client = offline_client(refused_endpoint)
    with pytest.raises(errors.InvalidUrlError) as info:
        client.push_object_cache(["cdn.example.com/ok.png", url])
    assert info.value.code == "Local.InvalidUrl"
    assert "#1" in info.value.message
    assert client.calls_made == 0


def test_url_of_exactly_1024_characters_and_unicode_letters_are_allowed():
    check_url("cdn.example.com/" + "a" * 1008)
    check_url("cdn.example.com/图片/猫.png")


def test_empty_list_and_too_many_urls_are_refused(refused_endpoint):
    client = offline_client(refused_endpoint, max_urls_per_call=3)
    with pytest.raises(errors.InvalidUrlError):
        client.push_object_cache([])
    with pytest.raises(errors.InvalidUrlError) as info:
        client.push_object_cache([f"cdn.example.com/{i}" for i in range(4)])
    assert info.value.code == "Local.TooManyUrls"
    assert client.calls_made == 0


@pytest.mark.parametrize("endpoint", ["http://cdn.aliyuncs.com", "http://10.0.0.1:8080", "ftp://127.0.0.1"])
def test_plain_http_off_loopback_is_refused(endpoint):
    with pytest.raises(ConfigError):
        CdnClient(Credentials("ak", SECRET), CdnSettings(endpoint=endpoint))


def test_repr_shows_no_secret(refused_endpoint):
    text = repr(offline_client(refused_endpoint))
    assert SECRET not in text and TOKEN not in text


# -- backoff and pacing arithmetic ---------------------------------------------------------


def test_backoff_is_full_jitter_capped_exponential():
    assert [backoff_delay(a, lambda: 1.0) for a in range(3)] == [
        BACKOFF_BASE_SECONDS,
        BACKOFF_BASE_SECONDS * 2,
        BACKOFF_BASE_SECONDS * 4,
    ]
    assert backoff_delay(30, lambda: 1.0) == BACKOFF_CAP_SECONDS
    assert backoff_delay(3, lambda: 0.0) == 0.0
    assert backoff_delay(2, lambda: 0.5) == 0.5 * min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 4)


def test_pacer_spaces_calls_by_the_rate():
    clock = FakeClock()
    pacer = Pacer(10, clock.monotonic, clock.sleep)
    for _ in range(5):
        pacer.wait()
    assert clock.sleeps == pytest.approx([0.1] * 4)
    clock.now += 5  # idle time is not banked into a burst
    pacer.wait()
    pacer.wait()
    assert clock.sleeps[-1] == pytest.approx(0.1) and len(clock.sleeps) == 5


def test_pacer_never_exceeds_the_account_limit():
    clock = FakeClock()
    pacer = Pacer(1000, clock.monotonic, clock.sleep)
    for _ in range(51):
        pacer.wait()
    assert clock.now - 1000.0 == pytest.approx(1.0)


# -- retries against a refused connection (a real transient failure) ------------------------


def test_connection_errors_are_retried_then_raised_bounded_by_attempts(refused_endpoint):
    clock = FakeClock()
    client = offline_client(refused_endpoint, clock, max_retries=3, retry_budget_seconds=1000, calls_per_second=50)
    with pytest.raises(errors.TransientError) as info:
        client.describe_refresh_quota()
    assert info.value.code == "Local.ConnectionError"
    assert client.calls_made == 4  # the first attempt and 3 retries
    backoffs = [s for s in clock.sleeps if s > 0.03]
    assert backoffs == [BACKOFF_BASE_SECONDS * 2**a for a in range(3)]


def test_retries_stop_when_the_time_budget_is_spent(refused_endpoint):
    clock = FakeClock()
    client = offline_client(refused_endpoint, clock, max_retries=20, retry_budget_seconds=5.0)
    with pytest.raises(errors.TransientError):
        client.describe_refresh_quota()
    # Sleeps of 0.5, 1, 2 fit in 5 s; the next (4 s) would pass the budget.
    assert client.calls_made == 4
    assert clock.now - 1000.0 <= 5.0


def test_no_retries_when_max_retries_is_zero(refused_endpoint):
    client = offline_client(refused_endpoint, max_retries=0)
    with pytest.raises(errors.TransientError):
        client.call("DescribeRefreshQuota", {})
    assert client.calls_made == 1


def test_import_pulls_in_no_official_sdk():
    # `email` comes with http.client under requests; XML is parsed only for an XML error body.
    code = (
        "import sys, handler.cdn.client as c; "
        "print(sorted(m for m in sys.modules if m.startswith(('alibabacloud', 'aliyunsdk', 'Tea', 'darabonba', 'xml'))))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip() == "[]"


# -- answers that are not the API's JSON (a proxy or gateway in the way) -------------------


class _RawAnswers:
    """A loopback HTTP server answering every POST with the next (status, content type, body) in a list."""

    def __init__(self, answers):
        import http.server
        import threading

        self.answers = list(answers)
        self.bodies: list[bytes] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                outer.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                status, ctype, body = outer.answers.pop(0) if outer.answers else (200, "application/json", b"{}")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def raw_server():
    servers = []

    def start(*answers):
        server = _RawAnswers(answers)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


XML_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><RequestId>R-XML</RequestId>'
    b"<HostId>cdn.aliyuncs.com</HostId><Code>InvalidDomain.NotFound</Code>"
    b"<Message>The domain provided does not belong to you.</Message></Error>"
)


@pytest.mark.parametrize(
    "status, ctype, body, error_class, code",
    [
        (404, "text/xml", XML_ERROR, errors.BadUrlError, "InvalidDomain.NotFound"),
        (502, "text/html", b"<html><body>Bad Gateway</body></html>", errors.TransientError, "HTTP502"),
        (504, "text/plain", b"upstream timed out", errors.TransientError, "HTTP504"),
        (403, "text/plain", b"\x00\xff garbage", errors.UnexpectedApiError, "HTTP403"),
        (400, "application/json", b'["not", "an", "object"]', errors.UnexpectedApiError, "HTTP400"),
        (200, "text/html", b"<html>captive portal</html>", errors.UnexpectedApiError, "InvalidResponse"),
    ],
)
def test_non_json_answers_still_become_typed_errors(raw_server, status, ctype, body, error_class, code):
    server = raw_server((status, ctype, body))
    client = offline_client(server.base_url, max_retries=0)
    with pytest.raises(error_class) as info:
        client.push_object_cache(["cdn.example.com/a.png"])
    assert info.value.code == code
    if status != 200:
        assert info.value.status == status
    if ctype == "text/xml":
        assert info.value.request_id == "R-XML"
        assert "does not belong" in info.value.message


def test_server_echoing_the_secret_never_reaches_the_error(raw_server):
    from handler.cdn.signing import percent_encode

    quoted = f"{percent_encode(TOKEN)} {percent_encode(percent_encode(TOKEN))}"
    echo = json.dumps({"Code": "Weird", "Message": f"you sent {SECRET} and {TOKEN} ({quoted})", "RequestId": "R1"})
    echo = echo.encode()
    server = raw_server((400, "application/json", echo))
    client = offline_client(server.base_url, signature="v2")
    with pytest.raises(errors.CdnError) as info:
        client.push_object_cache(["cdn.example.com/a.png"])
    for text in (str(info.value), repr(info.value), info.value.message):
        assert SECRET not in text and TOKEN not in text and "value" not in text
    assert f"SecurityToken={percent_encode(TOKEN)}" in server.bodies[0].decode()  # V2 carries it in the body


def test_comma_separated_task_ids_are_split_and_stripped(raw_server):
    server = raw_server((200, "application/json", b'{"PushTaskId": "11, 12,13,", "RequestId": "R2"}'))
    result = offline_client(server.base_url).push_object_cache(["cdn.example.com/a", "cdn.example.com/b"])
    assert result.task_ids == ["11", "12", "13"]
    assert result.request_id == "R2"


def test_quota_tolerates_missing_fields(raw_server):
    server = raw_server((200, "application/json", b'{"PreloadQuota": "1000", "PreloadRemain": "998", "RequestId": "R3"}'))
    quota = offline_client(server.base_url).describe_refresh_quota()
    assert (quota.preload_quota, quota.preload_remain, quota.url_quota, quota.dir_remain) == (1000, 998, None, None)
    assert quota.request_id == "R3"
