"""Flush-on-full: ask the flush function to run now, through an async FC invocation (aliyun-fc2).

Best effort by design: the Timer trigger flushes every minute anyway, so a failed
request is logged and the upload still succeeds.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from .credentials import Credentials
from .settings import FlushFunction

log = logging.getLogger("handler.flush_request")
FLUSH_ALL_PAYLOAD = json.dumps({"all": True, "reason": "window full"}).encode()


def fc_endpoint(target: FlushFunction, context: Any) -> str | None:
    """The configured endpoint, else this account's internal FC endpoint in this region."""
    if target.endpoint:
        return target.endpoint
    account = getattr(context, "account_id", None) or os.environ.get("FC_ACCOUNT_ID")
    region = getattr(context, "region", None) or os.environ.get("FC_REGION")
    if not account or not region:
        return None
    return f"https://{account}.{region}-internal.fc.aliyuncs.com"


def request_flush(target: FlushFunction, credentials: Credentials, context: Any = None, *, timeout: float = 10) -> bool:
    """Invoke the flush function asynchronously with `{"all": true}`; True if FC accepted the request."""
    endpoint = fc_endpoint(target, context)
    if endpoint is None:
        log.warning("flush-on-full skipped: no flush_function.endpoint and no FC account/region to derive it")
        return False
    try:
        import fc2
    except ImportError:
        log.warning("flush-on-full skipped: flush_function needs aliyun-fc2: pip install 'oss-cdn-prewarm[fc]'")
        return False
    client = fc2.Client(
        endpoint=endpoint,
        accessKeyID=credentials.access_key_id,
        accessKeySecret=credentials.access_key_secret,
        securityToken=credentials.security_token or "",
        Timeout=timeout,
    )
    try:
        client.invoke_function(
            target.service,
            target.function,
            payload=FLUSH_ALL_PAYLOAD,
            headers={"x-fc-invocation-type": "Async"},
            qualifier=target.qualifier,
        )
    except Exception as exc:  # fc2 raises FcError and lets requests' errors through; neither may fail an upload
        log.warning("flush-on-full request to %s/%s failed: %s", target.service, target.function, type(exc).__name__)
        return False
    log.info("flush-on-full requested from %s/%s", target.service, target.function)
    return True
