"""A session's pods, built from its spec and its EnvironmentConfig. Pure: the same
inputs give the same pod.

Resource choices:
- CPU: the request is what the session asked for, with no limit, so a session
  may burst into idle cores instead of being throttled, and the scheduler
  still places it by what it asked for.
- Memory: request and limit are both what it asked for. Memory cannot be
  taken back without killing, so a session never grows into its neighbours'.
- GPUs: a limit on the environment's GPU resource (extended resources are
  requested through limits), a toleration of the GPU taint, and a node
  selector on the GPU product when the environment names one. CPU-only
  sessions get neither, so they never land on GPU nodes.
"""

from __future__ import annotations

from typing import Any

from kabin.api.names import (
    DRIVE_LABEL,
    GPU_PRODUCT_LABEL,
    GPU_TAINT,
    REPLICA_LABEL,
    SESSION_LABEL,
    readiness_gate,
)
from kabin.api.session import SessionSpec
from kabin.logic.agent import AgentConfig, add_agent, jupyter_token_env, jupyter_token_secret
from kabin.logic.resolve import Owner, Resolved, base_path, labels, pod_name


def build_pod(
    *,
    owner: Owner,
    spec: SessionSpec,
    resolved: Resolved,
    replica: int,
    replicas: int,
    drive: tuple[str, str] | None = None,
    agent: AgentConfig | None = None,
) -> dict[str, Any]:
    """Pod `replica` (1-based) of `replicas` for the session; `drive` is (Drive, PVC)
    to mount at the environment's drive mount path; interactive pods get `agent`."""
    headless = spec.type == "headless"
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if resolved.cpu is not None:
        requests["cpu"] = str(resolved.cpu)
    if resolved.memory is not None:
        requests["memory"] = limits["memory"] = str(resolved.memory)
    if resolved.gpu:
        limits[resolved.gpu_resource] = str(resolved.gpu)
    given = {e.name for e in resolved.env}
    defaults = [
        {"name": "REPLICA_ID", "value": str(replica)},
        {"name": "REPLICA_COUNT", "value": str(replicas)},
        {"name": "KABIN_SESSION", "value": owner.name},
        {"name": "KABIN_USER", "value": owner.user},
        {"name": "KABIN_NAMESPACE", "value": owner.namespace},
        {"name": "KABIN_BASE_PATH", "value": base_path(spec.type, owner)},
    ]
    # What the session or its environment sets wins (the Python client numbers its
    # replica sessions with REPLICA_ID/REPLICA_COUNT, as Skaha does); no name twice.
    env = [
        *(d for d in defaults if d["name"] not in given),
        *({"name": e.name, "value": e.value} for e in resolved.env),
    ]
    token = jupyter_token_secret(owner, resolved)
    if token is not None and not headless:
        env.append(jupyter_token_env(token))
    container: dict[str, Any] = {
        "name": "main",
        "image": resolved.image,
        "env": env,
        "resources": {k: v for k, v in (("requests", requests), ("limits", limits)) if v},
        "ports": [{"name": i.name, "containerPort": i.port} for i in resolved.interfaces],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if resolved.command is not None:
        container["command"] = list(resolved.command)
    if resolved.args is not None:
        container["args"] = list(resolved.args)
    mounts = list(resolved.volume_mounts)
    volumes = list(resolved.volumes)
    pod_labels = {**labels(owner, spec.type), REPLICA_LABEL: str(replica)}
    if drive is not None:
        mounts.append({"name": "drive", "mountPath": resolved.mount_path})
        volumes.append({"name": "drive", "persistentVolumeClaim": {"claimName": drive[1]}})
        pod_labels[DRIVE_LABEL] = drive[0]
    if mounts:
        container["volumeMounts"] = mounts
    if not container["ports"]:
        del container["ports"]

    overrides = resolved.overrides
    node_selector = dict(overrides.get("nodeSelector", {}))
    tolerations = list(overrides.get("tolerations", []))
    if resolved.gpu:
        tolerations.append({"key": GPU_TAINT, "operator": "Exists", "effect": "NoSchedule"})
        if resolved.gpu_product:
            node_selector[GPU_PRODUCT_LABEL] = resolved.gpu_product
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "restartPolicy": "Never" if headless else "Always",
        "securityContext": overrides.get(
            "securityContext",
            {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        ),
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
    }
    if not headless and resolved.interfaces:
        pod_spec["readinessGates"] = [
            {"conditionType": readiness_gate(i.name)} for i in resolved.interfaces
        ]
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    for key in ("affinity", "runtimeClassName", "priorityClassName"):
        if key in overrides:
            pod_spec[key] = overrides[key]
    if volumes:
        pod_spec["volumes"] = volumes
    if drive is not None and replicas > 1:
        # A ReadWriteOnce volume attaches to one node: keep the replicas together.
        pod_spec["affinity"] = {
            **pod_spec.get("affinity", {}),
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {SESSION_LABEL: owner.name}},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            },
        }
    if not headless and agent is not None:
        add_agent(pod_spec, owner, spec, resolved, replica, agent)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(owner, replica),
            "namespace": owner.namespace,
            "labels": pod_labels,
            "ownerReferences": [owner.reference()],
        },
        "spec": pod_spec,
    }
