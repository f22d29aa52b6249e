"""A small client for the Alibaba Cloud CDN RPC API: signed form POSTs, typed errors, retries, pacing.

Imported only on the flush path: it pulls in `requests`, never an official SDK.
"""

from __future__ import annotations

import json
import logging
import random as _random
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

import requests

from ..credentials import Credentials
from ..ports import TASK_IDS_PER_CALL, Problem
from ..settings import API_CALLS_PER_SECOND, CdnSettings, check_endpoint
from . import signing
from .errors import CdnError, InvalidUrlError, error_for
from .transport import new_session, transport_error

log = logging.getLogger("handler.cdn")

MAX_URL_LENGTH = 1024  # documented per-URL limit of ObjectPath
TASKS_PER_PAGE = 100  # DescribeRefreshTasks' largest PageSize
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_MASK = "***"


@dataclass(frozen=True)
class PushResult:
    task_ids: list[str]
    request_id: str


@dataclass(frozen=True)
class TaskPage:
    tasks: list["RefreshTask"]
    total: int
    page_number: int
    page_size: int


@dataclass(frozen=True)
class RefreshQuota:
    preload_quota: int | None
    preload_remain: int | None
    url_quota: int | None
    url_remain: int | None
    dir_quota: int | None
    dir_remain: int | None
    request_id: str


@dataclass(frozen=True)
class RefreshTask:
    task_id: str
    object_path: str
    object_type: str
    status: str
    process: str
    creation_time: str
    description: str | None


def check_url(url: str, index: int = 0) -> None:
    """Refuse a URL the API would reject, or one that could smuggle another URL into ObjectPath."""
    if not isinstance(url, str) or not url:
        raise InvalidUrlError("Local.InvalidUrl", f"URL #{index} is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidUrlError(
            "Local.InvalidUrl", f"URL #{index} has {len(url)} characters, over the {MAX_URL_LENGTH} limit"
        )
    if url.isascii() and url.isprintable() and " " not in url:
        return  # the common case (our URLs are percent-encoded ASCII), without a per-character scan
    for ch in url:
        if ch.isspace() or ord(ch) < 32 or ord(ch) == 127 or unicodedata.category(ch) in ("Cc", "Cf"):
            raise InvalidUrlError(
                "Local.InvalidUrl", f"URL #{index} contains whitespace or control character U+{ord(ch):04X}: {url!r}"
            )


class Pacer:
    """Spaces call starts at least 1/rate apart, so one client never exceeds the account's calls per second."""

    def __init__(self, calls_per_second: float, monotonic: Callable[[], float], sleep: Callable[[float], None]):
        rate = min(calls_per_second, API_CALLS_PER_SECOND)
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._monotonic = monotonic
        self._sleep = sleep
        self._next: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._monotonic()
            if self._next is not None and now < self._next:
                self._sleep(self._next - now)
                now = self._next
            self._next = now + self.interval


