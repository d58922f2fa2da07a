"""The dashboard's pages: server-rendered HTML (Jinja2), forms that work without
script, htmx for the live list and small in-place actions.

Every read and write is made as the signed-in user through kabin's client over the
gateway's impersonating connection, exactly as the REST API does, so RBAC and
admission decide; a refusal is shown next to the field it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
from aiohttp import web

from kabin.client import records
from kabin.client.errors import Invalid, KabinError, NotFound
from kabin.client.session import AsyncSession
from kabin.gateway import protocol, users
from kabin.gateway.dashboard import views
from kabin.gateway.dashboard.signin import (
    CSRF_FIELD,
    Sealer,
    Visitor,
    del_cookie,
    form,
    same_origin,
    set_cookie,
)
from kabin.gateway.identity import SignIn, TooMany, Unauthenticated
from kabin.gateway.kube import Kube
from kabin.logic.drives import default_drive_name

VISITOR = "kabin.visitor"
TOKEN = "kabin.token"  # the signed-in visitor's token (or, behind a proxy, their name)


@dataclass
class Dashboard:
    """What the pages share: templates, the gateway's connection, sign-in."""

    templates: jinja2.Environment
    kube: Kube
    authenticate: SignIn
    secret: bytes
    sealer: Sealer


DASHBOARD = web.AppKey("dashboard", Dashboard)


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    board = request.app[DASHBOARD]
    visitor: Visitor | None = request.get(VISITOR)
    html = board.templates.get_template(template).render(
        visitor=visitor, csrf_field=CSRF_FIELD, path=request.path, **context
    )
    return web.Response(text=html, status=status, content_type="text/html")


def _user(request: web.Request) -> tuple[Visitor, AsyncSession, Kube]:
    visitor: Visitor = request[VISITOR]
    kube = request.app[DASHBOARD].kube
    return visitor, kube.sessions(visitor.identity), kube


async def _drives(visitor: Visitor, sessions: AsyncSession, kube: Kube) -> list[views.DriveRow]:
    """The drives the visitor may use."""
    found = await users.usable_drives(sessions, visitor.identity, kube.settings.admin_groups)
    return views.drive_rows(found)


# -- sign-in ---------------------------------------------------------------------------


async def signin_page(request: web.Request) -> web.Response:
    return _render(request, "signin.html", error=None)


async def signin(request: web.Request) -> web.Response:
    if not same_origin(request):  # no signing someone in from another site's page
        raise web.HTTPForbidden(text="sign in from kabin's own page")
    token = (await form(request)).get("token", "").strip()
    try:
        if not token:
            raise Unauthenticated("enter the token you were given")
        await request.app[DASHBOARD].authenticate(token, request.remote or "")
    except TooMany as e:
        return _render(request, "signin.html", status=429, error=str(e))
    except Unauthenticated as e:
        return _render(request, "signin.html", status=401, error=str(e))
    response = web.HTTPSeeOther("/")
    set_cookie(response, request, token, request.app[DASHBOARD].sealer)
    return response


async def signout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/signin")
    del_cookie(response)
    return response


# -- sessions -------------------------------------------------------------------------


def _page_number(request: web.Request) -> int:
    try:
        return max(1, int(request.query.get("page", "1")))
    except ValueError:
        return 1


async def sessions_page(request: web.Request) -> web.Response:
    visitor, sessions, _ = _user(request)
    rows, pages = views.page(await users.own(sessions, visitor.identity), _page_number(request))
    return _render(request, "sessions.html", rows=rows, pages=pages, page=_page_number(request))


def sessions_fragment(board: Dashboard, visitor: Visitor, objs: list[Any], number: int) -> str:
    """The live part of the sessions page (what the event stream sends)."""
    rows, pages = views.page(objs, number)
    return board.templates.get_template("_sessions.html").render(
        rows=rows, pages=pages, page=number, visitor=visitor, csrf_field=CSRF_FIELD
    )


ACTIONS = {
    "renew": "Renewed: its timeout starts again now.",
    "suspend": "Suspending: its pods stop and its drive is freed; resume it any time.",
    "resume": "Resuming: it takes its drive again (or waits for it) and starts.",
}
"""The buttons of a session's card that call the client's method of that name, and what
each says once done."""


