"""The service's errors: a code, a message and the HTTP status the service answers them with."""

from __future__ import annotations

# HTTP status per error code, from Tablestore's error code reference. OTSTableNotReady's status
# is not in that reference; the SDK decides its retries by the code alone, so the status used
# here (404, as for a table that cannot be used yet) changes nothing the SDK does.
STATUS_OF = {
    "OTSParameterInvalid": 400,
    "OTSAuthFailed": 403,
    "OTSConditionCheckFail": 403,
    "OTSQuotaExhausted": 403,
    "OTSNotEnoughCapacityUnit": 403,
    "OTSObjectNotExist": 404,
    "OTSTableNotReady": 404,
    "OTSMethodNotAllowed": 405,
    "OTSRequestTimeout": 408,
    "OTSObjectAlreadyExist": 409,
    "OTSRowOperationConflict": 409,
    "OTSRequestBodyTooLarge": 413,
    "OTSInternalServerError": 500,
    "OTSServerBusy": 503,
    "OTSTimeout": 503,
    "OTSServerUnavailable": 503,
    "OTSPartitionUnavailable": 503,
}

DEFAULT_MESSAGE = {
    "OTSServerBusy": "Server is busy.",
    "OTSTimeout": "Operation timeout.",
    "OTSServerUnavailable": "Server is not available.",
    "OTSPartitionUnavailable": "The partition is not available.",
    "OTSInternalServerError": "Internal server error.",
    # The SDK retries OTSQuotaExhausted only with exactly this message (retry.py).
    "OTSQuotaExhausted": "Too frequent table operations.",
    "OTSRowOperationConflict": "Data is being modified by the other request.",
    "OTSTableNotReady": "The table is not ready.",
    "OTSConditionCheckFail": "Condition check failed.",
    "OTSObjectNotExist": "Requested table does not exist.",
    "OTSObjectAlreadyExist": "Requested table already exists.",
}


class ServiceError(Exception):
    """An error the double answers with: protobuf Error {code, message} and an HTTP status."""

    def __init__(self, code: str, message: str | None = None, status: int | None = None) -> None:
        self.code = code
        self.message = message if message is not None else DEFAULT_MESSAGE.get(code, code)
        self.status = status if status is not None else STATUS_OF.get(code, 500)
        super().__init__(f"{self.status} {code}: {self.message}")


def invalid(message: str) -> ServiceError:
    return ServiceError("OTSParameterInvalid", message)


def not_modelled(what: str) -> ServiceError:
    """A request the double does not model: refused clearly rather than answered with a guess."""
    return invalid(f"not modelled by the local double: {what}")
