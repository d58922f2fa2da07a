"""How to reach each interface of a session, and whether it answers: an https URL under
the session's base path for http interfaces, an `ssh -p` command for ssh (the port of
its Service). An interface answers once the agent opened its readiness gate on replica
1, that pod is Ready and the session runs. Pure."""

from __future__ import annotations

from typing import Any

from kabin.api import names
from kabin.api.environment import HTTP_INTERFACES, Interface
from kabin.api.names import readiness_gate
from kabin.api.session import Endpoint
from kabin.logic.access import Origin
from kabin.logic.resolve import http_path
from kabin.logic.status.model import Observed, StatusSettings
from kabin.logic.status.pods import true


def _url(observed: Observed, iface: Interface, settings: StatusSettings) -> str:
    owner, resolved = observed.owner, observed.resolved
    if iface.name in HTTP_INTERFACES:
        path = http_path(observed.spec.type, owner, resolved.interfaces, iface)
        path += iface.path.lstrip("/")
        if settings.sessions_url:
            return Origin.parse(settings.sessions_url).url(owner.namespace, owner.name, path)
        return f"https://{settings.host}{path}"
    service = observed.services.get(f"{owner.name}-ssh", {})
    port = next(
        (
            p.get("nodePort") or p.get("port")
            for p in service.get("spec", {}).get("ports", [])
            if p.get("name") == iface.name
        ),
        iface.port,
    )
    return f"ssh -p {port} {owner.user or 'user'}@{settings.ssh_host}"


def endpoints(
    observed: Observed, *, phase: str, head: dict[str, Any] | None, settings: StatusSettings
) -> list[Endpoint]:
    """One endpoint per interface (none for headless runs)."""
    if observed.spec.type == "headless":
        return []
    return [
        Endpoint(
            name=iface.name,
            url=_url(observed, iface, settings),
            # The interface answers (its gate), and the pod is Ready: only then is it
            # among its Service's endpoints, so that the ingress (or kube-proxy) routes
            # to it and the dashboard's button leads somewhere.
            ready=head is not None
            and phase == "Running"
            and true(head, readiness_gate(iface.name))
            and true(head, names.POD_READY),
        )
        for iface in observed.resolved.interfaces
    ]


def connect_url(endpoints: list[Endpoint]) -> str | None:
    """The first http interface's URL, else the first endpoint's (Skaha's connectURL)."""
    http = [e.url for e in endpoints if e.name in HTTP_INTERFACES]
    return http[0] if http else (endpoints[0].url if endpoints else None)
