"""Pure translations between Skaha's vocabulary and kabin's objects.

What the client sends (Session and Drive manifests from `create` arguments) and
what it returns (Skaha-shaped session records, platform statistics) are built
here from plain dicts, with no I/O, so that they are tested by tables.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal, cast, get_args

from pydantic import ValidationError

from kabin.api import names
from kabin.api.drive import DriveSpec
from kabin.api.environment import SESSION_TYPES, SessionType
from kabin.api.meta import API_VERSION, DNS_LABEL, parse_quantity
from kabin.api.names import GPU_PRODUCT_LABEL, GPU_RESOURCE
from kabin.api.session import Phase, SessionSpec
from kabin.client.errors import Invalid

NONE = "<none>"
"""What Skaha shows for a value nobody measured."""
PHASES: tuple[Phase, ...] = get_args(Phase)
STATUS_ALIASES: dict[str, Phase] = {"Error": "Failed"}
"""Skaha's words for kabin's phases."""
ACTIVE: frozenset[str] = frozenset({"Pending", "Running"})
MAX_REPLICAS = 512
"""The most sessions one `create` makes (Skaha's limit)."""
_DNS_LABEL = re.compile(DNS_LABEL)
_NAME_MAX = 63  # the kabin.dev/session label value carries the name: at most 63 characters
View = Literal["all"]


# -- checks of the arguments, naming the argument and the limit ---------------------------


def check_kind(kind: str | None) -> SessionType | None:
    """`kind` as a session type, or Invalid naming the types there are."""
    if kind is None or kind in SESSION_TYPES:
        return kind
    raise Invalid(f"kind: {kind!r} is not a session type; use one of {', '.join(SESSION_TYPES)}")


def check_status(status: str | None) -> Phase | None:
    """`status` as a phase (Skaha's "Error" is kabin's "Failed"), or Invalid."""
    if status is None or status in PHASES:
        return status
    if status in STATUS_ALIASES:
        return STATUS_ALIASES[status]
    raise Invalid(f"status: {status!r} is not a session status; use one of {', '.join(PHASES)}")


def check_view(view: str | None) -> View | None:
    """`view`: None (this namespace) or "all" (every namespace the caller may read)."""
    if view is None or view == "all":
        return cast(View | None, view)
    raise Invalid(f"view: {view!r} is not a view; use 'all' or leave it out")


def _check_name(name: str, replicas: int) -> None:
    longest = name if replicas == 1 else f"{name}-{replicas}"
    if not _DNS_LABEL.match(name) or len(longest) > _NAME_MAX:
        raise Invalid(
            f"name: {name!r} must be lowercase letters, digits and '-', start and end with a "
            f"letter or digit, and be at most {_NAME_MAX} characters"
            + (f" with its replica suffix ({longest!r})" if replicas > 1 else "")
        )


def _positive(field: str, value: float | None, *, zero: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"{field}: {value!r} is not a number")
    if value < 0 or (value == 0 and not zero):
        limit = "at least 0" if zero else "more than 0"
        raise Invalid(f"{field}: {value:g} must be {limit}")


def _cpu(cores: float) -> int | str:
    """Cores as a quantity: whole numbers stay numbers, fractions become millicores."""
    if float(cores).is_integer():
        return int(cores)
    return f"{round(cores * 1000)}m"


def _spec_error(error: ValidationError) -> Invalid:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return Invalid(f"spec.{where}: {first['msg']}")


# -- what create and create_drive send -------------------------------------------------------


def _check_replicas(replicas: int) -> None:
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise Invalid(f"replicas: {replicas!r} must be a whole number of at least 1")
    if replicas > MAX_REPLICAS:
        raise Invalid(f"replicas: {replicas} exceeds the maximum of {MAX_REPLICAS}")


def _resources(cores: float | None, ram: float | None, gpu: int | None) -> dict[str, Any] | None:
    """What was asked for, as the API's quantities; None when nothing was."""
    asked = {
        "cpu": _cpu(cores) if cores is not None else None,
        "memory": f"{ram:g}Gi" if ram is not None else None,
        "gpu": gpu,
    }
    return {k: v for k, v in asked.items() if v is not None} or None


def session_manifests(
    *,
    name: str,
    namespace: str,
    image: str | None,
    cores: float | None,
    ram: float | None,
    kind: str,
    gpu: int | None,
    cmd: str | None,
    args: str | None,
    env: Mapping[str, Any] | None,
    replicas: int,
    environment: str | None = None,
    drive: str | None = None,
    timeout: int | None = None,
) -> list[dict[str, Any]]:
    # Over 60 lines: signature and docstring are half of it (a keyword per Skaha argument).
    """The Sessions `create` makes: `name`, or `name-1` ... `name-N` for `replicas=N`, each
    with REPLICA_ID and REPLICA_COUNT in its environment (Skaha's replicas).

    `ram` is GB and becomes `<ram>Gi`; `cmd` is the executable, as given; `args` is split
    as a shell would; `env` values become strings.
    """
    session_type = check_kind(kind)
    _check_replicas(replicas)
    _check_name(name, replicas)
    _positive("cores", cores)
    _positive("ram", ram)
    _positive("gpu", gpu, zero=True)
    if image is None and environment is None:
        raise Invalid("image: an image is required unless an environment is named")
    try:
        split_args = shlex.split(args) if args is not None else None
    except ValueError as e:
        raise Invalid(f"args: {args!r} cannot be split as a shell would: {e}") from None
    base = {
        "type": session_type,
        "environment": environment,
        "image": image,
        "resources": _resources(cores, ram, gpu),
        "command": [cmd] if cmd is not None else None,
        "args": split_args,
        "drive": drive,
        "timeout": timeout,
    }
    user_env = [{"name": str(k), "value": str(v)} for k, v in (env or {}).items()]
    names = [name] if replicas == 1 else [f"{name}-{i}" for i in range(1, replicas + 1)]
    manifests = []
    for index, session_name in enumerate(names, start=1):
        replica_env = (
            []
            if replicas == 1
            else [
                {"name": "REPLICA_ID", "value": str(index)},
                {"name": "REPLICA_COUNT", "value": str(replicas)},
            ]
        )
        merged = {e["name"]: e for e in [*user_env, *replica_env]}  # one entry per name
        spec: dict[str, Any] = {k: v for k, v in base.items() if v is not None}
        if merged:
            spec["env"] = list(merged.values())
        try:
            SessionSpec.model_validate(spec)
        except ValidationError as e:
            raise _spec_error(e) from None
        manifests.append(
            {
                "apiVersion": API_VERSION,
                "kind": "Session",
                "metadata": {"name": session_name, "namespace": namespace},
                "spec": spec,
            }
        )
    return manifests


def drive_manifest(
    *,
    name: str,
    namespace: str,
    size: str,
    access: str,
    reclaim_policy: str,
    storage_class: str | None,
) -> dict[str, Any]:
    """The Drive `create_drive` makes, checked by the API's own model."""
    _check_name(name, 1)
    spec = {
        "size": size,
        "access": access,
        "reclaimPolicy": reclaim_policy,
        "storageClassName": storage_class,
    }
    spec = {k: v for k, v in spec.items() if v is not None}
    try:
        DriveSpec.model_validate(spec)
    except ValidationError as e:
        raise _spec_error(e) from None
    return {
        "apiVersion": API_VERSION,
        "kind": "Drive",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


# -- ids ------------------------------------------------------------------------------------


def parse_id(session_id: str, home: str) -> tuple[str, str]:
    """(namespace, name) of an id: `name` in the client's namespace, or `namespace/name`."""
    namespace, _, name = session_id.rpartition("/")
    if not name or "/" in namespace:
        raise Invalid(f"ids: {session_id!r} is not a session id (NAME or NAMESPACE/NAME)")
    return namespace or home, name


def object_id(obj: Mapping[str, Any], home: str) -> str:
    """The id of a session or drive: its name in the client's namespace, else `namespace/name`."""
    meta = obj["metadata"]
    return str(meta["name"]) if meta["namespace"] == home else f"{meta['namespace']}/{meta['name']}"


def as_ids(ids: str | Iterable[str]) -> list[str]:
    """Skaha takes one id or a list of them."""
    return [ids] if isinstance(ids, str) else list(ids)


# -- what fetch and info return --------------------------------------------------------------


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(round(value, 3))


def _cores(value: Any) -> str:
    return NONE if value is None else str(_number(parse_quantity(value)))


def _gigabytes(value: Any) -> str:
    """Memory as Skaha shows it: GB (2^30 bytes), "4G"."""
    return NONE if value is None else f"{_number(parse_quantity(value) / 2**30)}G"


def _gibibytes(value: Decimal) -> str:
    return f"{_number(value / 2**30)}Gi"


def phase_of(obj: Mapping[str, Any]) -> str:
    """The session's phase; Pending until the operator has written one."""
    return str((obj.get("status") or {}).get("phase") or "Pending")


def record(obj: Mapping[str, Any], *, home: str, images: Mapping[str, str]) -> dict[str, str]:
    """A Session as Skaha describes one: its keys, string values, `<none>` when unknown.

    `images` maps EnvironmentConfig names to their images, for sessions that name no image.
    """
    meta, spec = obj["metadata"], obj["spec"]
    status = obj.get("status") or {}
    requested = status.get("requested") or spec.get("resources") or {}
    usage = status.get("usage") or {}
    image = spec.get("image") or images.get(spec.get("environment") or "") or NONE
    gpus = requested.get("gpu")
    return {
        "id": object_id(obj, home),
        "userid": spec.get("user") or NONE,
        "image": image,
        "type": spec["type"],
        "status": phase_of(obj),
        "name": meta["name"],
        "startTime": status.get("startTime") or meta.get("creationTimestamp") or NONE,
        "expiryTime": status.get("expiryTime") or NONE,
        "connectURL": status.get("connectURL") or "not-applicable",
        "requestedRAM": _gigabytes(requested.get("memory")),
        "requestedCPUCores": _cores(requested.get("cpu")),
        "requestedGPUCores": str(gpus or 0),
        "ramInUse": str(usage["memory"]) if usage.get("memory") is not None else NONE,
        "gpuRAMInUse": str(usage["gpuMemory"]) if usage.get("gpuMemory") is not None else NONE,
        "cpuCoresInUse": _cores(usage.get("cpuCores")),
        "gpuUtilization": (
            str(usage["gpuUtilization"]) if usage.get("gpuUtilization") is not None else NONE
        ),
    }


def queue_of(obj: Mapping[str, Any]) -> str:
    """A session's queue for a table: "team-a #3" while 3rd in line, "team-a" once
    admitted, "-" when it has none."""
    status = obj.get("status") or {}
    queue = status.get("queue")
    if not queue:
        return "-"
    if names.condition(status, names.QUEUED).get("status") != "True":
        return str(queue)
    place = status.get("placeInLine")
    return f"{queue} #{place}" if place else f"{queue} (waiting)"


def sort_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """Oldest first, then by namespace and name (timestamps have whole seconds)."""
    meta = obj["metadata"]
    return (meta.get("creationTimestamp") or "", meta["namespace"], meta["name"])


def join_logs(logs: list[tuple[str, str]]) -> str:
    """One session's log: its pod's, or each replica's under a `==> pod <==` header."""
    if len(logs) <= 1:
        return logs[0][1] if logs else ""
    return "".join(f"==> {pod} <==\n{text}" for pod, text in logs)


def started(pod: Mapping[str, Any]) -> bool:
    """Whether a pod's container has started, so that it has a log to read."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any(
        "running" in (s.get("state") or {}) or "terminated" in (s.get("state") or {})
        for s in statuses
    )


# -- stats ----------------------------------------------------------------------------------


def _pod_requests(pod: Mapping[str, Any], resource: str) -> Decimal:
    total = Decimal(0)
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        amount = (resources.get("requests") or {}).get(resource)
        if amount is None:  # extended resources may be given as limits only
            amount = (resources.get("limits") or {}).get(resource)
        if amount is not None:
            total += parse_quantity(amount)
    return total


def allocatable(node: Mapping[str, Any], resource: str) -> Decimal:
    """A node's allocatable amount of a resource (0 when it has none)."""
    amount = ((node.get("status") or {}).get("allocatable") or {}).get(resource)
    return parse_quantity(amount) if amount is not None else Decimal(0)


def schedulable(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The nodes new pods may be placed on (not cordoned)."""
    return [n for n in nodes if not (n.get("spec") or {}).get("unschedulable")]


def _product(node: Mapping[str, Any]) -> str:
    return str((node["metadata"].get("labels") or {}).get(GPU_PRODUCT_LABEL, "unknown"))


def _gpus(
    nodes: list[dict[str, Any]], usable: list[dict[str, Any]], live: list[dict[str, Any]]
) -> dict[str, dict[str, int | float]]:
    """Per GPU product: GPUs requested by live session pods (placed by their node, or by
    their node selector while pending) and the schedulable nodes' allocatable GPUs."""
    gpus: dict[str, dict[str, int | float]] = {}
    node_product = {n["metadata"]["name"]: _product(n) for n in nodes}
    for node in usable:
        if allocatable(node, GPU_RESOURCE):
            entry = gpus.setdefault(_product(node), {"requested": 0, "available": 0})
            entry["available"] = _number(
                Decimal(entry["available"]) + allocatable(node, GPU_RESOURCE)
            )
    for pod in live:
        wanted = _pod_requests(pod, GPU_RESOURCE)
        if not wanted:
            continue
        spec = pod.get("spec") or {}
        where = node_product.get(spec.get("nodeName") or "") or (
            (spec.get("nodeSelector") or {}).get(GPU_PRODUCT_LABEL) or "unknown"
        )
        entry = gpus.setdefault(where, {"requested": 0, "available": 0})
        entry["requested"] = _number(Decimal(entry["requested"]) + wanted)
    return dict(sorted(gpus.items()))


def _quota(queues: list[dict[str, Any]], resource: str) -> tuple[Decimal, Decimal]:
    """(nominal quota, usage) of a resource over every flavor of these ClusterQueues."""
    quota = Decimal(0)
    for cq in queues:
        for group in (cq.get("spec") or {}).get("resourceGroups") or []:
            for flavor in group.get("flavors") or []:
                for r in flavor.get("resources") or []:
                    if r.get("name") == resource:
                        quota += parse_quantity(str(r.get("nominalQuota", 0)))
    used = Decimal(0)
    for cq in queues:
        for flavor in (cq.get("status") or {}).get("flavorsUsage") or []:
            for r in flavor.get("resources") or []:
                if r.get("name") == resource:
                    used += parse_quantity(str(r.get("total", 0)))
    return quota, used


def queue_stats(queues: list[dict[str, Any]]) -> dict[str, Any]:
    """Each ClusterQueue's quota and use (CPU, memory, GPUs) and its admitted and waiting
    workloads, by name."""
    found: dict[str, Any] = {}
    for cq in sorted(queues, key=lambda q: str(q["metadata"]["name"])):
        cpu, memory, gpu = (_quota([cq], r) for r in ("cpu", "memory", GPU_RESOURCE))
        status = cq.get("status") or {}
        found[cq["metadata"]["name"]] = {
            "cpu": {"quota": _number(cpu[0]), "used": _number(cpu[1])},
            "memory": {"quota": _gibibytes(memory[0]), "used": _gibibytes(memory[1])},
            "gpu": {"quota": _number(gpu[0]), "used": _number(gpu[1])},
            "admitted": int(status.get("admittedWorkloads") or 0),
            "waiting": int(status.get("pendingWorkloads") or 0),
        }
    return found


def stats(
    *,
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    sessions: list[dict[str, Any]],
    cluster_queues: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The platform's statistics in Skaha's shape, plus GPUs by product.

    `instances`: active (Pending or Running) sessions by type, and their total.
    `cores`: CPU requested by live session pods, the allocatable cores of schedulable
    nodes (`cpuCoresAvailable`, Skaha's capacity), and the node with the most cores.
    `ram`: the node with the most memory (plus requested and allocatable memory).
    `gpus`: per `nvidia.com/gpu.product`, GPUs requested by live session pods and the
    nodes' allocatable GPUs.
    With Kueue's ClusterQueues, capacity and use are theirs, as Skaha reports them: the
    cores and memory available are the queues' quotas and those requested their usage,
    and `queues` has each ClusterQueue.
    """
    active = [s for s in sessions if phase_of(s) in ACTIVE]
    instances: dict[str, int] = {t: 0 for t in SESSION_TYPES}
    for s in active:
        instances[s["spec"]["type"]] = instances.get(s["spec"]["type"], 0) + 1
    instances["total"] = len(active)

    usable = schedulable(nodes)
    live = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    by_cores = max(
        usable, key=lambda n: (allocatable(n, "cpu"), allocatable(n, "memory")), default=None
    )
    by_ram = max(
        usable, key=lambda n: (allocatable(n, "memory"), allocatable(n, "cpu")), default=None
    )

    found: dict[str, Any] = {
        "instances": instances,
        "cores": {
            "requestedCPUCores": _number(sum((_pod_requests(p, "cpu") for p in live), Decimal(0))),
            "cpuCoresAvailable": _number(sum((allocatable(n, "cpu") for n in usable), Decimal(0))),
            "maxCPUCores": {
                "cpuCores": _number(allocatable(by_cores, "cpu")) if by_cores else 0,
                "withRam": _gibibytes(allocatable(by_cores, "memory")) if by_cores else NONE,
            },
        },
        "ram": {
            "requestedRAM": _gibibytes(sum((_pod_requests(p, "memory") for p in live), Decimal(0))),
            "ramAvailable": _gibibytes(sum((allocatable(n, "memory") for n in usable), Decimal(0))),
            "maxRAM": {
                "ram": _gibibytes(allocatable(by_ram, "memory")) if by_ram else NONE,
                "withCPUCores": _number(allocatable(by_ram, "cpu")) if by_ram else 0,
            },
        },
        "gpus": _gpus(nodes, usable, live),
    }
    # A ClusterQueue being deleted admits nothing more (Kueue holds it only until its
    # workloads are gone): it is no capacity.
    cluster_queues = [q for q in cluster_queues or [] if not q["metadata"].get("deletionTimestamp")]
    if cluster_queues:
        cpu, memory = _quota(cluster_queues, "cpu"), _quota(cluster_queues, "memory")
        found["cores"] |= {
            "requestedCPUCores": _number(cpu[1]),
            "cpuCoresAvailable": _number(cpu[0]),
        }
        found["ram"] |= {
            "requestedRAM": _gibibytes(memory[1]),
            "ramAvailable": _gibibytes(memory[0]),
        }
        found["queues"] = queue_stats(cluster_queues)
    return found


# -- drives and environments -----------------------------------------------------------------


def drive_record(obj: Mapping[str, Any], *, home: str) -> dict[str, Any]:
    """A Drive for people: size, access, owner, phase, holder and queue."""
    spec, status = obj["spec"], obj.get("status") or {}
    holder = status.get("holder") or {}
    return {
        "id": object_id(obj, home),
        "name": obj["metadata"]["name"],
        "size": spec.get("size"),
        "access": spec.get("access", "shared"),
        "owner": spec.get("owner") or NONE,
        "phase": status.get("phase") or "Pending",
        "holder": holder.get("session") or NONE,
        "waiting": [w["session"] for w in status.get("waiting") or []],
        "reclaimPolicy": spec.get("reclaimPolicy", "Retain"),
    }


def environment_record(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An EnvironmentConfig for people: what it runs, serves and allows."""
    spec = obj["spec"]
    resources = spec.get("resources") or {}
    return {
        "name": obj["metadata"]["name"],
        "displayName": spec.get("displayName") or obj["metadata"]["name"],
        "image": spec["image"],
        "types": spec.get("sessionTypes") or list(SESSION_TYPES),
        "interfaces": [i["name"] for i in spec.get("interfaces") or []],
        "default": resources.get("default") or {},
        "max": resources.get("max") or {},
        "gpu": (spec.get("gpu") or {}).get("product") or NONE,
    }


def settled(obj: Mapping[str, Any]) -> bool | None:
    """Whether a session being waited for got there: True once Ready (or Succeeded),
    False once it ended otherwise, None while it is on its way."""
    phase = phase_of(obj)
    if names.is_true(obj.get("status"), names.READY) or phase == "Succeeded":
        return True
    if phase in ("Failed", "Expired", "Terminating") or obj["metadata"].get("deletionTimestamp"):
        return False
    return None
