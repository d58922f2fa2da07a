"""`kabin gateway`: Skaha's REST API on kabin, so that the `skaha` and `canfar` clients
work unchanged, with only the server URL and token changed.

An aiohttp service in the operator's package and image. It never bypasses the API
server: each request is made as the signed-in user (impersonation), so RBAC, admission
and the operator apply exactly as for kubectl. Errors are `text/plain` with Skaha's
status codes. docs/gateway.md has the decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from kabin.client import errors
from kabin.gateway import access, dashboard, routes
from kabin.gateway import identity as ident
from kabin.gateway.kube import Kube
from kabin.k8s.client import connect
from kabin.k8s.errors import API_FAILURES
from kabin.logic.access import Origin
from kabin.settings import GatewaySettings

log = logging.getLogger("kabin.gateway")

AUTHENTICATE: web.AppKey[ident.SignIn] = web.AppKey("authenticate")
RETRY_AFTER = "5"
_PUBLIC = ("/skaha/availability",)
_STATUS: dict[type[errors.KabinError], int] = {
    errors.Invalid: 400,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.Conflict: 409,
}


def _status_of(error: errors.KabinError) -> int:
    """Skaha's status for a failure: the API server's own 4xx, 503 when it is unwell."""
    for kind, status in _STATUS.items():
        if isinstance(error, kind):
            return status
    if isinstance(error, errors.Timeout | errors.Unreachable):
        return 503
    status = error.status or 503
    if status == 429 or status >= 500:
        return 503
    return status if 400 <= status < 500 else 503


@web.middleware
async def skaha_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure as `text/plain` with Skaha's status code; 401 without a valid token."""
    try:
        if request.path.startswith("/skaha/") and request.path not in _PUBLIC:
            token = ident.bearer(request.headers.get("Authorization"))
            identity = await request.app[AUTHENTICATE](token, request.remote or "")
            await request.app[routes.KUBE].provision(identity)  # first use: their namespace
            request[routes.IDENTITY] = identity
        return await handler(request)
    except ident.Unauthenticated as e:
        return web.Response(
            text=f"{e}\n",
            status=401,
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="kabin"'},
        )
    except ident.TooMany as e:
        return e.response()
    except (errors.KabinError, *API_FAILURES) as e:
        # The user's own requests fail as KabinErrors (kabin's client); the gateway's own
        # (checking a token, making a namespace) as the API client's: one classification.
        error = e if isinstance(e, errors.KabinError) else errors.from_api(e)
        status = _status_of(error)
        headers = {"Retry-After": RETRY_AFTER} if status == 503 else {}
        if status == 503:
            log.warning("%s %s: %s", request.method, request.path, error)
        return web.Response(
            text=f"{error.message}\n", status=status, content_type="text/plain", headers=headers
        )
    except web.HTTPException as e:
        if e.status >= 400:
            kept = {k: v for k, v in e.headers.items() if k.lower() == "retry-after"}
            return web.Response(
                text=f"{e.text}\n", status=e.status, content_type="text/plain", headers=kept
            )
        raise


def application(kube: Kube, authenticate: ident.SignIn) -> web.Application:
    """The gateway's web application."""
    app = web.Application(middlewares=[skaha_errors])
    app[routes.KUBE] = kube
    app[AUTHENTICATE] = authenticate
    routes.add(app)
    dashboard.install(app, kube, authenticate, kube.settings)
    settings = kube.settings
    origin = Origin.parse(settings.sessions_url) if settings.sessions_url else None
    sealer = app[dashboard.pages.DASHBOARD].sealer
    access.install(app, access.Access(kube, authenticate, sealer, origin))
    return app


def authenticator(settings: GatewaySettings, kube: Kube) -> ident.SignIn:
    """The token file's tokens when one is given, else TokenReviews; either way, an
    address that keeps failing is held off."""
    checker: ident.Checker
    if settings.token_file:
        checker = ident.StaticTokens.from_file(settings.token_file)
    else:
        checker = ident.TokenReviews(
            kube.review,
            ttl=settings.token_cache_seconds,
            negative_ttl=settings.negative_cache_seconds,
        )
    return ident.SignIn(checker, ident.FailedSignIns(settings.failed_tokens_per_minute))


async def serve(settings: GatewaySettings) -> web.AppRunner:
    """Start serving; the caller keeps the runner and cleans it up."""
    api = await connect()
    watch_api = await connect(pool_size=settings.streams_total + 10)
    kube = Kube(api, settings, watch_api)
    app = application(kube, authenticator(settings, kube))

    async def close_api(_: web.Application) -> None:
        await api.close()
        await watch_api.close()

    app.on_cleanup.append(close_api)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    log.info(
        "kabin gateway serving %s/skaha (Skaha's API, v0 and v1) and %s/ (dashboard)", *[url] * 2
    )
    return runner
