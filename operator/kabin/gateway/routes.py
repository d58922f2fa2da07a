"""Skaha's REST endpoints, served from kabin's objects as the signed-in user.

`/skaha/v0/...` and `/skaha/v1/...` share these handlers (skaha 1.7.0 defaults to v0,
canfar to v1); only the status words differ. Each handler reads the parameters, lets
`kabin.gateway.protocol` decide, and asks the API server through kabin's client as the
user (`Kube.sessions`). A user's session is one in their namespace that they created:
anything else is 404, as if it did not exist.
"""

from __future__ import annotations

import logging
from typing import Any, cast
from urllib.parse import parse_qsl

from aiohttp import web

from kabin.client import records
from kabin.client.errors import AlreadyExists, Invalid, NotFound
from kabin.gateway import protocol, users
from kabin.gateway.identity import Identity
from kabin.gateway.kube import Kube

log = logging.getLogger("kabin.gateway")
KUBE = web.AppKey("kube", Kube)
IDENTITY = "kabin.identity"
_VERSION = "{version:v[01]}"
_CREATE_TRIES = 5


def text(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/plain")


async def params(request: web.Request) -> protocol.Params:
    """The query string, plus the body when it is urlencoded (or unlabelled: aiohttp
    calls a body without a Content-Type application/octet-stream)."""
    sources: list[Any] = [request.query.items()]
    if request.can_read_body and request.content_type in (
        "application/x-www-form-urlencoded",
        "application/octet-stream",
    ):
        try:
            text = (await request.read()).decode()
        except UnicodeDecodeError:
            raise Invalid("body: not UTF-8 text") from None
        sources.append(parse_qsl(text, keep_blank_values=True))
    return protocol.Params(*sources)


def _context(request: web.Request) -> tuple[Kube, Identity, protocol.Version]:
    version = cast(protocol.Version, request.match_info.get("version", "v1"))
    return request.app[KUBE], cast(Identity, request[IDENTITY]), version


async def list_sessions(request: web.Request) -> web.Response:
    kube, identity, version = _context(request)
    given = await params(request)
    view = (given.one("view") or "").lower() or None
    if view == "stats":
        return web.json_response(await kube.public().stats(), dumps=_pretty)
    kind = protocol.filter_type(given.one("type"))
    phases = protocol.filter_status(given.one("status"))
    if view == "all":
        public = kube.public()
        everyone = await public.session_objects(everywhere=True)
        shown = [s for s in everyone if protocol.matches(s, kind=kind, phases=phases)]
        shown.sort(key=records.sort_key)
        return web.json_response(
            [protocol.public(protocol.record(s, images={}, version=version)) for s in shown]
        )
    if view not in (None, "interactive"):
        raise Invalid(f"view: {view!r} is not a view of the list; use all or stats")
    sessions = kube.sessions(identity)
    found = [
        s
        for s in await users.own(sessions, identity)
        if protocol.matches(s, kind=kind, phases=phases)
        and (view != "interactive" or s["spec"]["type"] != "headless")
    ]
    found.sort(key=records.sort_key)
    images = await sessions.images(found)
    return web.json_response([protocol.record(s, images=images, version=version) for s in found])


async def create_session(request: web.Request) -> web.Response:
    kube, identity, _ = _context(request)
    given = await params(request)
    sessions = kube.sessions(identity)
    kind = protocol.session_type(given.one("type"), default="headless")
    published = (
        await users.environments(sessions)
        if kind != "headless" and given.one("environment") is None
        else []
    )
    # Checked in full before anything is written: a bad request creates nothing.
    manifest = protocol.create_manifest(
        given,
        session_id=protocol.new_id(),
        namespace=kube.namespace(identity),
        environments=published,
    )
    for _ in range(_CREATE_TRIES):
        if await sessions.create_object("sessions", manifest):
            return text(f"{manifest['metadata']['name']}\n")
        manifest["metadata"]["name"] = protocol.new_id()  # ids are random: another one
    raise AlreadyExists("could not find a free session id; try again")


class _One:
    """A request about one of the user's sessions: its parameters, the user's client,
    the session (404 unless it is theirs) and the API version."""

    def __init__(self, request: web.Request) -> None:
        kube, identity, self.version = _context(request)
        self.identity = identity
        self.id = request.match_info["id"]
        self.sessions = kube.sessions(identity)
        self.request = request

    async def read(self) -> tuple[protocol.Params, dict[str, Any]]:
        given = await params(self.request)
        return given, await users.mine(self.sessions, self.identity, self.id)


async def get_session(request: web.Request) -> web.Response:
    one = _One(request)
    given, obj = await one.read()
    sessions, session_id, version = one.sessions, one.id, one.version
    view = (given.one("view") or "").lower()
    if view == "logs":
        return text((await sessions.logs(session_id))[session_id])
    if view == "events":
        return text(protocol.events_table(await users.events_of(sessions, obj)))
    # Any other view, skaha's undefined `view=event` included, is the record.
    images = await sessions.images([obj])
    return web.json_response(protocol.record(obj, images=images, version=version))


async def change_session(request: web.Request) -> web.Response:
    one = _One(request)
    given, obj = await one.read()
    sessions, session_id = one.sessions, one.id
    action = (given.one("action") or "").lower()
    uids = {session_id: obj["metadata"]["uid"]}
    if not action:
        raise Invalid(
            "action: required; a session cannot be modified, only renewed "
            "(action=renew), suspended (action=suspend) or resumed (action=resume)"
        )
    if action not in ("renew", "suspend", "resume"):
        raise Invalid(
            f"action: {given.one('action')!r} is not recognized; use renew, suspend or resume"
        )
    phase = records.phase_of(obj)
    if action == "renew" and phase not in records.ACTIVE:
        raise Invalid(f"No active session {session_id!r} to renew: it is {phase}")
    if action == "suspend" and phase in ("Succeeded", "Failed", "Terminating"):
        raise Invalid(f"Session {session_id!r} cannot be suspended: it is {phase}")
    if action == "resume" and phase in ("Succeeded", "Failed", "Terminating"):
        raise Invalid(f"Session {session_id!r} cannot be resumed: it is {phase}")
    await getattr(sessions, action)(session_id, uids=uids)
    return text("")


async def delete_session(request: web.Request) -> web.Response:
    one = _One(request)
    _, obj = await one.read()
    sessions, session_id = one.sessions, one.id
    uids = {session_id: obj["metadata"]["uid"]}
    if not (await sessions.destroy(session_id, uids=uids))[session_id]:
        raise NotFound(f"session {session_id!r} not found")
    return text("")


async def context(request: web.Request) -> web.Response:
    kube, _, _ = _context(request)
    public = kube.public()
    nodes = await public.node_objects()
    return web.json_response(protocol.context(nodes))


async def images(request: web.Request) -> web.Response:
    kube, identity, _ = _context(request)
    given = await params(request)
    kind = protocol.session_type(given.one("type"))
    published = await users.environments(kube.sessions(identity))
    return web.json_response(protocol.images(published, kind))


async def availability(request: web.Request) -> web.Response:
    kube = request.app[KUBE]
    try:
        await kube.public().ping()
    except Exception as e:  # any failure means unavailable, which is the answer
        # The reason goes to the log: it can name addresses and certificates, and this
        # page is public.
        log.warning("availability: the API server did not answer: %s", e)
        body = protocol.AVAILABILITY.format(
            available="false", note="kabin Service Unavailable: the cluster does not answer."
        )
    else:
        body = protocol.AVAILABILITY.format(available="true", note="kabin Service Available.")
    return web.Response(text=body, content_type="text/xml")


def _pretty(value: Any) -> str:
    import json

    return json.dumps(value, indent=2)


def add(app: web.Application) -> None:
    """Serve Skaha's endpoints on `app`."""
    base = f"/skaha/{_VERSION}"
    app.router.add_get(f"{base}/session", list_sessions, allow_head=False)
    app.router.add_post(f"{base}/session", create_session)
    app.router.add_get(f"{base}/session/{{id}}", get_session, allow_head=False)
    app.router.add_post(f"{base}/session/{{id}}", change_session)
    app.router.add_delete(f"{base}/session/{{id}}", delete_session)
    app.router.add_get(f"{base}/context", context, allow_head=False)
    app.router.add_get(f"{base}/image", images, allow_head=False)
    app.router.add_get("/skaha/availability", availability, allow_head=False)
