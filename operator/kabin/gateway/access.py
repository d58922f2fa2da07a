"""Who may open a session's URLs: the check the ingress controller asks for, with each
request to a session (forward auth), and the sign-in of a browser to a session's host.

Each session is served from a host of its own (`<name>.<namespace>.<sessions domain>`,
`kabin.logic.access`), another origin than the dashboard's. The ingress controller
(Traefik's forwardAuth, or nginx's auth-url) sends every request's method, host and URI
to `GET /_kabin/auth` with its headers, and serves the request only on a 2xx:

- a script sends the REST API's `Authorization: Bearer <token>`;
- a browser carries a cookie of that host alone (`kabin_access`, the token sealed with
  the host), which it got by a redirect through the dashboard: a browser without one is
  sent to `/open/<namespace>/<name>` on the dashboard, which (signed in) sends it back to
  `/_kabin/signin?ticket=...` on the session's host; the ticket (the token and the host,
  sealed, good for a minute) becomes the cookie there (under the session's base path,
  the only paths its Ingress routes);
- the token's user must be the session's owner (`spec.user`) or in `admin_groups`.

No credential: 401 (a script) or the redirect (a browser); another user's session: 403.
The session's owner is read by the gateway itself (it may list Sessions everywhere, for
Skaha's public views) and remembered for a few seconds, since a page makes many requests.
"""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from aiohttp import web

from kabin.gateway import identity as ident
from kabin.gateway.dashboard import pages
from kabin.gateway.dashboard.signin import Sealer
from kabin.gateway.kube import Kube
from kabin.k8s import objects
from kabin.logic.access import Origin, is_signin, may_open, safe_next, signin_path

log = logging.getLogger("kabin.gateway")

ACCESS_COOKIE = "kabin_access"
SECURE_ACCESS_COOKIE = "__Host-kabin-access"
TICKET_SECONDS = 60
ACCESS_SECONDS = 12 * 3600
OWNER_SECONDS = 10.0


class Access:
    """Decides requests to sessions' hosts."""

    def __init__(
        self, kube: Kube, sign_in: ident.SignIn, sealer: Sealer, origin: Origin | None
    ) -> None:
        self.kube = kube
        self.sign_in = sign_in
        self.sealer = sealer
        self.origin = origin
        self._owners: dict[tuple[str, str], tuple[float, str | None]] = {}

    async def owner(self, namespace: str, name: str) -> str | None:
        """The session's user, or None when there is no such session (cached briefly)."""
        key = (namespace, name)
        hit = self._owners.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await objects.find_custom(self.kube.api, "sessions", namespace, name)
        owner = ((found or {}).get("spec") or {}).get("user") if found else None
        if len(self._owners) > 10000:
            self._owners.clear()
        self._owners[key] = (now + OWNER_SECONDS, owner)
        return owner

    async def allows(self, who: ident.Identity, namespace: str, name: str) -> bool:
        owner = await self.owner(namespace, name)
        return owner is not None and may_open(
            owner=owner,
            user=who.user,
            groups=who.groups,
            admin_groups=self.kube.settings.admin_groups,
        )

    def ticket(self, token: str, namespace: str, name: str, next_path: str) -> str:
        """Where a signed-in browser goes to get the session host's cookie."""
        assert self.origin is not None
        host = self.origin.host(namespace, name)
        sealed = self.sealer.seal(json.dumps({"t": token, "h": host, "n": safe_next(next_path)}))
        where = signin_path(next_path)
        return self.origin.url(namespace, name, f"{where}?{urlencode({'ticket': sealed})}")

    def _open(self, sealed: str, host: str, ttl: int) -> dict[str, str] | None:
        raw = self.sealer.unseal(sealed, ttl)
        try:
            value = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        if not isinstance(value, dict) or value.get("h") != host:
            return None  # sealed for another session's host
        return {k: str(v) for k, v in value.items()}


def _forbidden(text: str, status: int = 403) -> web.Response:
    return web.Response(text=f"{text}\n", status=status, content_type="text/plain")


async def check(request: web.Request) -> web.StreamResponse:
    """`GET /_kabin/auth`: the ingress controller's question about one request."""
    access: Access = request.app[ACCESS]
    if access.origin is None:
        return _forbidden("sessions_url is not set: no session host to check", 404)
    host = request.headers.get("X-Forwarded-Host", "")
    uri = request.headers.get("X-Forwarded-Uri", "/")
    target = access.origin.session_of(host)
    if target is None:
        return _forbidden(f"{host!r} is no session's host", 404)
    namespace, name = target
    host = access.origin.host(namespace, name)  # as tickets and cookies name it: no port
    path = urlsplit(uri)
    if is_signin(path.path):
        return _signin(access, request, namespace, name, path.query)
    client = (request.headers.get("X-Forwarded-For") or request.remote or "").split(",")[0]
    token = _credential(access, request, host)
    if token is None:
        return _to_dashboard(request, access, namespace, name, uri)
    try:
        who = await access.sign_in(token, client.strip())
    except ident.TooMany as e:
        return e.response()
    except ident.Unauthenticated:
        if request.headers.get("Authorization"):
            return _unauthorized()
        return _to_dashboard(request, access, namespace, name, uri)
    if not await access.allows(who, namespace, name):
        return _forbidden(f'session "{name}" in "{namespace}" is not yours')
    return web.Response(status=200, headers={"X-Kabin-User": who.user})


