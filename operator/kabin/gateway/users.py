"""What a signed-in user may see and do, as the REST routes and the dashboard both ask it:
through kabin's client (`AsyncSession`, acting as the user), in their namespace.

A user's session is one in their namespace that they created: anything else is
NotFound, as if it did not exist. A drive they may use is their own or a shared one
(an administrator may use any), the rule admission applies too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from kabin.client.errors import AlreadyExists, NotFound
from kabin.client.session import AsyncSession
from kabin.gateway.identity import Identity
from kabin.logic.admission import check_drive_access

_ID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


async def mine(sessions: AsyncSession, identity: Identity, session_id: str) -> dict[str, Any]:
    """The user's session of that id, or NotFound: unknown ids, other namespaces and other
    people's sessions all look the same."""
    if not _ID.match(session_id) or len(session_id) > 63:
        raise NotFound(f"session {session_id!r} not found")
    try:
        obj = await sessions.get(session_id)
    except NotFound:
        raise NotFound(f"session {session_id!r} not found") from None
    if obj["spec"].get("user") != identity.user:
        raise NotFound(f"session {session_id!r} not found")
    return obj


async def own(sessions: AsyncSession, identity: Identity) -> list[dict[str, Any]]:
    """The user's sessions: in their namespace, and created by them."""
    found = await sessions.session_objects()
    return [s for s in found if s["spec"].get("user") == identity.user]


async def events_of(sessions: AsyncSession, obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Events about a session and its pods."""
    name = obj["metadata"]["name"]
    pods = {p["metadata"]["name"] for p in await sessions.pod_objects(name)}
    events = await sessions.event_objects()
    return [e for e in events if (e.get("involvedObject") or {}).get("name") in pods | {name}]


async def environments(sessions: AsyncSession) -> list[dict[str, Any]]:
    """The published EnvironmentConfigs, read as the user."""
    return await sessions.environment_objects()


async def start(sessions: AsyncSession, manifest: dict[str, Any]) -> str:
    """Create the session; its name. AlreadyExists when one of that name exists."""
    if not await sessions.create_object("sessions", manifest):
        name = manifest["metadata"]["name"]
        raise AlreadyExists(f"a session named {name!r} already exists", status=409, field="name")
    return str(manifest["metadata"]["name"])


def may_use(drive: Mapping[str, Any], identity: Identity, admin_groups: Iterable[str]) -> bool:
    """Whether the user may mount the drive: admission's rule."""
    spec = drive.get("spec") or {}
    refused = check_drive_access(
        drive=drive["metadata"]["name"],
        access=str(spec.get("access", "shared")),
        owner=spec.get("owner"),
        username=identity.user,
        admin=bool(set(admin_groups).intersection(identity.groups)),
    )
    return refused is None


async def usable_drives(
    sessions: AsyncSession, identity: Identity, admin_groups: Iterable[str]
) -> list[dict[str, Any]]:
    """The Drives of the user's namespace they may use."""
    return [d for d in await sessions.drive_objects() if may_use(d, identity, admin_groups)]


async def delete_drive(
    sessions: AsyncSession, identity: Identity, admin_groups: Iterable[str], name: str
) -> None:
    """Delete a drive the user may use, or NotFound (also for any name that is not a
    drive's, such as "." or "..")."""
    usable = await usable_drives(sessions, identity, admin_groups)
    if name not in {d["metadata"]["name"] for d in usable}:
        raise NotFound(f"drive {name!r} not found")
    if not await sessions.delete_drive(name):
        raise NotFound(f"drive {name!r} not found")
