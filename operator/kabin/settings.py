"""The operator's settings, read from `KABIN_*` environment variables.

A leaf module: every layer may read settings, and it imports nothing of kabin,
so it sits outside the layer contract. Command-line flags override the
environment; the environment overrides the defaults below.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    """How `kabin operator` runs."""

    model_config = SettingsConfigDict(env_prefix="KABIN_", frozen=True)

    namespaces: tuple[str, ...] = Field(
        default=(), description="Namespaces to watch; empty means all namespaces."
    )
    exclude_namespaces: tuple[str, ...] = Field(
        default=(),
        description="Glob patterns of namespaces whose sessions and drives another "
        "operator reconciles (a canary, a test); this one leaves them alone.",
    )
    metrics_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of the Prometheus metrics; 0 turns it off."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="How the operator logs: lines of text, or one JSON object per line (kopf's "
        "JSON format, for log collectors).",
    )
    admin_groups: tuple[str, ...] = Field(
        default=("kabin:admins", "system:masters"),
        description="Groups whose members may act for others: create sessions and drives "
        "on behalf of another user, use private drives that are not theirs, change any "
        "drive's access, and exceed the per-user limits.",
    )
    admin_users: tuple[str, ...] = Field(
        default=(),
        description="Users with the admin groups' rights: the operator's own ServiceAccount "
        "(`system:serviceaccount:<namespace>:<name>`; the chart sets it), which makes "
        "users' default drives. No whole group of ServiceAccounts is trusted.",
    )
    max_cpu: str = Field(
        default="16",
        description="The most CPU one pod of a session may ask for when its "
        "EnvironmentConfig sets no cap (always, for a session that names none).",
    )
    max_memory: str = Field(
        default="64Gi",
        description="The most memory one pod of a session may ask for when its "
        "EnvironmentConfig sets no cap.",
    )
    max_gpu: int = Field(
        default=1,
        ge=0,
        description="The most GPUs one pod of a session may ask for when its "
        "EnvironmentConfig sets no cap.",
    )
    max_timeout: int = Field(
        default=7 * 86400,
        ge=-1,
        description="The longest timeout (seconds) of a session whose EnvironmentConfig "
        "sets no cap; -1: no cap (and sessions may ask for none).",
    )
    max_total_cpu: str = Field(
        default="64",
        description="The most CPU all the pods of one session may ask for together "
        "(replicas x per pod).",
    )
    max_total_memory: str = Field(
        default="256Gi",
        description="The most memory all the pods of one session may ask for together.",
    )
    max_total_gpu: int = Field(
        default=8, ge=0, description="The most GPUs all the pods of one session may ask for."
    )
    max_sessions_per_user: int = Field(
        default=5,
        ge=0,
        description="Interactive sessions (all but headless) one user may have unfinished "
        "at once, in all namespaces (Skaha's default is 5); 0: no limit. Admins are exempt.",
    )
    webhook_host: str = Field(
        default="127.0.0.1",
        description="Host name the API server reaches the admission webhooks at. The default "
        "serves them on localhost with a self-signed certificate (the local control plane).",
    )
    webhook_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the webhooks; 0 picks a free one."
    )
    webhook_cert_dir: str | None = Field(
        default=None,
        description="Directory with tls.crt, tls.key and ca.crt (a cert-manager Secret) to "
        "serve the webhooks with, on all interfaces, behind a Service. Unset: self-signed.",
    )
    webhook_managed: bool = Field(
        default=True,
        description="Register the webhook configurations at start-up. Turn off when the "
        "manifests install them (in a cluster).",
    )
    default_drive_size: str = Field(
        default="10Gi", description="Size of the default drive made for a user on demand."
    )
    ingress_host: str = Field(
        default="kabin.localtest.me",
        description="Host name of the Ingress that routes http interfaces: "
        "https://<host>/session/<type>/<namespace>/<name>/.",
    )
    sessions_url: str | None = Field(
        default=None,
        description="Where sessions are served from, another origin than the dashboard's, "
        "e.g. `https://sessions.example.org`: each session gets a host of its own, "
        "`<name>.<namespace>.<that host>`, so no page a session serves shares an origin "
        "with the dashboard or another session. Unset: every session under ingress_host.",
    )
    ingress_annotations: dict[str, str] = Field(
        default={},
        description="Annotations of session Ingresses: the ingress controller's access "
        "check, e.g. `traefik.ingress.kubernetes.io/router.middlewares: kabin-auth@file` "
        "(forward auth to the gateway's /_kabin/auth).",
    )
    ingress_class: str | None = Field(
        default=None, description="IngressClass of session Ingresses (default: the cluster's)."
    )
    ssh_host: str | None = Field(
        default=None, description="Host name in ssh connect strings (default: ingress_host)."
    )
    ssh_service_type: str = Field(
        default="NodePort",
        pattern="^(NodePort|LoadBalancer|ClusterIP)$",
        description="Service type exposing ssh interfaces.",
    )
    image_pull_grace: float = Field(
        default=120,
        ge=0,
        description="Seconds a pod may fail to pull its image before the "
        "session fails (registries can be briefly unreachable).",
    )
    resync_interval: float = Field(
        default=300, gt=0, description="Seconds between full re-reconciles of every session."
    )
    error_backoffs: tuple[float, ...] = Field(
        default=(1, 2, 5, 10, 30),
        description="Seconds between retries of failed API calls and watch streams.",
    )
    retry_backoff_min: float = Field(
        default=0.005,
        gt=0,
        description="Seconds before the first retry of a failed reconcile; each failure in a "
        "row doubles it (with up to 20 % jitter), a success resets it.",
    )
    retry_backoff_max: float = Field(
        default=1000, gt=0, description="The longest wait between retries of a reconcile."
    )
    leader_election: bool = Field(
        default=False,
        description="Run as one of several replicas: only the one holding the Lease "
        "`kabin-operator` in `leader_namespace` reconciles; every replica serves the "
        "webhooks. The chart turns it on.",
    )
    leader_namespace: str = Field(
        default="kabin-system", description="Namespace of the leader-election Lease."
    )
    liveness_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of the liveness endpoint (`/healthz`, answered by the operator's "
        "event loop); 0 turns it off. The chart uses 8081.",
    )
    reconcile_workers: int = Field(
        default=32,
        ge=1,
        description="Reconciles of sessions (and, apart, of drives) that run at once. They "
        "read from memory and mostly wait for their writes, so a burst needs many.",
    )
    expiring_soon: float = Field(
        default=300,
        ge=0,
        description="Seconds before a session's expiry at which it gets the ExpiringSoon "
        "condition and an Event.",
    )
    queue: str | None = Field(
        default=None,
        description="Kueue LocalQueue of sessions that name none and whose EnvironmentConfig "
        "names none (each namespace needs one of that name; the gateway makes it). Unset: "
        "such sessions are not queued.",
    )
    priority_interactive: str = Field(
        default="kabin-interactive",
        description="WorkloadPriorityClass of queued interactive sessions whose environment "
        "sets none; the operator makes it (value 1000) when Kueue is installed.",
    )
    priority_headless: str = Field(
        default="kabin-headless",
        description="WorkloadPriorityClass of queued headless sessions whose environment sets "
        "none; the operator makes it (value 100): interactive sessions come first.",
    )
    preempted_headless: Literal["Requeue", "Fail"] = Field(
        default="Requeue",
        description="What a headless session Kueue preempts does: Requeue (its pods are made "
        "again and wait in line) or Fail. An interactive one is suspended.",
    )
    queue_poll_interval: float = Field(
        default=2,
        gt=0,
        description="Seconds between reads of the places in line (Kueue's visibility API) of "
        "the queues where sessions wait.",
    )
    agent_image: str = Field(
        default="ghcr.io/kabin-dev/kabin:0.1.0",
        description="Image of the `kabin agent` sidecar in interactive session pods "
        "(the operator's own image).",
    )
    activity_interval: float = Field(
        default=60,
        gt=0,
        description="Seconds between the agent's activity Lease renewals, at most; "
        "an idle session renews nothing.",
    )
    agent_api_server: str | None = Field(
        default=None,
        description="`host:port` where session pods reach the API server, when the "
        "in-cluster Service address is not in its serving certificate (the local control "
        "plane's); unset: the pod's KUBERNETES_SERVICE_HOST and _PORT, as in any cluster.",
    )
    agent_uid: int = Field(
        default=1999999,
        ge=1,
        description="UID (and GID) of the agent sidecar, which alone reads the session's "
        "agent token; the session's own container may not run as it.",
    )

    def is_admin(self, username: str, groups: Iterable[str]) -> bool:
        """Whether a user may act for others (admin_users, or a member of admin_groups)."""
        return username in self.admin_users or bool(set(self.admin_groups).intersection(groups))


_current: OperatorSettings | None = None


def load() -> OperatorSettings:
    """Read the operator's settings from the environment (at start-up)."""
    global _current
    _current = OperatorSettings()
    return _current