def _credential(access: Access, request: web.Request, host: str) -> str | None:
    header = request.headers.get("Authorization")
    if header:
        try:
            return ident.bearer(header)
        except ident.Unauthenticated:
            return None
    sealed = request.cookies.get(SECURE_ACCESS_COOKIE) or request.cookies.get(ACCESS_COOKIE)
    opened = access._open(sealed, host, ttl=ACCESS_SECONDS) if sealed else None
    return opened.get("t") if opened else None


def _unauthorized() -> web.Response:
    return web.Response(
        text="the token is not valid\n",
        status=401,
        content_type="text/plain",
        headers={"WWW-Authenticate": 'Bearer realm="kabin"'},
    )


def _to_dashboard(
    request: web.Request, access: Access, namespace: str, name: str, uri: str
) -> web.Response:
    """A browser signs in through the dashboard; anything else gets 401."""
    browser = "text/html" in request.headers.get("Accept", "") and request.headers.get(
        "X-Forwarded-Method", "GET"
    ) in ("GET", "HEAD")
    if not browser:
        return _unauthorized()
    base = access.kube.settings.public_url or f"{request.scheme}://{request.host}"
    target = f"{base.rstrip('/')}/open/{quote(namespace)}/{quote(name)}?{urlencode({'next': uri})}"
    raise web.HTTPFound(target)


def _signin(
    access: Access, request: web.Request, namespace: str, name: str, query: str
) -> web.Response:
    """`<base path>_kabin/signin?ticket=` on the session's host: the ticket becomes its
    cookie, and the browser goes on to the path it asked for."""
    assert access.origin is not None
    host = access.origin.host(namespace, name)
    secure = access.origin.scheme == "https"
    sealed = (parse_qs(query).get("ticket") or [""])[0]
    opened = access._open(sealed, host, ttl=TICKET_SECONDS) if sealed else None
    if opened is None:
        return _forbidden("the sign-in link is not valid or has expired; open the session again")
    # Absolute: Traefik resolves a relative Location against the access check's own URL.
    response = web.HTTPFound(access.origin.url(namespace, name, safe_next(opened.get("n"))))
    response.set_cookie(
        SECURE_ACCESS_COOKIE if secure else ACCESS_COOKIE,
        access.sealer.seal(json.dumps({"t": opened["t"], "h": host})),
        httponly=True,
        # Lax: the first request after the redirect from the dashboard is a top-level
        # navigation from another site.
        samesite="Lax",
        secure=secure,
        path="/",
        max_age=ACCESS_SECONDS,
    )
    raise response


async def open_session(request: web.Request) -> web.Response:
    """`GET /open/<namespace>/<name>?next=`, on the dashboard (signed in): to the
    session's host with a ticket for its cookie; 403 for someone else's session."""
    access: Access = request.app[ACCESS]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    if access.origin is None:
        return _forbidden("sessions_url is not set: sessions have no hosts of their own", 404)
    if access.kube.settings.trust_proxy_headers:
        return _forbidden(
            "behind an authenticating proxy, the proxy protects the sessions' hosts too", 501
        )
    visitor = request[pages.VISITOR]
    if not await access.allows(visitor.identity, namespace, name):
        return _forbidden(f'session "{name}" in "{namespace}" is not yours')
    token = request[pages.TOKEN]
    raise web.HTTPSeeOther(access.ticket(token, namespace, name, request.query.get("next", "/")))


STARTING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Starting</title></head>
<body><p>This session's interface is starting: this page reloads by itself.</p></body></html>
"""


async def starting(request: web.Request) -> web.Response:
    """`GET /_kabin/starting`: the page the ingress controller shows, instead of its own
    502 or 503, while a session's route is not yet served (its pods are not Ready yet, or
    the controller has not seen them Ready): it reloads until the interface answers.
    The interface answers ready a moment before every router knows it."""
    return web.Response(
        status=503,
        text=STARTING,
        content_type="text/html",
        headers={"Retry-After": "2", "Cache-Control": "no-store"},
    )


ACCESS = web.AppKey("access", Access)


def install(app: web.Application, access: Access) -> None:
    app[ACCESS] = access
    app.router.add_get("/_kabin/auth", check, allow_head=False)
    app.router.add_get("/_kabin/starting", starting, allow_head=False)
    app.router.add_get("/open/{namespace}/{name}", open_session, allow_head=False)