async def act(request: web.Request) -> web.Response:
    """Renew, suspend or resume one of the visitor's sessions."""
    visitor, sessions, _ = _user(request)
    name = await _owned(sessions, visitor, request.match_info["id"])
    action = request.match_info["action"]
    await getattr(sessions, action)(name)
    return web.Response(text=ACTIONS[action], content_type="text/plain")


async def set_schedule(request: web.Request) -> web.Response:
    """Save a session's schedule from its card; the answer (or what is wrong, naming the
    field) shows beside the form."""
    visitor, sessions, _ = _user(request)
    name = await _owned(sessions, visitor, request.match_info["id"])
    plan = views.schedule_of(await form(request)) or {}
    try:
        await sessions.schedule(
            name,
            suspend=plan.get("suspend"),
            resume=plan.get("resume"),
            time_zone=plan.get("timeZone"),
        )
    except Invalid as e:
        return web.Response(text=f"Not saved: {e.message}", content_type="text/plain")
    said = "Saved." if plan else "Schedule removed."
    return web.Response(text=said, content_type="text/plain")


async def delete(request: web.Request) -> web.Response:
    visitor, sessions, _ = _user(request)
    name = await _owned(sessions, visitor, request.match_info["id"])
    await sessions.destroy(name)
    return web.Response(text=f"Deleting {name}.", content_type="text/plain")


async def _owned(sessions: AsyncSession, visitor: Visitor, name: str) -> str:
    await users.mine(sessions, visitor.identity, name)
    return name


async def logs(request: web.Request) -> web.Response:
    visitor, sessions, _ = _user(request)
    name = await _owned(sessions, visitor, request.match_info["id"])
    text = (await sessions.logs(name))[name]
    return _render(request, "text.html", title=f"Logs of {name}", text=text or "(no log yet)")


async def events(request: web.Request) -> web.Response:
    visitor, sessions, _ = _user(request)
    name = request.match_info["id"]
    obj = await users.mine(sessions, visitor.identity, name)
    found = await users.events_of(sessions, obj)
    return _render(request, "events.html", name=name, events=found)


# -- the start form ----------------------------------------------------------------------


async def _form_context(
    sessions: AsyncSession, visitor: Visitor, kube: Kube, values: dict[str, str]
) -> dict[str, Any]:
    choices = views.choices(await users.environments(sessions))
    chosen = next((c for c in choices if c.value == values.get("choice")), None)
    if chosen is None and choices:
        chosen = choices[0]
    return {
        "choices": choices,
        "chosen": chosen,
        "drives": await _drives(visitor, sessions, kube),
        "home_drive": default_drive_name(visitor.identity.user),
        "timeouts": views.TIMEOUT_CHOICES,
        "values": values,
        "gib": views.gib,
        "timeout_line": views.timeout_line,
    }


async def start_page(request: web.Request) -> web.Response:
    visitor, sessions, kube = _user(request)
    values = {k: str(v) for k, v in request.query.items()}
    context = await _form_context(sessions, visitor, kube, values)
    return _render(request, "start.html", errors={}, **context)


async def start_fields(request: web.Request) -> web.Response:
    """The resources and timeout fields of one choice, with its defaults and maxima
    (htmx swaps them in when the choice changes)."""
    visitor, sessions, kube = _user(request)
    choice = {"choice": request.query.get("choice", "")}
    context = await _form_context(sessions, visitor, kube, choice)
    return _render(request, "_fields.html", errors={}, **context)


def _number(values: dict[str, str], key: str) -> float | None:
    return protocol.number(key, values.get(key, "").strip() or None)


