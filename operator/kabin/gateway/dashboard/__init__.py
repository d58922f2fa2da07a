"""The dashboard: start, watch and reach sessions in a browser, served by the gateway
at `/` with the same identity and impersonation as the REST API.

Server-rendered HTML (Jinja2) with htmx and its SSE extension, both installed from npm
at build time (`make assets`) and served from `static/vendor/`, never from a CDN.
docs/dashboard.md has the decisions.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import jinja2
from aiohttp import web

from kabin.gateway.dashboard import live, pages, views
from kabin.gateway.dashboard.signin import (
    Sealer,
    Visitor,
    check_csrf,
    cookie_token,
    csrf_token,
    proxy_identity,
)
from kabin.gateway.identity import SignIn, TooMany, Unauthenticated
from kabin.gateway.kube import Kube
from kabin.settings import GatewaySettings

HERE = Path(__file__).parent
STATIC = HERE / "static"
_OPEN = ("/signin", "/static/", "/skaha/", "/_kabin/")


def install(
    app: web.Application, kube: Kube, authenticate: SignIn, settings: GatewaySettings
) -> None:
    """Serve the dashboard on `app`."""
    secret = settings.csrf_secret.encode() if settings.csrf_secret else secrets.token_bytes(32)
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
    )
    templates.globals["schedule_fields"] = views.SCHEDULE_FIELDS
    sealer = Sealer(secret)
    app[pages.DASHBOARD] = pages.Dashboard(
        templates=templates, kube=kube, authenticate=authenticate, secret=secret, sealer=sealer
    )

    @web.middleware
    async def visitors(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Sign the visitor in (proxy headers or the cookie's token) and check CSRF on
        every change; a page asked for without signing in goes to the sign-in page."""
        if request.path.startswith(_OPEN) and request.path != "/signout":
            return await handler(request)
        try:
            identity = proxy_identity(request, settings)
            credential = identity.user if identity else cookie_token(request, sealer) or ""
            if identity is None:
                if not credential:
                    raise Unauthenticated("not signed in")
                identity = await authenticate(credential, request.remote or "")
            request[pages.TOKEN] = credential
        except TooMany as e:
            raise e.response() from None
        except Unauthenticated:
            if request.method == "GET" and request.path != "/events":
                raise web.HTTPSeeOther("/signin") from None
            raise web.HTTPUnauthorized(text="sign in first") from None
        await kube.provision(identity)
        visitor = Visitor(identity=identity, csrf=csrf_token(secret, credential))
        request[pages.VISITOR] = visitor
        if request.method not in ("GET", "HEAD"):
            await check_csrf(request, visitor)
        return await handler(request)

    app[live.STREAMS] = live.Streams(settings.streams_per_user, settings.streams_total)
    app.middlewares.append(visitors)
    pages.add(app)
    app.router.add_get("/events", live.stream)
    app.router.add_static("/static/", STATIC, append_version=False)
