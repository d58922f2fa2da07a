"""The Helm chart (charts/kabin): it lints, refuses bad values naming them, is what
manifests/ holds, passes a server-side dry run with every option on, and installs for
real on the local control plane, where the examples become Ready through it.

Helm is built from the Go module proxy (hack/tools/build.sh). No container runs here,
so the installed operator's Deployment gets simulated pods, and the operator itself
runs as a local process with the Deployment's own environment, serving the webhooks
the chart registered (at a URL, with the certificate Helm made).
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from tests.integration.test_sessions import EXPECTED, answer, condition, until
from tests.support import command, eventually, exit_pod, free_port, go_tool, metric, run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kabin"
EVERYTHING = [
    "--set",
    "metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true,"
    "metrics.grafanaDashboard.enabled=true,ingress.enabled=true,ingress.tlsSecret=kabin-tls,"
    "kueue.enabled=true",
]
# Cluster-scoped kinds a test install makes, removed after it (CRDs stay, as Helm keeps them).
CLUSTER_KINDS = (
    "mutatingwebhookconfigurations",
    "validatingwebhookconfigurations",
    "clusterrolebindings",
    "clusterroles",
)


@pytest.fixture(scope="session")
def helm() -> str:
    return go_tool("helm")


async def render(helm: str, *args: str, release: str = "kabin") -> list[dict[str, Any]]:
    out = await run(helm, "template", release, str(CHART), *args)
    return [d for d in yaml.safe_load_all(out) if d]


async def test_the_chart_lints_with_its_defaults_and_every_option(helm: str) -> None:
    for options in ([], EVERYTHING, ["--set", "webhooks.certificate=helm"]):
        result = await command(helm, "lint", str(CHART), "--strict", *options)
        assert result.code == 0, result.out + result.err
        assert "0 chart(s) failed" in result.out


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("operator.replicas=0", "at '/operator/replicas': minimum: got 0, want 1"),
        ("operator.settings.resync_intervall=10", "additional properties 'resync_intervall'"),
        ("operator.settings.reconcile_workers=0", "/operator/settings/reconcile_workers"),
        ("gateway.settings.port=1", "additional properties 'port' not allowed"),
        ("webhooks.certificate=self", "value must be one of 'cert-manager', 'helm'"),
    ],
)
async def test_a_bad_value_is_refused_naming_it(helm: str, value: str, says: str) -> None:
    result = await command(helm, "template", "kabin", str(CHART), "--set", value)
    assert result.code != 0
    assert says in result.err, result.err


async def test_the_generated_parts_are_current() -> None:
    """manifests/kabin.yaml is the chart rendered, and the schema and the operations page's values
    table follow the settings classes: `make chart` made them from this tree."""
    result = await command(sys.executable, str(ROOT / "hack" / "chart.py"), "--check")
    assert result.code == 0, result.err


async def test_everything_the_chart_makes_passes_a_server_side_dry_run(
    helm: str, crds: list[str]
) -> None:
    # The optional objects' kinds, as cert-manager and the Prometheus Operator define them.
    paths = (await run(str(ROOT / "hack" / "tools" / "thirdparty-crds.sh"))).split()
    for path in paths:
        await run("kubectl", "apply", "--server-side", "--force-conflicts", "-f", path)
    await run("kubectl", "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    namespace = f"kabin-dry-{uuid.uuid4().hex[:5]}"
    await run("kubectl", "create", "namespace", namespace)
    try:
        for options in (EVERYTHING, ["--set", "webhooks.certificate=helm"]):
            docs = await render(helm, "-n", namespace, *options, release=namespace)
            kinds = {d["kind"] for d in docs}
            assert {"Deployment", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
            result = await command(
                *("kubectl", "apply", "--server-side", "--dry-run=server", "--force-conflicts"),
                *("-n", namespace, "-f", "-"),
                stdin=yaml.safe_dump_all(docs),
            )
            assert result.code == 0, result.err
            assert result.out.count("(server dry run)") == len(docs)
            assert "Warning" not in result.err, result.err
        assert {
            *("ServiceMonitor", "PrometheusRule", "Certificate", "Issuer", "Ingress"),
            *("ClusterQueue", "ResourceFlavor", "WorkloadPriorityClass"),
        } <= {d["kind"] for d in await render(helm, *EVERYTHING)}
    finally:
        await run("kubectl", "delete", "namespace", namespace, "--wait=false")


@pytest.fixture
def installed(helm: str, k_namespace: str) -> Iterator[dict[str, Any]]:
    """The chart installed for real in a k-* namespace (the in-process test operator
    leaves those alone), watching only it; its cluster-wide objects removed after."""
    release = f"t{uuid.uuid4().hex[:6]}"
    port = free_port()
    args = [
        *("--namespace", k_namespace),
        *("--set", f"watchNamespaces={{{k_namespace}}}"),
        *("--set", "webhooks.certificate=helm"),
        *("--set", f"webhooks.url=https://127.0.0.1:{port}"),
    ]
    rendered = subprocess.run(
        [helm, "template", release, str(CHART), *args], capture_output=True, text=True, check=True
    ).stdout
    try:
        applied = subprocess.run(
            ["kubectl", "apply", "--server-side", "--force-conflicts", "-f", "-"],
            input=rendered,
            capture_output=True,
            text=True,
            check=False,
        )
        assert applied.returncode == 0, applied.stderr
        docs = [d for d in yaml.safe_load_all(rendered) if d]
        yield {"release": release, "port": port, "docs": docs, "namespace": k_namespace}
    finally:
        for kind in CLUSTER_KINDS:
            subprocess.run(
                ["kubectl", "delete", kind, "-l", f"app.kubernetes.io/instance={release}"],
                capture_output=True,
                check=False,
            )


def _operator_environment(install: dict[str, Any], certs: Path) -> dict[str, str]:
    """The installed operator Deployment's environment, as its pod would have it, but
    for the ports and certificate path of this machine."""
    deployment = next(
        d
        for d in install["docs"]
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator")
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace":
            env[var["name"]] = install["namespace"]
        else:
            env[var["name"]] = f"{install['release']}-operator-0"
    assert env["KABIN_WEBHOOK_MANAGED"] == "false"
    assert env["KABIN_NAMESPACES"] == f'["{install["namespace"]}"]'
    return env | {
        "KABIN_WEBHOOK_CERT_DIR": str(certs),
        "KABIN_WEBHOOK_PORT": str(install["port"]),
        "KABIN_METRICS_PORT": str(free_port()),
        "KABIN_LIVENESS_PORT": str(free_port()),
    }


async def test_installed_for_real_the_examples_become_ready_through_it(
    api: client.ApiClient, environments: None, installed: dict[str, Any]
) -> None:
    namespace, release = installed["namespace"], installed["release"]
    core = client.CoreV1Api(api)
    # What the chart made is there: its Deployments roll out (simulated pods), and the
    # serving certificate Helm made is in its Secret.
    for name in ("operator", "gateway"):
        await run(
            *("kubectl", "rollout", "status", "-n", namespace),
            *(f"deployment/{release}-{name}", "--timeout=60s"),
        )
    secret = await core.read_namespaced_secret(f"{release}-webhook-tls", namespace)
    certs = Path(tempfile.mkdtemp(prefix="kabin-chart-certs-"))
    for key in ("tls.crt", "tls.key", "ca.crt"):
        (certs / key).write_bytes(base64.b64decode(secret.data[key]))

    env = _operator_environment(installed, certs)
    log = ROOT / "build" / f"chart-operator-{release}.log"
    log.parent.mkdir(exist_ok=True)
    proc = _start(env, log)
    try:
        metrics = int(env["KABIN_METRICS_PORT"])

        async def leads() -> None:
            assert await metric(metrics, "kabin_leading") == 1

        await eventually(leads, timeout=60)
        for example in ("drive-private.yaml", "drive-shared.yaml", "session-headless-batch.yaml"):
            await run("kubectl", "apply", "-n", namespace, "-f", str(ROOT / "examples" / example))
        # The webhooks the chart registered answered: this operator stamped the owner.
        assert await metric(metrics, "kabin_webhook_duration_seconds_count", webhook="drive-owner")
        assert await metric(metrics, "kabin_webhook_duration_seconds_count", webhook="session-fits")

        # The interactive examples share their user's default drive: one at a time.
        for example, (name, interfaces, _) in EXPECTED.items():
            await run("kubectl", "apply", "-n", namespace, "-f", str(ROOT / "examples" / example))
            await until(api, namespace, name, _phase("Running"), within=60)
            for interface in interfaces:
                await answer(api, namespace, f"{name}-1", interface)
            ready = await until(api, namespace, name, _ready, within=60)
            assert ready["status"]["connectURL"]
            await run("kubectl", "delete", "session", name, "-n", namespace, "--timeout=60s")

        # The batch run: its four replicas run, and it succeeds when they all exit 0.
        sweep = await until(api, namespace, "sweep", _phase("Running"), within=60)
        assert sweep["status"]["replicas"] == 4
        for replica in range(1, 5):
            await exit_pod(api, namespace, f"sweep-{replica}", 0)
        await until(api, namespace, "sweep", _phase("Succeeded"), within=60)
        assert proc.poll() is None, "the operator exited"
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "kabin", "operator"],
            # Only the Deployment's settings: none of this test process's KABIN_* ones.
            env={k: v for k, v in os.environ.items() if not k.startswith("KABIN_")} | env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _phase(phase: str) -> Any:
    def check(obj: dict[str, Any]) -> None:
        assert obj.get("status", {}).get("phase") == phase, obj.get("status")

    return check


def _ready(obj: dict[str, Any]) -> None:
    assert condition(obj, "Ready").get("status") == "True", obj.get("status")


# The CRDs as kabin shipped them before status.renewal (the commit before it came).
PREVIOUS_CRDS = "374c595"


async def test_upgrading_the_crds_under_running_sessions_loses_none(
    helm: str, api: client.ApiClient, namespace: str, operator: object
) -> None:
    custom = client.CustomObjectsApi(api)
    previous = await run(
        "git", "-C", str(ROOT), "show", f"{PREVIOUS_CRDS}:crds/sessions.kabin.dev.yaml"
    )
    assert "renewal" not in previous
    try:
        await run(
            "kubectl", "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=previous
        )
        names = [f"up{i}" for i in range(3)]
        for name in names:
            await run(
                *("kubectl", "apply", "-n", namespace, "-f", "-"),
                stdin=yaml.safe_dump(
                    {
                        "apiVersion": "kabin.dev/v1alpha1",
                        "kind": "Session",
                        "metadata": {"name": name},
                        "spec": {"type": "headless", "image": "busybox", "timeout": 3600},
                    }
                ),
            )
        for name in names:
            await until(api, namespace, name, _phase("Running"), within=60)
        before = await eventually(lambda: _world(api, namespace))

        # The upgrade: the chart's CRDs, applied as `helm upgrade` applies its templates.
        upgraded = await run(
            helm, "template", "kabin", str(CHART), "--show-only", "templates/crds.yaml"
        )
        await run(
            "kubectl", "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=upgraded
        )
        await run(
            *("kubectl", "wait", "--for=condition=Established", "--timeout=60s"),
            "crd/sessions.kabin.dev",
        )

        # Nothing was lost or started again: the same sessions, Running, on the same pods.
        async def unchanged() -> None:
            assert await _world(api, namespace) == before

        await eventually(unchanged)
        # What the new version added works on the sessions made under the old one.
        await run("kubectl", "annotate", "-n", namespace, "session", "up0", "kabin.dev/renew=r1")

        async def renewed() -> None:
            obj = await custom.get_namespaced_custom_object(
                "kabin.dev", "v1alpha1", namespace, "sessions", "up0"
            )
            assert (obj["status"].get("renewal") or {}).get("token") == "r1", obj["status"]

        await eventually(renewed, timeout=30)
    finally:
        # Whatever happened, the suite goes on with today's CRDs.
        for path in crds_files():
            await run("kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(path))


def crds_files() -> list[Path]:
    return sorted((ROOT / "crds").glob("*.kabin.dev.yaml"))


async def _world(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    """Each session's uid and phase, and each pod's uid and owner. A changed CRD's
    storage answers 429 while it reinitializes: AssertionError, to try again."""
    try:
        listed = await client.CustomObjectsApi(api).list_namespaced_custom_object(
            "kabin.dev", "v1alpha1", namespace, "sessions"
        )
        pods = await client.CoreV1Api(api).list_namespaced_pod(namespace)
    except ApiException as e:
        raise AssertionError(f"{e.status} {e.reason}") from e
    return {
        "sessions": {
            s["metadata"]["name"]: (s["metadata"]["uid"], s["status"]["phase"])
            for s in listed["items"]
        },
        "pods": {
            p.metadata.name: (p.metadata.uid, p.metadata.owner_references[0].uid)
            for p in pods.items
        },
    }
