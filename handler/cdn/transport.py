"""What a failed HTTPS exchange with the CDN API means: could the request have reached the API?

Before it was fully sent (refused, DNS, connect timeout, TLS handshake) the API took
nothing: NOT_ACCEPTED, safe to retry. After (read timeout, connection lost, a broken
answer) the API may have acted: AMBIGUOUS, and a submission must not be retried.
"""

from __future__ import annotations

import os
import re

import requests
from urllib3 import exceptions as urllib3_errors  # already loaded by requests

from .errors import CdnError, error_for


def transport_error(
    action: str, exc: requests.RequestException, timeout: tuple[float, float], host: str, sent_at: float
) -> CdnError:
    """Whether the request could have reached the API decides everything: before it was fully sent,
    nothing was taken (NOT_ACCEPTED, retryable); after, the API may have acted (AMBIGUOUS)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):  # before Timeout: it is one too
        return error_for("Local.NotSent", f"{action}: no connection to {host} within {timeout[0]:g}s")
    if isinstance(exc, requests.exceptions.SSLError):  # before ConnectionError: it is one too
        reason = _tls_reason(exc)
        if reason.startswith("certificate verify failed"):
            return error_for("Local.TLSError", f"{action}: TLS to {host} failed: {reason}")
        return error_for("Local.NotSent", f"{action}: TLS handshake with {host} failed: {reason}")
    if isinstance(exc, requests.Timeout):
        return error_for("Local.Timeout", f"{action}: no answer within {timeout[1]:g}s", sent_at=sent_at)
    if isinstance(exc, requests.ConnectionError) and _never_connected(exc):
        return error_for("Local.NotSent", f"{action}: cannot connect to {host}: {_root_cause(exc)}")
    if isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError)):
        return error_for("Local.ConnectionLost", f"{action}: connection lost: {_root_cause(exc)}", sent_at=sent_at)
    return error_for("Local.RequestError", f"{action}: {type(exc).__name__}")


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when urllib3 failed to open the connection (refused, DNS, unreachable): nothing was sent."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the cause
    return isinstance(reason, (urllib3_errors.NewConnectionError, urllib3_errors.ConnectTimeoutError))


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's class name: the text could quote a URL or a header."""
    seen = exc
    while True:
        inner = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        inner = inner or getattr(seen, "reason", None)
        if not isinstance(inner, BaseException) or inner is seen:
            return type(seen).__name__
        seen = inner


def _tls_reason(exc: BaseException) -> str:
    """"certificate verify failed: self-signed certificate" from the wrapped SSL error, else its class name."""
    found = re.search(r"certificate verify failed[^'\")(]*", str(exc))
    return found.group(0).strip() if found else type(exc).__name__


# Environment variables through which requests would change where and how we connect.
_CONNECTION_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "requests_ca_bundle", "curl_ca_bundle")


def new_session() -> requests.Session:
    session = requests.Session()
    # With none of them set, skip requests' per-call look-ups of proxies and .netrc in the environment
    # (about half a millisecond a call); with any of them set, keep its usual behaviour.
    session.trust_env = any(name.lower() in _CONNECTION_ENV for name in os.environ)
    return session
