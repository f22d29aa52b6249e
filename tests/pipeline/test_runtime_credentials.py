"""Credentials on every FC runtime: python3.9/3.10 hand the role's keys on the context, python3.12
only in ALIBABA_CLOUD_* variables. Both shapes, through the entry points, against the signing double."""

from __future__ import annotations

import json
from types import SimpleNamespace

from eventdata import oss_event
from fixtures.cdn_double import TEST_AK, TEST_SK
from handler import entry


def python310_context(**credentials):
    """The python3.9/3.10 context: the role's temporary keys on `context.credentials`."""
    return SimpleNamespace(
        request_id="req-310", region="cn-hangzhou", account_id="123",
        function=SimpleNamespace(name="flush", handler="handler.entry.flush", memory=128, timeout=120),
        credentials=SimpleNamespace(**credentials),
    )


def python312_context():
    """The python3.12 context: no `credentials` attribute at all."""
    return SimpleNamespace(
        request_id="req-312", region="cn-hangzhou", account_id="123",
        function=SimpleNamespace(name="flush", handler="handler.entry.flush", memory=128, timeout=120),
    )


def _upload_and_flush(context) -> dict:
    entry.upload(json.dumps(oss_event("my-bucket", "app.js")).encode(), context)
    return json.loads(entry.flush(b'{"all": true}', context))


def test_python312_signs_with_the_environment_keys(deploy):
    d = deploy()  # sets ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET to the double's keys
    assert not hasattr(python312_context(), "credentials")
    report = _upload_and_flush(python312_context())
    assert report["pushed"] == 1 and d.double.pushed_urls == ["https://cdn.example.com/app.js"]


def test_python312_with_wrong_environment_keys_is_refused_not_silently_signed_otherwise(deploy, monkeypatch):
    d = deploy()
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-the-secret")
    report = _upload_and_flush(python312_context())
    assert report["pushed"] == 0 and report["error"] and d.double.pushed_urls == []


def test_python310_signs_with_the_context_keys_over_the_environment(deploy, monkeypatch):
    d = deploy()
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-the-secret")
    report = _upload_and_flush(python310_context(access_key_id=TEST_AK, access_key_secret=TEST_SK, security_token=None))
    assert report["pushed"] == 1 and d.double.pushed_urls == ["https://cdn.example.com/app.js"]


def test_rotated_context_keys_rebuild_the_client_on_a_warm_instance(deploy):
    deploy()
    first = python310_context(access_key_id=TEST_AK, access_key_secret=TEST_SK, security_token="t1")
    rotated = python310_context(access_key_id=TEST_AK, access_key_secret=TEST_SK, security_token="t2")
    wiring = entry._instance()
    client = wiring.cdn(first)
    assert wiring.cdn(first) is client
    assert wiring.cdn(rotated) is not client