async def start(request: web.Request) -> web.Response:
    visitor, sessions, kube = _user(request)
    values = {k: v for k, v in (await form(request)).items() if k != CSRF_FIELD}
    context = await _form_context(sessions, visitor, kube, values)
    chosen = context["chosen"]
    try:
        if chosen is None or chosen.value != values.get("choice"):
            raise Invalid("choice: pick a session type")
        gpu = _number(values, "gpu")
        timeout = _number(values, "timeout")
        if gpu is not None and not gpu.is_integer():
            raise Invalid(f"gpu: {values['gpu']} must be a whole number")
        if timeout is not None and not timeout.is_integer():
            raise Invalid(f"timeout: {values['timeout']} must be whole seconds")
        manifest = records.session_manifests(
            name=values.get("name", "").strip(),
            namespace=sessions.namespace,
            image=values.get("image", "").strip() or None,
            cores=_number(values, "cpu"),
            ram=_number(values, "memory"),
            kind=chosen.type,
            gpu=int(gpu) if gpu is not None else None,
            cmd=None,
            args=None,
            env=None,
            replicas=1,
            environment=chosen.environment,
            drive=values.get("drive") or None,
            timeout=int(timeout) if timeout is not None else None,
        )[0]
        plan = views.schedule_of(values)
        if plan is not None:
            manifest["spec"]["schedule"] = {k: v for k, v in plan.items() if v}
        await users.start(sessions, manifest)
    except KabinError as e:
        if not isinstance(e, Invalid | NotFound) and (e.status or 500) >= 500:
            raise
        where = views.form_field(e.field)
        return _render(request, "start.html", status=422, errors={where: e.message}, **context)
    raise web.HTTPSeeOther("/")


# -- environments and drives ---------------------------------------------------------------


async def environments_page(request: web.Request) -> web.Response:
    import yaml

    _, sessions, _ = _user(request)
    found = sorted(await users.environments(sessions), key=lambda e: str(e["metadata"]["name"]))
    cards = []
    for env in found:
        shown = {k: v for k, v in env.items() if k in ("apiVersion", "kind", "spec")}
        shown["metadata"] = {"name": env["metadata"]["name"]}
        cards.append(
            {
                "record": records.environment_record(env),
                "spec": env["spec"],
                "yaml": yaml.safe_dump(shown, sort_keys=False),
            }
        )
    return _render(request, "environments.html", cards=cards)


async def drives_page(
    request: web.Request,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    visitor, sessions, kube = _user(request)
    rows = await _drives(visitor, sessions, kube)
    return _render(
        request,
        "drives.html",
        status=status,
        drives=rows,
        errors=errors or {},
        values=values or {"size": "10Gi", "access": "private"},
        home_drive=default_drive_name(visitor.identity.user),
    )


async def add_drive(request: web.Request) -> web.Response:
    _, sessions, _ = _user(request)
    values = {k: v for k, v in (await form(request)).items() if k != CSRF_FIELD}
    try:
        await sessions.create_drive(
            values.get("name", "").strip(),
            size=values.get("size", "").strip() or "10Gi",
            access=values.get("access", "private"),
            reclaim_policy="Retain",
        )
    except KabinError as e:
        if not isinstance(e, Invalid | NotFound) and (e.status or 500) >= 500:
            raise
        where = views.form_field(e.field)
        if where not in ("size", "access"):
            where = "name"  # the drive form's fields; anything else is about the drive
        return await drives_page(request, errors={where: e.message}, values=values, status=422)
    raise web.HTTPSeeOther("/drives")


async def delete_drive(request: web.Request) -> web.Response:
    visitor, sessions, kube = _user(request)
    name = request.match_info["name"]
    await users.delete_drive(sessions, visitor.identity, kube.settings.admin_groups, name)
    return web.Response(
        text=f"Deleting drive {name}.", content_type="text/plain", headers={"HX-Refresh": "true"}
    )


def add(app: web.Application) -> None:
    """The dashboard's routes."""
    app.router.add_get("/signin", signin_page)
    app.router.add_post("/signin", signin)
    app.router.add_post("/signout", signout)
    app.router.add_get("/", sessions_page)
    app.router.add_get("/start", start_page)
    app.router.add_get("/start/fields", start_fields)
    app.router.add_post("/start", start)
    app.router.add_post("/sessions/{id}/{action:" + "|".join(ACTIONS) + "}", act)
    app.router.add_post("/sessions/{id}/schedule", set_schedule)
    app.router.add_post("/sessions/{id}/delete", delete)
    app.router.add_get("/sessions/{id}/logs", logs)
    app.router.add_get("/sessions/{id}/events", events)
    app.router.add_get("/environments", environments_page)
    app.router.add_get("/drives", drives_page)
    app.router.add_post("/drives", add_drive)
    app.router.add_post("/drives/{name}/delete", delete_drive)
