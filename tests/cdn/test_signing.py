"""Signing: a published known answer, and agreement with the official SDK's own signing code."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from handler.cdn import signing

sdk_utils = pytest.importorskip("alibabacloud_tea_openapi.utils")
Utils = sdk_utils.Utils

TRICKY_VALUES = [
    "cdn.example.com/图片/猫.png",
    "a b c",
    "1+1=2",
    "star*",
    "tilde~",
    "line1\nline2",
    "slash/and?query=1&x=%20",
    "",
]


def test_v2_known_answer_from_the_documentation():
    params = {
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "Format": "XML",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "SignatureVersion": "1.0",
        "Timestamp": "2016-02-23T12:46:24Z",
        "Version": "2014-05-26",
    }
    assert signing.v2_signature("GET", params, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_v2_ignores_a_signature_already_in_the_params():
    params = {"Action": "DescribeRefreshQuota", "Timestamp": "2024-01-01T00:00:00Z"}
    assert signing.v2_signature("POST", {**params, "Signature": "x"}, "s") == signing.v2_signature("POST", params, "s")


def test_percent_encoding_follows_rfc3986_as_alibaba_signs():
    assert signing.percent_encode("a b+c*d~e/f") == "a%20b%2Bc%2Ad~e%2Ff"
    assert signing.percent_encode("猫") == "%E7%8C%AB"


@pytest.mark.parametrize("value", TRICKY_VALUES)
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_v2_matches_the_official_sdk(value, method):
    params = {
        "Action": "PushObjectCache",
        "ObjectPath": value,
        "AccessKeyId": "ak",
        "SignatureNonce": "n-1",
        "Timestamp": "2025-01-01T00:00:00Z",
        "名前": "値 +*~",
    }
    assert signing.v2_signature(method, params, "se cret+/") == Utils.get_rpcsignature(params, method, "se cret+/")


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=30), max_size=6), st.text(max_size=20))
def test_v2_matches_the_official_sdk_on_any_text(params, secret):
    assert signing.v2_signature("POST", params, secret) == Utils.get_rpcsignature(params, "POST", secret)


class _SdkRequest:
    """The shape Utils.get_authorization reads."""

    def __init__(self, method, query, headers):
        self.pathname = "/"
        self.method = method
        self.query = query
        self.headers = headers


def _headers(body: bytes, token: str | None = None) -> dict[str, str]:
    headers = {
        "host": "cdn.aliyuncs.com",
        "content-type": "application/x-www-form-urlencoded",
        "x-acs-action": "PushObjectCache",
        "x-acs-version": "2018-05-10",
        "x-acs-date": "2025-01-01T00:00:00Z",
        "x-acs-signature-nonce": "0b7a2b5e-7d2f-4f55-9c33-3c0e7c0b1e10",
        "x-acs-content-sha256": signing.sha256_hex(body),
    }
    if token:
        headers["x-acs-security-token"] = token
    return headers


def _v3(method, query, headers, ak, secret):
    payload = headers["x-acs-content-sha256"]
    canonical = signing.v3_canonical_request(method, query, headers, headers, payload)
    return signing.v3_authorization(ak, headers, signing.v3_signature(canonical, secret))


@pytest.mark.parametrize("token", [None, "sts-token/with+chars=="])
@pytest.mark.parametrize("value", TRICKY_VALUES)
def test_v3_matches_the_official_sdk(value, token):
    body = f"ObjectPath={signing.percent_encode(value)}&Format=JSON".encode()
    headers = _headers(body, token)
    query = {"Action": "PushObjectCache", "Path": value} if value else {}
    expected = Utils.get_authorization(
        _SdkRequest("POST", query, headers), "ACS3-HMAC-SHA256", headers["x-acs-content-sha256"], "ak", "sk"
    )
    assert _v3("POST", query, headers, "ak", "sk") == expected


def test_v3_with_an_empty_query_matches_the_official_sdk():
    body = b""
    headers = _headers(body)
    expected = Utils.get_authorization(
        _SdkRequest("POST", {}, headers), "ACS3-HMAC-SHA256", signing.sha256_hex(body), "AKID", "secret"
    )
    assert _v3("POST", {}, headers, "AKID", "secret") == expected


def test_v3_authorization_round_trips_through_the_parser():
    value = signing.v3_authorization("AK", ["x-acs-date", "host"], "abc")
    assert value == "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host;x-acs-date,Signature=abc"
    assert signing.parse_v3_authorization(value) == {
        "Credential": "AK",
        "SignedHeaders": "host;x-acs-date",
        "Signature": "abc",
    }
    assert signing.parse_v3_authorization("HMAC-SHA1 abc") is None
