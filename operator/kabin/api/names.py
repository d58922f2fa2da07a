"""Every well-known name kabin writes on objects: labels, annotations, finalizers,
condition types and reasons, in one place.

The operator, the agent, the client and the gateway all read and write these; a
newcomer looking for "which labels does kabin own?" or "which reasons can a condition
have?" finds the answer here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GROUP = "kabin.dev"

# -- labels ------------------------------------------------------------------------------

SESSION_LABEL = "kabin.dev/session"
"""On a session's pods, Services, Ingress, agent objects and Jupyter token: the Session."""
REPLICA_LABEL = "kabin.dev/replica"
"""On a session's pod: its replica number, 1..N."""
DRIVE_LABEL = "kabin.dev/drive"
"""On a pod: the Drive it mounts; on a PVC: the Drive it belongs to."""
USER_LABEL = "kabin.dev/user"
"""On a namespace the gateway made for a user: the user, as a label value."""
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kabin"
"""The value of app.kubernetes.io/managed-by on everything kabin makes."""
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
"""Node label (NVIDIA's GPU feature discovery) naming the GPU model."""
GPU_TAINT = "nvidia.com/gpu"
"""Taint of GPU nodes, which GPU sessions tolerate."""
GPU_RESOURCE = "nvidia.com/gpu"
"""The default extended resource of a GPU."""

# Kueue's pod integration (sigs.k8s.io/kueue pkg/controller/jobs/pod/constants): the labels
# and annotations kabin puts on a queued session's pods, and what Kueue puts there.
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
"""On a queued session's pods: the LocalQueue they wait in."""
PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
"""On a queued session's pods: the WorkloadPriorityClass of their place in line."""
POD_GROUP_LABEL = "kueue.x-k8s.io/pod-group-name"
"""On the pods of a queued session of several replicas: the group admitted as one."""
POD_GROUP_COUNT_ANNOTATION = "kueue.x-k8s.io/pod-group-total-count"
"""On a pod group's pods: how many pods the group has."""
POD_GROUP_RETRIABLE_ANNOTATION = "kueue.x-k8s.io/retriable-in-group"
"""On a pod group's pods: "false" ends the group (and frees its quota) once its pods are gone:
kabin makes a new group for every new start."""
KUEUE_MANAGED_LABEL = "kueue.x-k8s.io/managed"
"""Put on a pod by Kueue's webhook: Kueue admits it."""
CLUSTER_QUEUE_LABEL = "kueue.x-k8s.io/cluster-queue-name"
"""Put on an admitted pod by Kueue: the ClusterQueue that admitted it."""
KUEUE_GATE = "kueue.x-k8s.io/admission"
"""Kueue's scheduling gate: the pod waits in its queue until it is removed."""
KUEUE_EVICTED = "TerminationTarget"
"""The pod condition Kueue sets (reason WorkloadEvicted) on the pods it preempts, before it
deletes them."""

# -- annotations ---------------------------------------------------------------------------

RENEW_ANNOTATION = "kabin.dev/renew"
"""On a Session: a new value restarts its timeout (Skaha's renew)."""
SCHEDULE_FIRED_ANNOTATION = "kabin.dev/schedule-fired"
"""On a Session: the last fire of its schedule the operator acted on (RFC 3339)."""
SUSPEND_REASON_ANNOTATION = "kabin.dev/suspend-reason"
"""On a Session: why spec.suspend was set (IdleTimeout, Schedule, Preempted; none: the
user). The operator writes it with spec.suspend, and removes it at the resume."""
NAME_ANNOTATION = "kabin.dev/name"
"""On a Session: the name a person gave it, which need not be unique (Skaha's `name`);
the object name is then a generated id."""
DISPLAY_NAME_ANNOTATION = "kabin.dev/display-name"
"""On a Drive: a name for people ("alice's default drive")."""
ACTIVITY_SOURCE_ANNOTATION = "kabin.dev/activity-source"
"""On a session's activity Lease: the signal that saw the last activity."""
USAGE_ANNOTATION = "kabin.dev/usage"
"""On a session's activity Lease: the resources in use, as the agent last measured."""
PREEMPTED_ANNOTATION = "kabin.dev/preempted"
"""On a Session: the UID of the last of its pods Kueue preempted, recorded once, so that
the session is requeued (or suspended, or failed) once per preemption."""
RESUMING_ANNOTATION = "kabin.dev/resuming"
"""On a Drive: the session that last came back to it holding it, and that session's
version, written over the Drive's version before its pods are made, so that a drive
reconcile that decided on an older Drive (to pass it on) cannot write its decision."""
OWNER_ANNOTATION = "kabin.dev/owner"
"""On a namespace the gateway made for a user: that user's exact name."""

