"""The client's exceptions: the API server's own message, typed by what went wrong.

Every failure is an exception (never a silent False): `NotFound`, `AlreadyExists`,
`Conflict`, `Forbidden`, `Invalid` (also a ValueError: bad input, from the client's checks or
the API server's schema, CEL rules and webhooks), `Timeout` (also a TimeoutError)
and `Unreachable`, all `KabinError`s.
"""

from __future__ import annotations

from kubernetes_asyncio.client.rest import ApiException

from kabin.k8s.errors import message_of


class KabinError(Exception):
    """A request failed. The message is the API server's when it answered."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


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
    """Bad input: refused by the client's checks or by the API server (422, 400)."""


class Timeout(KabinError, TimeoutError):
    """No answer in time."""


class Unreachable(KabinError, ConnectionError):
    """The API server could not be reached."""


_BY_STATUS: dict[int, type[KabinError]] = {
    400: Invalid,
    403: Forbidden,
    404: NotFound,
    409: AlreadyExists,
    422: Invalid,
}


def from_api(error: ApiException) -> KabinError:
    """The typed exception of an API server error response, carrying its message."""
    kind = _BY_STATUS.get(error.status or 0, KabinError)
    message = message_of(error)
    if error.status == 409 and '"reason":"Conflict"' in str(error.body or "").replace(" ", ""):
        kind = Conflict
    return kind(message, status=error.status, reason=str(error.reason or ""))
