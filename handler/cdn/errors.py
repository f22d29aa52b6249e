"""CDN API errors, typed by what the caller should do about them.

Classification is by the API's error Code (and HTTP status for unknown codes),
never by message text, which Alibaba rewords.
"""

from __future__ import annotations


class CdnError(Exception):
    """An error from, or on the way to, the CDN API. Carries no credential."""

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [self.code]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.request_id:
            parts.append(f"RequestId {self.request_id}")
        head = " ".join(parts[:1]) + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")
        return f"{head}: {self.message}" if self.message else head

    def __reduce__(self):
        return (_rebuild, (type(self), self.code, self.message, self.status, self.request_id))


def _rebuild(cls, code, message, status, request_id):
    return cls(code, message, status=status, request_id=request_id)


class TransientError(CdnError):
    """Retry soon: throttling, 5xx, timeouts, dropped connections. The call may have been accepted."""


class RetryLaterError(CdnError):
    """The API is busy for a while (PreloadQueueFull): retry on a later flush."""


class QuotaExhaustedError(CdnError):
    """The account's daily prefetch quota is used up (QuotaExceeded.Refresh)."""


class BadUrlError(CdnError):
    """A URL in the batch is refused; retrying the same URL will not help."""


class BatchTooLargeError(CdnError):
    """More URLs in one call than the API takes (InvalidObjectPath.Size.Malformed)."""


class FatalConfigError(CdnError):
    """Credentials, permissions or account state are wrong: nothing will succeed until a person fixes it."""


class UnexpectedApiError(CdnError):
    """An error code this client does not know; treated as retry-later by callers."""


class InvalidUrlError(CdnError, ValueError):
    """Refused locally, before any call: a URL the API would reject or that could inject another URL."""


BY_CODE: dict[str, type[CdnError]] = {
    "Throttling": TransientError,
    "Throttling.User": TransientError,
    "Throttling.Api": TransientError,
    "ServiceUnavailable": TransientError,
    "InternalError": TransientError,
    "UnknownError": TransientError,
    "SignatureNonceUsed": TransientError,
    "PreloadQueueFull": RetryLaterError,
    "QuotaExceeded.Refresh": QuotaExhaustedError,
    "InvalidObjectPath.Malformed": BadUrlError,
    "InvalidDomain.NotFound": BadUrlError,
    "InvalidDomain.Offline": BadUrlError,
    "InvalidExtensiveDomain.ValueNotSupported": BadUrlError,
    "InvalidObjectPath.Size.Malformed": BatchTooLargeError,
    "InvalidAccessKeyId.NotFound": FatalConfigError,
    "InvalidAccessKeyId.Inactive": FatalConfigError,
    "InvalidSecurityToken.Expired": FatalConfigError,
    "InvalidSecurityToken.Malformed": FatalConfigError,
    "SignatureDoesNotMatch": FatalConfigError,
    "IncompleteSignature": FatalConfigError,
    "InvalidTimeStamp.Expired": FatalConfigError,
    "NoPermission": FatalConfigError,
    "Forbidden.RAM": FatalConfigError,
    "Forbidden": FatalConfigError,
    "OperationDenied": FatalConfigError,
    "IllegalOperation": FatalConfigError,
    "MissingParameter": FatalConfigError,
}


def error_for(
    code: str, message: str = "", *, status: int | None = None, request_id: str | None = None
) -> CdnError:
    """The typed error for an API answer: by Code first, then by HTTP status for unknown codes."""
    cls = BY_CODE.get(code)
    if cls is None:
        cls = TransientError if status is not None and status >= 500 else UnexpectedApiError
    return cls(code, message, status=status, request_id=request_id)
