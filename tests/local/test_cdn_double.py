"""The local CDN API double over real HTTP, driven by hand-signed requests (handler/cdn/signing.py)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pytest
import requests

from fixtures.cdn_double import TEST_AK, TEST_SK
from handler.cdn import signing

VERSION = "2018-05-10"
URL = "https://cdn.example.com/a.js"


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
        "Timestamp": timestamp or stamp(double.clock()),
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
       date: str | None = None, accept: str | None = "application/json", body: bytes = b"",
       tamper: dict | None = None, timeout: float = 5):
    """A V3 (ACS3-HMAC-SHA256) POST with the RPC parameters in the query string, as the official SDK sends it."""
    query = query or {}
    headers = {
        "host": double.base_url.split("//", 1)[1],
        "x-acs-action": action,
        "x-acs-version": VERSION,
        "x-acs-date": date or stamp(double.clock()),
        "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
        "x-acs-content-sha256": signing.sha256_hex(body),
    }
    if accept:
        headers["accept"] = accept
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
    response = v3(cdn_double, "PushObjectCache", {"ObjectPath": f"{URL}\nhttp://cdn.example.com/x y%20z.css".replace(" ", "%20")})
    assert response.status_code == 200, response.text
    assert cdn_double.pushed_urls == [URL, "http://cdn.example.com/x%20y%20z.css"]
    assert cdn_double.received[-1].signature_version == "v3"


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
