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
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    """Tokens from a file, compared in constant time."""

    def __init__(self, tokens: dict[str, Identity]) -> None:
        self._tokens = tokens

    async def __call__(self, token: str) -> Identity:
        usable(token)
        for known, identity in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return identity
        raise Unauthenticated("the token is not valid")


Review = Callable[[str], Awaitable[dict[str, Any]]]
"""Posts a TokenReview for a token and returns its status."""


class TokenReviews:
    """Tokens checked by the API server (TokenReview), answers reused for a while so that
    a burst of requests costs one review."""

    def __init__(self, review: Review, *, ttl: float, size: int = 4096) -> None:
        self._review = review
        self._ttl = ttl
        self._size = size
        self._cache: OrderedDict[str, tuple[float, Identity]] = OrderedDict()

    async def __call__(self, token: str) -> Identity:
        key = hashlib.sha256(usable(token).encode()).hexdigest()
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        status = await self._review(token)
        if not status.get("authenticated"):
            raise Unauthenticated(f"the token is not valid: {status.get('error') or 'rejected'}")
        user = status.get("user") or {}
        identity = Identity(
            user=str(user.get("username", "")), groups=tuple(user.get("groups") or ())
        )
        if not identity.user:
            raise Unauthenticated("the token names no user")
        self._cache[key] = (now + self._ttl, identity)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return identity


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
