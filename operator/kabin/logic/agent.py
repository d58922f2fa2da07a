"""The `kabin agent` sidecar of interactive session pods, and what it needs: its
container, the interfaces it probes, its ServiceAccount, Role, RoleBinding and the
session's activity Lease, and the Jupyter token it shares with the server. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kabin.api.environment import HTTP_INTERFACES, Interface
from kabin.api.session import SessionSpec
from kabin.logic.resolve import Owner, Resolved, http_path, labels, pod_name


@dataclass(frozen=True)
class AgentConfig:
    """How to run the `kabin agent` sidecar of interactive sessions."""

    image: str
    renew_interval: float = 60
    uid: int = 1999999
    api_server: str | None = None
    """`host:port` of the API server for the agent, instead of the in-cluster Service."""
    """The agent's own UID and GID: with another UID than the session's processes, which
    share its process namespace, they cannot read its token through /proc/<pid>/root."""


AGENT_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
JUPYTER_TOKEN = "JUPYTER_TOKEN"


TOKEN_VOLUME: dict[str, Any] = {
    "name": "kabin-agent-token",
    "projected": {
        "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                    ]
                }
            },
        ]
    },
}
"""The agent's token of the session's agent ServiceAccount, with the cluster's CA and
the namespace, where client libraries look for them; only the agent mounts it."""


def jupyter_token_secret(owner: Owner, resolved: Resolved) -> str | None:
    """The Secret holding the token kabin makes for a session's Jupyter server, which the
    server and the agent both read; None when there is no Jupyter or the environment sets
    the token itself."""
    jupyter = any(i.name == "jupyterlab" for i in resolved.interfaces)
    if not jupyter or any(e.name == JUPYTER_TOKEN for e in resolved.env):
        return None
    return f"{owner.name}-jupyter-token"


def build_jupyter_token(owner: Owner, spec: SessionSpec, token: str) -> dict[str, Any]:
    """The Secret of a session's Jupyter token (made once; never rewritten)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"{owner.name}-jupyter-token",
            "namespace": owner.namespace,
            "labels": labels(owner, spec.type),
            "ownerReferences": [owner.reference()],
        },
        "type": "Opaque",
        "stringData": {"token": token},
    }


def jupyter_token_env(name: str) -> dict[str, Any]:
    return {"name": JUPYTER_TOKEN, "valueFrom": {"secretKeyRef": {"name": name, "key": "token"}}}


def agent_name(owner: Owner) -> str:
    """The ServiceAccount, Role and RoleBinding of a session's agents."""
    return f"{owner.name}-kabin-agent"


def add_agent(
    pod_spec: dict[str, Any],
    owner: Owner,
    spec: SessionSpec,
    resolved: Resolved,
    replica: int,
    agent: AgentConfig,
) -> None:
    """The agent sidecar: it sees the session's processes (one process namespace) and
    alone gets a token, of the session's agent ServiceAccount; the user's container
    gets none."""
    probes = [_probe(spec, owner, resolved.interfaces, i) for i in resolved.interfaces]
    env = [
        {"name": "KABIN_AGENT_SESSION", "value": owner.name},
        {"name": "KABIN_AGENT_NAMESPACE", "value": owner.namespace},
        {"name": "KABIN_AGENT_POD", "value": pod_name(owner, replica)},
        {"name": "KABIN_AGENT_INTERFACES", "value": json.dumps(probes)},
        {"name": "KABIN_AGENT_RENEW_INTERVAL", "value": str(agent.renew_interval)},
        # The agent asks Jupyter's API with the server's own token, as the user does.
        *({"name": e.name, "value": e.value} for e in resolved.env if e.name == JUPYTER_TOKEN),
    ]
    token = jupyter_token_secret(owner, resolved)
    if token is not None:
        env.append(jupyter_token_env(token))
    if agent.api_server:
        host, _, port = agent.api_server.rpartition(":")
        env += [
            {"name": "KUBERNETES_SERVICE_HOST", "value": host},
            {"name": "KUBERNETES_SERVICE_PORT", "value": port},
        ]
    pod_spec["containers"].append(
        {
            "name": "kabin-agent",
            "image": agent.image,
            "args": ["agent"],
            "env": env,
            "resources": {
                "requests": {"cpu": "20m", "memory": "96Mi"},
                "limits": {"memory": "192Mi"},
            },
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "runAsUser": agent.uid,
                "runAsGroup": agent.uid,
            },
            "volumeMounts": [
                {"name": "kabin-agent-token", "mountPath": AGENT_TOKEN_PATH, "readOnly": True}
            ],
        }
    )
    pod_spec["shareProcessNamespace"] = True
    pod_spec["serviceAccountName"] = agent_name(owner)
    pod_spec.setdefault("volumes", []).append(TOKEN_VOLUME)


def _probe(
    spec: SessionSpec, owner: Owner, interfaces: list[Interface], iface: Interface
) -> dict[str, Any]:
    """How the agent asks an interface whether it answers: ssh by its banner, http by a
    200 on its path, except code-server, asked its bare /healthz (any other request
    would count as the user's heartbeat and keep the session alive for ever)."""
    if iface.name not in HTTP_INTERFACES:
        return {"name": iface.name, "port": iface.port, "base": "", "path": ""}
    if iface.name == "vscode":
        return {"name": iface.name, "port": iface.port, "base": "/", "path": "/healthz"}
    base = http_path(spec.type, owner, interfaces, iface)
    return {
        "name": iface.name,
        "port": iface.port,
        "base": base,
        "path": base + iface.path.lstrip("/"),
    }


def build_agent_access(owner: Owner, spec: SessionSpec) -> list[dict[str, Any]]:
    """What the session's agents need: a ServiceAccount, a Role allowing only the
    session's activity Lease and its own pods' status (by resourceNames), the
    RoleBinding, and the Lease itself. Empty for headless sessions (no agent)."""
    if spec.type == "headless":
        return []
    meta = {
        "name": agent_name(owner),
        "namespace": owner.namespace,
        "labels": labels(owner, spec.type),
        "ownerReferences": [owner.reference()],
    }
    pods = [pod_name(owner, r) for r in range(1, spec.replicas + 1)]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "resourceNames": [owner.name],
                    "verbs": ["get", "patch", "update"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["pods/status"],
                    "resourceNames": pods,
                    "verbs": ["get", "patch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": agent_name(owner),
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": agent_name(owner), "namespace": owner.namespace}
            ],
        },
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {**meta, "name": owner.name},
            "spec": {},
        },
    ]
