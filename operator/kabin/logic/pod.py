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

import hashlib
from typing import Any

from kabin.api.names import (
    DRIVE_LABEL,
    GPU_PRODUCT_LABEL,
    GPU_TAINT,
    POD_GROUP_COUNT_ANNOTATION,
    POD_GROUP_LABEL,
    POD_GROUP_RETRIABLE_ANNOTATION,
    PRIORITY_CLASS_LABEL,
    QUEUE_LABEL,
    REPLICA_LABEL,
    SESSION_LABEL,
    readiness_gate,
)
from kabin.api.session import SessionSpec
from kabin.logic.agent import AgentConfig, add_agent, jupyter_token_env, jupyter_token_secret
from kabin.logic.resolve import Owner, Resolved, base_path, labels, pod_name


def _resources(resolved: Resolved) -> dict[str, Any]:
    """CPU requested (no limit), memory requested and limited, GPUs limited."""
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if resolved.cpu is not None:
        requests["cpu"] = str(resolved.cpu)
    if resolved.memory is not None:
        requests["memory"] = limits["memory"] = str(resolved.memory)
    if resolved.gpu:
        limits[resolved.gpu_resource] = str(resolved.gpu)
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def _env(
    owner: Owner, spec: SessionSpec, resolved: Resolved, replica: int, replicas: int
) -> list[dict[str, Any]]:
    """kabin's variables, then the environment's and the session's."""
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
    if token is not None and spec.type != "headless":
        env.append(jupyter_token_env(token))
    return env


def _container(
    owner: Owner, spec: SessionSpec, resolved: Resolved, replica: int, replicas: int
) -> dict[str, Any]:
    """The session's own container, `main`."""
    container: dict[str, Any] = {
        "name": "main",
        "image": resolved.image,
        "env": _env(owner, spec, resolved, replica, replicas),
        "resources": _resources(resolved),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    ports = [{"name": i.name, "containerPort": i.port} for i in resolved.interfaces]
    if ports:
        container["ports"] = ports
    if resolved.command is not None:
        container["command"] = list(resolved.command)
    if resolved.args is not None:
        container["args"] = list(resolved.args)
    return container


def _scheduling(
    owner: Owner, resolved: Resolved, *, drive: tuple[str, str] | None, replicas: int
) -> dict[str, Any]:
    """Node selector, tolerations and affinity: the environment's overrides, GPU nodes
    for GPU sessions only, and replicas of a drive's session on one node."""
    overrides = resolved.overrides
    node_selector = dict(overrides.get("nodeSelector", {}))
    tolerations = list(overrides.get("tolerations", []))
    if resolved.gpu:
        tolerations.append({"key": GPU_TAINT, "operator": "Exists", "effect": "NoSchedule"})
        if resolved.gpu_product:
            node_selector[GPU_PRODUCT_LABEL] = resolved.gpu_product
    placed: dict[str, Any] = {
        key: overrides[key]
        for key in ("affinity", "runtimeClassName", "priorityClassName")
        if key in overrides
    }
    if node_selector:
        placed["nodeSelector"] = node_selector
    if tolerations:
        placed["tolerations"] = tolerations
    if drive is not None and replicas > 1:
        # A ReadWriteOnce volume attaches to one node: keep the replicas together.
        placed["affinity"] = {
            **placed.get("affinity", {}),
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {SESSION_LABEL: owner.name}},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            },
        }
    return placed


def pod_group(
    owner: Owner, *, version: str, pods: list[dict[str, Any]], replicas: int, queue: str | None
) -> str | None:
    """The Kueue pod group of a queued session's new pods.

    A replica made again joins the group of the live pods, if it matches them (their
    total count and queue); if it does not (a size or queue changed under pods still
    there), None: nothing is made until they are gone, as Kueue would refuse the pod.
    Without live pods it is a new group for this start, named after the Session's
    resourceVersion: every start (a resume, a requeue, one after an operator restart)
    comes after a write to the Session, so no start reuses a group Kueue finished."""
    for pod in pods:
        meta = pod["metadata"]
        group = (meta.get("labels") or {}).get(POD_GROUP_LABEL)
        if not group or meta.get("deletionTimestamp"):
            continue
        count = (meta.get("annotations") or {}).get(POD_GROUP_COUNT_ANNOTATION)
        same = count == str(replicas) and (meta.get("labels") or {}).get(QUEUE_LABEL) == queue
        return str(group) if same else None
    digest = hashlib.sha256(f"{owner.uid}/{version}".encode()).hexdigest()[:8]
    return f"{owner.name[:40].rstrip('-.')}-{digest}"


def queue_labels(
    resolved: Resolved, replicas: int, group: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """The labels and annotations that put a pod in its Kueue queue: the LocalQueue, the
    priority class, and for several replicas the group Kueue admits as one, or not at all
    (no pod of it holds a node while the others wait). A group ends when its pods are gone,
    so that a suspended session frees its quota; every new start is a new group."""
    if resolved.queue is None:
        return {}, {}
    labels = {QUEUE_LABEL: resolved.queue}
    if resolved.priority_class:
        labels[PRIORITY_CLASS_LABEL] = resolved.priority_class
    if replicas == 1 or group is None:
        return labels, {}
    labels[POD_GROUP_LABEL] = group
    return labels, {
        POD_GROUP_COUNT_ANNOTATION: str(replicas),
        POD_GROUP_RETRIABLE_ANNOTATION: "false",
    }


def build_pod(
    *,
    owner: Owner,
    spec: SessionSpec,
    resolved: Resolved,
    replica: int,
    replicas: int,
    drive: tuple[str, str] | None = None,
    agent: AgentConfig | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    """Pod `replica` (1-based) of `replicas` for the session; `drive` is (Drive, PVC)
    to mount at the environment's drive mount path; interactive pods get `agent`; a queued
    session's pods of several replicas are Kueue's pod group `group`."""
    headless = spec.type == "headless"
    container = _container(owner, spec, resolved, replica, replicas)
    mounts, volumes = list(resolved.volume_mounts), list(resolved.volumes)
    queued, notes = queue_labels(resolved, replicas, group)
    pod_labels = {**labels(owner, spec.type), REPLICA_LABEL: str(replica), **queued}
    if drive is not None:
        mounts.append({"name": "drive", "mountPath": resolved.mount_path})
        volumes.append({"name": "drive", "persistentVolumeClaim": {"claimName": drive[1]}})
        pod_labels[DRIVE_LABEL] = drive[0]
    if mounts:
        container["volumeMounts"] = mounts
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "restartPolicy": "Never" if headless else "Always",
        # The restricted Pod Security Standard's pod fields, with the environment's
        # overrides on top (a desktop image's runAsUser keeps runAsNonRoot and seccomp).
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
            **resolved.overrides.get("securityContext", {}),
        },
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
    }
    if not headless and resolved.interfaces:
        gates = [{"conditionType": readiness_gate(i.name)} for i in resolved.interfaces]
        pod_spec["readinessGates"] = gates
    pod_spec.update(_scheduling(owner, resolved, drive=drive, replicas=replicas))
    if volumes:
        pod_spec["volumes"] = volumes
    if not headless and agent is not None:
        add_agent(pod_spec, owner, spec, resolved, replica, agent)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(owner, replica),
            "namespace": owner.namespace,
            "labels": pod_labels,
            **({"annotations": notes} if notes else {}),
            "ownerReferences": [owner.reference()],
        },
        "spec": pod_spec,
    }
