"""Alibaba Cloud access keys: where they come from, and a repr that never shows the secret."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_SECURITY_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"
MASK = "***"


class MissingCredentialsError(ValueError):
    """No usable access key was found; the message names where one can come from."""


@dataclass(frozen=True, repr=False)
class Credentials:
    access_key_id: str
    access_key_secret: str
    security_token: str | None = None  # set for temporary (STS) credentials, e.g. an FC role

    def __repr__(self) -> str:
        token = MASK if self.security_token else None
        return (
            f"Credentials(access_key_id={self.access_key_id!r}, "
            f"access_key_secret={MASK!r}, security_token={token!r})"
        )

    __str__ = __repr__


def resolve_credentials(
    explicit: Credentials | None = None,
    context: Any = None,
    env: Mapping[str, str] | None = None,
) -> Credentials:
    """The first complete key of: `explicit`, the FC `context.credentials`, the environment."""
    if explicit is not None:
        if not (explicit.access_key_id and explicit.access_key_secret):
            raise MissingCredentialsError("the credentials given have an empty access key id or secret")
        return explicit
    found = _from_context(context)
    if found is not None:
        return found
    env = os.environ if env is None else env
    key_id = (env.get(ENV_ACCESS_KEY_ID) or "").strip()
    secret = (env.get(ENV_ACCESS_KEY_SECRET) or "").strip()
    if key_id and secret:
        return Credentials(key_id, secret, (env.get(ENV_SECURITY_TOKEN) or "").strip() or None)
    raise MissingCredentialsError(
        f"no Alibaba Cloud credentials: set {ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET} "
        f"(and {ENV_SECURITY_TOKEN} for STS), or give the function a role"
    )


def _from_context(context: Any) -> Credentials | None:
    """FC python3.9/3.10 runtimes pass role credentials on the context; newer ones do not."""
    source = getattr(context, "credentials", None) if context is not None else None
    if source is None:
        return None
    key_id = getattr(source, "access_key_id", None) or ""
    secret = getattr(source, "access_key_secret", None) or ""
    token = getattr(source, "security_token", None) or None
    if not (isinstance(key_id, str) and isinstance(secret, str) and key_id and secret):
        return None
    return Credentials(key_id, secret, token if isinstance(token, str) else None)
