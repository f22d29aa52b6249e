"""The local CDN API double over real HTTP, driven by hand-signed requests (handler/cdn/signing.py)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import urlencode

import pytest
import requests

from fixtures.cdn_double import TEST_AK, TEST_SK
from handler.cdn import signing

VERSION = "2018-05-10"
URL = "https://cdn.example.com/a.js"


@dataclass
class Remote:
    """A double in another process, as the signing helpers see it."""

    base_url: str
    clock: Callable[[], float]


def signing_clock(double) -> Callable[[], float]:
    """Real time (or the injected base clock): the double checks signatures on it, not on its CDN clock."""
    return getattr(double, "auth_clock", double.clock)


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime(signing.TIMESTAMP_FORMAT)


def v2_params(double, action: str, params: dict | None = None, *, secret: str = TEST_SK, method: str = "POST",
              nonce: str | None = None, timestamp: str | None = None, fmt: str | None = "JSON",
              access_key_id: str = TEST_AK, extra: dict | None = None) -> dict:
    """A V2-signed parameter set; `extra` is added after signing (to tamper with it)."""
    signed = {
        "Action": action,
        "Version": VERSION,
        "AccessKeyId": access_key_id,
        "SignatureMethod": signing.V2_METHOD,
        "SignatureVersion": signing.V2_VERSION,
        "SignatureNonce": nonce or str(uuid.uuid4()),
        "Timestamp": timestamp or stamp(signing_clock(double)()),
        **({"Format": fmt} if fmt is not None else {}),
        **(params or {}),
    }
    signed["Signature"] = signing.v2_signature(method, signed, secret)
    return {**signed, **(extra or {})}


def v2(double, action: str, params: dict | None = None, *, method: str = "POST", timeout: float = 5, **kwargs):
    """POST the parameters as a form (what our client does), or GET them as a query string."""
    signed = v2_params(double, action, params, method=method, **kwargs)
    if method == "GET":
        return requests.get(double.base_url + "/", params=signed, timeout=timeout)
    return requests.post(double.base_url + "/", data=signed, timeout=timeout)


def v3(double, action: str, query: dict | None = None, *, secret: str = TEST_SK, nonce: str | None = None,
       date: str | None = None, accept: str | None = "application/json", form: dict | None = None,
       signed_headers: dict | None = None, tamper: dict | None = None, timeout: float = 5):
    """A V3 (ACS3-HMAC-SHA256) POST with the RPC parameters in the query string, as the official SDK sends it."""
    query = query or {}
    body = urlencode(form).encode() if form else b""
    headers = {
        "host": double.base_url.split("//", 1)[1],
        "x-acs-action": action,
        "x-acs-version": VERSION,
        "x-acs-date": date or stamp(signing_clock(double)()),
        "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
        "x-acs-content-sha256": signing.sha256_hex(body),
        **(signed_headers or {}),
    }
    if accept:
        headers["accept"] = accept
    if form:
        headers["content-type"] = "application/x-www-form-urlencoded"
    canonical = signing.v3_canonical_request("POST", query, headers, headers, headers["x-acs-content-sha256"])
    headers["Authorization"] = signing.v3_authorization(TEST_AK, headers, signing.v3_signature(canonical, secret))
    headers.update(tamper or {})
    url = double.base_url + "/" + (f"?{signing.canonical_query(query)}" if query else "")
    return requests.post(url, headers=headers, data=body, timeout=timeout)


def push(double, *urls: str, **kwargs):
    return v2(double, "PushObjectCache", {"ObjectPath": "\n".join(urls)}, **kwargs)


def code_of(response) -> str:
    return response.json()["Code"]


# ---------------------------------------------------------------- signatures


def test_v2_form_post_is_accepted_and_recorded(cdn_double):
    response = push(cdn_double, URL, "img.example.com/b.png")
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["PushTaskId"].split(",")) == 2
    assert all(part.isdigit() for part in body["PushTaskId"].split(","))
    assert cdn_double.pushed_urls == [URL, "img.example.com/b.png"]
    record = cdn_double.received[-1]
    assert (record.action, record.signature_version, record.accepted, record.error) == ("PushObjectCache", "v2", True, None)
    assert record.request_id == body["RequestId"] == response.headers["x-acs-request-id"]


def test_v2_get_with_query_parameters_is_accepted(cdn_double):
    response = push(cdn_double, URL, method="GET")
    assert response.status_code == 200, response.text
    assert cdn_double.pushed_urls == [URL]


def test_v3_with_parameters_in_the_query_is_accepted(cdn_double):
    response = v3(cdn_double, "PushObjectCache", {"ObjectPath": f"{URL}\nhttp://cdn.example.com/x%20y~z.css"})
    assert response.status_code == 200, response.text
    assert cdn_double.pushed_urls == [URL, "http://cdn.example.com/x%20y~z.css"]
    assert cdn_double.received[-1].signature_version == "v3"


def test_v3_with_parameters_in_a_form_body_is_accepted(cdn_double):
    response = v3(cdn_double, "PushObjectCache", form={"ObjectPath": f"{URL}\nimg.example.com/b.png", "Area": "domestic"})
    assert response.status_code == 200, response.text
    assert cdn_double.pushed_urls == [URL, "img.example.com/b.png"]


def test_v2_parameters_split_between_query_and_form_are_all_signed(cdn_double):
    signed = v2_params(cdn_double, "PushObjectCache", {"ObjectPath": URL})
    form = {"ObjectPath": signed.pop("ObjectPath")}
    response = requests.post(cdn_double.base_url + "/", params=signed, data=form, timeout=5)
    assert response.status_code == 200, response.text
    assert cdn_double.pushed_urls == [URL]


def test_wrong_secret_is_signature_does_not_match(cdn_double):
    for response in (push(cdn_double, URL, secret="not-the-secret"),
                     v3(cdn_double, "PushObjectCache", {"ObjectPath": URL}, secret="not-the-secret")):
        assert response.status_code == 400
        assert code_of(response) == "SignatureDoesNotMatch"
    assert cdn_double.pushed_urls == []
    assert [r.error for r in cdn_double.received] == ["SignatureDoesNotMatch"] * 2


def test_unknown_access_key_is_not_found(cdn_double):
    response = push(cdn_double, URL, access_key_id="someone-else")
    assert (response.status_code, code_of(response)) == (404, "InvalidAccessKeyId.NotFound")


def test_a_request_without_signature_is_refused(cdn_double):
    signed = v2_params(cdn_double, "PushObjectCache", {"ObjectPath": URL})
    del signed["Signature"]
    response = requests.post(cdn_double.base_url + "/", data=signed, timeout=5)
    assert (response.status_code, code_of(response)) == (400, "MissingParameter")
    assert cdn_double.pushed_urls == []


def test_a_malformed_v3_authorization_is_incomplete_signature(cdn_double):
    response = v3(cdn_double, "PushObjectCache", {"ObjectPath": URL},
                  tamper={"Authorization": "ACS3-HMAC-SHA256 Credential=test-ak"})
    assert (response.status_code, code_of(response)) == (400, "IncompleteSignature")


def test_a_parameter_changed_after_signing_is_refused(cdn_double):
    tampered_v2 = push(cdn_double, URL, extra={"ObjectPath": "cdn.example.com/other.js"})
    signed_query = {"ObjectPath": URL}
    response = v3(cdn_double, "PushObjectCache", signed_query, tamper={"x-acs-action": "DescribeRefreshQuota"})
    assert code_of(tampered_v2) == code_of(response) == "SignatureDoesNotMatch"
    assert cdn_double.pushed_urls == []


def test_v3_body_must_match_its_signed_sha256(cdn_double):
    response = v3(cdn_double, "DescribeRefreshQuota", tamper={"x-acs-content-sha256": signing.sha256_hex(b"x")})
    assert code_of(response) == "SignatureDoesNotMatch"


def test_v3_x_acs_headers_must_all_be_signed(cdn_double):
    response = v3(cdn_double, "DescribeRefreshQuota", tamper={"x-acs-extra": "not signed"})
    assert (response.status_code, code_of(response)) == (400, "IncompleteSignature")


def test_an_empty_signature_type_parameter_is_signed_like_any_other(cdn_double):
    response = v2(cdn_double, "PushObjectCache", {"ObjectPath": URL, "SignatureType": ""})
    assert response.status_code == 200, response.text
    assert cdn_double.received[-1].params["SignatureType"] == ""


@pytest.mark.parametrize("signer", ["v2", "v3"])
def test_a_reused_nonce_is_refused(cdn_double, signer):
    def call():
        if signer == "v2":
            return push(cdn_double, URL, nonce="nonce-1")
        return v3(cdn_double, "PushObjectCache", {"ObjectPath": URL}, nonce="nonce-1")

    assert call().status_code == 200
    second = call()
    assert (second.status_code, code_of(second)) == (400, "SignatureNonceUsed")
    assert cdn_double.pushed_urls == [URL]


def test_a_forged_call_does_not_burn_the_nonce(cdn_double):
    assert code_of(push(cdn_double, URL, nonce="n-2", secret="forged")) == "SignatureDoesNotMatch"
    assert push(cdn_double, URL, nonce="n-2").status_code == 200


class FakeClock:
    def __init__(self, iso: str) -> None:
        self.now = datetime.strptime(iso, signing.TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("offset, accepted", [(-16 * 60, False), (-14 * 60, True), (14 * 60, True), (16 * 60, False)])
def test_a_timestamp_more_than_15_minutes_off_is_expired(make_cdn_double, offset, accepted):
    clock = FakeClock("2026-03-01T12:00:00Z")
    double = make_cdn_double(clock=clock)
    when = stamp(clock.now + offset)
    for response in (push(double, URL, timestamp=when), v3(double, "DescribeRefreshQuota", date=when)):
        if accepted:
            assert response.status_code == 200, response.text
        else:
            assert (response.status_code, code_of(response)) == (400, "InvalidTimeStamp.Expired")


@pytest.mark.parametrize("params, code", [
    ({"Timestamp": "2026-03-01 12:00:00"}, "InvalidTimeStamp.Format"),
    ({"Version": "2099-01-01"}, "InvalidVersion"),
])
def test_bad_common_parameters_are_refused(cdn_double, params, code):
    response = v2(cdn_double, "DescribeRefreshQuota", params)
    assert (response.status_code, code_of(response)) == (400, code)


def test_security_token_is_required_when_configured(make_cdn_double):
    double = make_cdn_double(security_token="sts-token")
    assert code_of(push(double, URL)) == "InvalidSecurityToken.Malformed"
    wrong = v2(double, "PushObjectCache", {"ObjectPath": URL, "SecurityToken": "other"})
    assert code_of(wrong) == "InvalidSecurityToken.Malformed"
    assert v2(double, "PushObjectCache", {"ObjectPath": URL, "SecurityToken": "sts-token"}).status_code == 200
    v3_ok = v3(double, "PushObjectCache", {"ObjectPath": URL}, signed_headers={"x-acs-security-token": "sts-token"})
    assert v3_ok.status_code == 200, v3_ok.text
    assert double.pushed_urls == [URL, URL]


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize("fmt", ["JSON", "json", "Json"])
def test_format_json_is_case_insensitive(cdn_double, fmt):
    response = push(cdn_double, URL, fmt=fmt)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["PushTaskId"].isdigit()


@pytest.mark.parametrize("fmt", ["XML", None])
def test_xml_is_the_default_answer(cdn_double, fmt):
    ok = push(cdn_double, URL, fmt=fmt)
    root = ET.fromstring(ok.content)
    assert root.tag == "PushObjectCacheResponse"
    assert root.findtext("PushTaskId").isdigit() and root.findtext("RequestId")
    refused = push(cdn_double, "other.example.org/a.js", fmt=fmt)
    error = ET.fromstring(refused.content)
    assert refused.status_code == 404 and error.tag == "Error"
    assert error.findtext("Code") == "InvalidDomain.NotFound"
    assert error.findtext("HostId") == "cdn.aliyuncs.com"
    assert error.findtext("Message") and error.findtext("RequestId")


def test_v3_without_format_answers_what_accept_asks(cdn_double):
    as_json = v3(cdn_double, "DescribeRefreshQuota")
    as_xml = v3(cdn_double, "DescribeRefreshQuota", accept=None)
    assert as_json.json()["PreloadQuota"] == "1000"
    assert ET.fromstring(as_xml.content).findtext("PreloadQuota") == "1000"


def test_error_bodies_carry_the_documented_fields(cdn_double):
    body = push(cdn_double, "cdn.example.com/a b.js").json()
    assert set(body) == {"RequestId", "HostId", "Code", "Message"}
    assert body["HostId"] == "cdn.aliyuncs.com"


def test_every_answer_has_a_unique_upper_case_request_id(cdn_double):
    ids = [push(cdn_double, f"cdn.example.com/{i}.js").json()["RequestId"] for i in range(5)]
    ids.append(push(cdn_double, "nowhere.example.org/x").json()["RequestId"])
    assert len(set(ids)) == 6
    assert all(i == i.upper() and uuid.UUID(i) for i in ids)


def test_unknown_action_is_refused(cdn_double):
    response = v2(cdn_double, "DeleteEverything")
    assert (response.status_code, code_of(response)) == (404, "InvalidAction.NotFound")


# ---------------------------------------------------------------- PushObjectCache rules


def test_urls_are_split_on_lf_and_crlf_and_a_trailing_newline_is_dropped(cdn_double):
    response = v2(cdn_double, "PushObjectCache", {"ObjectPath": "cdn.example.com/a.js\r\nhttp://img.example.com/b.png\n"})
    assert response.status_code == 200, response.text
    assert len(response.json()["PushTaskId"].split(",")) == 2
    assert cdn_double.pushed_urls == ["cdn.example.com/a.js", "http://img.example.com/b.png"]


def test_a_newline_inside_a_url_makes_a_second_url(cdn_double):
    response = push(cdn_double, "https://cdn.example.com/a.js\nevil.example.org/b.js")
    assert (response.status_code, code_of(response)) == (404, "InvalidDomain.NotFound")
    assert cdn_double.pushed_urls == []


def test_the_cap_on_urls_per_call_is_enforced(make_cdn_double):
    double = make_cdn_double(cap=3)
    refused = push(double, *[f"cdn.example.com/{i}.js" for i in range(4)])
    assert (refused.status_code, code_of(refused)) == (400, "InvalidObjectPath.Size.Malformed")
    assert "bigger than 3" in refused.json()["Message"]
    assert double.pushed_urls == []
    assert push(double, *[f"cdn.example.com/{i}.js" for i in range(3)]).status_code == 200
    assert len(double.pushed_urls) == 3


def test_the_default_cap_is_100(cdn_double):
    assert code_of(push(cdn_double, *[f"cdn.example.com/{i}.js" for i in range(101)])) == "InvalidObjectPath.Size.Malformed"
    assert push(cdn_double, *[f"cdn.example.com/{i}.js" for i in range(100)]).status_code == 200


def test_only_the_accounts_domains_are_accepted(cdn_double):
    response = push(cdn_double, URL, "https://www.example.com/a.js")
    assert (response.status_code, code_of(response)) == (404, "InvalidDomain.NotFound")
    assert cdn_double.pushed_urls == []  # one bad URL fails the whole call
    assert push(cdn_double, "HTTPS://CDN.Example.com/A.js").status_code == 200


def test_wildcard_domains_are_not_supported(make_cdn_double):
    double = make_cdn_double(domains=["cdn.example.com", "*.wild.example.com"])
    for url in ("https://a.wild.example.com/x.js", "*.wild.example.com/x.js"):
        response = push(double, url)
        assert (response.status_code, code_of(response)) == (400, "InvalidExtensiveDomain.ValueNotSupported")
    assert double.pushed_urls == []


@pytest.mark.parametrize(
    "url",
    [
        "cdn.example.com/a b.js",
        "cdn.example.com/a\tb.js",
        "cdn.example.com/a\rb.js",
        "cdn.example.com/a\x01b.js",
        "cdn.example.com/a\x7fb.js",
        "cdn.example.com/a\u3000b.js",
        "https://cdn.example.com/" + "a" * 1001,
        "cdn.example.com",
        "cdn.example.com/",
        "https://cdn.example.com/images/",
        "ftp://cdn.example.com/a.js",
    ],
    ids=["space", "tab", "cr", "control", "del", "ideographic-space", "over-1024", "no-path", "root", "directory", "ftp"],
)
def test_malformed_urls_are_refused_and_nothing_is_pushed(cdn_double, url):
    response = push(cdn_double, URL, url)
    assert (response.status_code, code_of(response)) == (400, "InvalidObjectPath.Malformed")
    assert cdn_double.pushed_urls == []


def test_an_empty_line_between_urls_is_malformed(cdn_double):
    assert code_of(push(cdn_double, URL, "", URL)) == "InvalidObjectPath.Malformed"


def test_a_url_of_exactly_1024_characters_is_accepted(cdn_double):
    url = "https://cdn.example.com/" + "a" * (1024 - len("https://cdn.example.com/"))
    assert len(url) == 1024
    assert push(cdn_double, url).status_code == 200


def test_area_must_be_domestic_or_overseas(cdn_double):
    assert v2(cdn_double, "PushObjectCache", {"ObjectPath": URL, "Area": "overseas"}).status_code == 200
    response = v2(cdn_double, "PushObjectCache", {"ObjectPath": URL, "Area": "mars"})
    assert (response.status_code, code_of(response)) == (400, "InvalidParameter")
    assert cdn_double.pushed_urls == [URL]


def test_object_path_is_required(cdn_double):
    response = v2(cdn_double, "PushObjectCache")
    assert (response.status_code, code_of(response)) == (400, "MissingParameter")


# ---------------------------------------------------------------- quota, throttling, tasks


def quota(double) -> dict:
    response = v2(double, "DescribeRefreshQuota")
    assert response.status_code == 200, response.text
    return response.json()


def test_describe_refresh_quota_names_and_string_types(cdn_double):
    push(cdn_double, URL, "cdn.example.com/b.js")
    body = quota(cdn_double)
    names = [f"{kind}{part}" for kind in ("Preload", "Url", "Dir", "Block", "Regex") for part in ("Quota", "Remain")]
    assert set(names) <= set(body)
    assert all(isinstance(body[name], str) and body[name].isdigit() for name in names)
    assert (body["PreloadQuota"], body["PreloadRemain"]) == ("1000", "998")


def test_a_call_beyond_the_daily_quota_pushes_nothing(make_cdn_double):
    double = make_cdn_double(quota=5)
    assert push(double, *[f"cdn.example.com/{i}.js" for i in range(3)]).status_code == 200
    refused = push(double, *[f"cdn.example.com/{i}.js" for i in range(3, 6)])
    assert (refused.status_code, code_of(refused)) == (400, "QuotaExceeded.Refresh")
    assert len(double.pushed_urls) == 3
    assert push(double, "cdn.example.com/x.js", "cdn.example.com/y.js").status_code == 200
    assert quota(double)["PreloadRemain"] == "0"


def test_the_quota_refills_at_midnight_utc_plus_8(make_cdn_double):
    clock = FakeClock("2026-03-01T15:59:58Z")  # 23:59:58 in UTC+8
    double = make_cdn_double(quota=2, clock=clock)
    assert push(double, URL, "cdn.example.com/b.js").status_code == 200
    clock.now += 1  # 15:59:59 UTC: still the same quota day
    assert code_of(push(double, "cdn.example.com/c.js")) == "QuotaExceeded.Refresh"
    clock.now += 1  # 16:00:00 UTC = 00:00:00 UTC+8
    assert push(double, "cdn.example.com/c.js").status_code == 200
    assert quota(double)["PreloadRemain"] == "1"
    clock.now += 8 * 3600  # 00:00 UTC, a day boundary elsewhere but not in UTC+8
    assert quota(double)["PreloadRemain"] == "1"


def test_set_quota_changes_quota_and_what_is_left(cdn_double):
    cdn_double.set_quota(quota=50, remain=1)
    assert (quota(cdn_double)["PreloadQuota"], quota(cdn_double)["PreloadRemain"]) == ("50", "1")
    assert code_of(push(cdn_double, URL, URL)) == "QuotaExceeded.Refresh"


def test_more_calls_per_second_than_allowed_are_throttled(make_cdn_double):
    clock = FakeClock("2026-03-01T12:00:00Z")
    double = make_cdn_double(calls_per_second=3, clock=clock)
    assert [push(double, URL).status_code for _ in range(2)] == [200, 200]
    assert quota(double)  # every action counts toward the limit
    throttled = push(double, URL)
    assert (throttled.status_code, code_of(throttled)) == (503, "Throttling")
    clock.now += 0.5
    assert code_of(push(double, URL)) == "Throttling"
    clock.now += 0.5  # a full second after the first three calls
    assert push(double, URL).status_code == 200
    assert len(double.pushed_urls) == 3


def test_describe_refresh_task_by_id(make_cdn_double):
    clock = FakeClock("2026-03-01T12:00:00Z")
    double = make_cdn_double(clock=clock, task_seconds=60)
    task_ids = push(double, URL, "img.example.com/b.png").json()["PushTaskId"].split(",")

    def tasks(ids: str):
        return v2(double, "DescribeRefreshTaskById", {"TaskId": ids})

    body = tasks(",".join(task_ids + ["999"])).json()
    assert body["TotalCount"] == 2
    first = body["Tasks"][0]
    assert first == {"TaskId": task_ids[0], "ObjectPath": URL, "ObjectType": "preload", "Status": "Refreshing",
                     "Process": "0%", "CreationTime": "2026-03-01T12:00:00Z", "Description": ""}
    clock.now += 60
    assert {t["Status"] for t in tasks(",".join(task_ids)).json()["Tasks"]} == {"Complete"}
    too_many = tasks(",".join(str(i) for i in range(11)))
    assert (too_many.status_code, code_of(too_many)) == (400, "InvalidTaskId.ValueNotSupported")
    assert code_of(v2(double, "DescribeRefreshTaskById")) == "MissingParameter"


def test_calls_counts_by_action(cdn_double):
    push(cdn_double, URL)
    quota(cdn_double)
    quota(cdn_double)
    assert (cdn_double.calls(), cdn_double.calls("PushObjectCache"), cdn_double.calls("DescribeRefreshQuota")) == (3, 1, 2)


# ---------------------------------------------------------------- fault injection


def test_an_injected_error_answers_the_next_n_calls(cdn_double):
    cdn_double.inject("ServiceUnavailable", 503, count=2)
    answers = [push(cdn_double, URL) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert code_of(answers[0]) == "ServiceUnavailable"
    assert cdn_double.pushed_urls == [URL]
    assert [r.fault for r in cdn_double.received] == ["error", "error", None]


def test_an_injected_error_can_target_one_action(cdn_double):
    cdn_double.inject("PreloadQueueFull", 403, action="PushObjectCache")
    assert quota(cdn_double)["PreloadRemain"] == "1000"
    refused = push(cdn_double, URL)
    assert (refused.status_code, code_of(refused)) == (403, "PreloadQueueFull")
    assert push(cdn_double, URL).status_code == 200


def test_probabilistic_faults_follow_the_seed(make_cdn_double):
    import random

    double = make_cdn_double(seed=7)
    double.inject("Throttling", 503, probability=0.5)
    outcomes = [v2(double, "DescribeRefreshQuota").status_code for _ in range(20)]
    draws = random.Random(7)
    assert outcomes == [503 if draws.random() < 0.5 else 200 for _ in range(20)]
    assert {200, 503} == set(outcomes)
    double.seed(7)  # the same seed replays the same sequence
    assert [v2(double, "DescribeRefreshQuota").status_code for _ in range(20)] == outcomes
    double.reset_faults()
    assert all(v2(double, "DescribeRefreshQuota").status_code == 200 for _ in range(5))


def test_injected_latency_delays_the_answer(cdn_double):
    import time

    cdn_double.inject(None, latency=0.3)
    started = time.monotonic()
    slow = push(cdn_double, URL)
    assert slow.status_code == 200 and time.monotonic() - started >= 0.3
    cdn_double.inject("Throttling", 503, latency=0.2)
    started = time.monotonic()
    assert code_of(push(cdn_double, URL)) == "Throttling"
    assert time.monotonic() - started >= 0.2
    with pytest.raises(requests.Timeout):
        cdn_double.inject(None, latency=0.5)
        push(cdn_double, URL, timeout=0.1)


def test_a_dropped_connection_answers_nothing_and_pushes_nothing(cdn_double):
    cdn_double.inject(None, drop=True)
    with pytest.raises(requests.ConnectionError):
        push(cdn_double, URL)
    assert cdn_double.pushed_urls == []
    assert quota(cdn_double)["PreloadRemain"] == "1000"
    assert push(cdn_double, URL).status_code == 200


def test_drop_after_accept_pushes_but_loses_the_answer(cdn_double):
    cdn_double.inject(None, drop_after_accept=True)
    with pytest.raises(requests.ConnectionError):
        push(cdn_double, URL, "cdn.example.com/b.js")
    assert cdn_double.pushed_urls == [URL, "cdn.example.com/b.js"]
    assert quota(cdn_double)["PreloadRemain"] == "998"
    record = cdn_double.received[0]
    assert (record.accepted, record.fault) == (True, "drop_after_accept")


def test_reset_faults_clears_pending_faults(cdn_double):
    cdn_double.inject("InternalError", 500, count=5)
    cdn_double.reset_faults()
    assert push(cdn_double, URL).status_code == 200


def test_a_fault_needs_something_to_do(cdn_double):
    with pytest.raises(ValueError):
        cdn_double.inject(None)


# ---------------------------------------------------------------- lifecycle, concurrency, admin


def test_stop_closes_the_port():
    from handler.local.cdn_double import CdnDouble

    with CdnDouble(TEST_AK, TEST_SK, ["cdn.example.com"]) as double:
        session = requests.Session()  # a kept-alive connection must not outlive stop() either
        assert session.post(double.base_url + "/", data=v2_params(double, "DescribeRefreshQuota"), timeout=5).ok
    with pytest.raises(requests.ConnectionError):
        session.post(double.base_url + "/", data=v2_params(double, "DescribeRefreshQuota"), timeout=5)


def test_concurrent_pushes_are_all_counted_once(make_cdn_double):
    from concurrent.futures import ThreadPoolExecutor

    double = make_cdn_double(calls_per_second=1000, quota=10_000)
    urls = [f"https://cdn.example.com/{i}.js" for i in range(64)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda url: push(double, url), urls))
    assert all(a.status_code == 200 for a in answers)
    assert sorted(double.pushed_urls) == sorted(urls)
    assert len({a.json()["PushTaskId"] for a in answers}) == 64
    assert quota(double)["PreloadRemain"] == str(10_000 - 64)


def test_admin_paths_inspect_and_steer(cdn_double):
    push(cdn_double, URL)
    seen = requests.get(cdn_double.base_url + "/_double/received", timeout=5).json()
    assert seen["pushed_urls"] == [URL]
    assert seen["received"][0]["action"] == "PushObjectCache" and seen["received"][0]["accepted"] is True
    assert requests.post(cdn_double.base_url + "/_double/faults", json={"code": "Throttling", "status": 503}, timeout=5).ok
    assert code_of(push(cdn_double, URL)) == "Throttling"
    assert requests.post(cdn_double.base_url + "/_double/quota", json={"remain": 0}, timeout=5).ok
    assert code_of(push(cdn_double, URL)) == "QuotaExceeded.Refresh"
    assert requests.post(cdn_double.base_url + "/_double/faults", json={"nonsense": 1}, timeout=5).status_code == 400
    assert requests.delete(cdn_double.base_url + "/_double/received", timeout=5).ok
    assert cdn_double.pushed_urls == [] and cdn_double.calls() == 0


def test_the_cli_prints_its_url_first_serves_and_exits_on_sigterm():
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "handler.local.cdn_double", "--port", "0", "--key", TEST_AK, "--secret", TEST_SK,
         "--domains", "cdn.example.com,img.example.com", "--quota", "7", "--cap", "5"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        remote = Remote(base_url, time.time)  # the signing helpers need only these two
        assert push(remote, URL).status_code == 200
        assert quota(remote)["PreloadRemain"] == "6"
        assert code_of(push(remote, *[URL] * 6)) == "InvalidObjectPath.Size.Malformed"
        seen = requests.get(base_url + "/_double/received", timeout=5).json()
        assert seen["pushed_urls"] == [URL]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stderr.read() == ""  # quiet without --verbose
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


# ---------------------------------------------------------------- the CDN behind the API: clock, origin, edge, tasks

T0 = 1_795_000_000.0  # 2026-11-18T11:06:40Z, pinned so that tasks and quota days are deterministic
OBJ = "https://cdn.example.com/app.js"


@pytest.fixture
def cdn(make_cdn_double):
    """A double on a pinned clock with a closed origin: only objects a test uploads exist."""
    double = make_cdn_double(open_origin=False)
    double.set_clock(T0)
    return double


def refresh(double, *urls: str, **params):
    return v2(double, "RefreshObjectCaches", {"ObjectPath": "\n".join(urls), **params})


def by_id(double, ids: str) -> list[dict]:
    response = v2(double, "DescribeRefreshTaskById", {"TaskId": ids})
    assert response.status_code == 200, response.text
    return response.json()["Tasks"]


def search(double, **params) -> dict:
    response = v2(double, "DescribeRefreshTasks", {k: str(v) for k, v in params.items()})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_fresh_url_prefetched_is_cached_with_the_origin_version_once_its_task_completes(cdn):
    cdn.set_origin(OBJ, "v1")
    task_id = push(cdn, OBJ).json()["PushTaskId"]
    assert [t["Status"] for t in by_id(cdn, task_id)] == ["Refreshing"]
    cdn.advance(179)
    assert cdn.cached(OBJ) is None  # still running: the edge holds nothing yet
    cdn.advance(1)
    [task] = by_id(cdn, task_id)
    assert (task["Status"], task["Process"], task["ObjectType"]) == ("Complete", "100%", "preload")
    assert cdn.cached(OBJ) == "v1" == cdn.cached("http://cdn.example.com/app.js")  # one object, either scheme
    assert cdn.cache() == {"cdn.example.com/app.js": "v1"}


def test_an_overwritten_object_prefetched_without_refresh_stays_stale(cdn):
    cdn.set_origin(OBJ, "v1")
    assert cdn.viewer_get(OBJ) == "v1"  # a viewer's miss fills the edge
    cdn.set_origin(OBJ, "v2")  # the overwrite
    task_id = push(cdn, OBJ).json()["PushTaskId"]
    cdn.advance(3600)
    assert [t["Status"] for t in by_id(cdn, task_id)] == ["Complete"]  # the API says all is well...
    assert cdn.cached(OBJ) == "v1"  # ...and the edge still serves the old copy


def test_refresh_then_prefetch_after_the_refresh_completes_serves_the_new_version(cdn):
    cdn.set_origin(OBJ, "v1")
    cdn.viewer_get(OBJ)
    cdn.set_origin(OBJ, "v2")
    refresh_id = refresh(cdn, OBJ).json()["RefreshTaskId"]
    cdn.advance(300)
    [task] = by_id(cdn, refresh_id)
    assert (task["ObjectType"], task["Status"]) == ("file", "Complete")
    assert cdn.cached(OBJ) is None  # the refresh emptied the entry
    push(cdn, OBJ)
    cdn.advance(180)
    assert cdn.cached(OBJ) == "v2"


def test_a_prefetch_sent_before_its_refresh_completes_brings_nothing_new(cdn):
    cdn.set_origin(OBJ, "v1")
    cdn.viewer_get(OBJ)
    cdn.set_origin(OBJ, "v2")
    refresh(cdn, OBJ)
    cdn.advance(60)
    push(cdn, OBJ)  # too early: its task completes (at +240) while the stale copy is still there
    cdn.advance(200)
    assert cdn.cached(OBJ) == "v1"
    cdn.advance(100)  # the refresh completes at +300
    assert cdn.cached(OBJ) is None  # the edge is empty, not fresh: the prefetch was wasted


def test_task_delays_are_settable_down_to_zero(cdn):
    cdn.set_origin(OBJ, "v1")
    cdn.set_task_timing(preload_seconds=0, refresh_seconds=0)
    push(cdn, OBJ)
    assert cdn.cached(OBJ) == "v1"
    refresh(cdn, OBJ)
    assert cdn.cached(OBJ) is None


def test_a_prefetch_of_a_missing_object_fails_with_a_description(cdn):
    cdn.set_origin(OBJ, "v1")
    cdn.delete_origin(OBJ)
    task_id = push(cdn, OBJ).json()["PushTaskId"]
    cdn.advance(180)
    [task] = by_id(cdn, task_id)
    assert task["Status"] == "Failed" and "404" in task["Description"]
    assert cdn.cached(OBJ) is None


def test_the_default_open_origin_serves_any_object_but_a_deleted_one(cdn_double):
    cdn_double.set_task_timing(preload_seconds=0)
    push(cdn_double, OBJ)
    assert cdn_double.cached(OBJ) == "origin"
    cdn_double.delete_origin("https://cdn.example.com/gone.js")
    task_id = push(cdn_double, "https://cdn.example.com/gone.js").json()["PushTaskId"]
    assert by_id(cdn_double, task_id)[0]["Status"] == "Failed"


def test_injected_task_failures_by_url_and_by_seeded_fraction(make_cdn_double):
    urls = [f"https://cdn.example.com/f/{i}.js" for i in range(40)]

    def failed_share(seed: int) -> list[str]:
        double = make_cdn_double(seed=seed, task_seconds=0)
        double.fail_tasks([urls[0]], reason="origin timeout", kind="preload")
        double.fail_tasks(fraction=0.25, kind="preload")
        ids = push(double, *urls[:20]).json()["PushTaskId"] + "," + push(double, *urls[20:40]).json()["PushTaskId"]
        refresh_id = refresh(double, urls[0]).json()["RefreshTaskId"]
        tasks = [t for chunk in range(0, 40, 10) for t in by_id(double, ",".join(ids.split(",")[chunk:chunk + 10]))]
        assert by_id(double, refresh_id)[0]["Status"] != "Failed"  # the faults were for prefetches only
        assert next(t for t in tasks if t["ObjectPath"] == urls[0])["Description"] == "origin timeout"
        assert all(double.cached(t["ObjectPath"]) is None for t in tasks if t["Status"] == "Failed")
        return [t["ObjectPath"] for t in tasks if t["Status"] == "Failed"]

    first = failed_share(3)
    assert 1 < len(first) < 40 and first == failed_share(3)  # a seed replays the same failures


def test_task_ids_of_one_domain_may_be_shared_in_one_call(make_cdn_double):
    double = make_cdn_double(task_ids="per_domain")
    urls = ["cdn.example.com/a.js", "cdn.example.com/b.js", "img.example.com/c.png"]
    ids = push(double, *urls).json()["PushTaskId"].split(",")
    assert len(ids) == 2
    tasks = by_id(double, ids[0])
    assert [t["ObjectPath"] for t in tasks] == urls[:2] and {t["TaskId"] for t in tasks} == {ids[0]}


def test_refresh_limits_urls_domains_and_object_type(make_cdn_double):
    domains = [f"d{i}.example.com" for i in range(11)]
    double = make_cdn_double(domains=domains)
    too_many = refresh(double, *[f"d0.example.com/{i}" for i in range(1001)])
    assert (too_many.status_code, code_of(too_many)) == (400, "InvalidObjectPath.Size.Malformed")
    eleven = refresh(double, *[f"{d}/x.js" for d in domains])
    assert (eleven.status_code, code_of(eleven)) == (400, "SingleRequest.OverLimit")
    assert refresh(double, *[f"{d}/x.js" for d in domains[:10]]).status_code == 200
    assert code_of(refresh(double, "d0.example.com/dir/", ObjectType="Directory")) == "InvalidObjectType.Malformed"
    assert refresh(double, *[f"d0.example.com/{i}" for i in range(1000)], ObjectType="File").status_code == 200
    assert len(double.refreshed_urls) == 1010


def test_refresh_and_prefetch_spend_separate_quotas_and_refuse_with_their_codes(cdn):
    cdn.set_quota(quota=3)
    cdn.set_quota(quota=2, kind="file")
    assert push(cdn, OBJ, "cdn.example.com/b.js").status_code == 200
    assert refresh(cdn, OBJ).status_code == 200
    body = quota(cdn)
    assert (body["PreloadQuota"], body["PreloadRemain"], body["UrlQuota"], body["UrlRemain"]) == ("3", "1", "2", "1")
    over = refresh(cdn, OBJ, "cdn.example.com/b.js")
    assert (over.status_code, code_of(over)) == (400, "QuotaExceeded.Refresh")
    assert code_of(push(cdn, OBJ, OBJ)) == "QuotaExceeded.Refresh"  # the seed's code for prefetch, by default
    cdn.set_push_quota_code("QuotaExceeded.Preload")
    over = push(cdn, OBJ, OBJ)
    assert (over.status_code, code_of(over)) == (400, "QuotaExceeded.Preload")
    assert cdn.quota_counters() == {"preload": {"quota": 3, "used": 2, "remain": 1},
                                    "refresh": {"quota": 2, "used": 1, "remain": 1}}  # refusals spent nothing
    cdn.set_clock(T0 - T0 % 86400 + 16 * 3600)  # 00:00 UTC+8 of the next quota day
    assert cdn.quota_counters()["preload"]["remain"] == 3 and cdn.quota_counters()["refresh"]["remain"] == 2


def test_refresh_queue_and_per_minute_codes_are_injectable(cdn):
    cdn.inject("TooMany.Refresh", 400, action="RefreshObjectCaches")
    cdn.inject("QuotaPerMinuteExceeded.Refresh", 400, action="RefreshObjectCaches")
    assert push(cdn, OBJ).status_code == 200  # another action is not affected
    assert [code_of(refresh(cdn, OBJ)) for _ in range(2)] == ["TooMany.Refresh", "QuotaPerMinuteExceeded.Refresh"]
    assert refresh(cdn, OBJ).status_code == 200
    assert cdn.quota_counters()["refresh"]["used"] == 1


def test_describe_refresh_tasks_is_nested_filtered_and_paged(cdn):
    cdn.set_origin(OBJ, "v1")
    push(cdn, OBJ)
    cdn.advance(10)
    refresh(cdn, OBJ, "img.example.com/p.png")
    cdn.advance(10)
    push(cdn, *[f"cdn.example.com/{i}.js" for i in range(25)])
    body = search(cdn, ObjectPath=OBJ)
    assert set(body) >= {"Tasks", "TotalCount", "PageNumber", "PageSize", "RequestId"}
    assert [(t["ObjectType"], t["ObjectPath"]) for t in body["Tasks"]["CDNTask"]] == [("file", OBJ), ("preload", OBJ)]
    assert search(cdn, ObjectPath=OBJ, ObjectType="preload")["TotalCount"] == 1
    assert search(cdn, ObjectType="file", DomainName="img.example.com")["TotalCount"] == 1
    start = datetime.fromtimestamp(T0 + 15, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert search(cdn, ObjectType="preload", StartTime=start)["TotalCount"] == 25
    pages = [search(cdn, ObjectType="preload", PageSize=10, PageNumber=n) for n in (1, 2, 3)]
    assert [len(p["Tasks"]["CDNTask"]) for p in pages] == [10, 10, 6]
    assert {p["TotalCount"] for p in pages} == {26}
    assert search(cdn, ObjectType="preload", Status="Refreshing")["TotalCount"] == 26
    cdn.advance(3600)
    assert search(cdn, ObjectType="preload", Status="Complete")["TotalCount"] == 1
    assert search(cdn, ObjectType="preload", Status="Failed")["TotalCount"] == 25  # never uploaded
    assert code_of(v2(cdn, "DescribeRefreshTasks", {"DomainName": "cdn.example.com"})) == "MissingParameter"
    assert code_of(v2(cdn, "DescribeRefreshTasks", {"PageSize": "101"})) == "InvalidParameter"


def test_both_task_apis_cover_only_the_last_three_days(cdn):
    task_id = push(cdn, OBJ).json()["PushTaskId"]
    cdn.advance(3 * 86400)
    assert len(by_id(cdn, task_id)) == 1 and search(cdn, ObjectPath=OBJ)["TotalCount"] == 1
    cdn.advance(1)
    assert by_id(cdn, task_id) == [] and search(cdn, ObjectPath=OBJ)["TotalCount"] == 0


def test_a_lost_answer_after_accept_records_the_call_and_creates_its_tasks(cdn):
    cdn.set_origin(OBJ, "v1")
    cdn.inject(None, drop_after_accept=True, action="RefreshObjectCaches")
    cdn.inject(None, truncate=True, action="PushObjectCache")
    with pytest.raises(requests.ConnectionError):
        refresh(cdn, OBJ)
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        push(cdn, OBJ)
    assert [(r.action, r.accepted, r.fault) for r in cdn.received] == [
        ("RefreshObjectCaches", True, "drop_after_accept"), ("PushObjectCache", True, "truncate")]
    assert [(t["ObjectType"], t["ObjectPath"]) for t in cdn.task_records()] == [("file", OBJ), ("preload", OBJ)]
    assert cdn.quota_counters()["refresh"]["used"] == 1 and cdn.quota_counters()["preload"]["used"] == 1


def test_refused_connections_send_nothing_then_the_same_port_answers_again(cdn):
    cdn.refuse_connections()
    with pytest.raises(requests.ConnectionError) as caught:
        push(cdn, OBJ)
    assert "refused" in str(caught.value).lower()
    cdn.refuse_connections(False)
    assert push(cdn, OBJ).status_code == 200
    assert cdn.calls() == 1


def test_the_cdn_is_steered_and_read_over_the_admin_paths(cdn):
    import time

    from fixtures.cdn_double import CdnDoubleAdmin

    admin = CdnDoubleAdmin(cdn.base_url)
    admin.set_clock(T0 + 100)
    assert admin.now() == T0 + 100
    admin.set_origin(OBJ, "v1")
    assert admin.origin() == {"cdn.example.com/app.js": "v1"}
    admin.set_task_timing(preload_seconds=60, refresh_seconds=120)
    admin.fail_tasks(["https://cdn.example.com/bad.js"], reason="origin timeout")
    push(cdn, OBJ, "https://cdn.example.com/bad.js")
    admin.advance(60)
    assert admin.cached(OBJ) == "v1" and admin.cache() == {"cdn.example.com/app.js": "v1"}
    records = admin.task_records()
    assert [(r["ObjectPath"], r["Status"], r["done_at"]) for r in records] == [
        (OBJ, "Complete", T0 + 160), ("https://cdn.example.com/bad.js", "Failed", T0 + 160)]
    admin.set_origin(OBJ, "v2")
    assert admin.viewer_get(OBJ) == "v1"
    admin.delete_origin(OBJ)
    assert admin.origin() == {}
    admin.set_quota(remain=5)
    admin.set_quota(used=7, kind="file")
    admin.set_push_quota_code("QuotaExceeded.Preload")
    counters = admin.quota_counters()
    assert counters["preload"]["remain"] == 5 and counters["refresh"]["used"] == 7
    assert counters["push_quota_code"] == "QuotaExceeded.Preload"
    admin.inject("Throttling", 503, action="DescribeRefreshQuota", count=2)
    assert [v2(cdn, "DescribeRefreshQuota").status_code for _ in range(3)] == [503, 503, 200]
    admin.refuse_connections_for(0.5)
    time.sleep(0.2)
    with pytest.raises(requests.ConnectionError):
        push(cdn, OBJ)
    time.sleep(0.6)
    assert push(cdn, OBJ).status_code == 200
