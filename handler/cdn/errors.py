"""CDN API errors and the one table that says what the core does about each.

Classification is by the API's error Code (and, for answers without one, by what
the transport saw), never by message text, which Alibaba rewords. The core only
sees `ports.Problem` kinds and `rejected` URLs; nothing outside handler/cdn/
needs to import this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ports import CallProblem, Problem

REJECTED = "rejected"  # not a Problem: the URL itself is refused for good and goes to outcome.rejected


@dataclass(frozen=True)
class Handling:
    """What a code means: an outcome class, and what the client and the batcher may do about it."""

    kind: str  # a ports.Problem constant, or REJECTED
    retry: bool = False  # the client may retry the same call inside its bounded budget
    domain_wide: bool = False  # REJECTED for every URL of the domain: no need to bisect a one-domain batch
    batch_too_large: bool = False  # the call had too many URLs (or domains): split it and lower the cap


_SOON = Handling(Problem.NOT_ACCEPTED, retry=True)  # nothing taken; the same call may pass in a second
_LATER = Handling(Problem.NOT_ACCEPTED)  # nothing taken; the API is full or busy for minutes
_URL = Handling(REJECTED)
_DOMAIN = Handling(REJECTED, domain_wide=True)
_TOO_LARGE = Handling(Problem.NOT_ACCEPTED, batch_too_large=True)
_QUOTA = Handling(Problem.QUOTA_SPENT)
_CONFIG = Handling(Problem.CONFIG)
_AMBIGUOUS = Handling(Problem.AMBIGUOUS)  # never retried for a submission: a retry may double a prefetch

HANDLING: dict[str, Handling] = {
    # Busy or rate-limited: an answer with a Code means the API took nothing.
    "Throttling": _SOON,
    "Throttling.User": _SOON,
    "Throttling.Api": _SOON,
    "ServiceBusy": _SOON,
    "ServiceUnavailable": _SOON,
    "InternalError": _SOON,
    "UnknownError": _SOON,
    "SignatureNonceUsed": _SOON,  # a retry signs with a fresh nonce
    "PreloadQueueFull": _LATER,
    "TooMany.Refresh": _LATER,  # the refresh queue is full
    "QuotaPerMinuteExceeded.Refresh": _LATER,
    # The URL (or its whole domain) is refused: retrying the same URL never helps.
    "InvalidObjectPath.Malformed": _URL,
    "InvalidObjectPath.ExceedsMaximum": _URL,
    "InvalidDomain.NotFound": _DOMAIN,
    "InvalidDomain.Offline": _DOMAIN,
    "InvalidExtensiveDomain.ValueNotSupported": _DOMAIN,
    # Too many URLs (or domains) in one call: the batcher splits the call and lowers its cap.
    "InvalidObjectPath.Size.Malformed": _TOO_LARGE,
    "SingleRequest.OverLimit": _TOO_LARGE,
    # The day's quota of the called kind (prefetch for PushObjectCache, URL refresh for
    # RefreshObjectCaches) is spent; PushObjectCache has answered both codes over the years.
    "QuotaExceeded.Preload": _QUOTA,
    "QuotaExceeded.Refresh": _QUOTA,
    # Nothing succeeds until a person fixes credentials, permissions, the account or this client.
    "InvalidAccessKeyId.NotFound": _CONFIG,
    "InvalidAccessKeyId.Inactive": _CONFIG,
    "InvalidSecurityToken.Expired": _CONFIG,
    "InvalidSecurityToken.Malformed": _CONFIG,
    "InvalidSecurityToken.MismatchWithAccessKey": _CONFIG,
    "SignatureDoesNotMatch": _CONFIG,
    "IncompleteSignature": _CONFIG,
    "InvalidTimeStamp.Expired": _CONFIG,  # the function's clock is off
    "InvalidTimeStamp.Format": _CONFIG,
    "NoPermission": _CONFIG,
    "Forbidden.RAM": _CONFIG,
    "Forbidden": _CONFIG,
    "OperationDenied": _CONFIG,
    "IllegalOperation": _CONFIG,
    "MissingParameter": _CONFIG,
    "InvalidParameter": _CONFIG,
    "InvalidVersion": _CONFIG,
    "InvalidAction.NotFound": _CONFIG,
    "InvalidObjectType.Malformed": _CONFIG,
    "InvalidTaskId.ValueNotSupported": _CONFIG,
    # Failures on our side of the wire (Local.*), classified by the client from what the transport saw.
    "Local.NotSent": _SOON,  # refused, DNS, connect timeout, TLS handshake: the request never left
    "Local.TLSError": _CONFIG,  # a certificate we cannot verify: retrying will not help
    "Local.Timeout": _AMBIGUOUS,  # sent, no answer in time
    "Local.ConnectionLost": _AMBIGUOUS,  # sent, then reset or closed before a whole answer came
    "Local.InvalidResponse": _AMBIGUOUS,  # a 2xx whose body we cannot read: the call probably went through
    "Local.GatewayTimeout": _AMBIGUOUS,  # a 502/504 without an API Code: a proxy gave up waiting on the API
    "Local.RequestError": _LATER,  # requests refused to build the call: nothing sent
    "Local.InvalidUrl": _URL,
    "Local.TooManyUrls": _TOO_LARGE,
    "Local.NoUrls": _CONFIG,  # refused before any call: a URL the API would refuse, or an injection attempt
}


def handling_for(code: str, status: int | None = None) -> Handling:
    """The handling of a code; an unknown code is NOT_ACCEPTED (an answer with a Code took nothing),
    retried within the budget when the status says the server failed."""
    known = HANDLING.get(code)
    if known is not None:
        return known
    return _SOON if status is not None and status >= 500 else _LATER


class CdnError(Exception):
    """An error from, or on the way to, the CDN API. Carries no credential."""

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        status: int | None = None,
        request_id: str | None = None,
        sent_at: float | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.sent_at = sent_at  # wall-clock epoch seconds just before the request went out
        super().__init__(self.__str__())

    @property
    def handling(self) -> Handling:
        return handling_for(self.code, self.status)

    @property
    def kind(self) -> str:
        return self.handling.kind

    def problem(self) -> CallProblem:
        """The port's view of this error. A per-URL refusal that still stops a call is NOT_ACCEPTED."""
        kind = self.kind if self.kind != REJECTED else Problem.NOT_ACCEPTED
        return CallProblem(kind, self.code, self.message)

    def __str__(self) -> str:
        parts = [self.code]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.request_id:
            parts.append(f"RequestId {self.request_id}")
        head = " ".join(parts[:1]) + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")
        return f"{head}: {self.message}" if self.message else head

    def __reduce__(self):
        return (_rebuild, (type(self), self.code, self.message, self.status, self.request_id, self.sent_at))


