"""What the CDN API double refuses and how it answers: error catalog, ObjectPath rules, wire formats.

Pure functions over plain data; cdn_double.py holds the state and the HTTP server.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Iterable
from xml.sax.saxutils import escape

HOST_ID = "cdn.aliyuncs.com"
MAX_URL_LENGTH = 1024
AREAS = ("domestic", "overseas")

# Code -> (HTTP status, message) as the real API words them (format placeholders filled per call).
CATALOG: dict[str, tuple[int, str]] = {
    "MissingParameter": (400, 'The input parameter "{name}" that is mandatory for processing this request is not supplied.'),
    "InvalidParameter": (400, 'The specified parameter "{name}" is not valid.'),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "SignatureDoesNotMatch": (400, "Specified signature is not matched with our calculation. server string to sign is:{detail}"),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards. {detail}"),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "InvalidSecurityToken.Malformed": (400, "Specified SecurityToken is malformed."),
    "Throttling": (503, "Request was denied due to request throttling."),
    "QuotaExceeded.Refresh": (400, "You've exceeded the prescribed refresh limits."),
    "QuotaExceeded.Preload": (400, "You've exceeded the prescribed preload limits."),
    "QuotaPerMinuteExceeded.Refresh": (400, "You've exceeded the prescribed refresh limits per minute."),
    "TooMany.Refresh": (400, "The refresh queue is full, please try again later."),
    "SingleRequest.OverLimit": (400, "The number of domains in one request is bigger than {cap}."),
    "InvalidObjectType.Malformed": (400, "The specified ObjectType is invalid."),
    "InvalidDomain.Offline": (404, "The domain is offline."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
    "InternalError": (500, "The request processing has failed due to some unknown error."),
    "InvalidObjectPath.Malformed": (400, "The specific value of parameter ObjectPath is malformed."),
    "InvalidObjectPath.Size.Malformed": (400, "The size of ObjectPath is bigger than {cap}."),
    "InvalidExtensiveDomain.ValueNotSupported": (400, "Extensive domain not supported."),
    "InvalidDomain.NotFound": (404, "The domain provided does not belong to you."),
    "InvalidTaskId.ValueNotSupported": (400, "The number of TaskId is bigger than 10."),
    "PreloadQueueFull": (403, "Preload queue is full, please try again later!"),
}


class ApiError(Exception):
    """An answer the double gives instead of a result."""

    def __init__(self, code: str, status: int | None = None, message: str | None = None, **fields: object) -> None:
        known_status, template = CATALOG.get(code, (500, "Injected error."))
        self.code = code
        self.status = status if status is not None else known_status
        self.message = message if message is not None else template.format_map(_Blank(fields))
        super().__init__(f"{self.code}: {self.message}")


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()


# ---------------------------------------------------------------- ObjectPath


@dataclass(frozen=True)
class Domains:
    """The account's domains: exact names, and wildcard ("extensive") ones like *.example.com."""

    exact: frozenset[str]
    wildcard_suffixes: tuple[str, ...]  # ".example.com" for "*.example.com"

    @classmethod
    def of(cls, names: Iterable[str]) -> Domains:
        names = [name.strip().lower() for name in names if name.strip()]
        return cls(
            exact=frozenset(name for name in names if not name.startswith("*.")),
            wildcard_suffixes=tuple(name[1:] for name in names if name.startswith("*.")),
        )


def split_object_path(object_path: str) -> list[str]:
    """URLs separated by \\n or \\r\\n; only a trailing empty line is dropped (others are empty URLs)."""
    lines = object_path.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def check_urls(urls: list[str], domains: Domains, cap: int) -> None:
    """Raise the API's error for the first problem; the real API refuses the whole call."""
    if not urls:
        raise ApiError("MissingParameter", name="ObjectPath")
    if len(urls) > cap:
        raise ApiError("InvalidObjectPath.Size.Malformed", cap=cap)
    for url in urls:
        check_url(url, domains)


def check_url(url: str, domains: Domains) -> None:
    if len(url) > MAX_URL_LENGTH or any(_is_forbidden_char(ch) for ch in url):
        raise ApiError("InvalidObjectPath.Malformed")
    rest = _strip_scheme(url)
    host, slash, path = rest.partition("/")
    if not slash or not path:
        raise ApiError("InvalidObjectPath.Malformed")  # no object: a bare domain or its root
    if _path_part(path).endswith("/"):
        raise ApiError("InvalidObjectPath.Malformed")  # directories cannot be prefetched
    check_host(_host_name(host), domains)


def check_host(host: str, domains: Domains) -> None:
    if host.startswith("*.") or any(host.endswith(suffix) for suffix in domains.wildcard_suffixes):
        raise ApiError("InvalidExtensiveDomain.ValueNotSupported")
    if host not in domains.exact:
        raise ApiError("InvalidDomain.NotFound")


def _is_forbidden_char(ch: str) -> bool:
    # Raw whitespace and control characters would split or corrupt the URL list.
    return ord(ch) < 0x21 or ord(ch) == 0x7F or ch.isspace()


_OTHER_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _strip_scheme(url: str) -> str:
    lowered = url.lower()
    for scheme in ("http://", "https://"):
        if lowered.startswith(scheme):
            return url[len(scheme):]
    if _OTHER_SCHEME.match(url):
        raise ApiError("InvalidObjectPath.Malformed")  # ftp:// and friends
    return url


def _host_name(host: str) -> str:
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        host = name
    if not host or "@" in host:
        raise ApiError("InvalidObjectPath.Malformed")
    return host.lower()


def _path_part(path: str) -> str:
    for mark in ("?", "#"):
        path = path.split(mark, 1)[0]
    return path


def check_area(area: str | None) -> None:
    if area is not None and area not in AREAS:
        raise ApiError("InvalidParameter", name="Area")


def check_with_header(value: str | None) -> None:
    if value is None:
        return
    try:
        if isinstance(json.loads(value), dict):
            return
    except ValueError:
        pass
    raise ApiError("InvalidParameter", name="WithHeader")


# ---------------------------------------------------------------- answers


def wants_json(params: dict[str, str], headers: dict[str, str]) -> bool:
    """Format=JSON (any case) wins; without Format, V3 callers ask with Accept: application/json."""
    fmt = params.get("Format")
    if fmt is not None:
        return fmt.strip().lower() == "json"
    return "application/json" in headers.get("accept", "").lower()


def error_body(error: ApiError, request_id: str) -> dict:
    return {"RequestId": request_id, "HostId": HOST_ID, "Code": error.code, "Message": error.message}


def render(body: dict, root: str, as_json: bool) -> tuple[bytes, str]:
    """The body bytes and content type; XML lists repeat their element, as Alibaba's XML does."""
    if as_json:
        return json.dumps(body).encode("utf-8"), "application/json;charset=utf-8"
    xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>{_xml_fields(body)}</{root}>'
    return xml.encode("utf-8"), "text/xml;charset=utf-8"


def _xml_fields(body: dict) -> str:
    parts = []
    for name, value in body.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            inner = _xml_fields(item) if isinstance(item, dict) else escape(str(item))
            parts.append(f"<{name}>{inner}</{name}>")
    return "".join(parts)
