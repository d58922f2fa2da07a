"""Skaha's REST vocabulary on kabin's objects, as pure functions.

What the `skaha` and `canfar` clients send (query parameters, repeated `env`, one
`args` string) becomes a Session manifest here, and kabin's objects become what they
parse (records of 16 string keys, an events table, the context, the image list).
No I/O: the routes in `kabin.gateway.routes` read and write, this decides.
See docs/gateway.md for every choice, and ../shared/skaha-rest-contract.md for the
clients' side.
"""

from __future__ import annotations

import math
import re
import secrets
import string
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal

from multidict import MultiDict, MultiMapping

from kabin.api import names
from kabin.api.environment import SESSION_TYPES
from kabin.api.meta import parse_time
from kabin.api.names import NAME_ANNOTATION
from kabin.client import records
from kabin.client.errors import Invalid

Version = Literal["v0", "v1"]
VERSIONS: tuple[Version, ...] = ("v0", "v1")

MAX_CORES = 256
MAX_RAM_GB = 512
MAX_GPUS = 28
"""Skaha's own limits, which both clients check too."""
NAME_MAX = 63
_SKAHA_NAME = re.compile(r"^[A-Za-z0-9-]+$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_ID_FIRST = string.ascii_lowercase
_ID_REST = string.ascii_lowercase + string.digits
ID_LENGTH = 8
FILTER_TYPES = (*SESSION_TYPES, "desktop-app")
"""Types a list may filter on: kabin's, and canfar's desktop-app (of which there are none)."""
PUBLIC_KEYS = ("userid", "type", "status", "startTime")
"""What `view=all` shows of other people's sessions (Skaha's PublicSession)."""

# phase -> the word each API version uses for it.
# Suspended is Pending, as Skaha's own v1 server says of a suspended Job: the clients'
# scripts wait, as for a session starting; `view=events` says why.
_WORDS: dict[Version, dict[str, str]] = {
    "v0": {"Succeeded": "Succeeded", "Expired": "Failed", "Suspended": "Pending"},
    "v1": {"Succeeded": "Completed", "Expired": "Failed", "Suspended": "Pending"},
}
# a status filter (lowercased) -> the phases it matches, in either version.
_FILTERS: dict[str, frozenset[str]] = {
    "pending": frozenset({"Pending", "Suspended"}),
    "suspended": frozenset({"Suspended"}),
    "running": frozenset({"Running"}),
    "terminating": frozenset({"Terminating"}),
    "succeeded": frozenset({"Succeeded"}),
    "completed": frozenset({"Succeeded"}),
    "failed": frozenset({"Failed", "Expired"}),
    "error": frozenset({"Failed", "Expired"}),
    "expired": frozenset({"Expired"}),
}


def new_id() -> str:
    """A session id as Skaha makes them: 8 lowercase letters and digits, a letter first."""
    return secrets.choice(_ID_FIRST) + "".join(
        secrets.choice(_ID_REST) for _ in range(ID_LENGTH - 1)
    )


class Params:
    """Request parameters (query string and urlencoded body), names case-insensitive as
    on Skaha's server."""

    def __init__(self, *sources: Iterable[tuple[str, str]]) -> None:
        self._values: MultiDict[str] = MultiDict()
        for source in sources:
            for key, value in source:
                self._values.add(key.lower(), value)

    @classmethod
    def of(cls, *sources: MultiMapping[str]) -> Params:
        return cls(*(source.items() for source in sources))

    def one(self, name: str) -> str | None:
        """The parameter's value; None when absent; 400 when given more than once."""
        values = self._values.getall(name, [])
        if len(values) > 1:
            raise Invalid(f"{name}: given {len(values)} times; give it once")
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        """Every value of a repeated parameter (`env`)."""
        return list(self._values.getall(name, []))


def number(name: str, text: str | None) -> float | None:
    """A parameter as a finite number (None when absent), or 400 naming it."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise Invalid(f"{name}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise Invalid(f"{name}: {text!r} is not a number")
    return value


def _number(name: str, text: str | None, *, most: float, whole: bool = False) -> float | None:
    value = number(name, text)
    if value is None:
        return None
    if whole and not value.is_integer():
        raise Invalid(f"{name}: {text!r} must be a whole number")
    if value <= 0 and not (whole and value == 0):
        raise Invalid(f"{name}: {text} must be more than 0")
    if value > most:
        raise Invalid(f"{name}: {text} exceeds the maximum of {most:g}")
    return value


def session_type(text: str | None, *, default: str | None = None) -> str | None:
    """A `type` parameter as a session type (any case), or 400 naming the types."""
    if text is None:
        return default
    lowered = text.lower()
    if lowered in SESSION_TYPES:
        return lowered
    raise Invalid(f"type: {text!r} is not a session type; use one of {', '.join(SESSION_TYPES)}")


def filter_type(text: str | None) -> str | None:
    """A list's `type` filter: a kabin type, or canfar's desktop-app (never present)."""
    if text is not None and text.lower() == "desktop-app":
        return "desktop-app"
    return session_type(text)


def filter_status(text: str | None) -> frozenset[str] | None:
    """A list's `status` filter as the phases it matches: Succeeded and Completed alike
    (skaha's and canfar's `destroy_with` defaults), Failed and Error alike, and
    Failed also matches Expired (shown as Failed)."""
    if text is None:
        return None
    phases = _FILTERS.get(text.lower())
    if phases is None:
        words = (
            "Pending, Running, Terminating, Succeeded (Completed), Failed (Error), Expired, "
            "Suspended"
        )
        raise Invalid(f"status: {text!r} is not a session status; use one of {words}")
    return phases


def status_word(phase: str, version: Version) -> str:
    """kabin's phase in the version's words: v0 Succeeded, v1 Completed; Expired is
    Failed (a Skaha session whose time ran out ends as a failed Job); Suspended is
    Pending."""
    return _WORDS[version].get(phase, phase)


def environment_for(
    session_type: str, image: str | None, environments: list[dict[str, Any]]
) -> str | None:
    """The EnvironmentConfig a Skaha create of an interactive type runs in, so that the
    session gets its interfaces, timeouts and caps: the one with the same image that
    serves the type, else the first (by name) that serves it."""
    serving = sorted(
        (
            e
            for e in environments
            if session_type in (e["spec"].get("sessionTypes") or SESSION_TYPES)
        ),
        key=lambda e: str(e["metadata"]["name"]),
    )
    same = [e for e in serving if image is not None and e["spec"].get("image") == image]
    chosen = same or serving
    return str(chosen[0]["metadata"]["name"]) if chosen else None


def _name(name: str | None) -> str:
    """Skaha's session name: required, letters, digits and '-'."""
    if name is None or not name:
        raise Invalid("name: required")
    if not _SKAHA_NAME.match(name) or len(name) > NAME_MAX:
        raise Invalid(
            f"name: {name!r} must be letters, digits and '-', at most {NAME_MAX} characters"
        )
    return name


def _env(entries: list[str]) -> dict[str, str]:
    """Repeated `env` parameters, KEY=VALUE split on the first `=`."""
    env: dict[str, str] = {}
    for entry in entries:
        key, equals, value = entry.partition("=")
        if not equals:
            raise Invalid(f"env: {entry!r} must be KEY=VALUE")
        if not _ENV_NAME.match(key):
            raise Invalid(
                f"env: {key!r} is not a variable name (letters, digits, '_', '-' and '.', "
                "not starting with a digit)"
            )
        env[key] = value
    return env


def _timeout(text: str | None) -> int | None:
    """kabin's `timeout` parameter: whole seconds, or -1 for never."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise Invalid(f"timeout: {text!r} must be whole seconds, or -1") from None


def create_manifest(
    params: Params,
    *,
    session_id: str,
    namespace: str,
    environments: list[dict[str, Any]],
) -> dict[str, Any]:
    """The Session a `POST session` asks for, or Invalid naming the parameter.

    `name` is kept in an annotation (names need not be unique); `session_id` is the
    object name. `args` is split on spaces, `cmd` is the command, each `env` is
    KEY=VALUE split on the first `=`. kabin's own `environment`, `drive` and `timeout`
    are accepted too.
    """
    name = _name(params.one("name"))
    kind = session_type(params.one("type"), default="headless") or "headless"
    image = params.one("image")
    environment = params.one("environment")
    if image is not None and (not image or any(c.isspace() for c in image)):
        raise Invalid(f"image: {image!r} is not an image reference")
    if image is None and environment is None:
        raise Invalid("image: required (or name a kabin environment)")
    if environment is None and kind != "headless":
        environment = environment_for(kind, image, environments)
    cores = _number("cores", params.one("cores"), most=MAX_CORES)
    ram = _number("ram", params.one("ram"), most=MAX_RAM_GB)
    gpus = _number("gpus", params.one("gpus"), most=MAX_GPUS, whole=True)
    env = _env(params.all("env"))
    timeout = _timeout(params.one("timeout"))
    args = params.one("args")
    manifest = records.session_manifests(
        name=session_id,
        namespace=namespace,
        image=image,
        cores=cores,
        ram=ram,
        kind=kind,
        gpu=int(gpus) if gpus is not None else None,
        cmd=params.one("cmd"),
        args=None,
        env=env,
        replicas=1,
        environment=environment,
        drive=params.one("drive"),
        timeout=timeout,
    )[0]
    if args is not None and args.split():
        manifest["spec"]["args"] = args.split()
    manifest["metadata"]["annotations"] = {NAME_ANNOTATION: name}
    return manifest


def record(
    obj: Mapping[str, Any], *, images: Mapping[str, str], version: Version
) -> dict[str, str]:
    """A Session as Skaha's record: 16 string keys, `name` the name it was given, status
    in the version's words; and kabin's `message` when the status has one (a Pending
    session's place in its queue, why one failed), which the clients pass through."""
    shown = records.record(obj, home=obj["metadata"]["namespace"], images=images)
    message = (obj.get("status") or {}).get("message")
    if message:
        shown["message"] = str(message)
    shown["name"] = (obj["metadata"].get("annotations") or {}).get(NAME_ANNOTATION) or shown["name"]
    shown["status"] = status_word(shown["status"], version)
    for key in ("startTime", "expiryTime"):
        if shown[key] != records.NONE:
            shown[key] = f"{parse_time(shown[key]):%Y-%m-%dT%H:%M:%SZ}"  # Skaha's: whole seconds
    return shown


def public(shown: Mapping[str, str]) -> dict[str, str]:
    """What anyone may see of someone's session (`view=all`)."""
    return {key: shown[key] for key in PUBLIC_KEYS}


def matches(obj: Mapping[str, Any], *, kind: str | None, phases: frozenset[str] | None) -> bool:
    """Whether a session passes a list's `type` and `status` filters."""
    return (kind is None or obj["spec"]["type"] == kind) and (
        phases is None or records.phase_of(obj) in phases
    )


def events_table(events: list[dict[str, Any]]) -> str:
    """Events as Skaha shows them: `kubectl get event` columns, or `<none>`."""
    if not events:
        return "<none>\n"

    def when(event: Mapping[str, Any], *keys: str) -> str:
        for key in keys:
            if event.get(key):
                return str(event[key])
        return records.NONE

    rows = [("TYPE", "REASON", "MESSAGE", "FIRST-TIME", "LAST-TIME")]
    for e in sorted(events, key=lambda e: when(e, "lastTimestamp", "eventTime")):
        rows.append(
            (
                str(e.get("type") or records.NONE),
                str(e.get("reason") or records.NONE),
                " ".join(str(e.get("message") or "").split()),
                when(e, "firstTimestamp", "eventTime"),
                when(e, "lastTimestamp", "eventTime", "firstTimestamp"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "".join(
        "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "   " + row[4] + "\n"
        for row in rows
    )


def context(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """What a session may ask for (`GET context`), from the largest schedulable node,
    within Skaha's own limits."""
    usable = records.schedulable(nodes)
    cores = min(
        int(max((records.allocatable(n, "cpu") for n in usable), default=Decimal(1))), MAX_CORES
    )
    ram = min(
        int(
            max((records.allocatable(n, "memory") for n in usable), default=Decimal(2**30)) / 2**30
        ),
        MAX_RAM_GB,
    )
    gpus = min(
        int(max((records.allocatable(n, names.GPU_RESOURCE) for n in usable), default=Decimal(0))),
        MAX_GPUS,
    )
    powers = [2**i for i in range(0, 10) if 2**i <= ram]
    return {
        "cores": {
            "default": min(2, cores),
            "defaultRequest": 1,
            "defaultLimit": cores,
            "options": list(range(1, max(cores, 1) + 1)),
        },
        "memoryGB": {
            "default": min(4, ram),
            "defaultRequest": min(4, ram),
            "defaultLimit": ram,
            "options": powers if powers[-1:] == [ram] else [*powers, ram],
        },
        "gpus": {"options": list(range(1, gpus + 1))},
        "maxInteractiveSessions": -1,
    }


def images(environments: list[dict[str, Any]], kind: str | None) -> list[dict[str, Any]]:
    """The images of the published EnvironmentConfigs, with the types each serves."""
    found: dict[str, list[str]] = {}
    for e in sorted(environments, key=lambda e: str(e["metadata"]["name"])):
        types = found.setdefault(str(e["spec"]["image"]), [])
        for t in e["spec"].get("sessionTypes") or SESSION_TYPES:
            if t not in types:
                types.append(t)
    return [
        {"id": image, "types": types, "digest": records.NONE}
        for image, types in sorted(found.items())
        if kind is None or kind in types
    ]


AVAILABILITY = """<?xml version="1.0" encoding="UTF-8"?>
<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">
  <vosi:available>{available}</vosi:available>
  <vosi:note>{note}</vosi:note>
</vosi:availability>
"""
