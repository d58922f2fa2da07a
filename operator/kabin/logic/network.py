"""How a session is reached: a Service for its http interfaces, another for ssh, and
an Ingress routing each http interface under the session's base path. Pure."""

from __future__ import annotations

from typing import Any

from kabin.api.environment import HTTP_INTERFACES, Interface
from kabin.api.names import REPLICA_LABEL, SESSION_LABEL
from kabin.api.session import SessionSpec
from kabin.logic.resolve import Owner, Resolved, http_path, labels


def _service(
    owner: Owner, spec: SessionSpec, name: str, ports: list[Interface], kind: str
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": labels(owner, spec.type),
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "type": kind,
            # Interfaces are served by the first replica.
            "selector": {SESSION_LABEL: owner.name, REPLICA_LABEL: "1"},
            "ports": [
                {"name": i.name, "port": i.port, "targetPort": i.name, "protocol": "TCP"}
                for i in ports
            ],
        },
    }


def build_services(
    *, owner: Owner, spec: SessionSpec, resolved: Resolved, ssh_service_type: str
) -> list[dict[str, Any]]:
    """A ClusterIP Service for the http interfaces, another (NodePort by default) for ssh."""
    if spec.type == "headless":
        return []
    http = [i for i in resolved.interfaces if i.name in HTTP_INTERFACES]
    ssh = [i for i in resolved.interfaces if i.name == "ssh"]
    services = []
    if http:
        services.append(_service(owner, spec, owner.name, http, "ClusterIP"))
    if ssh:
        services.append(_service(owner, spec, f"{owner.name}-ssh", ssh, ssh_service_type))
    return services


def build_ingress(
    *,
    owner: Owner,
    spec: SessionSpec,
    resolved: Resolved,
    host: str,
    ingress_class: str | None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    """The Ingress routing each http interface under the session's base path, on `host`
    (the session's own, with a sessions origin), with the access check's annotations."""
    http = [i for i in resolved.interfaces if i.name in HTTP_INTERFACES]
    if spec.type == "headless" or not http:
        return None
    paths = [
        {
            "path": http_path(spec.type, owner, resolved.interfaces, i),
            "pathType": "Prefix",
            "backend": {"service": {"name": owner.name, "port": {"name": i.name}}},
        }
        for i in http
    ]
    ingress_spec: dict[str, Any] = {"rules": [{"host": host, "http": {"paths": paths}}]}
    if ingress_class:
        ingress_spec["ingressClassName"] = ingress_class
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": owner.name,
            "namespace": owner.namespace,
            "labels": labels(owner, spec.type),
            **({"annotations": dict(annotations)} if annotations else {}),
            "ownerReferences": [owner.reference()],
        },
        "spec": ingress_spec,
    }


def contains(actual: Any, wanted: Any) -> bool:
    """Whether `actual` (an object as the API server has it) already says everything
    `wanted` says: every field of `wanted`, at any depth, with the same value. Fields the
    server defaulted or another manager set do not matter; a server-side apply of
    `wanted` would change nothing."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            contains(actual[k], v) if k in actual else v is None for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(wanted)
            and all(contains(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    return bool(actual == wanted)
