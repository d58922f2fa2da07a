"""The in-cluster manifests render with kustomize and the API server accepts them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import Result, command, run

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


@pytest.mark.parametrize("name", ["kabin-operator", "kabin-gateway"])
async def test_pods_meet_the_restricted_pod_security_standard(crds: list[str], name: str) -> None:
    rendered = await run("kubectl", "kustomize", str(ROOT / "manifests"))
    deployment = next(
        d
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] == "Deployment" and d["metadata"]["name"] == name
    )
    # The namespace enforces `restricted`; a server dry run of the pod checks it for real.
    spec = dict(deployment["spec"]["template"]["spec"])
    spec.pop("serviceAccountName")  # its ServiceAccount exists only once really installed
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{name}-check", "namespace": "kabin-system"},
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


async def test_the_gateways_role_is_enough_and_no_more(crds: list[str], namespace: str) -> None:
    """The gateway's ServiceAccount may review tokens, impersonate people and the groups
    it forwards, lock down and bind `kabin-user` in a namespace it provisions; it may not
    impersonate system:masters or a ServiceAccount, bind `edit` or `admin`, nor read
    Secrets."""
    rendered = await run("kubectl", "kustomize", str(ROOT / "manifests"))
    rbac = [
        d
        for d in yaml.safe_load_all(rendered)
        if d
        and d["kind"] in ("ClusterRole", "ClusterRoleBinding")
        and d["metadata"]["name"].startswith("kabin-gateway")
    ]
    await run("kubectl", "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(rbac))
    gateway = (
        "--as=system:serviceaccount:kabin-system:kabin-gateway",
        "--as-group=system:serviceaccounts",
    )

    def binding(role: str) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"user-{role}", "namespace": namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "someone"}
                ],
            }
        )

    async def can(*args: str) -> str:
        return (await command("kubectl", "auth", "can-i", *args, *gateway)).out.strip()

    assert await can("create", "tokenreviews.authentication.k8s.io") == "yes"
    assert await can("impersonate", "users") == "yes"
    assert await can("impersonate", "groups/kabin:users") == "yes"
    assert await can("impersonate", "groups/kabin:admins") == "yes"
    assert await can("impersonate", "groups/system:masters") == "no"
    assert await can("impersonate", "groups/system:serviceaccounts") == "no"
    assert await can("impersonate", "serviceaccounts", "-A") == "no"
    assert await can("create", "namespaces") == "yes"
    assert await can("patch", "namespaces") == "yes"
    for guard in ("networkpolicies.networking.k8s.io", "resourcequotas", "limitranges"):
        assert await can("create", guard, "-n", namespace) == "yes", guard
        assert await can("delete", guard, "-n", namespace) == "no", guard
    assert await can("get", "secrets", "-A") == "no"
    assert await can("create", "sessions.kabin.dev", "-n", namespace) == "no"
    made = await command("kubectl", "create", "-f", "-", *gateway, stdin=binding("kabin-user"))
    assert made.code == 0, made.err
    for role in ("edit", "admin"):
        refused = await command("kubectl", "create", "-f", "-", *gateway, stdin=binding(role))
        assert refused.code != 0 and "forbidden" in refused.err, refused.err


async def test_the_operators_role_may_grant_what_the_agents_need(
    crds: list[str], namespace: str
) -> None:
    """RBAC refuses a Role granting more than its creator holds: the operator's
    ClusterRole must cover the per-session agent Role it makes."""
    from kabin.api.session import SessionSpec
    from kabin.logic import agent, resolve

    rendered = await run("kubectl", "kustomize", str(ROOT / "manifests"))
    rbac = [
        d
        for d in yaml.safe_load_all(rendered)
        if d
        and d["kind"] in ("ClusterRole", "ClusterRoleBinding")
        and d["metadata"]["name"] == "kabin-operator"
    ]
    await run("kubectl", "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(rbac))
    owner = resolve.Owner(name="s", namespace=namespace, uid="00000000-0000-0000-0000-000000000000")
    spec = SessionSpec.model_validate({"type": "notebook", "image": "x", "replicas": 2})
    objects = [
        {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "ownerReferences"}}
        for obj in agent.build_agent_access(owner, spec)
    ]

    async def as_operator(docs: list[dict[str, Any]]) -> Result:
        return await command(
            *("kubectl", "apply", "--server-side", "-n", namespace, "-f", "-"),
            "--as=system:serviceaccount:kabin-system:kabin-operator",
            "--as-group=system:serviceaccounts",
            "--as-group=system:serviceaccounts:kabin-system",
            stdin=yaml.safe_dump_all(docs),
        )

    result = await as_operator(objects)
    assert result.code == 0, result.err
    assert {line.split()[0] for line in result.out.splitlines()} == {
        "serviceaccount/s-kabin-agent",
        "role.rbac.authorization.k8s.io/s-kabin-agent",
        "rolebinding.rbac.authorization.k8s.io/s-kabin-agent",
        "lease.coordination.k8s.io/s",
    }
    # ...and it could not grant more than it holds: reading Secrets, say.
    role = next(o for o in objects if o["kind"] == "Role")
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    refused = await as_operator([role])
    assert refused.code != 0 and "grant RBAC permissions not currently held" in refused.err
