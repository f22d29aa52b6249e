"""Where credentials come from, in which order, and that they never show their secret."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from handler.credentials import Credentials, MissingCredentialsError, resolve_credentials

ENV = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "env-ak",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret-value",
    "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token-value",
}


def fc_context(ak="ctx-ak", secret="ctx-secret-value", token="ctx-token-value"):
    return SimpleNamespace(
        request_id="r-1",
        credentials=SimpleNamespace(access_key_id=ak, access_key_secret=secret, security_token=token),
    )


def test_explicit_credentials_win():
    explicit = Credentials("x-ak", "x-secret")
    assert resolve_credentials(explicit, fc_context(), ENV) is explicit


def test_context_credentials_come_before_the_environment():
    assert resolve_credentials(context=fc_context(), env=ENV) == Credentials(
        "ctx-ak", "ctx-secret-value", "ctx-token-value"
    )


def test_environment_is_the_last_source():
    assert resolve_credentials(env=ENV) == Credentials("env-ak", "env-secret-value", "env-token-value")


def test_environment_without_token_gives_long_term_key():
    env = {k: v for k, v in ENV.items() if "TOKEN" not in k}
    assert resolve_credentials(env=env).security_token is None


@pytest.mark.parametrize(
    "context",
    [
        SimpleNamespace(request_id="r"),  # python3.12 runtime: no credentials attribute
        SimpleNamespace(credentials=None),
        fc_context(ak="", secret="", token=""),
        fc_context(ak=None, secret=None, token=None),
        fc_context(secret=""),
    ],
)
def test_context_without_usable_credentials_falls_back_to_environment(context):
    assert resolve_credentials(context=context, env=ENV).access_key_id == "env-ak"


def test_empty_context_token_means_no_token():
    assert resolve_credentials(context=fc_context(token="")).security_token is None


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"ALIBABA_CLOUD_ACCESS_KEY_ID": "only-id"},
        {"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "only-secret-value"},
        {"ALIBABA_CLOUD_ACCESS_KEY_ID": " ", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ""},
    ],
)
def test_missing_credentials_error_names_the_variables_and_no_secret(env):
    with pytest.raises(MissingCredentialsError) as info:
        resolve_credentials(context=SimpleNamespace(), env=env)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in message and "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in message
    assert "only-secret-value" not in message


def test_explicit_credentials_with_empty_secret_are_refused():
    with pytest.raises(MissingCredentialsError):
        resolve_credentials(Credentials("ak", ""), env={})


def test_repr_and_str_mask_secret_and_token():
    creds = Credentials("my-ak", "very-secret-value", "very-secret-token")
    for text in (repr(creds), str(creds), f"{creds}", repr([creds]), repr({"c": creds})):
        assert "my-ak" in text
        assert "very-secret-value" not in text
        assert "very-secret-token" not in text
    assert "security_token=None" in repr(Credentials("my-ak", "very-secret-value"))


def test_credentials_are_frozen_comparable_and_picklable():
    creds = Credentials("ak", "sk", "tok")
    with pytest.raises(AttributeError):
        creds.access_key_secret = "other"  # type: ignore[misc]
    assert creds == Credentials("ak", "sk", "tok") != Credentials("ak", "sk", "tok2")
    assert pickle.loads(pickle.dumps(creds)) == creds


def test_module_imports_nothing_heavy():
    code = "import sys, handler.credentials; print(sorted(m for m in ('requests', 'urllib3', 'json', 'email', 'tablestore') if m in sys.modules))"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip() == "[]"