def backoff_delay(attempt: int, random: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)); `attempt` counts from 0."""
    return random() * min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)


class CdnClient:
    """Signed calls to the CDN RPC API over one pooled HTTPS session."""

    def __init__(
        self,
        credentials: Credentials,
        settings: CdnSettings = CdnSettings(),
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_endpoint(settings.endpoint, "cdn.endpoint")  # no credentials over plain http off loopback
        if settings.signature not in ("v2", "v3"):
            raise ValueError(f"cdn.signature: must be v3 or v2, not {settings.signature!r}")
        self.credentials = credentials
        self.settings = settings
        self.session = session if session is not None else new_session()
        self.calls_made = 0  # HTTP calls sent, retries included
        self._url = settings.endpoint.rstrip("/") + "/"
        self._host = urlsplit(settings.endpoint).netloc
        self._sleep = sleep
        self._monotonic = monotonic
        self._random = random
        self._clock = clock  # wall clock: stamps when an ambiguous call went out
        self._pacer = Pacer(settings.calls_per_second, monotonic, sleep)

    def __repr__(self) -> str:
        return f"CdnClient(endpoint={self.settings.endpoint!r}, access_key_id={self.credentials.access_key_id!r})"

    def close(self) -> None:
        self.session.close()

    # -- API operations -------------------------------------------------------------------

    def push_object_cache(
        self,
        urls: Sequence[str],
        area: str | None = None,
        l2_preload: bool | None = None,
        with_header: str | Mapping[str, Any] | None = None,
    ) -> PushResult:
        """Prefetch `urls` in one call; refuses locally, before any call, what the API would refuse."""
        urls = list(urls)
        if not urls:
            raise InvalidUrlError("Local.NoUrls", "no URL to push")
        if len(urls) > self.settings.max_urls_per_call:
            raise InvalidUrlError(
                "Local.TooManyUrls", f"{len(urls)} URLs, over the {self.settings.max_urls_per_call} per call"
            )
        for index, url in enumerate(urls):
            check_url(url, index)
        params = {"ObjectPath": "\n".join(urls)}
        area = self.settings.area if area is None else area
        l2_preload = self.settings.l2_preload if l2_preload is None else l2_preload
        with_header = self.settings.with_header if with_header is None else with_header
        if area is not None:
            params["Area"] = area
        if l2_preload is not None:
            params["L2Preload"] = "true" if l2_preload else "false"
        if with_header is not None:
            params["WithHeader"] = (
                with_header if isinstance(with_header, str) else json.dumps(with_header, separators=(",", ":"))
            )
        answer = self.call("PushObjectCache", params)
        task_ids = [t.strip() for t in str(answer.get("PushTaskId") or "").split(",") if t.strip()]
        return PushResult(task_ids=task_ids, request_id=str(answer.get("RequestId", "")))

    def describe_refresh_quota(self) -> RefreshQuota:
        answer = self.call("DescribeRefreshQuota", {})
        return RefreshQuota(
            preload_quota=_int_or_none(answer.get("PreloadQuota")),
            preload_remain=_int_or_none(answer.get("PreloadRemain")),
            url_quota=_int_or_none(answer.get("UrlQuota")),
            url_remain=_int_or_none(answer.get("UrlRemain")),
            dir_quota=_int_or_none(answer.get("DirQuota")),
            dir_remain=_int_or_none(answer.get("DirRemain")),
            request_id=str(answer.get("RequestId", "")),
        )

    def refresh_object_caches(self, urls: Sequence[str]) -> PushResult:
        """Refresh (ObjectType=File) `urls` in one call; refuses locally what the API would refuse."""
        urls = list(urls)
        if not urls:
            raise InvalidUrlError("Local.NoUrls", "no URL to refresh")
        if len(urls) > self.settings.max_urls_per_refresh:
            raise InvalidUrlError(
                "Local.TooManyUrls", f"{len(urls)} URLs, over the {self.settings.max_urls_per_refresh} per call"
            )
        for index, url in enumerate(urls):
            check_url(url, index)
        answer = self.call("RefreshObjectCaches", {"ObjectPath": "\n".join(urls), "ObjectType": "File"})
        task_ids = [t.strip() for t in str(answer.get("RefreshTaskId") or "").split(",") if t.strip()]
        return PushResult(task_ids=task_ids, request_id=str(answer.get("RequestId", "")))

    def describe_refresh_task_by_id(self, task_ids: Sequence[str]) -> list[RefreshTask]:
        """Status of prefetch/refresh tasks, one entry per URL, TASK_IDS_PER_CALL ids per call."""
        ids = list(dict.fromkeys(str(t).strip() for t in task_ids if str(t).strip()))
        tasks: list[RefreshTask] = []
        for start in range(0, len(ids), TASK_IDS_PER_CALL):
            chunk = ids[start : start + TASK_IDS_PER_CALL]
            answer = self.call("DescribeRefreshTaskById", {"TaskId": ",".join(chunk)})
            tasks.extend(_tasks_of(answer.get("Tasks")))
        return tasks

    def describe_refresh_tasks(
        self,
        *,
        object_path: str | None = None,
        object_type: str | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
        task_id: str | None = None,
        domain_name: str | None = None,
        status: str | None = None,
        page_number: int = 1,
        page_size: int = TASKS_PER_PAGE,
    ) -> TaskPage:
        """One page of DescribeRefreshTasks; times are UTC `YYYY-MM-DDThh:mm:ssZ`."""
        given = {
            "ObjectPath": object_path, "ObjectType": object_type, "StartTime": start_time, "EndTime": end_time,
            "TaskId": task_id, "DomainName": domain_name, "Status": status,
        }
        params = {name: value for name, value in given.items() if value is not None}
        params.update(PageNumber=str(page_number), PageSize=str(page_size))
        answer = self.call("DescribeRefreshTasks", params)
        return TaskPage(
            tasks=_tasks_of(answer.get("Tasks")),
            total=_int_or_none(answer.get("TotalCount")) or 0,
            page_number=_int_or_none(answer.get("PageNumber")) or page_number,
            page_size=_int_or_none(answer.get("PageSize")) or page_size,
        )

    # -- transport ------------------------------------------------------------------------

    def call(self, action: str, params: Mapping[str, str], *, idempotent: bool | None = None) -> dict:
        """One API action, retrying with capped, fully jittered backoff what is safe to retry.

        Retried: calls the API surely did not take (not sent, or answered with a retryable Code);
        for an `idempotent` read, also calls whose answer was lost. Never a submission whose
        answer was lost: it may have been accepted, and a retry would submit it twice.
        At most 1 + settings.max_retries attempts, and no sleep that would end past
        settings.retry_budget_seconds after the first attempt began.
        """
        if idempotent is None:
            idempotent = action.startswith("Describe")  # reads change nothing: asking twice is harmless
        started = self._monotonic()
        attempt = 0
        while True:
            self._pacer.wait()
            try:
                return self._send(action, params, attempt)
            except CdnError as exc:
                handling = exc.handling
                if not (handling.retry or (idempotent and handling.kind == Problem.AMBIGUOUS)):
                    raise
                if attempt >= self.settings.max_retries:
                    raise
                delay = backoff_delay(attempt, self._random)
                elapsed = self._monotonic() - started
                if elapsed + delay > self.settings.retry_budget_seconds:
                    raise
                attempt += 1
                log.warning(
                    "cdn %s: %s; retry %d/%d in %.2fs", action, exc, attempt, self.settings.max_retries, delay
                )
                self._sleep(delay)

    def _send(self, action: str, params: Mapping[str, str], attempt: int) -> dict:
        body, headers = self._signed_request(action, params)
        url_count = params["ObjectPath"].count("\n") + 1 if params.get("ObjectPath") else 0
        self.calls_made += 1
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        sent_at = self._clock()
        try:
            # No redirects: a redirect could carry the token header to another host.
            response = self.session.post(self._url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
            content = response.content
        except requests.RequestException as exc:
            raise transport_error(action, exc, timeout, self._host, sent_at) from exc
        answer = _parse_json(content)
        request_id = self._scrub(str((answer or {}).get("RequestId") or response.headers.get("x-acs-request-id") or ""))
        log.debug(
            "cdn %s urls=%d attempt=%d status=%d request_id=%s",
            action, url_count, attempt, response.status_code, request_id,
        )
        if 200 <= response.status_code < 300:
            if answer is None:
                # The API answered success but we cannot read what it did: it probably acted.
                raise error_for(
                    "Local.InvalidResponse", f"{action}: a {len(content)}-byte answer that is not JSON",
                    status=response.status_code, sent_at=sent_at,
                )
            return answer
        error = self._error(response.status_code, answer, content, request_id or None)
        error.sent_at = sent_at
        raise error

    def _signed_request(self, action: str, params: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
        """A fresh nonce and timestamp each time: a retry is a new request, signed again."""
        creds = self.credentials
        now = datetime.now(timezone.utc).strftime(signing.TIMESTAMP_FORMAT)  # real clock: the API rejects stale ones
        nonce = str(uuid.uuid4())
        headers = {"content-type": FORM_CONTENT_TYPE, "accept": "application/json"}
        if self.settings.signature == "v2":
            form = {
                **params,
                "Action": action,
                "Version": self.settings.version,
                "Format": "JSON",
                "AccessKeyId": creds.access_key_id,
                "SignatureMethod": signing.V2_METHOD,
                "SignatureVersion": signing.V2_VERSION,
                "SignatureNonce": nonce,
                "Timestamp": now,
            }
            if creds.security_token:
                form["SecurityToken"] = creds.security_token
            form["Signature"] = signing.v2_signature("POST", form, creds.access_key_secret)
            return _form_body(form), headers
        body = _form_body({**params, "Format": "JSON"})
        headers.update(
            {
                "host": self._host,
                "x-acs-action": action,
                "x-acs-version": self.settings.version,
                "x-acs-date": now,
                "x-acs-signature-nonce": nonce,
                "x-acs-content-sha256": signing.sha256_hex(body),
            }
        )
        if creds.security_token:
            headers["x-acs-security-token"] = creds.security_token
        signed = [name for name in headers if name != "accept"]
        canonical = signing.v3_canonical_request("POST", {}, headers, signed, headers["x-acs-content-sha256"])
        signature = signing.v3_signature(canonical, creds.access_key_secret)
        headers["Authorization"] = signing.v3_authorization(creds.access_key_id, signed, signature)
        return body, headers

    def _error(self, status: int, answer: dict | None, content: bytes, request_id: str | None) -> CdnError:
        """The typed error for a non-2xx answer, whatever its body; never quotes our request."""
        if answer is not None:
            code = self._scrub(str(answer.get("Code") or f"HTTP{status}"))
            message = self._scrub(str(answer.get("Message") or ""))
            return error_for(code, message, status=status, request_id=request_id)
        fields = _parse_xml_error(content)
        if fields.get("Code"):
            return error_for(
                self._scrub(fields["Code"]),
                self._scrub(fields.get("Message", "")),
                status=status,
                request_id=self._scrub(fields.get("RequestId", "")) or request_id,
            )
        # No API Code: not the API's answer but a proxy's. A gateway timeout means the API may have acted.
        code = "Local.GatewayTimeout" if status in (502, 504) else f"HTTP{status}"
        return error_for(
            code,
            f"HTTP {status}: answer of {len(content)} bytes is neither JSON nor XML",
            status=status,
            request_id=request_id,
        )

    def _scrub(self, text: str) -> str:
        """An error text may echo what we sent (SignatureDoesNotMatch quotes the string to sign,
        token included, once or twice percent-encoded); never let a secret through."""
        for secret in (self.credentials.access_key_secret, self.credentials.security_token):
            if secret:
                once = signing.percent_encode(secret)
                for form in (signing.percent_encode(once), once, secret):
                    text = text.replace(form, _MASK)
        return text


def _form_body(params: Mapping[str, str]) -> bytes:
    """application/x-www-form-urlencoded with RFC 3986 encoding, so the bytes hashed are the bytes sent."""
    return "&".join(
        f"{signing.percent_encode(name)}={signing.percent_encode(str(value))}" for name, value in params.items()
    ).encode("ascii")


def _parse_json(content: bytes) -> dict | None:
    try:
        answer = json.loads(content)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _parse_xml_error(content: bytes) -> dict[str, str]:
    """Code/Message/RequestId of an XML error body; {} for anything else."""
    if not content.lstrip().startswith(b"<"):
        return {}
    from xml.etree import ElementTree  # lazy: only an XML error body pays for it

    try:
        root = ElementTree.fromstring(content)
    except ElementTree.ParseError:
        return {}
    return {child.tag: (child.text or "").strip() for child in root if child.tag in ("Code", "Message", "RequestId")}


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _tasks_of(raw: Any) -> list[RefreshTask]:
    """DescribeRefreshTaskById answers a flat list, DescribeRefreshTasks nests it in {"CDNTask": [...]}."""
    if isinstance(raw, Mapping):
        raw = raw.get("CDNTask") or []
    if not isinstance(raw, list):
        return []
    return [_task(item) for item in raw if isinstance(item, Mapping)]


def _task(item: Mapping[str, Any]) -> RefreshTask:
    return RefreshTask(
        task_id=str(item.get("TaskId", "")),
        object_path=str(item.get("ObjectPath", "")),
        object_type=str(item.get("ObjectType", "")),
        status=str(item.get("Status", "")),
        process=str(item.get("Process", "")),
        creation_time=str(item.get("CreationTime", "")),
        description=item.get("Description") or None,
    )
