"""The operator's settings, read from `KABIN_*` environment variables.

A leaf module: every layer may read settings, and it imports nothing of kabin,
so it sits outside the layer contract. Command-line flags override the
environment; the environment overrides the defaults below.
"""

from pydantic import Field
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
    admin_groups: tuple[str, ...] = Field(
        default=("kabin:admins", "system:masters", "system:serviceaccounts:kabin-system"),
        description="Groups whose members may act for others: create sessions and drives "
        "on behalf of another user, use private drives that are not theirs.",
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


def reconciles(namespace: str | None, settings: OperatorSettings | None = None) -> bool:
    """Whether this operator reconciles objects in `namespace`."""
    from fnmatch import fnmatch

    if namespace is None:
        return False
    patterns = (settings or OperatorSettings()).exclude_namespaces
    return not any(fnmatch(namespace, p) for p in patterns)
