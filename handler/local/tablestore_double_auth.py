"""Request checks and response signing, as the service does them for SDK signature V2.

A request carries x-ots-date, x-ots-apiversion, x-ots-accesskeyid, x-ots-instancename,
x-ots-contentmd5 (Base64 MD5 of the body), x-ots-ststoken with STS credentials, and
x-ots-signature: Base64 HMAC-SHA1, keyed by the access key secret, over
    "/" + Api + "\\nPOST\\n" + "\\n" + sorted "name:value" lines of the x-ots-* headers + "\\n".
An answer carries x-ots-contentmd5, x-ots-requestid, x-ots-date, x-ots-contenttype and
`Authorization: OTS <AccessKeyId>:<signature>` over the sorted x-ots-* answer headers + "\\n/" + Api,
which the SDK verifies (on errors too, except a 403 OTSAuthFailed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

from .tablestore_double_errors import ServiceError, invalid, not_modelled

API_VERSION = "2015-12-31"
REQUIRED_HEADERS = ("x-ots-date", "x-ots-apiversion", "x-ots-accesskeyid", "x-ots-instancename", "x-ots-contentmd5")
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class Credentials:
    instance: str
    access_key_id: str
    access_key_secret: str
    security_token: str | None = None  # None: any STS token is accepted (it is opaque to the service)


def _hmac_sha1(secret: str, text: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()).decode()


def _ots_lines(headers: Mapping[str, str], *, skip: str | None = None) -> str:
    return "\n".join(sorted(f"{k.lower()}:{v.strip()}" for k, v in headers.items()
                            if k.lower().startswith("x-ots-") and k.lower() != skip))


def request_signature(api: str, headers: Mapping[str, str], secret: str) -> str:
    return _hmac_sha1(secret, f"/{api}\nPOST\n\n" + _ots_lines(headers, skip="x-ots-signature") + "\n")


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def verify_request(api: str, headers: Mapping[str, str], body: bytes, creds: Credentials, now: float,
                   max_skew: float | None) -> None:
    """Raise the ServiceError the service would answer, or return for a request it accepts.

    `headers` are lower-cased. `max_skew` None turns the clock check off (a test clock far from now).
    """
    if "x-ots-signaturev4" in headers:
        raise not_modelled("signature V4 (the SDK signs V4 only when given a region)")
    for name in REQUIRED_HEADERS + ("x-ots-signature",):
        if not headers.get(name):
            raise invalid(f"Missing header: {name}.")
    if headers["x-ots-apiversion"] != API_VERSION:
        raise invalid(f"Unsupported API version: {headers['x-ots-apiversion']}.")
    try:
        sent = datetime.strptime(headers["x-ots-date"], DATE_FORMAT).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise invalid(f"Invalid date format: {headers['x-ots-date']}.") from None
    if max_skew is not None and abs(sent - now) > max_skew:
        raise ServiceError("OTSAuthFailed", f"Mismatch between system time and x-ots-date: {headers['x-ots-date']}.")
    if headers["x-ots-accesskeyid"] != creds.access_key_id:
        raise ServiceError("OTSAuthFailed", "The AccessKeyID does not exist.")
    if headers["x-ots-instancename"] != creds.instance:
        raise ServiceError("OTSAuthFailed", "The instance is not found.")
    if creds.security_token is not None and headers.get("x-ots-ststoken") != creds.security_token:
        raise ServiceError("OTSAuthFailed", "The security token is invalid.")
    if headers["x-ots-contentmd5"] != content_md5(body):
        raise ServiceError("OTSAuthFailed", "Mismatch between MD5 value of request body and x-ots-contentmd5 in header.")
    expected = request_signature(api, headers, creds.access_key_secret)
    if not hmac.compare_digest(headers["x-ots-signature"], expected):
        raise ServiceError("OTSAuthFailed", "Signature mismatch.")


def answer_headers(api: str, body: bytes, creds: Credentials, now: float, *, sign: bool = True) -> dict[str, str]:
    """The x-ots-* headers of an answer and, when `sign`, its Authorization header."""
    headers = {
        "x-ots-contentmd5": content_md5(body),
        "x-ots-requestid": str(uuid.uuid4()),
        "x-ots-date": datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "x-ots-contenttype": "protocol buffer",
    }
    if sign:
        signature = _hmac_sha1(creds.access_key_secret, _ots_lines(headers) + f"\n/{api}")
        headers["Authorization"] = f"OTS {creds.access_key_id}:{signature}"
    return headers