def _rebuild(cls, code, message, status, request_id, sent_at=None):
    return cls(code, message, status=status, request_id=request_id, sent_at=sent_at)


class InvalidUrlError(CdnError, ValueError):
    """Refused locally, before any call: a URL the API would reject or that could inject another URL."""


# Subclasses kept for callers that still test isinstance() during the move to Problem kinds;
# error_for() picks them from the table, so the class always agrees with `kind`.
class TransientError(CdnError):
    """NOT_ACCEPTED and retryable soon (throttling, 5xx, not sent), or AMBIGUOUS (sent, no answer)."""


class RetryLaterError(CdnError):
    """NOT_ACCEPTED for a while (queue full, per-minute limit)."""


class QuotaExhaustedError(CdnError):
    """QUOTA_SPENT: the day's quota of the called kind is used up."""


class BadUrlError(CdnError):
    """REJECTED: a URL (or its domain) is refused for good."""


class BatchTooLargeError(CdnError):
    """Too many URLs or domains in one call."""


class FatalConfigError(CdnError):
    """CONFIG: credentials, permissions or account state are wrong."""


class UnexpectedApiError(CdnError):
    """An error code this client does not know: NOT_ACCEPTED, with the code kept."""


def error_for(
    code: str,
    message: str = "",
    *,
    status: int | None = None,
    request_id: str | None = None,
    sent_at: float | None = None,
) -> CdnError:
    """The error for an API answer or a transport failure, typed from the table."""
    handling = handling_for(code, status)
    if code not in HANDLING and not handling.retry:
        cls: type[CdnError] = UnexpectedApiError
    elif handling.batch_too_large:
        cls = BatchTooLargeError
    elif handling.kind == REJECTED:
        cls = BadUrlError
    elif handling.kind == Problem.QUOTA_SPENT:
        cls = QuotaExhaustedError
    elif handling.kind == Problem.CONFIG:
        cls = FatalConfigError
    elif handling.retry or handling.kind == Problem.AMBIGUOUS:
        cls = TransientError
    else:
        cls = RetryLaterError
    return cls(code, message, status=status, request_id=request_id, sent_at=sent_at)
