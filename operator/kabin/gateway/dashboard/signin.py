"""Who is using the dashboard: a token in an HttpOnly cookie, or an authenticating
proxy's headers; and the CSRF token every form and htmx request carries.

The cookie holds the token the user signed in with sealed (encrypted and authenticated
with a key derived from the gateway's secret, Fernet, for 12 hours): it is not the
bearer token, so a page that catches it has nothing the REST API or the API server
takes. It is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page
sends it), and over https `Secure` and named `__Host-kabin` (bound to this host, no
Domain, path /). Each change is also checked against a CSRF token derived
from the credential with the gateway's secret (HMAC), which only pages the gateway
served carry. Behind a proxy that signs people in (`trust_proxy_headers`), the user
and groups come from its headers instead, and the CSRF token is derived from the user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken

from kabin.gateway.identity import Identity, Unauthenticated
from kabin.settings import GatewaySettings

COOKIE = "kabin_session"
SECURE_COOKIE = "__Host-kabin"
COOKIE_SECONDS = 12 * 3600
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Visitor:
    """A signed-in dashboard user and their CSRF token."""

    identity: Identity
    csrf: str


def csrf_token(secret: bytes, credential: str) -> str:
    return hmac.new(secret, credential.encode(), hashlib.sha256).hexdigest()


def proxy_identity(request: web.Request, settings: GatewaySettings) -> Identity | None:
    """The proxy's user and groups, when the gateway trusts its headers."""
    if not settings.trust_proxy_headers:
        return None
    # Only the proxy knows the shared secret: a pod that reaches the gateway directly and
    # sends X-Forwarded-User is not the proxy.
    given = request.headers.get(settings.proxy_secret_header, "")
    expected = (settings.proxy_secret or "").encode()
    if not expected or not hmac.compare_digest(given.encode(errors="surrogateescape"), expected):
        raise Unauthenticated(
            f"the request did not come through the proxy (no valid {settings.proxy_secret_header})"
        )
    user = request.headers.get(settings.proxy_user_header, "").strip()
    if not user:
        raise Unauthenticated(f"the proxy sent no {settings.proxy_user_header} header")
    if user.startswith("system:") and not settings.allow_system_users:
        raise Unauthenticated(f'"{user}" is a system identity, which no proxy may sign in')
    named = [g.strip() for g in request.headers.get(settings.proxy_groups_header, "").split(",")]
    # system: groups (system:masters!) are the API server's to give, never a proxy's; the
    # API server adds system:authenticated to every impersonated user itself.
    groups = tuple(g for g in named if g and not g.startswith("system:"))
    return Identity(user=user, groups=groups)


class Sealer:
    """Seals a token into the dashboard's cookie and opens it again (Fernet: AES and an
    HMAC, with the time it was sealed), with a key derived from the gateway's secret, so
    that every replica opens what another sealed."""

    def __init__(self, secret: bytes) -> None:
        key = hashlib.sha256(b"kabin dashboard cookie\0" + secret).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode()

    def open(self, sealed: str) -> str:
        """The token; Unauthenticated for a cookie that is forged, altered or too old."""
        opened = self.unseal(sealed, COOKIE_SECONDS)
        if opened is None:
            raise Unauthenticated("the sign-in has expired; sign in again")
        return opened

    def unseal(self, sealed: str, ttl: int) -> str | None:
        """What was sealed at most `ttl` seconds ago, or None (forged, altered, too old)."""
        try:
            return self._fernet.decrypt(sealed.encode(), ttl=ttl).decode()
        except (InvalidToken, UnicodeError):
            return None


def _secure(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto") == "https"


def cookie_token(request: web.Request, sealer: Sealer) -> str | None:
    """The token in the request's cookie, or None when there is no cookie."""
    sealed = request.cookies.get(SECURE_COOKIE) or request.cookies.get(COOKIE)
    return sealer.open(sealed) if sealed else None


def set_cookie(
    response: web.StreamResponse, request: web.Request, token: str, sealer: Sealer
) -> None:
    secure = _secure(request)
    response.set_cookie(
        SECURE_COOKIE if secure else COOKIE,
        sealer.seal(token),
        httponly=True,
        samesite="Strict",
        secure=secure,
        path="/",
        max_age=COOKIE_SECONDS,
    )


def del_cookie(response: web.StreamResponse) -> None:
    for name in (COOKIE, SECURE_COOKIE):
        response.del_cookie(name, path="/")


async def form(request: web.Request) -> dict[str, str]:
    """A posted form's fields; 400 for a body that is not UTF-8 text."""
    try:
        posted = await request.post()
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text="the form is not UTF-8 text") from None
    return {k: str(v) for k, v in posted.items()}


async def check_csrf(request: web.Request, visitor: Visitor) -> None:
    """Refuse a change that does not carry the visitor's CSRF token (403)."""
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type == "application/x-www-form-urlencoded":
        given = (await form(request)).get(CSRF_FIELD)
    expected = visitor.csrf.encode()
    if given is None or not hmac.compare_digest(given.encode(errors="surrogateescape"), expected):
        raise web.HTTPForbidden(text="the form is stale or came from elsewhere (CSRF); reload it")


def same_origin(request: web.Request) -> bool:
    """Whether a POST comes from the gateway's own pages: browsers say where a request
    comes from (Sec-Fetch-Site, Origin), so another site cannot sign someone in."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host
