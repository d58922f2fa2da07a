"""The in-cluster manifests render with kustomize and the API server accepts them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support import command, run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# cert-manager is installed in real clusters; the local control plane has no CRDs for it.
ELSEWHERE = {"Certificate", "Issuer"}


async def test_manifests_pass_a_server_side_dry_run(crds: list[str]) -> None:
    rendered = await run("kubectl", "kustomize", str(ROOT / "manifests"))
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ClusterRole", "CustomResourceDefinition"} <= kinds
    assert {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} <= kinds

    namespace = next(d for d in docs if d["kind"] == "Namespace")
    await run("kubectl", "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(namespace))
    checked = [d for d in docs if d["kind"] not in ELSEWHERE and d is not namespace]
    for doc in checked:
        if doc["kind"].endswith("WebhookConfiguration"):
            # The in-process test operator registers its own under the same name.
            doc["metadata"]["name"] += "-dry-run"
    result = await command(
        "kubectl",
        "apply",
        "--server-side",
        "--dry-run=server",
        "--force-conflicts",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(checked),
    )
    assert result.code == 0, result.err
    assert result.out.count("(server dry run)") == len(checked)


async def test_operator_pod_meets_the_restricted_pod_security_standard(crds: list[str]) -> None:
    rendered = await run("kubectl", "kustomize", str(ROOT / "manifests"))
    deployment = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment")
    # The namespace enforces `restricted`; a server dry run of the pod checks it for real.
    spec = dict(deployment["spec"]["template"]["spec"])
    spec.pop("serviceAccountName")  # its ServiceAccount exists only once really installed
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kabin-operator-check", "namespace": "kabin-system"},
        "spec": spec,
    }
    result = await command(
        "kubectl",
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        "-",
        stdin=yaml.safe_dump(pod),
    )
    assert result.code == 0, result.err
    assert "Warning" not in result.err, result.err
