"""EnvironmentConfig: an administrator's published session type.

Cluster-scoped. It names the image, the interfaces the image serves, resource
defaults and caps, the GPU flavour, timeout defaults and caps, extra volumes and
pod overrides. Sessions pick one by name (`spec.environment`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from kabin.api.meta import (
    LIST_MAP_BY_NAME,
    EnvVar,
    Model,
    Quantity,
    Seconds,
    cel,
    preserved,
)

InterfaceName = Literal["jupyterlab", "vscode", "ssh", "desktop", "http"]
SessionType = Literal[
    "notebook", "vscode", "desktop", "ssh", "headless", "carta", "firefly", "contributed"
]
SESSION_TYPES: tuple[SessionType, ...] = (
    "notebook",
    "vscode",
    "desktop",
    "ssh",
    "headless",
    "carta",
    "firefly",
    "contributed",
)
HTTP_INTERFACES: frozenset[str] = frozenset({"jupyterlab", "vscode", "desktop", "http"})
EXTENDED_RESOURCE = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/[-a-zA-Z0-9_.]{1,63}$"
)


class Interface(Model):
    """A network interface the image serves: JupyterLab, VS Code, SSH, a desktop, any web app."""

    name: InterfaceName
    """Which interface: jupyterlab, vscode, ssh, desktop or http (any other web app)."""
    port: Annotated[int, Field(ge=1, le=65535)]
    """Container port the interface listens on."""
    path: Annotated[str, Field(pattern=r"^/[^\s]*$", max_length=1024)] = "/"
    """URL path suffix of an http interface, after the session's base path (default /)."""


class ResourceAmounts(Model):
    """Amounts of CPU, memory and GPUs: what a session asks for, what its pods request,
    an environment's defaults and caps."""

    cpu: Quantity | None = None
    """CPU cores, as a quantity (2, 500m)."""
    memory: Quantity | None = None
    """Memory, as a quantity (4Gi, 512Mi)."""
    gpu: Annotated[int, Field(ge=0)] | None = None
    """Whole GPUs (or MIG slices, per gpu.resourceName)."""


class EnvironmentResources(Model):
    """Resource defaults for sessions that ask for none, and the caps they may ask for."""

    default: ResourceAmounts | None = None
    """What a session gets when it does not say."""
    max: ResourceAmounts | None = None
    """The most a session may ask for; a missing key means no cap."""


class GPU(Model):
    """Which GPUs the environment's sessions get."""

    resource_name: Annotated[str, Field(pattern=EXTENDED_RESOURCE, max_length=253)] = (
        "nvidia.com/gpu"
    )
    """Extended resource to request, such as nvidia.com/gpu or nvidia.com/mig-1g.10gb."""
    product: Annotated[str, Field(max_length=63)] | None = None
    """GPU product: sessions run only on nodes labelled nvidia.com/gpu.product with it."""


class Timeouts(Model):
    """Session timeouts, in seconds; -1 means none."""

    model_config = cel(
        {
            "rule": "!has(self.max) || self.max == -1 || !has(self.default) "
            "|| (self.default != -1 && self.default <= self.max)",
            "message": "must be set and at most timeouts.max when timeouts.max is set",
            "fieldPath": ".default",
        }
    )

    default: Seconds | None = None
    """Timeout of a session that asks for none (-1: none). Without it, sessions have none."""
    max: Seconds | None = None
    """The longest timeout a session may ask for (-1: no cap, and sessions may ask for none)."""
    mode: Literal["idle", "absolute"] | None = None
    """idle: counted from the last activity; absolute: from the start. Default: idle for
    browser session types, absolute for ssh and headless."""
    delete_suspended_after: Seconds | None = None
    """Seconds a session may stay suspended before it is deleted (its drive stays);
    -1 or unset: never. A DeletingSoon condition and a warning Event come first."""
    action: Literal["Suspend", "Expire"] | None = None
    """What a timeout that runs out does: Suspend (spec.suspend is set; the session resumes
    on its drive) or Expire (it ends, and its pods and drive go back to others; its user
    may still resume it by hand). Default: Suspend for idle timeouts, Expire for absolute
    ones. Sessions may choose Expire where this is Suspend, never the other way round."""


