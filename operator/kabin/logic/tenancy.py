"""What a user's provisioned namespace holds, and who may have one. Pure.

The namespace is the isolation boundary between users (docs/security.md): the API
server's RBAC, Pod Security admission, ResourceQuota and NetworkPolicy all work per
namespace, and kabin's objects are namespaced. So a namespace the gateway makes for a
user is locked down before the user can use it:

- Pod Security `restricted` is enforced (no privileged, hostPID or hostPath pod, even
  one an administrator's EnvironmentConfig asks for);
- a NetworkPolicy denies all ingress to its pods except from the namespace itself
  (a session's replicas), the ingress controller's namespace and kabin's own (the
  gateway and operator). Egress is left open: the agent reaches the API server, and
  people install packages;
- a ResourceQuota bounds the whole namespace, and a LimitRange gives a pod that asks
  for nothing a small request, which the quota needs to count it;
- the user is bound to `kabin-user`, which covers sessions, drives, their status,
  scale and logs, and events: not pods, Services, Ingresses or Secrets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kabin.api.names import OWNER_ANNOTATION, USER_LABEL
from kabin.settings import GatewaySettings

PSA = "pod-security.kubernetes.io"
GUARD_NAME = "kabin-tenant"
BINDING_NAME = "kabin-user"


def may_provision(user: str, groups: Iterable[str], settings: GatewaySettings) -> tuple[bool, str]:
    """Whether the gateway makes a namespace for this identity, and why not."""
    if user.startswith("system:") and not settings.allow_system_users:
        return False, f'"{user}" is a system identity; the gateway makes no namespace for it'
    allowed = set(settings.provision_groups)
    if "*" in allowed or allowed.intersection(groups):
        return True, ""
    names = ", ".join(sorted(allowed))
    return False, (
        f'"{user}" is in none of the groups that get a namespace ({names}); ask an '
        "administrator for one"
    )


def system_identity(user: str, settings: GatewaySettings) -> bool:
    """A `system:` user (a ServiceAccount, a node) that the gateway refuses unless told."""
    return user.startswith("system:") and not settings.allow_system_users


def forwarded_groups(groups: Iterable[str], settings: GatewaySettings) -> tuple[str, ...]:
    """The groups the gateway impersonates for a user: those of `forward_groups` when it
    names any, and never a `system:` one (the API server adds system:authenticated
    itself; system:masters is never the gateway's to give)."""
    if settings.forward_groups:
        allowed = set(settings.forward_groups)
        groups = [g for g in groups if g in allowed]
    if settings.allow_system_users:
        return tuple(g for g in groups if g != "system:masters")
    return tuple(g for g in groups if not g.startswith("system:"))


PSA_LABELS = {
    f"{PSA}/enforce": "restricted",
    f"{PSA}/enforce-version": "latest",
    f"{PSA}/warn": "restricted",
    f"{PSA}/audit": "restricted",
}


def namespace(name: str, user: str, slug: str) -> dict[str, Any]:
    """A user's namespace, marked as the gateway's and theirs, enforcing restricted Pod
    Security."""
    return {
        "metadata": {
            "name": name,
            "labels": {USER_LABEL: slug, **PSA_LABELS},
            "annotations": {OWNER_ANNOTATION: user},
        }
    }


def needs_labels(found: dict[str, Any]) -> bool:
    """Whether a namespace made earlier lacks the Pod Security labels."""
    labels = found.get("metadata", {}).get("labels") or {}
    return any(labels.get(k) != v for k, v in PSA_LABELS.items())


def guards(name: str, settings: GatewaySettings) -> list[dict[str, Any]]:
    """The NetworkPolicy, ResourceQuota and LimitRange of a user's namespace."""
    meta = {"name": GUARD_NAME, "namespace": name, "labels": {"app.kubernetes.io/part-of": "kabin"}}

    def from_namespace(ns: str) -> dict[str, Any]:
        return {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
        }

    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta,
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {"podSelector": {}},
                            from_namespace(settings.ingress_namespace),
                            from_namespace(settings.system_namespace),
                        ]
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": meta,
            "spec": {"hard": dict(settings.namespace_quota)},
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": meta,
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "defaultRequest": {"cpu": "100m", "memory": "256Mi"},
                        "default": {"memory": "1Gi"},
                    }
                ]
            },
        },
    ]


def binding(name: str, user: str, role: str) -> dict[str, Any]:
    """The RoleBinding that lets a user work in their namespace."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": BINDING_NAME, "namespace": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
