"""A session's spec with its EnvironmentConfig's defaults filled in, and the names,
labels and URL paths every child of the session shares. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kabin.api.environment import HTTP_INTERFACES, EnvironmentConfigSpec, Interface
from kabin.api.meta import API_VERSION, EnvVar
from kabin.api.names import (
    GPU_RESOURCE,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    REPLICA_LABEL,
    SESSION_LABEL,
)
from kabin.api.session import SessionSpec

BROWSER_TYPES = frozenset({"notebook", "vscode", "desktop", "carta", "firefly", "contributed"})
"""Session types used in a browser, whose timeout is idle time by default."""


@dataclass(frozen=True)
class Owner:
    """The Session as its children refer to it."""

    name: str
    namespace: str
    uid: str
    user: str = ""

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": "Session",
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class Resolved:
    """A session's spec with its environment's defaults filled in."""

    image: str
    command: list[str] | None
    args: list[str] | None
    env: list[EnvVar]
    cpu: int | str | None
    memory: int | str | None
    gpu: int
    gpu_resource: str
    gpu_product: str | None
    interfaces: list[Interface]
    timeout: int
    timeout_mode: str
    timeout_action: str  # Suspend or Expire
    delete_suspended_after: int  # seconds; -1: never
    mount_path: str
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None  # the Kueue LocalQueue its pods wait in
    priority_class: str | None = None  # their WorkloadPriorityClass, when queued


@dataclass(frozen=True)
class QueueDefaults:
    """The operator's queue settings: the LocalQueue of sessions whose spec and environment
    name none, and the WorkloadPriorityClasses of sessions whose environment sets none."""

    queue: str | None = None
    interactive: str | None = None
    headless: str | None = None


def queueing(
    spec: SessionSpec, env: EnvironmentConfigSpec | None, defaults: QueueDefaults
) -> tuple[str | None, str | None]:
    """The session's LocalQueue (its own, else its environment's, else the operator's) and,
    when it has one, its WorkloadPriorityClass (its environment's for its type, else the
    operator's: interactive sessions before headless ones)."""
    ours = env.queueing if env else None
    queue = spec.queue or (ours.queue if ours else None) or defaults.queue
    if queue is None:
        return None, None
    chosen = ((ours.priority_classes or {}) if ours else {}).get(spec.type)
    fallback = defaults.headless if spec.type == "headless" else defaults.interactive
    return queue, chosen or fallback


def timeout_mode(session_type: str, configured: str | None) -> str:
    """Idle or absolute: what the environment says, else idle for the types people use
    in a browser and absolute for ssh and headless runs."""
    if configured:
        return configured
    return "idle" if session_type in BROWSER_TYPES else "absolute"


ACTIONS = ("Suspend", "Expire")
"""Timeout actions, the softest first: a session may choose one at or after its
environment's."""


def timeout_action(mode: str, configured: str | None, asked: str | None) -> str:
    """What the session's timeout does: the session's choice, else the environment's, else
    Suspend for an idle timeout and Expire for an absolute one (Kubeflow's culler pauses an
    idle notebook; a batch run's time is up)."""
    return asked or configured or ("Suspend" if mode == "idle" else "Expire")


def resolve(
    spec: SessionSpec,
    env: EnvironmentConfigSpec | None,
    queues: QueueDefaults | None = None,
) -> Resolved:
    """Fill in what the session leaves to its environment.

    A session that brings its own image keeps everything the environment enforces (its
    caps, timeouts, pod overrides, GPU flavour, interfaces and mount path) and nothing
    made for the environment's own image: its command, args, variables and extra volumes
    (a dataset or licence mounted for that image, a Secret in a variable).
    """
    own_image = env is not None and spec.image is not None and spec.image != env.image
    queue, priority_class = queueing(spec, env, queues or QueueDefaults())
    made_for = None if own_image else env
    defaults = env.resources.default if env and env.resources else None
    asked = spec.resources
    gpu = asked.gpu if asked and asked.gpu is not None else (defaults.gpu if defaults else None)
    timeout = spec.timeout
    if timeout is None:
        timeout = env.timeouts.default if env and env.timeouts and env.timeouts.default else -1
    mode = timeout_mode(spec.type, env.timeouts.mode if env and env.timeouts else None)
    overrides = (
        env.pod_overrides.model_dump(exclude_none=True, by_alias=True)
        if env and env.pod_overrides
        else {}
    )
    return Resolved(
        image=spec.image or (env.image if env else ""),
        command=spec.command
        if spec.command is not None
        else (made_for.command if made_for else None),
        args=spec.args if spec.args is not None else (made_for.args if made_for else None),
        env=[*(made_for.env or [] if made_for else []), *(spec.env or [])],
        cpu=(
            asked.cpu if asked and asked.cpu is not None else (defaults.cpu if defaults else None)
        ),
        memory=(
            asked.memory
            if asked and asked.memory is not None
            else (defaults.memory if defaults else None)
        ),
        gpu=gpu or 0,
        gpu_resource=env.gpu.resource_name if env and env.gpu else GPU_RESOURCE,
        gpu_product=env.gpu.product if env and env.gpu else None,
        interfaces=list(env.interfaces or []) if env else [],
        timeout=timeout,
        timeout_mode="none" if timeout == -1 else mode,
        delete_suspended_after=(
            env.timeouts.delete_suspended_after
            if env and env.timeouts and env.timeouts.delete_suspended_after is not None
            else -1
        ),
        timeout_action=timeout_action(
            mode, env.timeouts.action if env and env.timeouts else None, spec.timeout_action
        ),
        mount_path=env.drive_mount_path if env else "/workspace",
        volumes=list(made_for.volumes or []) if made_for else [],
        volume_mounts=list(made_for.volume_mounts or []) if made_for else [],
        overrides=overrides,
        queue=queue,
        priority_class=priority_class,
    )


def base_path(session_type: str, owner: Owner) -> str:
    """The URL path under which the session's http interfaces are served."""
    return f"/session/{session_type}/{owner.namespace}/{owner.name}/"


def http_path(
    session_type: str, owner: Owner, interfaces: list[Interface], iface: Interface
) -> str:
    """Where one http interface is routed: the first at the base path, others beneath it."""
    http = [i for i in interfaces if i.name in HTTP_INTERFACES]
    base = base_path(session_type, owner)
    return base if http and http[0].name == iface.name else f"{base}{iface.name}/"


def labels(owner: Owner, session_type: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "kabin-session",
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": session_type,
        MANAGED_BY_LABEL: MANAGED_BY,
        SESSION_LABEL: owner.name,
    }


def selector(owner: Owner) -> str:
    """The label selector of the session's pods (status.selector, for `kubectl scale`)."""
    return f"{SESSION_LABEL}={owner.name}"


def pod_name(owner: Owner, replica: int) -> str:
    return f"{owner.name}-{replica}"


def replica_of(pod: dict[str, Any]) -> int:
    """The replica number (1..N) of a session's pod: its kabin.dev/replica label, or the
    suffix of its name (`<session>-<replica>`) on a pod without one."""
    label = (pod["metadata"].get("labels") or {}).get(REPLICA_LABEL)
    if label is not None:
        return int(label)
    return int(pod["metadata"]["name"].rsplit("-", 1)[-1])
