"""Session: one user's interactive workspace or headless batch run.

The spec is what the user asked for and never changes behind their back (no
defaults from the environment are written into it, so GitOps tools see no
drift); the status is what the operator observed and resolved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from kabin.api.environment import ResourceAmounts, SessionType
from kabin.api.meta import (
    LIST_MAP_BY_NAME,
    LIST_MAP_BY_TYPE,
    Condition,
    EnvVar,
    Model,
    ObjectName,
    Quantity,
    Seconds,
    cel,
    immutable,
)

Phase = Literal["Pending", "Running", "Suspended", "Succeeded", "Failed", "Terminating", "Expired"]
TimeoutMode = Literal["idle", "absolute", "none"]
TimeoutAction = Literal["Suspend", "Expire"]

# Fields fixed at creation. `replicas` and `timeout` may change.
IMMUTABLE_FIELDS = (
    "type",
    "environment",
    "image",
    "resources",
    "command",
    "args",
    "env",
    "drive",
    "user",
    "queue",
)


class Schedule(Model):
    """When the session suspends and resumes on its own, as cron expressions ("minute hour
    day-of-month month day-of-week") in a time zone."""

    suspend: Annotated[str, Field(max_length=128)] | None = None
    """When to suspend, for example "0 19 * * 1-5" (weekdays at 19:00)."""
    resume: Annotated[str, Field(max_length=128)] | None = None
    """When to resume, for example "0 8 * * 1-5" (weekdays at 08:00)."""
    time_zone: Annotated[str, Field(max_length=64)] | None = None
    """IANA time zone of both, for example "Europe/Paris" (default: UTC)."""


class SessionSpec(Model):
    """What the user asked for."""

    model_config = cel(
        {
            "rule": "has(self.environment) || has(self.image)",
            "message": "one of spec.environment or spec.image is required",
            "reason": "FieldValueRequired",
        },
        *[immutable(f, "session") for f in IMMUTABLE_FIELDS],
    )

    type: SessionType
    """Kind of session: notebook, vscode, desktop, ssh, headless, carta, firefly or contributed."""
    environment: ObjectName | None = None
    """Name of the EnvironmentConfig the session runs in."""
    image: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    """Container image; overrides the environment's, or stands alone without one."""
    resources: ResourceAmounts | None = None
    """CPU, memory and GPUs; defaults come from the environment."""
    command: list[str] | None = None
    """Entrypoint of the container (default: the environment's, then the image's)."""
    args: list[str] | None = None
    """Arguments of the entrypoint (default: the environment's, then the image's)."""
    env: list[EnvVar] | None = Field(default=None, json_schema_extra=LIST_MAP_BY_NAME)
    """Environment variables, added to the environment's."""
    replicas: Annotated[int, Field(ge=1, le=256)] = 1
    """Number of pods; `kubectl scale` changes it."""
    drive: ObjectName | None = None
    """Name of the Drive holding the session's files (default: the user's default drive,
    none for headless sessions)."""
    timeout: Seconds | None = None
    """Seconds until the session ends, -1 for never. Idle time for browser types,
    absolute for ssh and headless. Default: the environment's."""
    user: Annotated[str, Field(max_length=253)] | None = None
    """The user who created the session, recorded at admission."""
    suspend: bool = False
    """True stops the session's pods and frees its drive, keeping the session to resume
    (false again) on the same drive, at the same URL. Set by the operator when a timeout
    whose action is Suspend runs out."""
    schedule: Schedule | None = None
    """Suspend and resume at set times (kabin's timers fire within 2 s of the minute)."""
    queue: ObjectName | None = None
    """The Kueue LocalQueue in the session's namespace its pods wait in until there is room
    (default: its environment's queue, then the operator's). Needs Kueue."""
    timeout_action: TimeoutAction | None = None
    """What the timeout does: Suspend (resumable) or Expire (final). Default: the
    environment's; a session may choose Expire where its environment suspends, not the
    other way round."""

    @model_validator(mode="after")
    def _environment_or_image(self) -> SessionSpec:
        # The same rule as the CEL one above, so the client says it first.
        if self.environment is None and self.image is None:
            raise ValueError("one of spec.environment or spec.image is required")
        return self


class Endpoint(Model):
    """How to reach one interface of the session."""

    name: str
    """Interface name (jupyterlab, vscode, ssh, desktop, http)."""
    url: str
    """URL of an http interface, or the ssh command of an ssh one."""
    ready: bool = False
    """Whether the interface answers."""


class Usage(Model):
    """Resources in use, reported by the session's agent."""

    cpu_cores: float | None = None
    """CPU cores in use."""
    memory: Quantity | None = None
    """Memory in use."""
    gpu_utilization: float | None = None
    """GPU utilization, in percent."""
    gpu_memory: Quantity | None = None
    """GPU memory in use."""


class Renewal(Model):
    """A renew request the operator has acted on."""

    token: str
    """The value of the kabin.dev/renew annotation."""
    time: datetime
    """When the operator saw it; an absolute timeout restarts from here."""


class SessionStatus(Model):
    """What the operator observed, written only by the operator."""

    phase: Phase | None = None
    """Pending, Running, Succeeded, Failed, Terminating or Expired."""
    conditions: list[Condition] | None = Field(default=None, json_schema_extra=LIST_MAP_BY_TYPE)
    """Ready summarises; Scheduled, DriveReady and one per interface (JupyterlabReady...)."""
    observed_generation: int | None = None
    """The .metadata.generation this status describes."""
    connect_url: str | None = Field(default=None, alias="connectURL")
    """Where to connect: the first http endpoint, or the ssh command."""
    endpoints: list[Endpoint] | None = Field(default=None, json_schema_extra=LIST_MAP_BY_NAME)
    """Every interface, with its URL and readiness."""
    replicas: int | None = None
    """Pods that exist."""
    ready_replicas: int | None = None
    """Pods that are Ready."""
    start_time: datetime | None = None
    """When the session first ran."""
    expiry_time: datetime | None = None
    """When the session ends unless renewed or active."""
    last_activity_time: datetime | None = None
    """When activity was last seen."""
    last_activity_source: str | None = None
    """Which signal saw it (jupyter, ssh, cpu, gpu...)."""
    timeout_mode: TimeoutMode | None = None
    """idle, absolute or none."""
    requested: ResourceAmounts | None = None
    """Resolved resources per pod."""
    usage: Usage | None = None
    """Resources in use."""
    drive: str | None = None
    """The Drive the session holds."""
    reason: str | None = None
    """Why the session stopped (CamelCase)."""
    message: str | None = None
    """Details of why it stopped."""
    selector: str | None = None
    """Label selector of the session's pods, for the scale subresource."""
    renewal: Renewal | None = None
    """The last renew (annotation kabin.dev/renew) the operator acted on."""
    suspended_at: datetime | None = None
    """When the session was last suspended (while it is Suspended)."""
    image: str | None = None
    """The image its pods run (or ran, while suspended)."""
    pending_restart: bool | None = None
    """Suspended, and its environment's image changed since: a resume uses the new one."""
    queue: str | None = None
    """The Kueue LocalQueue its pods wait in (spec.queue, or a default)."""
    queued_at: datetime | None = None
    """When its pods last entered their queue."""
    admitted_at: datetime | None = None
    """When Kueue last admitted them (they wait for a node from then on)."""
    place_in_line: int | None = None
    """While it waits in its queue: its place in its LocalQueue, 1-based, as Kueue's
    visibility API last said (read every few seconds)."""


class Session(Model):
    """A compute session: an interactive workspace or a headless batch run."""

    api_version: Literal["kabin.dev/v1alpha1"] = "kabin.dev/v1alpha1"
    kind: Literal["Session"] = "Session"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: SessionSpec
    status: SessionStatus | None = None