class PodOverrides(Model):
    """Pod settings the environment imposes on its sessions' pods."""

    node_selector: dict[str, str] | None = None
    """Node labels the pods must run on."""
    tolerations: Annotated[
        list[dict[str, Any]] | None,
        preserved("Tolerations (core/v1 Toleration) added to the pods.", kind="array"),
    ] = None
    affinity: Annotated[
        dict[str, Any] | None, preserved("Affinity (core/v1 Affinity) of the pods.")
    ] = None
    runtime_class_name: Annotated[str, Field(max_length=253)] | None = None
    """RuntimeClass of the pods (gVisor, Kata, the NVIDIA runtime)."""
    priority_class_name: Annotated[str, Field(max_length=253)] | None = None
    """PriorityClass of the pods."""
    security_context: Annotated[
        dict[str, Any] | None,
        preserved(
            "Pod security context (core/v1 PodSecurityContext), replacing kabin's "
            "restricted default."
        ),
    ] = None


class Queueing(Model):
    """Which Kueue queue the environment's sessions wait in, and their place in it."""

    model_config = cel(
        {
            "rule": "!has(self.priorityClasses) || self.priorityClasses.all(t, t in "
            + str(list(SESSION_TYPES))
            + ")",
            "message": "keys must be session types: " + ", ".join(SESSION_TYPES),
            "fieldPath": ".priorityClasses",
        }
    )

    queue: Annotated[str, Field(max_length=253)] | None = None
    """LocalQueue (in the session's namespace) of sessions that name none."""
    priority_classes: dict[str, Annotated[str, Field(max_length=253)]] | None = None
    """WorkloadPriorityClass per session type, e.g. {notebook: teaching, headless: batch}.
    A type left out gets the operator's default: interactive ones before headless ones."""


class EnvironmentConfigSpec(Model):
    """What an administrator publishes for users to pick."""

    display_name: Annotated[str, Field(max_length=256)] | None = None
    """Name shown to people."""
    description: Annotated[str, Field(max_length=4096)] | None = None
    """What the environment is for."""
    image: Annotated[str, Field(min_length=1, max_length=1024)]
    """Container image of the sessions."""
    interfaces: Annotated[list[Interface], Field(max_length=16)] | None = Field(
        default=None, json_schema_extra=LIST_MAP_BY_NAME
    )
    """Interfaces the image serves, one per name."""
    command: list[str] | None = None
    """Entrypoint of the container (default: the image's)."""
    args: list[str] | None = None
    """Arguments of the entrypoint (default: the image's)."""
    env: list[EnvVar] | None = Field(default=None, json_schema_extra=LIST_MAP_BY_NAME)
    """Environment variables of the sessions' containers."""
    resources: EnvironmentResources | None = None
    """Resource defaults and caps."""
    gpu: GPU | None = None
    """The GPU flavour."""
    timeouts: Timeouts | None = None
    """Timeout default, cap, mode and action, and how long sessions may stay suspended."""
    schedules: Literal["Allowed", "SuspendOnly", "Forbidden"] | None = None
    """Whether its sessions may have a schedule: Allowed (the default), SuspendOnly (a
    schedule may suspend them, never resume them unattended), Forbidden."""
    queueing: Queueing | None = None
    """The Kueue queue and priorities of its sessions."""
    drive_mount_path: Annotated[str, Field(pattern=r"^/.*$")] = "/workspace"
    """Where the session's drive is mounted in its containers."""
    volumes: Annotated[
        list[dict[str, Any]] | None,
        preserved("Extra volumes (core/v1 Volume), such as shared datasets.", kind="array"),
    ] = None
    volume_mounts: Annotated[
        list[dict[str, Any]] | None,
        preserved("Mounts (core/v1 VolumeMount) of the extra volumes.", kind="array"),
    ] = None
    pod_overrides: PodOverrides | None = None
    """Scheduling and security settings of the pods."""
    session_types: list[SessionType] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Session types the environment may serve; omitted means all."""

    def serves(self, session_type: str) -> bool:
        """Whether a session of this type may use the environment."""
        return self.session_types is None or session_type in self.session_types


class EnvironmentConfig(Model):
    """An administrator-published session type: image, interfaces, defaults and caps."""

    api_version: Literal["kabin.dev/v1alpha1"] = "kabin.dev/v1alpha1"
    kind: Literal["EnvironmentConfig"] = "EnvironmentConfig"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: EnvironmentConfigSpec
