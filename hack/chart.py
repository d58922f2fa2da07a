"""The Helm chart's generated parts, from the settings classes and values.yaml:

- charts/kabin/values.schema.json: Helm checks every `helm install` and `helm upgrade`
  against it, so a misspelt key or a value out of range is refused naming it. The
  `operator.settings` and `gateway.settings` maps take the fields of `OperatorSettings`
  and `GatewaySettings`, with their types and limits (pydantic's JSON schema).
- docs/operations.md, between `<!-- chart-values -->` and `<!-- /chart-values -->`: the
  values table, defaults read from values.yaml, descriptions from the same schema.
- manifests/kabin.yaml: the chart rendered with its defaults (`helm template`), for
  `kubectl apply -k manifests` without Helm; so the chart is the one source of both.

`python hack/chart.py` writes them (`make chart`); `--check` says which is stale and
exits 1 (tests); `--user-roles` prints the roles that give people kabin's kinds (for the
local control plane, where the operator runs as a process and nothing else is installed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_hooks import cell, field_limits, format_default

from kabin.settings import GatewaySettings, OperatorSettings

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kabin"
SCHEMA = CHART / "values.schema.json"
VALUES_PAGE = ROOT / "docs" / "operations.md"
MANIFESTS = ROOT / "manifests" / "kabin.yaml"
# Without Helm nothing can make the gateway's CSRF secret once and keep it: the
# manifests name one that the installer makes (docs/operations.md).
NO_CSRF_SECRET = ("--set", "gateway.csrfSecret.create=false")
# The labels that say Helm manages an object: not so when kustomize applies it.
HELM_ONLY = ("    helm.sh/chart: ", "    app.kubernetes.io/managed-by: Helm")
BEGIN, END = "<!-- chart-values -->", "<!-- /chart-values -->"

# Settings the chart sets itself, to match what it deploys (ports, certificates, the
# leader Lease): not values.
FIXED = {
    OperatorSettings: {
        "webhook_host",
        "webhook_port",
        "webhook_cert_dir",
        "webhook_managed",
        "leader_election",
        "leader_namespace",
        "liveness_port",
        "metrics_port",
        "namespaces",  # the chart's watchNamespaces
    },
    GatewaySettings: {"host", "port", "csrf_secret"},
}


def _string(description: str, **more: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **more}


def _object(description: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"type": "object", "description": description}
    if properties is not None:
        found |= {"properties": properties, "additionalProperties": False}
    return found


def _bool(description: str) -> dict[str, Any]:
    return {"type": "boolean", "description": description}


def _replicas(description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "description": description}


def _pods(what: str, settings: type[BaseSettings], replicas: str) -> dict[str, Any]:
    return {
        "replicas": _replicas(replicas),
        "resources": _object(f"The {what} container's requests and limits."),
        "nodeSelector": _object(f"Node labels the {what} pods must match."),
        "tolerations": {"type": "array", "description": f"Tolerations of the {what} pods."},
        "settings": settings_schema(settings),
    }


def schema() -> dict[str, Any]:
    """values.schema.json."""
    monitor = _object(
        "Prometheus Operator scraping.",
        {
            "enabled": _bool("Make a ServiceMonitor for the operator's /metrics."),
            "interval": _string("How often it is scraped.", pattern="^[0-9]+(ms|s|m|h)$"),
            "labels": _object("Labels your Prometheus selects ServiceMonitors by."),
        },
    )
    rule = _object(
        "The alerts (docs/alerts.md).",
        {
            "enabled": _bool("Make a PrometheusRule with kabin's alerts."),
            "labels": _object("Labels your Prometheus selects rules by."),
        },
    )
    dashboard = _object(
        "The Grafana dashboard.",
        {
            "enabled": _bool("Make a ConfigMap with the dashboard, for Grafana's sidecar."),
            "labels": _object("Labels Grafana's sidecar finds dashboards by."),
        },
    )
    properties = {
        "image": _object(
            "The image of the operator, the gateway and the session agent.",
            {
                "repository": _string("Image repository."),
                "tag": _string("Image tag; empty: the chart's appVersion."),
                "pullPolicy": _string(
                    "Image pull policy.", enum=["Always", "IfNotPresent", "Never"]
                ),
            },
        ),
        "imagePullSecrets": {"type": "array", "description": "Secrets to pull the image with."},
        "watchNamespaces": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Namespaces whose Sessions and Drives are reconciled; empty: all.",
        },
        "crds": _object(
            "The CustomResourceDefinitions.",
            {
                "install": _bool(
                    "Install and upgrade them with the release (kept on uninstall, so no "
                    "Session or Drive is deleted with it)."
                )
            },
        ),
        "operator": _object(
            "The operator.",
            _pods(
                "operator",
                OperatorSettings,
                "Operator replicas: all serve the webhooks, the Lease holder reconciles.",
            ),
        ),
        "gateway": _object(
            "The gateway: Skaha's REST API and the dashboard.",
            {
                "enabled": _bool("Deploy the gateway."),
                **_pods("gateway", GatewaySettings, "Gateway replicas (stateless)."),
                "csrfSecret": _object(
                    "The Secret (key `secret`) every gateway replica signs the dashboard's "
                    "CSRF tokens with.",
                    {
                        "create": _bool("Helm makes it once and keeps it across upgrades."),
                        "name": _string("Its name; empty: kabin-gateway-csrf."),
                    },
                ),
            },
        ),
        "ingress": _object(
            "An Ingress for the gateway.",
            {
                "enabled": _bool("Make it."),
                "host": _string("Its host name."),
                "className": _string("Its IngressClass; empty: the cluster's default."),
                "annotations": _object("Its annotations."),
                "tlsSecret": _string("A TLS Secret for the host; empty: no TLS section."),
            },
        ),
        "webhooks": _object(
            "The admission webhooks.",
            {
                "certificate": _string(
                    "Who issues their serving certificate: cert-manager (installed "
                    "separately) or helm (made at install, kept across upgrades).",
                    enum=["cert-manager", "helm"],
                ),
                "timeoutSeconds": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 30,
                    "description": "Seconds the API server waits for an answer.",
                },
                "url": _string(
                    "Where the API server calls them; empty: the operator's Service. "
                    "An https URL serves an operator running outside the cluster.",
                    pattern="^(https://.+)?$",
                ),
            },
        ),
        "metrics": _object(
            "Monitoring.",
            {"serviceMonitor": monitor, "prometheusRule": rule, "grafanaDashboard": dashboard},
        ),
        "networkPolicies": _object(
            "NetworkPolicies for the operator's and gateway's pods.",
            {"enabled": _bool("Make them.")},
        ),
        "kueue": _object(
            "Queues on Kueue (docs/queues.md). Kueue must be installed; the chart never "
            "installs it.",
            {
                "enabled": _bool(
                    "Queue sessions: make the ClusterQueue, its ResourceFlavor and the "
                    "WorkloadPriorityClasses, give users a LocalQueue each, set the default "
                    "queue, and grant the operator and gateway their Kueue rights."
                ),
                "localQueue": _string(
                    "The LocalQueue made in each provisioned namespace, and sessions' "
                    "default queue.",
                    pattern="^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                ),
                "clusterQueue": _object(
                    "The ClusterQueue the LocalQueues send to.",
                    {
                        "name": _string("Its name.", pattern="^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
                        "cohort": _string("A cohort to borrow from and lend to; empty: none."),
                        "quota": _object(
                            "nominalQuota by resource (cpu, memory, nvidia.com/gpu), for the "
                            "default ResourceFlavor."
                        ),
                        "fairSharing": _bool(
                            "Usage-based admission fair sharing between users' LocalQueues "
                            "(Kueue's AdmissionFairSharing configuration must be set)."
                        ),
                        "preemption": _string(
                            "withinClusterQueue: who may take a running session's place.",
                            enum=["Never", "LowerPriority", "LowerOrNewerEqualPriority"],
                        ),
                    },
                ),
                "priorities": _object(
                    "Values of the default WorkloadPriorityClasses.",
                    {
                        "interactive": {"type": "integer", "description": "Interactive sessions."},
                        "headless": {"type": "integer", "description": "Headless runs."},
                    },
                ),
            },
        ),
    }
    return {
        "$schema": "https://json-schema.org/draft-07/schema#",
        "title": "kabin chart values (generated by hack/chart.py)",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }


def settings_schema(cls: type[BaseSettings]) -> dict[str, Any]:
    """The settings a values map may set, typed as pydantic checks them."""
    full = cls.model_json_schema()
    fixed = FIXED[cls]
    properties = {}
    for name, prop in full["properties"].items():
        if name in fixed:
            continue
        properties[name] = {k: v for k, v in prop.items() if k not in ("title", "default")}
    prefix = cls.model_config.get("env_prefix", "")
    return {
        "type": "object",
        "description": f"{cls.__name__}, by name: {prefix}<NAME> in the container.",
        "properties": properties,
        "additionalProperties": False,
    }


def values_table() -> str:
    """The values table: every value with its default and description."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    rows = ["| value | default | description |", "|---|---|---|"]

    def leaves(node: dict[str, Any], given: Any, path: str) -> None:
        for key, prop in node.get("properties", {}).items():
            here = f"{path}.{key}" if path else key
            default = given.get(key) if isinstance(given, dict) else None
            if key == "settings":
                cls = OperatorSettings if path == "operator" else GatewaySettings
                rows.append(settings_row(here, default, prop))
                for name, field in cls.model_fields.items():
                    if name in FIXED[cls]:
                        continue
                    shown = (default or {}).get(name)
                    described = (field.description or "").strip()
                    limits = field_limits(field)
                    if limits:
                        described += f" Allowed: {limits}."
                    value = f"`{json.dumps(shown)}`" if shown is not None else format_default(field)
                    rows.append(f"| `{here}.{name}` | {value} | {cell(described)} |")
            elif "properties" in prop:
                leaves(prop, default, here)
            else:
                rows.append(f"| `{here}` | `{json.dumps(default)}` | {cell(prop['description'])} |")

    leaves(schema(), values, "")
    return "\n".join(rows) + "\n"


