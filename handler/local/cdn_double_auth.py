"""How the CDN API double authenticates a call: V2 (Signature parameter) and V3 (Authorization header).

Verification reuses handler/cdn/signing.py, so a client and the double that agree
with each other also agree with the published known answers tested there.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

from ..cdn import signing
from .cdn_double_rules import ApiError


@dataclass
class Incoming:
    """One RPC request as received: query and form parameters kept apart (V3 signs only the query)."""

    method: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def params(self) -> dict[str, str]:
        return {**self.query, **self.form}


@dataclass
class Credentials:
    access_key_id: str
    access_key_secret: str
    security_token: str | None = None


@dataclass
class NonceBook:
    """Nonces seen per key; a nonce older than twice the allowed skew can no longer come with a valid timestamp."""

    keep_seconds: float = 1800.0
    _seen: dict[tuple[str, str], float] = field(default_factory=dict)

    def use(self, access_key_id: str, nonce: str, now: float) -> bool:
        """Record the nonce; False if it was used already."""
        if len(self._seen) > 10_000:
            self._seen = {k: t for k, t in self._seen.items() if now - t < self.keep_seconds}
        key = (access_key_id, nonce)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


def signature_version(request: Incoming) -> str | None:
    if "authorization" in request.headers:
        return "v3"
    if "Signature" in request.params:
        return "v2"
    return None


def verify(request: Incoming, creds: Credentials, nonces: NonceBook, now: float, max_skew: float | None) -> str:
    """Return "v2" or "v3", or raise the API's authentication error."""
    version = signature_version(request)
    if version == "v3":
        _verify_v3(request, creds, now, max_skew)
        nonce, key = request.headers.get("x-acs-signature-nonce", ""), _v3_key(request)
    elif version == "v2":
        _verify_v2(request, creds, now, max_skew)
        nonce, key = request.params["SignatureNonce"], request.params["AccessKeyId"]
    else:
        raise ApiError("MissingParameter", name="Signature")
    # Only a correctly signed call burns its nonce: a forged one must not block the real caller.
    if not nonces.use(key, nonce, now):
        raise ApiError("SignatureNonceUsed")
    return version


def _verify_v2(request: Incoming, creds: Credentials, now: float, max_skew: float | None) -> None:
    params = request.params
    _check_key(_required(params, "AccessKeyId"), creds)
    if params.get("SignatureMethod") != signing.V2_METHOD:
        raise ApiError("IncompleteSignature", detail=f"SignatureMethod must be {signing.V2_METHOD}.")
    if params.get("SignatureVersion") != signing.V2_VERSION:
        raise ApiError("IncompleteSignature", detail=f"SignatureVersion must be {signing.V2_VERSION}.")
    _check_timestamp(_required(params, "Timestamp"), now, max_skew)
    _required(params, "SignatureNonce")
    expected = signing.v2_signature(request.method, params, creds.access_key_secret)
    if not hmac.compare_digest(expected, params["Signature"]):
        raise ApiError("SignatureDoesNotMatch", detail=signing.v2_string_to_sign(request.method, params))
    _check_token(params.get("SecurityToken"), creds)


def _v3_key(request: Incoming) -> str:
    fields = signing.parse_v3_authorization(request.headers["authorization"]) or {}
    return fields.get("Credential", "")


def _verify_v3(request: Incoming, creds: Credentials, now: float, max_skew: float | None) -> None:
    headers = request.headers
    fields = signing.parse_v3_authorization(headers["authorization"])
    if fields is None:
        raise ApiError("IncompleteSignature", detail="Authorization is not ACS3-HMAC-SHA256 Credential=,SignedHeaders=,Signature=.")
    _check_key(fields["Credential"], creds)
    signed = [name for name in fields["SignedHeaders"].lower().split(";") if name]
    unsigned = sorted(name for name in headers if _must_sign(name) and name not in signed)
    if unsigned:
        raise ApiError("IncompleteSignature", detail=f"Headers must be signed: {', '.join(unsigned)}.")
    _check_timestamp(_required(headers, "x-acs-date"), now, max_skew)
    _required(headers, "x-acs-signature-nonce")
    payload_hash = _required(headers, "x-acs-content-sha256")
    if payload_hash.lower() != signing.sha256_hex(request.body):
        raise ApiError("SignatureDoesNotMatch", detail=" x-acs-content-sha256 is not the SHA-256 of the body.")
    canonical = signing.v3_canonical_request(request.method, request.query, headers, signed, payload_hash.lower())
    expected = signing.v3_signature(canonical, creds.access_key_secret)
    if not hmac.compare_digest(expected, fields["Signature"].lower()):
        raise ApiError("SignatureDoesNotMatch", detail=canonical)
    _check_token(headers.get("x-acs-security-token", request.params.get("SecurityToken")), creds)


def _must_sign(header: str) -> bool:
    # Alibaba requires host and every x-acs-* header (not the Authorization itself) to be signed.
    return header == "host" or header.startswith("x-acs-")


def _required(values: Mapping[str, str], name: str) -> str:
    value = values.get(name)
    if not value:
        raise ApiError("MissingParameter", name=name)
    return value


def _check_key(access_key_id: str, creds: Credentials) -> None:
    if not hmac.compare_digest(access_key_id.encode(), creds.access_key_id.encode()):
        raise ApiError("InvalidAccessKeyId.NotFound")


def _check_timestamp(value: str, now: float, max_skew: float | None) -> None:
    try:
        stamp = datetime.strptime(value, signing.TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise ApiError("InvalidTimeStamp.Format") from None
    if max_skew is not None and abs(stamp - now) > max_skew:
        raise ApiError("InvalidTimeStamp.Expired")


def _check_token(token: str | None, creds: Credentials) -> None:
    if creds.security_token is None:
        return
    if token is None or not hmac.compare_digest(token.encode(), creds.security_token.encode()):
        raise ApiError("InvalidSecurityToken.Malformed")