def current() -> OperatorSettings:
    """The operator's settings as read at start-up; reading them per event or reconcile
    was a tenth of the operator's CPU time under load."""
    return _current if _current is not None else load()


def reconciles(namespace: str | None, settings: OperatorSettings | None = None) -> bool:
    """Whether this operator reconciles objects in `namespace`: one it watches, and not
    one left to another operator."""
    from fnmatch import fnmatch

    if namespace is None:
        return False
    ours = settings or current()
    if ours.namespaces and namespace not in ours.namespaces:
        return False
    return not any(fnmatch(namespace, p) for p in ours.exclude_namespaces)


class AgentSettings(BaseSettings):
    """How `kabin agent` runs, from `KABIN_AGENT_*` variables the operator sets in the pod."""

    model_config = SettingsConfigDict(env_prefix="KABIN_AGENT_", frozen=True)

    session: str = Field(description="The Session this agent reports for.")
    namespace: str = Field(description="The Session's namespace.")
    pod: str = Field(description="The pod the agent runs in, whose readiness gates it sets.")
    lease: str = Field(default="", description="The activity Lease (default: the session's name).")
    interfaces: str = Field(
        default="[]",
        description='JSON list of {"name", "port", "path"}: the interfaces to probe, with the '
        "URL path an http one answers on.",
    )
    host: str = Field(default="127.0.0.1", description="Where the interfaces listen.")
    jupyter_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KABIN_AGENT_JUPYTER_TOKEN", "JUPYTER_TOKEN"),
        description="Token of the Jupyter server (default: $JUPYTER_TOKEN, as the server "
        "reads it).",
    )
    probe_interval: float = Field(default=2, gt=0, description="Seconds between readiness probes.")
    sample_interval: float = Field(
        default=10, gt=0, description="Seconds between samples of the activity signals."
    )
    renew_interval: float = Field(
        default=60, gt=0, description="Seconds between Lease renewals, at most."
    )
    usage_interval: float = Field(
        default=300, gt=0, description="Seconds between usage reports, at most."
    )
    cpu_threshold: float = Field(
        default=0.1,
        ge=0,
        description="CPU cores the session's processes must use to count as active.",
    )
    gpu_threshold: float = Field(
        default=5, ge=0, description="GPU utilization (percent) that counts as active."
    )
    proc: str = Field(default="/proc", description="Where the pod's processes are listed.")