def settings_row(path: str, given: Any, prop: dict[str, Any]) -> str:
    return f"| `{path}` | `{json.dumps(given or {})}` | {cell(prop['description'])} |"


def values_page(text: str) -> str:
    """docs/operations.md with its values table current."""
    head, found, rest = text.partition(BEGIN)
    if not found or END not in rest:
        raise SystemExit(f"docs/operations.md has no {BEGIN} … {END} section")
    return f"{head}{BEGIN}\n{values_table()}{END}{rest.split(END, 1)[1]}"


def manifests() -> str:
    """The chart rendered for `kubectl apply -k manifests` (namespace kabin-system)."""
    helm = subprocess.run(
        [ROOT / "hack" / "tools" / "build.sh", "helm"], capture_output=True, text=True, check=True
    ).stdout.strip()
    rendered = subprocess.run(
        [helm, "template", "kabin", CHART, "--namespace", "kabin-system", *NO_CSRF_SECRET],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line for line in rendered.splitlines() if not line.startswith(HELM_ONLY)]
    head = "# Generated from charts/kabin by `make chart` (hack/chart.py); do not edit.\n"
    return head + "\n".join(lines) + "\n"


def main(check: bool) -> int:
    wanted = {
        SCHEMA: json.dumps(schema(), indent=2) + "\n",
        VALUES_PAGE: values_page(VALUES_PAGE.read_text()),
    }
    if not check and SCHEMA.read_text() != wanted[SCHEMA]:
        SCHEMA.write_text(wanted[SCHEMA])  # helm checks the values against it, below
        print(f"wrote {SCHEMA.relative_to(ROOT)}")
    wanted[MANIFESTS] = manifests()
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run `make chart`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


def user_roles() -> str:
    """The chart's roles for people (templates/rbac-users.yaml), from manifests/."""
    source = "# Source: kabin/templates/rbac-users.yaml"
    documents = MANIFESTS.read_text().split("\n---\n")
    return "\n---\n".join(d for d in documents if d.startswith(source))


if __name__ == "__main__":
    if "--user-roles" in sys.argv[1:]:
        print(user_roles())
        raise SystemExit(0)
    raise SystemExit(main("--check" in sys.argv[1:]))
