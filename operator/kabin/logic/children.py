"""What a Session should own: its pods, Services and Ingress, built from its spec
and its EnvironmentConfig. Pure: the same inputs give the same objects.

Resource choices (documented in the README):
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

from dataclasses import dataclass, field
from typing import Any

from kabin.api.environment import HTTP_INTERFACES, EnvironmentConfigSpec, Interface
from kabin.api.meta import EnvVar
from kabin.api.session import SessionSpec

GPU_TAINT = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
SESSION_LABEL = "kabin.dev/session"
REPLICA_LABEL = "kabin.dev/replica"
DRIVE_LABEL = "kabin.dev/drive"
MANAGED_BY = "kabin"
BROWSER_TYPES = frozenset({"notebook", "vscode", "desktop", "carta", "firefly", "contributed"})


@dataclass(frozen=True)
class Agent:
    """How to run the `kabin agent` sidecar of interactive sessions."""

    image: str
    renew_interval: float = 60


AGENT_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
JUPYTER_TOKEN = "JUPYTER_TOKEN"


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


def _token_from_secret(name: str) -> dict[str, Any]:
    return {"name": JUPYTER_TOKEN, "valueFrom": {"secretKeyRef": {"name": name, "key": "token"}}}


def gate(interface: str) -> str:
    """The readiness-gate condition of an interface, set True by the agent once it answers."""
    return f"kabin.dev/{interface}-ready"


@dataclass(frozen=True)
class Owner:
    """The Session as its children refer to it."""

    name: str
    namespace: str
    uid: str
    user: str = ""

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": "kabin.dev/v1alpha1",
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
    mount_path: str
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)


def resolve(spec: SessionSpec, env: EnvironmentConfigSpec | None) -> Resolved:
    """Fill in what the session leaves to its environment."""
    defaults = env.resources.default if env and env.resources else None
    asked = spec.resources
    gpu = asked.gpu if asked and asked.gpu is not None else (defaults.gpu if defaults else None)
    timeout = spec.timeout
    if timeout is None:
        timeout = env.timeouts.default if env and env.timeouts and env.timeouts.default else -1
    mode = env.timeouts.mode if env and env.timeouts and env.timeouts.mode else None
    if mode is None:
        mode = "idle" if spec.type in BROWSER_TYPES else "absolute"
    overrides = (
        env.pod_overrides.model_dump(exclude_none=True, by_alias=True)
        if env and env.pod_overrides
        else {}
    )
    return Resolved(
        image=spec.image or (env.image if env else ""),
        command=spec.command if spec.command is not None else (env.command if env else None),
        args=spec.args if spec.args is not None else (env.args if env else None),
        env=[*(env.env or [] if env else []), *(spec.env or [])],
        cpu=(
            asked.cpu if asked and asked.cpu is not None else (defaults.cpu if defaults else None)
        ),
        memory=(
            asked.memory
            if asked and asked.memory is not None
            else (defaults.memory if defaults else None)
        ),
        gpu=gpu or 0,
        gpu_resource=env.gpu.resource_name if env and env.gpu else "nvidia.com/gpu",
        gpu_product=env.gpu.product if env and env.gpu else None,
        interfaces=list(env.interfaces or []) if env else [],
        timeout=timeout,
        timeout_mode="none" if timeout == -1 else mode,
        mount_path=env.drive_mount_path if env else "/workspace",
        volumes=list(env.volumes or []) if env else [],
        volume_mounts=list(env.volume_mounts or []) if env else [],
        overrides=overrides,
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
        "app.kubernetes.io/managed-by": MANAGED_BY,
        SESSION_LABEL: owner.name,
    }


def selector(owner: Owner) -> str:
    """The label selector of the session's pods (status.selector, for `kubectl scale`)."""
    return f"{SESSION_LABEL}={owner.name}"


def pod_name(owner: Owner, replica: int) -> str:
    return f"{owner.name}-{replica}"


def build_pod(
    *,
    owner: Owner,
    spec: SessionSpec,
    resolved: Resolved,
    replica: int,
    replicas: int,
    drive: tuple[str, str] | None = None,
    agent: Agent | None = None,
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
        env.append(_token_from_secret(token))
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
        pod_spec["readinessGates"] = [{"conditionType": gate(i.name)} for i in resolved.interfaces]
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
        _add_agent(pod_spec, owner, spec, resolved, replica, agent)
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


def agent_name(owner: Owner) -> str:
    """The ServiceAccount, Role and RoleBinding of a session's agents."""
    return f"{owner.name}-kabin-agent"


def _add_agent(
    pod_spec: dict[str, Any],
    owner: Owner,
    spec: SessionSpec,
    resolved: Resolved,
    replica: int,
    agent: Agent,
) -> None:
    """The agent sidecar: it sees the session's processes (one process namespace) and
    alone gets a token, of the session's agent ServiceAccount; the user's container
    gets none."""
    import json

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
        env.append(_token_from_secret(token))
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
            },
            "volumeMounts": [
                {"name": "kabin-agent-token", "mountPath": AGENT_TOKEN_PATH, "readOnly": True}
            ],
        }
    )
    pod_spec["shareProcessNamespace"] = True
    pod_spec["serviceAccountName"] = agent_name(owner)
    pod_spec.setdefault("volumes", []).append(
        {
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
                                {
                                    "path": "namespace",
                                    "fieldRef": {"fieldPath": "metadata.namespace"},
                                }
                            ]
                        }
                    },
                ]
            },
        }
    )


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
    *, owner: Owner, spec: SessionSpec, resolved: Resolved, host: str, ingress_class: str | None
) -> dict[str, Any] | None:
    """The Ingress routing each http interface under the session's base path."""
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
            "ownerReferences": [owner.reference()],
        },
        "spec": ingress_spec,
    }