# -- finalizers ----------------------------------------------------------------------------

DRIVE_FINALIZER = "kabin.dev/drive-lock"
"""On a Drive: kept while a session holds it, so deleting it waits for the release."""

# -- conditions ----------------------------------------------------------------------------

READY = "Ready"
SCHEDULED = "Scheduled"
DRIVE_READY = "DriveReady"
EXPIRING_SOON = "ExpiringSoon"
SUSPENDED = "Suspended"
QUEUED = "Queued"
"""On a Session whose pods wait in a Kueue LocalQueue: True, with its place in line, until
Kueue admits them."""
DELETING_SOON = "DeletingSoon"
"""On a suspended Session whose environment deletes sessions left suspended: True from
`expiring_soon` seconds before that deletion."""
FAILED = "Failed"
"""A permanent failure the operator met while making the object's children (a quota,
RBAC, an invalid pod override, a missing environment); False again once it passes."""
DELETION_BLOCKED = "DeletionBlocked"
"""On a deleted Drive a session still holds."""
POD_READY = "Ready"
POD_SCHEDULED = "PodScheduled"
"""Kubernetes' own pod conditions, which kabin reads."""


DONE_PHASES = frozenset({"Succeeded", "Failed", "Expired"})
"""The phases a Session leaves only when it is resumed (Expired), or never."""
STOPPED_PHASES = DONE_PHASES | {"Suspended"}
"""The phases in which a Session runs no pods and holds no drive."""
FINAL_PHASES = frozenset({"Succeeded", "Failed"})
"""The phases a Session never leaves: its run is over (a suspend or resume changes nothing)."""


def conditions_by_type(status: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """A status's conditions (as JSON), by type."""
    return {c["type"]: c for c in (status or {}).get("conditions") or [] if "type" in c}


def condition(status: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any]:
    """The condition `kind` of a status (as JSON); empty when it has none."""
    return conditions_by_type(status).get(kind, {})


def is_true(status: Mapping[str, Any] | None, kind: str) -> bool:
    """Whether the condition `kind` of a status (as JSON) is True."""
    return condition(status, kind).get("status") == "True"


def interface_condition(interface: str) -> str:
    """The Session condition of one interface: jupyterlab -> JupyterlabReady."""
    return f"{interface.capitalize()}Ready"


def readiness_gate(interface: str) -> str:
    """The pod readiness gate of an interface, set True by the agent once it answers."""
    return f"kabin.dev/{interface}-ready"


# -- reasons -------------------------------------------------------------------------------


class Reason:
    """The reasons of kabin's conditions and Events (CamelCase, as the API conventions
    ask)."""

    READY = "Ready"
    NOT_READY = "NotReady"
    SCHEDULED = "Scheduled"
    PENDING = "Pending"
    UNSCHEDULABLE = "Unschedulable"
    GRANTED = "Granted"
    WAITING = "Waiting"
    DRIVE_IN_USE = "DriveInUse"
    DRIVE_NOT_FOUND = "DriveNotFound"
    DRIVE_NOT_OWNED = "DriveNotOwned"
    EXPIRING_SOON = "ExpiringSoon"
    NOT_EXPIRING_SOON = "NotExpiringSoon"
    IDLE_TIMEOUT = "IdleTimeout"
    USER = "User"
    SCHEDULE = "Schedule"
    PREEMPTED = "Preempted"
    QUEUED = "Queued"
    ADMITTED = "Admitted"
    REQUEUED = "Requeued"
    RESUMED = "Resumed"
    RESUME_REFUSED = "ResumeRefused"
    DELETING_SOON = "DeletingSoon"
    NOT_DELETING_SOON = "NotDeletingSoon"
    TIMEOUT = "Timeout"
    COMPLETED = "Completed"
    CRASH_LOOP = "CrashLoopBackOff"
    REPLICA_FAILED = "ReplicaFailed"
    ENVIRONMENT_NOT_FOUND = "EnvironmentNotFound"
    SCALED = "Scaled"
    RELEASED = "Released"
    QUOTA_EXCEEDED = "QuotaExceeded"
    FORBIDDEN = "Forbidden"
    INVALID = "Invalid"
    NOT_FOUND = "NotFound"
    CONFLICT = "Conflict"
    ALREADY_EXISTS = "AlreadyExists"
    API_UNAVAILABLE = "APIUnavailable"
    NAMESPACE_TERMINATING = "NamespaceTerminating"
    ANSWERING = "Answering"
    NOT_ANSWERING = "NotAnswering"
