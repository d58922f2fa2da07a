"""The API as kubectl users meet it: examples, discovery, explain, refusals, identity.

Each refusal is checked through `kubectl apply --server-side`, the way a user or
a GitOps tool sends it, so whichever layer refuses it (the schema, a CEL rule,
the admission webhook) is the real one, and the message is what they read.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import apply_now, command, kubectl_apply, manifest, run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ADMINS = ("kabin:admins",)

# A cluster-scoped environment the refusals are measured against.
CAPPED = {
    "apiVersion": "kabin.dev/v1alpha1",
    "kind": "EnvironmentConfig",
    "metadata": {"name": "test-capped"},
    "spec": {
        "image": "example.org/capped:1",
        "interfaces": [{"name": "jupyterlab", "port": 8888}],
        "sessionTypes": ["notebook", "headless"],
        "resources": {
            "default": {"cpu": "1", "memory": "2Gi"},
            "max": {"cpu": "32", "memory": "256Gi", "gpu": 8},
        },
        "timeouts": {"default": 3600, "max": 86400},
    },
}


@pytest.fixture(scope="module")
def capped(operator: object) -> str:
    apply_now(CAPPED)
    return "test-capped"


@pytest.fixture
async def alice(namespace: str) -> str:
    """User alice, who may edit (so run sessions in) the test namespace."""
    await run(
        "kubectl",
        "create",
        "rolebinding",
        "alice-edits",
        "--clusterrole=edit",
        "--user=alice",
        "-n",
        namespace,
    )
    return "alice"


def session(name: str = "s", **spec: Any) -> dict[str, Any]:
    return manifest("Session", name, {"type": "notebook", "environment": "test-capped", **spec})


def drive(name: str = "d", **spec: Any) -> dict[str, Any]:
    return manifest("Drive", name, {"size": "10Gi", **spec})


def environment(name: str = "test-bad", **spec: Any) -> dict[str, Any]:
    return manifest("EnvironmentConfig", name, {"image": "example.org/x:1", **spec})


@dataclass(frozen=True)
class Refusal:
    """An invalid manifest, who sends it, and what the refusal must say."""

    manifest: dict[str, Any]
    says: tuple[str, ...]
    by: str  # schema, cel or webhook: which layer must refuse it
    before: dict[str, Any] | None = None  # applied first, for refusals of an update
    as_alice: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def changed(manifest: dict[str, Any], **spec: Any) -> dict[str, Any]:
    out = copy.deepcopy(manifest)
    out["spec"].update(spec)
    return out


REFUSALS: dict[str, Refusal] = {
    # Session: the schema
    "session-type-missing": Refusal(session(type=None), ("spec.type", "Required value"), "schema"),
    "session-type-unknown": Refusal(
        session(type="jupyter"), ("spec.type", 'Unsupported value: "jupyter"'), "schema"
    ),
    "session-replicas-zero": Refusal(
        session(replicas=0), ("spec.replicas", "greater than or equal to 1"), "schema"
    ),
    "session-replicas-too-many": Refusal(
        session(replicas=300), ("spec.replicas", "less than or equal to 256"), "schema"
    ),
    "session-gpu-negative": Refusal(
        session(resources={"gpu": -1}),
        ("spec.resources.gpu", "greater than or equal to 0"),
        "schema",
    ),
    "session-cpu-not-quantity": Refusal(
        session(resources={"cpu": "lots"}), ("spec.resources.cpu", "should match"), "schema"
    ),
    "session-memory-not-quantity": Refusal(
        session(resources={"memory": "4GB"}), ("spec.resources.memory", "should match"), "schema"
    ),
    "session-timeout-below-minus-one": Refusal(
        session(timeout=-5), ("spec.timeout", "greater than or equal to -1"), "schema"
    ),
    "session-unknown-field": Refusal(
        session(gpus=2), (".spec.gpus", "field not declared in schema"), "schema"
    ),
    "session-env-without-name": Refusal(
        session(env=[{"value": "x"}]), (".spec.env", 'omits all key fields ["name"]'), "schema"
    ),
    "session-env-duplicate": Refusal(
        session(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        ("spec.env", 'duplicate entries for key [name="A"]'),
        "schema",
    ),
    "session-environment-not-a-name": Refusal(
        session(environment="My Env"), ("spec.environment", "should match"), "schema"
    ),
    "session-drive-not-a-name": Refusal(
        session(drive="my_drive"), ("spec.drive", "should match"), "schema"
    ),
    # Session: CEL
    "session-neither-environment-nor-image": Refusal(
        session(environment=None), ("one of spec.environment or spec.image is required",), "cel"
    ),
    "session-type-changed": Refusal(
        changed(session(), type="headless"),
        ("spec.type", "is immutable once the session is created"),
        "cel",
        before=session(),
    ),
    "session-image-added": Refusal(
        changed(session(), image="example.org/other:2"),
        ("spec.image", "is immutable once the session is created"),
        "cel",
        before=session(),
    ),
    "session-resources-changed": Refusal(
        changed(session(resources={"cpu": "1"}), resources={"cpu": "2"}),
        ("spec.resources", "is immutable once the session is created"),
        "cel",
        before=session(resources={"cpu": "1"}),
    ),
    "session-command-changed": Refusal(
        changed(session(command=["a"]), command=["b"]),
        ("spec.command", "is immutable"),
        "cel",
        before=session(command=["a"]),
    ),
    # Session: the webhook, across objects
    "session-environment-missing": Refusal(
        session(environment="nope"),
        ('spec.environment: EnvironmentConfig "nope" does not exist',),
        "webhook",
    ),
    "session-type-not-served": Refusal(
        session(type="ssh"),
        (
            'spec.type: "ssh" is not served by EnvironmentConfig "test-capped", '
            "which serves: notebook, headless",
        ),
        "webhook",
    ),
    "session-gpu-over-cap": Refusal(
        session(resources={"gpu": 9}),
        ('spec.resources.gpu: 9 exceeds the maximum of 8 set by EnvironmentConfig "test-capped"',),
        "webhook",
    ),
    "session-cpu-over-cap": Refusal(
        session(resources={"cpu": "64"}),
        ("spec.resources.cpu: 64 exceeds the maximum of 32",),
        "webhook",
    ),
    "session-memory-over-cap": Refusal(
        session(resources={"memory": "1Ti"}),
        ("spec.resources.memory: 1Ti exceeds the maximum of 256Gi",),
        "webhook",
    ),
    "session-no-timeout-under-cap": Refusal(
        session(timeout=-1),
        (
            'spec.timeout: -1 (no timeout) is not allowed: EnvironmentConfig "test-capped" '
            "caps timeouts at 86400 seconds",
        ),
        "webhook",
    ),
    "session-timeout-over-cap": Refusal(
        session(timeout=100000),
        ("spec.timeout: 100000 exceeds the maximum of 86400 seconds",),
        "webhook",
    ),
    "session-timeout-raised-over-cap": Refusal(
        changed(session(timeout=60), timeout=90000),
        ("spec.timeout: 90000 exceeds the maximum of 86400 seconds",),
        "webhook",
        before=session(timeout=60),
    ),
    "session-drive-missing": Refusal(
        session(drive="nope"), ('spec.drive: Drive "nope" does not exist in namespace',), "webhook"
    ),
    "session-user-forged": Refusal(
        session(user="bob"),
        ('spec.user: may only be "alice", the requesting user',),
        "webhook",
        as_alice=True,
    ),
    "session-user-changed": Refusal(
        changed(session(), user="bob"),
        ('spec.user: is immutable: it is "alice", not "bob"',),
        "webhook",
        before=session(),
        as_alice=True,
    ),
    # Drive
    "drive-size-missing": Refusal(drive(size=None), ("spec.size", "Required value"), "schema"),
    "drive-size-not-quantity": Refusal(drive(size="big"), ("spec.size", "should match"), "schema"),
    "drive-access-mode-unknown": Refusal(
        drive(accessMode="ReadOnlyMany"), ("spec.accessMode", "Unsupported value"), "schema"
    ),
    "drive-access-unknown": Refusal(
        drive(access="public"), ("spec.access", 'Unsupported value: "public"'), "schema"
    ),
    "drive-reclaim-unknown": Refusal(
        drive(reclaimPolicy="Recycle"), ("spec.reclaimPolicy", "Unsupported value"), "schema"
    ),
    "drive-shrunk": Refusal(
        drive(size="5Gi"),
        ("spec.size", "may only grow: 5Gi is smaller than 10Gi"),
        "cel",
        before=drive(),
    ),
    "drive-storage-class-changed": Refusal(
        drive(storageClassName="fast"),
        ("spec.storageClassName", "is immutable"),
        "cel",
        before=drive(storageClassName="kabin-sim"),
    ),
    "drive-access-mode-changed": Refusal(
        drive(accessMode="ReadWriteMany"),
        ("spec.accessMode", "is immutable"),
        "cel",
        before=drive(),
    ),
    "drive-owner-forged": Refusal(
        drive(owner="bob"),
        ('spec.owner: may only be "alice", the requesting user',),
        "webhook",
        as_alice=True,
    ),
    "drive-owner-changed": Refusal(
        drive(owner="bob"),
        ('spec.owner: is immutable: it is "alice", not "bob"',),
        "webhook",
        before=drive(),
        as_alice=True,
    ),
    # EnvironmentConfig
    "environment-image-missing": Refusal(
        environment(image=None), ("spec.image", "Required value"), "schema"
    ),
    "environment-interface-unknown": Refusal(
        environment(interfaces=[{"name": "rdp", "port": 3389}]),
        ("spec.interfaces[0].name", 'Unsupported value: "rdp"'),
        "schema",
    ),
    "environment-interface-port-too-high": Refusal(
        environment(interfaces=[{"name": "ssh", "port": 70000}]),
        ("spec.interfaces[0].port", "less than or equal to 65535"),
        "schema",
    ),
    "environment-interface-duplicate": Refusal(
        environment(interfaces=[{"name": "ssh", "port": 22}, {"name": "ssh", "port": 2222}]),
        ("spec.interfaces", 'duplicate entries for key [name="ssh"]'),
        "schema",
    ),
    "environment-default-timeout-over-max": Refusal(
        environment(timeouts={"default": 7200, "max": 3600}),
        ("spec.timeouts.default", "must be set and at most timeouts.max"),
        "cel",
    ),
    "environment-gpu-resource-not-extended": Refusal(
        environment(gpu={"resourceName": "gpu"}),
        ("spec.gpu.resourceName", "should match"),
        "schema",
    ),
    "environment-session-type-twice": Refusal(
        environment(sessionTypes=["notebook", "notebook"]),
        (".spec.sessionTypes", 'duplicate entries for key [="notebook"]'),
        "schema",
    ),
    "environment-mount-path-relative": Refusal(
        environment(driveMountPath="workspace"), ("spec.driveMountPath", "should match"), "schema"
    ),
}


def test_table_is_large_and_covers_every_layer() -> None:
    assert len(REFUSALS) >= 30
    assert {r.by for r in REFUSALS.values()} == {"schema", "cel", "webhook"}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
async def test_invalid_manifest_is_refused_at_apply_naming_the_field(
    case: str, capped: str, namespace: str, alice: str
) -> None:
    refusal = REFUSALS[case]
    who = {"user": alice} if refusal.as_alice else {}
    if refusal.before is not None:
        first = await kubectl_apply(refusal.before, namespace=namespace, **who)
        assert first.code == 0, first.err
    result = await kubectl_apply(refusal.manifest, namespace=namespace, **who)
    assert result.code != 0, f"accepted: {result.out}"
    for words in refusal.says:
        assert words in result.err, result.err
    if refusal.by == "webhook":
        assert "admission webhook" in result.err, result.err
    else:
        assert "admission webhook" not in result.err, result.err


async def test_every_example_applies_dry_run_then_for_real(
    operator: object, namespace: str
) -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    kinds = {yaml.safe_load(f.read_text())["kind"] for f in files}
    assert kinds == {"EnvironmentConfig", "Session", "Drive"}
    # Sessions are checked against their environments, so those go first.
    order = sorted(files, key=lambda f: yaml.safe_load(f.read_text())["kind"] == "Session")
    for f in order:
        for dry in (True, False):
            argv = ["kubectl", "apply", "--server-side", "-n", namespace, "-f", str(f)]
            result = await command(*argv, *(["--dry-run=server"] if dry else []))
            assert result.code == 0, f"{f.name} (dry run: {dry}): {result.err}"
    listed = await run("kubectl", "get", "sessions", "-n", namespace, "-o", "name")
    assert len(listed.split()) == sum(1 for f in files if f.name.startswith("session-"))
    # Re-applying the same manifests changes nothing and is accepted (GitOps).
    again = await command("kubectl", "apply", "--server-side", "-n", namespace, "-f", str(EXAMPLES))
    assert again.code == 0, again.err


async def test_readme_shows_an_example_that_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    shortest = (EXAMPLES / "session-jupyterlab.yaml").read_text()
    body = shortest[shortest.index("apiVersion") :]
    assert body.strip() in readme


async def test_discovery_short_names_category_and_explain(crds: list[str], namespace: str) -> None:
    for name in ("sess", "drv", "envcfg", "kabin"):
        result = await command("kubectl", "get", name, "-n", namespace)
        assert result.code == 0, f"kubectl get {name}: {result.err}"
    explained = await run("kubectl", "explain", "session.spec.timeout")
    assert "-1 for never" in explained
    assert "FIELD: timeout <integer>" in explained
    drive_explained = await run("kubectl", "explain", "drive.spec.reclaimPolicy")
    assert "Retain keeps the PVC" in drive_explained


async def test_printer_columns_of_sessions(capped: str, namespace: str) -> None:
    result = await kubectl_apply(session("cols", replicas=2), namespace=namespace)
    assert result.code == 0, result.err
    header = (await run("kubectl", "get", "sess", "-n", namespace)).splitlines()[0].split()
    assert header == ["NAME", "TYPE", "STATUS", "READY", "REPLICAS", "URL", "EXPIRES", "AGE"]


async def test_scale_subresource_changes_replicas(capped: str, namespace: str) -> None:
    assert (await kubectl_apply(session("scaled"), namespace=namespace)).code == 0
    await run("kubectl", "scale", "session/scaled", "--replicas=3", "-n", namespace)
    replicas = await run(
        "kubectl", "get", "sess", "scaled", "-n", namespace, "-o", "jsonpath={.spec.replicas}"
    )
    assert replicas == "3"


async def test_user_and_owner_are_recorded_for_impersonated_users(
    capped: str, namespace: str, alice: str
) -> None:
    assert (await kubectl_apply(session("mine"), namespace=namespace, user=alice)).code == 0
    assert (await kubectl_apply(drive("mine"), namespace=namespace, user=alice)).code == 0
    user = await run(
        "kubectl", "get", "sess", "mine", "-n", namespace, "-o", "jsonpath={.spec.user}"
    )
    owner = await run(
        "kubectl", "get", "drv", "mine", "-n", namespace, "-o", "jsonpath={.spec.owner}"
    )
    assert (user, owner) == ("alice", "alice")

    # Re-applying the manifest, which does not name the user, keeps it (no drift).
    again = await kubectl_apply(
        changed(session("mine"), timeout=120), namespace=namespace, user=alice
    )
    assert again.code == 0, again.err
    user = await run(
        "kubectl", "get", "sess", "mine", "-n", namespace, "-o", "jsonpath={.spec.user}"
    )
    assert user == "alice"


async def test_admins_may_create_on_behalf_of_others(capped: str, namespace: str) -> None:
    await run(
        "kubectl",
        "create",
        "rolebinding",
        "carol-edits",
        "--clusterrole=edit",
        "--user=carol",
        "-n",
        namespace,
    )
    result = await kubectl_apply(
        session("for-bob", user="bob"), namespace=namespace, user="carol", groups=ADMINS
    )
    assert result.code == 0, result.err
    user = await run(
        "kubectl", "get", "sess", "for-bob", "-n", namespace, "-o", "jsonpath={.spec.user}"
    )
    assert user == "bob"