class GatewaySettings(BaseSettings):
    """How `kabin gateway` runs: Skaha's REST API (and the dashboard) on kabin."""

    model_config = SettingsConfigDict(env_prefix="KABIN_GATEWAY_", frozen=True)

    host: str = Field(default="127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port it listens on.")
    token_file: str | None = Field(
        default=None,
        description='kube-apiserver\'s static token file (CSV `token,user,uid,"group1,group2"`) '
        "to sign people in with, for local use and tests. Unset: every token is checked with "
        "a Kubernetes TokenReview, so ServiceAccount and OIDC tokens work.",
    )
    namespace_template: str = Field(
        default="kabin-{user}",
        description="Namespace of a user's sessions and drives; `{user}` is the user name made "
        "a DNS label (with a short hash when that changed it).",
    )
    provision_namespaces: bool = Field(
        default=False,
        description="Make a user's namespace on first use, locked down (restricted Pod "
        "Security, a default-deny NetworkPolicy, a ResourceQuota), with a RoleBinding of "
        "`user_role` to the user. Needs the gateway's provisioner role.",
    )
    provision_groups: tuple[str, ...] = Field(
        default=("kabin:users", "kabin:admins"),
        description="Groups whose members get a namespace provisioned; anyone else must be "
        "given one by an administrator. `*`: every signed-in user.",
    )
    allow_system_users: bool = Field(
        default=False,
        description="Let `system:` identities (ServiceAccounts, nodes) use the gateway. "
        "Off: any pod's ServiceAccount token is refused (403), and no `system:` group is "
        "ever impersonated.",
    )
    forward_groups: tuple[str, ...] = Field(
        default=(),
        description="The only groups the gateway impersonates for a user (the chart names "
        "them in the gateway's RBAC too, so it can impersonate no other); empty: all of a "
        "user's groups but `system:` ones.",
    )
    user_role: str = Field(
        default="kabin-user",
        description="ClusterRole bound to a user in a provisioned namespace: the chart's "
        "`kabin-user` (sessions, drives, their status, scale and logs, events; no pods, "
        "Services, Ingresses or Secrets).",
    )
    namespace_quota: dict[str, str] = Field(
        default={
            "requests.cpu": "64",
            "requests.memory": "256Gi",
            "limits.memory": "256Gi",
            "requests.nvidia.com/gpu": "8",
            "pods": "100",
            "persistentvolumeclaims": "16",
            "requests.storage": "500Gi",
        },
        description="The ResourceQuota `hard` of a provisioned namespace.",
    )
    cluster_queue: str | None = Field(
        default=None,
        description="Kueue ClusterQueue of the LocalQueue `local_queue` the gateway makes in "
        "each namespace it provisions (when Kueue is installed): with usage-based admission "
        "fair sharing on it, each user gets a fair turn. Unset: no LocalQueue is made.",
    )
    local_queue: str = Field(
        default="kabin",
        description="Name of the LocalQueue made in a provisioned namespace; set the "
        "operator's `queue` to it.",
    )
    ingress_namespace: str = Field(
        default="kube-system",
        description="Namespace of the ingress controller, whose pods a provisioned "
        "namespace's NetworkPolicy lets reach session pods.",
    )
    system_namespace: str = Field(
        default="kabin-system",
        description="Namespace of the operator and gateway, whose pods a provisioned "
        "namespace's NetworkPolicy lets reach session pods.",
    )
    streams_per_user: int = Field(
        default=8,
        ge=1,
        description="Live dashboard streams one user may hold open at once; one more is "
        "429 with Retry-After.",
    )
    streams_total: int = Field(
        default=500,
        ge=1,
        description="Live dashboard streams the gateway holds open at once, for everyone.",
    )
    failed_tokens_per_minute: int = Field(
        default=30,
        ge=1,
        description="Failed sign-ins (bad tokens) one client address may make a minute "
        "before it gets 429 with Retry-After.",
    )
    negative_cache_seconds: float = Field(
        default=10, ge=0, description="Seconds a refused token is remembered as refused."
    )
    token_cache_seconds: float = Field(
        default=60, ge=0, description="Seconds a TokenReview's answer is reused."
    )
    request_timeout: float = Field(
        default=30, gt=0, description="Seconds each API server request may take."
    )
    trust_proxy_headers: bool = Field(
        default=False,
        description="Behind an authenticating proxy (oauth2-proxy and the like): take the "
        "dashboard's user and groups from the proxy's headers instead of a token, when the "
        "request also carries `proxy_secret`.",
    )
    proxy_secret: str | None = Field(
        default=None,
        description="Shared secret the authenticating proxy sends in `proxy_secret_header`; "
        "required with trust_proxy_headers, so a pod that reaches the gateway directly "
        "cannot forge the user headers.",
    )
    proxy_secret_header: str = Field(
        default="X-Kabin-Proxy-Secret", description="Header carrying the proxy's secret."
    )
    proxy_user_header: str = Field(
        default="X-Forwarded-User", description="Header naming the signed-in user."
    )
    proxy_groups_header: str = Field(
        default="X-Forwarded-Groups", description="Header listing their groups, comma-separated."
    )
    csrf_secret: str | None = Field(
        default=None,
        description="Secret the dashboard's CSRF tokens are derived with; give every gateway "
        "replica the same one. Unset: a random one per process.",
    )
    sessions_url: str | None = Field(
        default=None,
        description="The operator's sessions_url: the origin under which each session has "
        "a host of its own, which /_kabin/auth (the ingress controller's forward auth) "
        "checks requests to.",
    )
    public_url: str | None = Field(
        default=None,
        description="The dashboard's URL as browsers reach it, where a session's access "
        "check sends a browser to sign in. Unset: the gateway's own address.",
    )
    admin_groups: tuple[str, ...] = Field(
        default=("kabin:admins",),
        description="Groups whose members may open any session (the operator's "
        "admin_groups, less system:masters, which the gateway never forwards).",
    )

    @model_validator(mode="after")
    def _proxy_needs_secret(self) -> GatewaySettings:
        if self.trust_proxy_headers and not self.proxy_secret:
            raise ValueError(
                "proxy_secret: required with trust_proxy_headers (KABIN_GATEWAY_PROXY_SECRET), "
                "or any pod that reaches the gateway could sign in as anyone"
            )
        return self
