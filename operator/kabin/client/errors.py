"""The client's exceptions: the API server's own message, typed by what went wrong.

Every failure is an exception (never a silent False): `NotFound`, `AlreadyExists`,
`Conflict`, `Forbidden`, `Invalid` (also a ValueError: bad input, from the client's checks or
the API server's schema, CEL rules and webhooks), `Timeout` (also a TimeoutError)
and `Unreachable`, all `KabinError`s.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from kubernetes_asyncio.client.rest import ApiException

from kabin.api.names import Reason
from kabin.k8s.errors import Failure, classify


class KabinError(Exception):
    """A request failed. The message is the API server's when it answered; `field`, when
    the input was at fault, the field it got wrong (`spec.resources.cpu`, `name`)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str = "",
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.field = field


class NotFound(KabinError):
    """The object does not exist (404)."""


class AlreadyExists(KabinError):
    """An object of that name exists already (409)."""


class Conflict(KabinError):
    """The object is not the one the request was made for: it changed, or was deleted and
    made again under the same name (409 Conflict, a failed precondition)."""


class Forbidden(KabinError):
    """RBAC or admission refused the caller (403)."""


class Invalid(KabinError, ValueError):
    """Bad input: refused by the client's checks or by the API server (422, 400). The
    client's own checks word their messages "field: what is wrong", and that field is
    the error's `field` unless one is given."""

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        if field is None:
            named = _NAMED.match(message)
            field = named.group(1) if named else None
        super().__init__(message, field=field, **kwargs)


_NAMED = re.compile(r"^([a-zA-Z][\w.\[\]]*): ")


class Timeout(KabinError, TimeoutError):
    """No answer in time."""


class Unreachable(KabinError, ConnectionError):
    """The API server could not be reached."""


_BY_REASON: dict[str, type[KabinError]] = {
    Reason.INVALID: Invalid,
    Reason.FORBIDDEN: Forbidden,
    Reason.QUOTA_EXCEEDED: Forbidden,
    Reason.NAMESPACE_TERMINATING: Forbidden,
    Reason.NOT_FOUND: NotFound,
    Reason.ALREADY_EXISTS: AlreadyExists,
    Reason.CONFLICT: Conflict,
}


def from_failure(failure: Failure) -> KabinError:
    """The typed exception of a classified failure (`kabin.k8s.errors.classify`, the one
    classification), carrying the API server's message and the field it names."""
    if failure.status is None:  # no answer: a timeout or a broken connection
        kind: type[KabinError] = Unreachable
    else:
        kind = _BY_REASON.get(failure.reason, KabinError)
    return kind(failure.message, status=failure.status, reason=failure.reason, field=failure.field)


def from_api(error: ApiException | aiohttp.ClientError | TimeoutError) -> KabinError:
    """The typed exception of a failed request (`kabin.k8s.API_FAILURES`): the API
    server's error response, or no answer."""
    failure = classify(error)
    assert failure is not None  # classify knows every API failure
    return from_failure(failure)
