"""Where a session is served, and who may open it. Pure.

With a sessions origin (`sessions_url`, say `https://sessions.example.org`), each session
is served from a host of its own, `<name>.<namespace>.sessions.example.org`: another
origin than the dashboard's and every other session's, so a page a session serves gets
neither the dashboard's cookie nor another session's. A namespace is one DNS label, so
the host names its session unambiguously even when the session's name has dots.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Origin:
    """The sessions' origin: scheme, the domain under which each session has a host,
    and the port, when it is not the scheme's."""

    scheme: str
    domain: str
    port: int | None = None

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"sessions_url: {url!r} is not an http(s) URL with a host")
        return cls(parts.scheme, parts.hostname.lower(), parts.port)

    def host(self, namespace: str, name: str) -> str:
        """The session's host name."""
        return f"{name}.{namespace}.{self.domain}"

    def url(self, namespace: str, name: str, path: str = "/") -> str:
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{self.host(namespace, name)}{port}{path}"

    def session_of(self, host: str) -> tuple[str, str] | None:
        """The (namespace, name) a host serves, or None for a host that is no session's."""
        bare = host.lower().rsplit(":", 1)[0] if host.count(":") == 1 else host.lower()
        suffix = f".{self.domain}"
        if not bare.endswith(suffix):
            return None
        name, _, namespace = bare[: -len(suffix)].rpartition(".")
        labels = name.split(".") if name else []
        if not _LABEL.match(namespace) or not labels or not all(_LABEL.match(x) for x in labels):
            return None
        return namespace, name


def may_open(
    *, owner: str | None, user: str, groups: Iterable[str], admin_groups: Iterable[str]
) -> bool:
    """Only the session's owner, and admins, may open it."""
    return owner == user or bool(set(admin_groups).intersection(groups))


def safe_next(path: str | None) -> str:
    """A path on the same host to go back to after signing in: never another host."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


SIGNIN = "_kabin/signin"


def signin_path(next_path: str) -> str:
    """Where on a session's host a browser brings its ticket: under the session's base
    path (`/session/<type>/<namespace>/<name>/`, the only paths its Ingress routes, so
    the access check sees it), taken from the path it returns to."""
    parts = safe_next(next_path).split("/")
    if len(parts) > 5 and parts[1] == "session":
        return "/".join(parts[:5]) + "/" + SIGNIN
    return "/" + SIGNIN


def is_signin(path: str) -> bool:
    return path.endswith("/" + SIGNIN)
