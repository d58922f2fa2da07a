"""What a failed API request means for the reconciler: try again, or tell the user.

Retryable: a conflict (another writer won; read again), 429, 5xx, a timeout, a broken
connection, and a 403 because the namespace is being deleted (it goes away by itself).
Permanent: any other 4xx, so a ResourceQuota's refusal (403 "exceeded quota"), RBAC's
(403), an invalid object (400, 422) or a missing referenced object (404). A permanent
failure will not pass by retrying the same request soon: the reconciler writes it to
the object's status, with the API server's message, and retries slowly (per-key
backoff) in case someone raises the quota or fixes the environment.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio.client.rest import ApiException

from kabin.api.names import Reason

API_FAILURES = (ApiException, aiohttp.ClientError, TimeoutError)
"""What a request to the API server may raise when it fails: `classify` knows each."""


@dataclass(frozen=True)
class Failure:
    """A failed request, classified."""

    retryable: bool
    reason: str  # CamelCase, for a condition: QuotaExceeded, Forbidden, Invalid, ...
    message: str
    status: int | None = None
    field: str | None = None  # the field an invalid request got wrong: spec.resources.cpu


# kabin's admission webhooks name the field first ("spec.drive: ..."), after the API
# server's own preamble.
_WEBHOOK = re.compile(r'admission webhook "[^"]*" denied the request: ([\w.\[\]]+): ')


def _status(error: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def message_of(error: ApiException) -> str:
    """The API server's message in an error response (a Status object), else its reason."""
    body = _status(error)
    if body.get("message"):
        return str(body["message"])
    text = (error.body or "").strip() if isinstance(error.body, str) else ""
    return text or f"{error.status} {error.reason}"


def field_of(error: ApiException) -> str | None:
    """The field an invalid request got wrong: the first cause the API server gives (its
    schema and CEL rules), or the one kabin's admission webhook names."""
    body = _status(error)
    for cause in (body.get("details") or {}).get("causes") or []:
        if cause.get("field"):
            return str(cause["field"])
    found = _WEBHOOK.search(str(body.get("message") or ""))
    return found.group(1) if found else None


def classify(error: BaseException) -> Failure | None:
    """The failure an exception stands for; None for one that is not an API failure
    (a bug, which the work queue logs with its traceback)."""
    if isinstance(error, ApiException):
        status = int(error.status or 0)
        message = message_of(error)
        if status == 409 and _status(error).get("reason") == "AlreadyExists":
            return Failure(True, Reason.ALREADY_EXISTS, message, status)
        if status == 409:
            return Failure(True, Reason.CONFLICT, message, status)
        if status == 429 or status >= 500 or status == 0:
            return Failure(True, Reason.API_UNAVAILABLE, message, status)
        if status == 403 and "is being terminated" in message:
            return Failure(True, Reason.NAMESPACE_TERMINATING, message, status)
        if status == 403 and "exceeded quota" in message:
            return Failure(False, Reason.QUOTA_EXCEEDED, message, status)
        if status == 403:
            return Failure(False, Reason.FORBIDDEN, message, status)
        if status == 404:
            return Failure(False, Reason.NOT_FOUND, message, status)
        return Failure(False, Reason.INVALID, message, status, field_of(error))
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return Failure(True, Reason.API_UNAVAILABLE, "the API server did not answer in time")
    if isinstance(error, aiohttp.ClientError | ConnectionError):
        return Failure(True, Reason.API_UNAVAILABLE, f"cannot reach the API server: {error}")
    return None


class Reported(Exception):
    """A permanent failure the reconciler has written to the object's status (with one
    Event): the work queue retries it with backoff, and logs it only at debug."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(f"{failure.reason}: {failure.message}")
        self.failure = failure
