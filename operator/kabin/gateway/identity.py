"""Who is asking: bearer tokens to users and groups, and a user's namespace.

Two ways to check a token, as kube-apiserver has them: a static token file (local use,
tests) or a Kubernetes TokenReview (ServiceAccount and OIDC tokens the API server
accepts). The gateway then acts as that user through impersonation, so RBAC and
admission decide what the user may do; nothing here grants anything.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

log = logging.getLogger("kabin.gateway")


@dataclass(frozen=True)
class Identity:
    """A signed-in user, as the API server would see them."""

    user: str
    groups: tuple[str, ...] = ()


class Unauthenticated(Exception):
    """No token, or one nobody vouches for (401)."""


def bearer(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header:
        raise Unauthenticated("missing Authorization: Bearer <token>")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return usable(token.strip())


def usable(token: str) -> str:
    """A token as text; bytes that are not UTF-8 (aiohttp keeps them as surrogates) are
    no token anybody was given."""
    try:
        token.encode()
    except UnicodeEncodeError:
        raise Unauthenticated("the token is not valid") from None
    return token


def read_token_file(path: str | Path) -> dict[str, Identity]:
    """kube-apiserver's static token file: `token,user,uid[,"group1,group2"]` per line."""
    tokens: dict[str, Identity] = {}
    with open(path, newline="") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 3 or not row[0] or not row[1]:
                raise ValueError(f'{path}:{number}: expected token,user,uid[,"groups"]')
            groups = (
                tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
            )
            tokens[row[0]] = Identity(user=row[1], groups=groups)
    return tokens


class StaticTokens:
    """Tokens from a file, compared in constant time. Given the file's path, it reads
    the file again when it changes (its size or modification time), so adding a local
    user is adding a line; a file that no longer parses keeps the tokens read before."""

    def __init__(self, tokens: dict[str, Identity], path: str | Path | None = None) -> None:
        self._tokens = tokens
        self._path = Path(path) if path is not None else None
        self._seen = self._stamp()

    @classmethod
    def from_file(cls, path: str | Path) -> StaticTokens:
        return cls(read_token_file(path), path)

    def _stamp(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            found = self._path.stat()
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size

    def _reload(self) -> None:
        stamp = self._stamp()
        if self._path is None or stamp is None or stamp == self._seen:
            return
        self._seen = stamp
        try:
            self._tokens = read_token_file(self._path)
        except (OSError, ValueError) as e:
            log.warning("token file %s not reloaded: %s", self._path, e)

    async def __call__(self, token: str) -> Identity:
        found = self.known(token)
        if found is None:
            raise Unauthenticated("the token is not valid")
        return found

    def known(self, token: str) -> Identity | None:
        usable(token)
        self._reload()
        for known, identity in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return identity
        return None


Review = Callable[[str], Awaitable[dict[str, Any]]]
"""Posts a TokenReview for a token and returns its status."""


class TokenReviews:
    """Tokens checked by the API server (TokenReview), answers reused for a while so that
    a burst of requests costs one review."""

    def __init__(
        self, review: Review, *, ttl: float, negative_ttl: float = 10, size: int = 4096
    ) -> None:
        self._review = review
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._size = size
        self._cache: OrderedDict[str, tuple[float, Identity | None]] = OrderedDict()

    async def __call__(self, token: str) -> Identity:
        key = hashlib.sha256(usable(token).encode()).hexdigest()
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            if hit[1] is None:  # refused a moment ago: no second review
                raise Unauthenticated("the token is not valid")
            return hit[1]
        status = await self._review(token)
        if not status.get("authenticated"):
            self._remember(key, now + self._negative_ttl, None)
            # The API server's reason stays in its own log: a caller learns nothing more.
            raise Unauthenticated("the token is not valid")
        user = status.get("user") or {}
        identity = Identity(
            user=str(user.get("username", "")), groups=tuple(user.get("groups") or ())
        )
        if not identity.user:
            raise Unauthenticated("the token names no user")
        self._remember(key, now + self._ttl, identity)
        return identity

    def known(self, token: str) -> Identity | None:
        """The identity of a token reviewed and accepted a moment ago, else None."""
        hit = self._cache.get(hashlib.sha256(usable(token).encode()).hexdigest())
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def _remember(self, key: str, until: float, identity: Identity | None) -> None:
        self._cache[key] = (until, identity)
        self._cache.move_to_end(key)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)


class TooMany(Exception):
    """Over a limit: answered 429 with Retry-After."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def response(self) -> web.HTTPTooManyRequests:
        """The answer: 429, the message as text, and when to try again."""
        return web.HTTPTooManyRequests(
            text=f"{self}\n", headers={"Retry-After": str(self.retry_after)}
        )


class FailedSignIns:
    """Failed tokens per client address, in a sliding minute: past `per_minute`, that
    address is answered 429 until its oldest failure is a minute old, without a look at
    its token (so a flood of bogus bearers costs no TokenReviews)."""

    WINDOW = 60.0

    def __init__(self, per_minute: int, size: int = 10000) -> None:
        self._most = per_minute
        self._size = size
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def check(self, client: str) -> None:
        """Raise TooMany when `client` has failed too often of late."""
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, []) if t > now - self.WINDOW]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        if len(recent) >= self._most:
            wait = max(1, int(recent[0] + self.WINDOW - now) + 1)
            raise TooMany(f"too many failed sign-ins from {client}; try again later", wait)

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, []).append(time.monotonic())
        self._failures.move_to_end(client)
        while len(self._failures) > self._size:
            self._failures.popitem(last=False)


_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def namespace_of(user: str, template: str) -> str:
    """The namespace of a user's sessions: the template with `{user}` as a DNS label.

    A name that had to change to fit (capitals, `@`, `:`) gets a short hash of the real
    one, so that two users never share a namespace.
    """
    slug = _NOT_DNS.sub("-", user.lower()).strip("-")
    room = 63 - len(template.replace("{user}", ""))
    if slug != user or len(slug) > room:
        digest = hashlib.sha256(user.encode()).hexdigest()[:6]
        slug = f"{slug[: max(room - 7, 1)].strip('-')}-{digest}".strip("-")
    return template.replace("{user}", slug)


class Checker(Protocol):
    """A way to check tokens: StaticTokens or TokenReviews."""

    async def __call__(self, token: str) -> Identity: ...

    def known(self, token: str) -> Identity | None: ...


class SignIn:
    """Checks a token for a client address, with FailedSignIns: an address that failed
    too often gets 429, except for a token already known good (behind an ingress, many
    people share its address, and their valid tokens still work)."""

    def __init__(self, checker: Checker, failures: FailedSignIns) -> None:
        self._checker = checker
        self._failures = failures

    async def __call__(self, token: str, client: str = "") -> Identity:
        try:
            self._failures.check(client)
        except TooMany:
            found = self._checker.known(token)
            if found is None:
                raise
            return found
        try:
            return await self._checker(token)
        except Unauthenticated:
            self._failures.failed(client)
            raise
