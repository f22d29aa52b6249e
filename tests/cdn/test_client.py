"""The CDN client: local refusals, retry and pacing arithmetic, then real HTTP against the CDN API double."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
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
from handler.ports import Problem
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
    settings = CdnSettings(endpoint=endpoint, connect_timeout=1.0, read_timeout=1.0)._replace(**overrides)
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
    assert info.value.code == "Local.NotSent"  # refused: nothing was sent, so a retry is safe
    assert info.value.kind == Problem.NOT_ACCEPTED
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
    """A loopback HTTP server answering every POST with the next (status, content type, body[, headers])."""

    def __init__(self, answers):
        import http.server
        import threading

        self.answers = list(answers)
        self.bodies: list[bytes] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                outer.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                answer = outer.answers.pop(0) if outer.answers else (200, "application/json", b"{}")
                status, ctype, body, extra = (*answer, {})[:4]
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
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
        (502, "text/html", b"<html><body>Bad Gateway</body></html>", errors.TransientError, "Local.GatewayTimeout"),
        (504, "text/plain", b"upstream timed out", errors.TransientError, "Local.GatewayTimeout"),
        (500, "text/plain", b"oops", errors.TransientError, "HTTP500"),
        (403, "text/plain", b"\x00\xff garbage", errors.UnexpectedApiError, "HTTP403"),
        (400, "application/json", b'["not", "an", "object"]', errors.UnexpectedApiError, "HTTP400"),
        (200, "text/html", b"<html>captive portal</html>", errors.TransientError, "Local.InvalidResponse"),
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


# -- real HTTP against the CDN API double ------------------------------------------------------

AK = "test-ak"
SIGNATURES = ["v3", "v2"]


def http_client(double, signature="v3", secret=SECRET, token=None, clock=None, **overrides) -> CdnClient:
    clock = clock or FakeClock()
    settings = CdnSettings(
        endpoint=double.base_url, signature=signature, read_timeout=5.0, max_retries=3
    )._replace(**overrides)
    return CdnClient(
        Credentials(AK, secret, token), settings, sleep=clock.sleep, monotonic=clock.monotonic, random=lambda: 0.5
    )


URLS = ["https://cdn.example.com/a.png", "img.example.com/b/c.jpg?x=1", "http://cdn.example.com/图片/猫.png"]


@pytest.mark.parametrize("signature", SIGNATURES)
def test_push_is_accepted_with_either_signature(cdn_double, signature):
    client = http_client(cdn_double, signature)
    result = client.push_object_cache(URLS)
    assert len(result.task_ids) == 3 and all(t.isdigit() for t in result.task_ids)
    assert result.request_id
    assert cdn_double.pushed_urls == URLS
    seen = cdn_double.received[-1]
    assert (seen.action, seen.signature_version, seen.version, seen.urls) == ("PushObjectCache", signature, "2018-05-10", URLS)
    assert seen.params["Format"] == "JSON"
    assert client.calls_made == 1


@pytest.mark.parametrize("signature", SIGNATURES)
def test_sts_token_is_sent_and_required(make_cdn_double, signature):
    double = make_cdn_double(security_token=TOKEN)
    assert http_client(double, signature, token=TOKEN).push_object_cache(URLS[:1]).task_ids
    if signature == "v2":
        assert double.received[-1].params["SecurityToken"] == TOKEN
    with pytest.raises(errors.FatalConfigError) as info:
        http_client(double, signature, token="some-other-token").push_object_cache(URLS[:1])
    assert info.value.code == "InvalidSecurityToken.Malformed"
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize("signature", SIGNATURES)
def test_optional_push_parameters_come_from_settings_or_arguments(cdn_double, signature):
    client = http_client(
        cdn_double, signature, area="overseas", l2_preload=True, with_header='{"Accept-Encoding":["gzip"]}'
    )
    client.push_object_cache(URLS[:1])
    params = cdn_double.received[-1].params
    assert (params["Area"], params["L2Preload"], params["WithHeader"]) == (
        "overseas", "true", '{"Accept-Encoding":["gzip"]}'
    )
    client.push_object_cache(URLS[:1], area="domestic", l2_preload=False, with_header={"X-Warm": ["1"]})
    params = cdn_double.received[-1].params
    assert (params["Area"], params["L2Preload"], params["WithHeader"]) == ("domestic", "false", '{"X-Warm":["1"]}')
    http_client(cdn_double, signature).push_object_cache(URLS[:1])
    assert not {"Area", "L2Preload", "WithHeader"} & set(cdn_double.received[-1].params)


@pytest.mark.parametrize("signature", SIGNATURES)
def test_describe_refresh_quota(cdn_double, signature):
    cdn_double.set_quota(quota=1500, remain=1234)
    quota = http_client(cdn_double, signature).describe_refresh_quota()
    assert (quota.preload_quota, quota.preload_remain) == (1500, 1234)
    assert isinstance(quota.url_quota, int) and isinstance(quota.dir_remain, int)
    assert quota.request_id


def test_describe_refresh_task_by_id_asks_ten_ids_at_a_time(cdn_double):
    client = http_client(cdn_double)
    urls = [f"https://cdn.example.com/t/{i}.png" for i in range(23)]
    ids = client.push_object_cache(urls).task_ids
    tasks = client.describe_refresh_task_by_id(ids)
    assert [t.task_id for t in tasks] == ids
    assert [t.object_path for t in tasks] == urls
    assert {t.object_type for t in tasks} == {"preload"}
    assert all(t.status in ("Pending", "Refreshing", "Complete") and t.creation_time.endswith("Z") for t in tasks)
    asked = [r.params["TaskId"].count(",") + 1 for r in cdn_double.received if r.action == "DescribeRefreshTaskById"]
    assert asked == [10, 10, 3]
    assert client.describe_refresh_task_by_id([]) == []


def test_generic_call_returns_the_answer(cdn_double):
    answer = http_client(cdn_double).call("DescribeRefreshQuota", {})
    assert answer["PreloadQuota"] == "1000" and answer["RequestId"]


ERROR_CASES = [
    ("Throttling", 503, errors.TransientError),
    ("ServiceUnavailable", 503, errors.TransientError),
    ("InternalError", 500, errors.TransientError),
    ("PreloadQueueFull", 403, errors.RetryLaterError),
    ("QuotaExceeded.Refresh", 400, errors.QuotaExhaustedError),
    ("InvalidObjectPath.Malformed", 400, errors.BadUrlError),
    ("InvalidDomain.NotFound", 404, errors.BadUrlError),
    ("InvalidDomain.Offline", 404, errors.BadUrlError),
    ("InvalidExtensiveDomain.ValueNotSupported", 400, errors.BadUrlError),
    ("InvalidObjectPath.Size.Malformed", 400, errors.BatchTooLargeError),
    ("InvalidAccessKeyId.NotFound", 404, errors.FatalConfigError),
    ("SignatureDoesNotMatch", 400, errors.FatalConfigError),
    ("NoPermission", 403, errors.FatalConfigError),
    ("Forbidden.RAM", 403, errors.FatalConfigError),
    ("OperationDenied", 403, errors.FatalConfigError),
    ("IllegalOperation", 403, errors.FatalConfigError),
    ("MissingParameter", 400, errors.FatalConfigError),
    ("Brand.New.Code", 400, errors.UnexpectedApiError),
    ("Brand.New.Outage", 502, errors.TransientError),
]


@pytest.mark.parametrize("signature", SIGNATURES)
@pytest.mark.parametrize("code, status, error_class", ERROR_CASES)
def test_each_api_error_becomes_its_typed_exception(cdn_double, caplog, signature, code, status, error_class):
    caplog.set_level(logging.DEBUG)
    client = http_client(cdn_double, signature, token=TOKEN, max_retries=0)
    cdn_double.inject(code, status)
    with pytest.raises(errors.CdnError) as info:
        client.push_object_cache(URLS)
    error = info.value
    assert type(error) is error_class
    assert (error.code, error.status) == (code, status)
    assert error.request_id == cdn_double.received[-1].request_id
    assert client.calls_made == 1 and cdn_double.pushed_urls == []
    for text in (str(error), repr(error), error.message, caplog.text):
        assert SECRET not in text and TOKEN not in text


@pytest.mark.parametrize("signature", SIGNATURES)
def test_non_transient_errors_are_not_retried(cdn_double, signature):
    client = http_client(cdn_double, signature, max_retries=5)
    cdn_double.inject("InvalidDomain.NotFound", 404, count=3)
    with pytest.raises(errors.BadUrlError):
        client.push_object_cache(URLS)
    assert client.calls_made == 1


@pytest.mark.parametrize("signature", SIGNATURES)
def test_a_wrong_secret_is_a_real_signature_mismatch(cdn_double, caplog, signature):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-secret-value"
    client = http_client(cdn_double, signature, secret=wrong, token=TOKEN)
    with pytest.raises(errors.FatalConfigError) as info:
        client.push_object_cache(URLS)
    assert info.value.code == "SignatureDoesNotMatch" and info.value.status == 400
    assert client.calls_made == 1
    for text in (str(info.value), repr(info.value), caplog.text):
        assert wrong not in text and TOKEN not in text


def test_an_unknown_access_key_is_fatal(make_cdn_double):
    double = make_cdn_double(access_key_id="another-ak")
    with pytest.raises(errors.FatalConfigError) as info:
        http_client(double).describe_refresh_quota()
    assert info.value.code == "InvalidAccessKeyId.NotFound"


@pytest.mark.parametrize("signature", SIGNATURES)
def test_retries_succeed_after_transient_faults_with_fresh_nonces(cdn_double, caplog, signature):
    caplog.set_level(logging.DEBUG, logger="handler.cdn")
    clock = FakeClock()
    client = http_client(cdn_double, signature, clock=clock, token=None, max_retries=3)
    cdn_double.inject("Throttling", 503, count=1)
    cdn_double.inject("InternalError", 500, count=1)
    cdn_double.inject("ServiceUnavailable", 503, count=1)
    result = client.push_object_cache(URLS)
    assert len(result.task_ids) == 3
    assert client.calls_made == 4
    if signature == "v2":
        attempts = cdn_double.received[-4:]
        assert len({r.params["SignatureNonce"] for r in attempts}) == 4
        assert len({r.params["Signature"] for r in attempts}) == 4
    backoffs = [s for s in clock.sleeps if s > 0.1]
    assert backoffs == [0.5 * BACKOFF_BASE_SECONDS * 2**a for a in range(3)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("PushObjectCache" in m and "urls=3" in m and "attempt=3" in m for m in debug)
    assert SECRET not in caplog.text


def test_v3_retries_carry_a_new_nonce_and_signature(cdn_double):
    # The double refuses a reused nonce (SignatureNonceUsed), so a retry that reused one would fail.
    client = http_client(cdn_double, "v3", max_retries=2)
    cdn_double.inject("ServiceUnavailable", 503, count=2)
    client.push_object_cache(URLS[:1])
    assert [r.error for r in cdn_double.received] == ["ServiceUnavailable", "ServiceUnavailable", None]


@pytest.mark.parametrize("signature", SIGNATURES)
def test_retries_give_up_after_max_retries(cdn_double, signature):
    clock = FakeClock()
    client = http_client(cdn_double, signature, clock=clock, max_retries=2, retry_budget_seconds=1000)
    cdn_double.inject("Throttling", 503, count=10)
    with pytest.raises(errors.TransientError) as info:
        client.push_object_cache(URLS)
    assert info.value.code == "Throttling"
    assert client.calls_made == 3 == cdn_double.calls()
    assert cdn_double.pushed_urls == []


def test_retries_give_up_when_the_time_budget_is_spent(cdn_double):
    clock = FakeClock()
    client = CdnClient(
        Credentials(AK, SECRET),
        CdnSettings(endpoint=cdn_double.base_url, max_retries=50, retry_budget_seconds=10.0),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        random=lambda: 1.0,
    )
    cdn_double.inject("ServiceUnavailable", 503, probability=1.0)
    with pytest.raises(errors.TransientError):
        client.describe_refresh_quota()
    # Backoffs 0.5 + 1 + 2 + 4 = 7.5 s fit in 10 s; the next (8 s) would not.
    assert client.calls_made == 5
    assert clock.now - 1000.0 <= 10.0


def test_a_read_timeout_is_retried_on_a_read(cdn_double):
    client = http_client(cdn_double, read_timeout=0.2, max_retries=1)
    cdn_double.inject(None, latency=1.0, count=1)
    assert client.describe_refresh_quota().preload_remain is not None
    assert client.calls_made == 2


def test_a_read_timeout_is_never_retried_on_a_submission(cdn_double):
    client = http_client(cdn_double, read_timeout=0.2, max_retries=3)
    cdn_double.inject(None, latency=0.6, count=1)
    with pytest.raises(errors.CdnError) as info:
        client.push_object_cache(URLS[:1])
    assert (info.value.code, info.value.kind, client.calls_made) == ("Local.Timeout", Problem.AMBIGUOUS, 1)
    time.sleep(0.6)
    assert cdn_double.pushed_urls == URLS[:1]  # the API took it: a retry would have pushed it twice


def test_timeout_gives_up_as_local_timeout(cdn_double, caplog):
    caplog.set_level(logging.DEBUG)
    client = http_client(cdn_double, read_timeout=0.2, max_retries=0, token=TOKEN)
    cdn_double.inject(None, latency=1.0, count=1)
    with pytest.raises(errors.TransientError) as info:
        client.describe_refresh_quota()
    assert info.value.code == "Local.Timeout" and info.value.status is None
    assert SECRET not in caplog.text and TOKEN not in str(info.value)


@pytest.mark.parametrize("signature", SIGNATURES)
def test_a_connection_closed_after_sending_is_ambiguous_and_not_retried(cdn_double, signature):
    client = http_client(cdn_double, signature, max_retries=3, token=None)
    cdn_double.inject(None, drop=True)
    with pytest.raises(errors.TransientError) as info:
        client.push_object_cache(URLS)
    assert (info.value.code, info.value.kind) == ("Local.ConnectionLost", Problem.AMBIGUOUS)
    assert client.calls_made == 1 and info.value.sent_at is not None


def test_answer_lost_after_accept_is_transient_and_the_urls_were_pushed(cdn_double):
    client = http_client(cdn_double, max_retries=0)
    cdn_double.inject(None, drop_after_accept=True)
    with pytest.raises(errors.TransientError) as info:
        client.push_object_cache(URLS)
    assert info.value.kind == Problem.AMBIGUOUS
    assert cdn_double.pushed_urls == URLS  # why a caller must treat it as "maybe accepted"


def test_pacing_keeps_calls_under_the_rate(cdn_double):
    clock = FakeClock()
    client = http_client(cdn_double, clock=clock, calls_per_second=20)
    for _ in range(5):
        client.describe_refresh_quota()
    assert clock.sleeps == pytest.approx([0.05] * 4)
    assert clock.now - 1000.0 == pytest.approx(0.2)


def test_one_pooled_session_serves_all_calls(cdn_double):
    client = http_client(cdn_double)
    session = client.session
    for _ in range(3):
        client.describe_refresh_quota()
    assert client.session is session
    client.close()


def test_a_redirect_is_not_followed(raw_server):
    target = raw_server((200, "application/json", b'{"PushTaskId": "1", "RequestId": "R"}'))
    redirect = raw_server((307, "text/plain", b"", {"Location": target.base_url + "/"}))
    client = offline_client(redirect.base_url, max_retries=0)
    with pytest.raises(errors.UnexpectedApiError) as info:
        client.push_object_cache(["cdn.example.com/a.png"])
    assert info.value.code == "HTTP307"
    assert target.bodies == []


def test_proxy_and_ca_settings_in_the_environment_are_still_honoured(monkeypatch):
    from handler.cdn.transport import _CONNECTION_ENV, new_session as _new_session

    for name in list(os.environ):
        if name.lower() in _CONNECTION_ENV:
            monkeypatch.delenv(name)
    assert _new_session().trust_env is False  # nothing to honour: no per-call environment look-ups
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert _new_session().trust_env is True
