"""The pure builders: pods, Services and Ingress from a spec and an environment."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kabin.api.environment import EnvironmentConfigSpec
from kabin.api.session import SessionSpec
from kabin.logic import agent, network, resolve
from kabin.logic import pod as pods

OWNER = resolve.Owner(name="s", namespace="ns", uid="u-1", user="alice")
GPU_ENV = EnvironmentConfigSpec.model_validate(
    {
        "image": "pt:1",
        "interfaces": [
            {"name": "jupyterlab", "port": 8888, "path": "/lab"},
            {"name": "vscode", "port": 8080},
        ],
        "resources": {"default": {"cpu": "4", "memory": "16Gi", "gpu": 1}},
        "gpu": {"resourceName": "nvidia.com/mig-1g.10gb", "product": "NVIDIA-A100"},
        "env": [{"name": "FROM_ENV", "value": "1"}],
        "timeouts": {"default": 3600},
        "podOverrides": {"nodeSelector": {"zone": "a"}, "priorityClassName": "interactive"},
    }
)
SSH_ENV = EnvironmentConfigSpec.model_validate(
    {"image": "ssh:1", "interfaces": [{"name": "ssh", "port": 2222}]}
)


def pod(
    spec: dict[str, Any],
    env: EnvironmentConfigSpec | None = GPU_ENV,
    replica: int = 1,
    replicas: int = 1,
) -> dict[str, Any]:
    parsed = SessionSpec.model_validate(spec)
    return pods.build_pod(
        owner=OWNER,
        spec=parsed,
        resolved=resolve.resolve(parsed, env),
        replica=replica,
        replicas=replicas,
    )


@pytest.mark.parametrize(
    ("spec", "env", "path", "expected"),
    [
        (
            {"type": "notebook", "environment": "e"},
            GPU_ENV,
            "spec.containers.0.resources",
            {
                "requests": {"cpu": "4", "memory": "16Gi"},
                "limits": {"memory": "16Gi", "nvidia.com/mig-1g.10gb": "1"},
            },
        ),
        (
            {"type": "notebook", "environment": "e", "resources": {"gpu": 0, "cpu": "500m"}},
            GPU_ENV,
            "spec.containers.0.resources",
            {"requests": {"cpu": "500m", "memory": "16Gi"}, "limits": {"memory": "16Gi"}},
        ),
        (
            {"type": "notebook", "environment": "e"},
            GPU_ENV,
            "spec.nodeSelector",
            {"zone": "a", "nvidia.com/gpu.product": "NVIDIA-A100"},
        ),
        (
            {"type": "notebook", "environment": "e", "resources": {"gpu": 0}},
            GPU_ENV,
            "spec.nodeSelector",
            {"zone": "a"},
        ),
        (
            {"type": "notebook", "environment": "e"},
            GPU_ENV,
            "spec.tolerations",
            [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        ),
        (
            {"type": "notebook", "environment": "e", "resources": {"gpu": 0}},
            GPU_ENV,
            "spec.tolerations",
            None,
        ),
        ({"type": "notebook", "environment": "e"}, GPU_ENV, "spec.restartPolicy", "Always"),
        ({"type": "headless", "environment": "e"}, GPU_ENV, "spec.restartPolicy", "Never"),
        (
            {"type": "notebook", "environment": "e"},
            GPU_ENV,
            "spec.readinessGates",
            [
                {"conditionType": "kabin.dev/jupyterlab-ready"},
                {"conditionType": "kabin.dev/vscode-ready"},
            ],
        ),
        ({"type": "headless", "environment": "e"}, GPU_ENV, "spec.readinessGates", None),
        (
            {"type": "notebook", "environment": "e"},
            GPU_ENV,
            "spec.priorityClassName",
            "interactive",
        ),
        (
            {"type": "notebook", "environment": "e", "image": "mine:2"},
            GPU_ENV,
            "spec.containers.0.image",
            "mine:2",
        ),
        (
            {"type": "notebook", "environment": "e", "command": ["bash"]},
            GPU_ENV,
            "spec.containers.0.command",
            ["bash"],
        ),
        ({"type": "ssh", "image": "x:1"}, None, "spec.containers.0.resources", {}),
        (
            {"type": "notebook", "environment": "e"},
            GPU_ENV,
            "spec.securityContext",
            {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        ),
        (
            {"type": "notebook", "environment": "e"},
            GPU_ENV,
            "metadata.ownerReferences.0.uid",
            "u-1",
        ),
        (
            {"type": "notebook", "environment": "e"},
            GPU_ENV,
            "metadata.labels",
            {
                "app.kubernetes.io/name": "kabin-session",
                "app.kubernetes.io/instance": "s",
                "app.kubernetes.io/component": "notebook",
                "app.kubernetes.io/managed-by": "kabin",
                "kabin.dev/session": "s",
                "kabin.dev/replica": "1",
            },
        ),
    ],
    ids=[
        "gpu-default-limits",
        "cpu-only-request-no-cpu-limit",
        "gpu-product-selector",
        "cpu-only-no-product",
        "gpu-toleration",
        "cpu-only-no-toleration",
        "interactive-restarts",
        "headless-never-restarts",
        "readiness-gates-per-interface",
        "headless-no-gates",
        "priority-override",
        "session-image-wins",
        "session-command-wins",
        "no-resources",
        "restricted-by-default",
        "owned-by-session",
        "labels",
    ],
)
def test_build_pod(
    spec: dict[str, Any], env: EnvironmentConfigSpec | None, path: str, expected: Any
) -> None:
    value: Any = pod(spec, env)
    for part in path.split("."):
        value = value[int(part)] if part.isdigit() else value.get(part)
    assert value == expected


def test_replica_environment() -> None:
    built = pod(
        {"type": "headless", "environment": "e", "env": [{"name": "X", "value": "y"}]},
        replica=2,
        replicas=4,
    )
    env = {e["name"]: e["value"] for e in built["spec"]["containers"][0]["env"]}
    assert built["metadata"]["name"] == "s-2"
    assert env["REPLICA_ID"] == "2"
    assert env["REPLICA_COUNT"] == "4"
    assert env["KABIN_SESSION"] == "s"
    assert env["KABIN_USER"] == "alice"
    assert env["KABIN_NAMESPACE"] == "ns"
    assert env["KABIN_BASE_PATH"] == "/session/headless/ns/s/"
    assert env["FROM_ENV"] == "1"
    assert env["X"] == "y"


def test_services_and_ingress_route_each_interface() -> None:
    spec = SessionSpec.model_validate({"type": "notebook", "environment": "e"})
    resolved = resolve.resolve(spec, GPU_ENV)
    (service,) = network.build_services(
        owner=OWNER, spec=spec, resolved=resolved, ssh_service_type="NodePort"
    )
    assert service["spec"]["type"] == "ClusterIP"
    assert [p["name"] for p in service["spec"]["ports"]] == ["jupyterlab", "vscode"]
    assert service["spec"]["selector"] == {"kabin.dev/session": "s", "kabin.dev/replica": "1"}
    ingress = network.build_ingress(
        owner=OWNER, spec=spec, resolved=resolved, host="h", ingress_class="nginx"
    )
    assert ingress is not None
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert [
        (p["path"], p["backend"]["service"]["port"]["name"])
        for p in ingress["spec"]["rules"][0]["http"]["paths"]
    ] == [("/session/notebook/ns/s/", "jupyterlab"), ("/session/notebook/ns/s/vscode/", "vscode")]


def test_ssh_gets_its_own_service_of_the_configured_type_and_no_ingress() -> None:
    spec = SessionSpec.model_validate({"type": "ssh", "environment": "e"})
    resolved = resolve.resolve(spec, SSH_ENV)
    (service,) = network.build_services(
        owner=OWNER, spec=spec, resolved=resolved, ssh_service_type="LoadBalancer"
    )
    assert service["metadata"]["name"] == "s-ssh"
    assert service["spec"]["type"] == "LoadBalancer"
    assert (
        network.build_ingress(
            owner=OWNER, spec=spec, resolved=resolved, host="h", ingress_class=None
        )
        is None
    )


def test_headless_sessions_get_no_services() -> None:
    spec = SessionSpec.model_validate({"type": "headless", "environment": "e"})
    resolved = resolve.resolve(spec, GPU_ENV)
    assert (
        network.build_services(
            owner=OWNER, spec=spec, resolved=resolved, ssh_service_type="NodePort"
        )
        == []
    )


@pytest.mark.parametrize(
    ("spec", "env", "timeout", "mode"),
    [
        ({"type": "notebook", "environment": "e"}, GPU_ENV, 3600, "idle"),
        ({"type": "ssh", "environment": "e"}, GPU_ENV, 3600, "absolute"),
        ({"type": "headless", "environment": "e", "timeout": 60}, GPU_ENV, 60, "absolute"),
        ({"type": "notebook", "environment": "e", "timeout": -1}, GPU_ENV, -1, "none"),
        ({"type": "ssh", "image": "x"}, None, -1, "none"),
    ],
    ids=["browser-idle", "ssh-absolute", "headless-own-timeout", "never", "no-environment"],
)
def test_resolve_timeout(
    spec: dict[str, Any], env: EnvironmentConfigSpec | None, timeout: int, mode: str
) -> None:
    resolved = resolve.resolve(SessionSpec.model_validate(spec), env)
    assert (resolved.timeout, resolved.timeout_mode) == (timeout, mode)


AGENT = agent.AgentConfig(image="kabin:1", renew_interval=60)


def test_interactive_pods_get_the_agent_and_only_it_gets_a_token() -> None:
    spec = SessionSpec.model_validate(
        {"type": "notebook", "environment": "pt", "env": [{"name": "JUPYTER_TOKEN", "value": "t"}]}
    )
    p = pods.build_pod(
        owner=OWNER,
        spec=spec,
        resolved=resolve.resolve(spec, GPU_ENV),
        replica=1,
        replicas=1,
        agent=AGENT,
    )
    main, sidecar = p["spec"]["containers"]
    assert sidecar["name"] == "kabin-agent" and sidecar["args"] == ["agent"]
    assert p["spec"]["serviceAccountName"] == "s-kabin-agent"
    assert p["spec"]["automountServiceAccountToken"] is False
    assert p["spec"]["shareProcessNamespace"] is True, "the agent sees the session's processes"
    # Its own UID, not the session's: the user's processes share its process namespace
    # and could otherwise read its token through /proc/<pid>/root.
    assert sidecar["securityContext"]["runAsUser"] == AGENT.uid
    assert sidecar["securityContext"]["runAsGroup"] == AGENT.uid
    assert "runAsUser" not in main.get("securityContext", {})
    assert p["spec"]["securityContext"].get("runAsUser") != AGENT.uid
    token_mounts = [m for m in sidecar["volumeMounts"] if m["name"] == "kabin-agent-token"]
    assert token_mounts and token_mounts[0]["mountPath"] == agent.AGENT_TOKEN_PATH
    assert all(m["name"] != "kabin-agent-token" for m in main.get("volumeMounts", []))
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["KABIN_AGENT_POD"] == "s-1" and env["KABIN_AGENT_SESSION"] == "s"
    assert env["JUPYTER_TOKEN"] == "t"
    base = "/session/notebook/ns/s/"
    assert json.loads(env["KABIN_AGENT_INTERFACES"]) == [
        {"name": "jupyterlab", "port": 8888, "base": base, "path": f"{base}lab"},
        # code-server counts every request but its bare /healthz as the user's heartbeat.
        {"name": "vscode", "port": 8080, "base": "/", "path": "/healthz"},
    ]


def test_headless_pods_have_no_agent() -> None:
    spec = SessionSpec.model_validate({"type": "headless", "image": "x"})
    p = pods.build_pod(
        owner=OWNER,
        spec=spec,
        resolved=resolve.resolve(spec, None),
        replica=1,
        replicas=1,
        agent=AGENT,
    )
    assert [c["name"] for c in p["spec"]["containers"]] == ["main"]
    assert "serviceAccountName" not in p["spec"]
    assert agent.build_agent_access(OWNER, spec) == []


def test_the_agents_role_names_only_its_lease_and_pods() -> None:
    spec = SessionSpec.model_validate({"type": "ssh", "image": "x", "replicas": 2})
    account, role, binding, lease = agent.build_agent_access(OWNER, spec)
    assert account["kind"] == "ServiceAccount" and lease["kind"] == "Lease"
    assert lease["metadata"]["name"] == "s"
    assert [(r["resources"], r["resourceNames"], r["verbs"]) for r in role["rules"]] == [
        (["leases"], ["s"], ["get", "patch", "update"]),
        (["pods/status"], ["s-1", "s-2"], ["get", "patch"]),
    ]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "s-kabin-agent", "namespace": "ns"}
    ]
    for obj in (account, role, binding, lease):
        assert obj["metadata"]["ownerReferences"] == [OWNER.reference()]


def test_the_sessions_own_variables_win_and_none_is_set_twice() -> None:
    spec = SessionSpec.model_validate(
        {
            "type": "headless",
            "image": "x",
            "env": [{"name": "REPLICA_ID", "value": "3"}, {"name": "REPLICA_COUNT", "value": "8"}],
        }
    )
    p = pods.build_pod(
        owner=OWNER, spec=spec, resolved=resolve.resolve(spec, None), replica=1, replicas=1
    )
    env = [(e["name"], e["value"]) for e in p["spec"]["containers"][0]["env"]]
    assert ("REPLICA_ID", "3") in env and ("REPLICA_COUNT", "8") in env
    assert len({name for name, _ in env}) == len(env)


def test_kabin_makes_the_jupyter_token_unless_the_environment_sets_one() -> None:
    notebook = EnvironmentConfigSpec.model_validate(
        {"image": "nb:1", "interfaces": [{"name": "jupyterlab", "port": 8888, "path": "/lab"}]}
    )
    spec = SessionSpec.model_validate({"type": "notebook", "environment": "nb"})
    resolved = resolve.resolve(spec, notebook)
    assert agent.jupyter_token_secret(OWNER, resolved) == "s-jupyter-token"
    p = pods.build_pod(
        owner=OWNER, spec=spec, resolved=resolved, replica=1, replicas=1, agent=AGENT
    )
    from_secret = {"secretKeyRef": {"name": "s-jupyter-token", "key": "token"}}
    for container in p["spec"]["containers"]:  # the server and the agent read the same
        tokens = [e for e in container["env"] if e["name"] == "JUPYTER_TOKEN"]
        assert tokens == [{"name": "JUPYTER_TOKEN", "valueFrom": from_secret}], container["name"]
    secret = agent.build_jupyter_token(OWNER, spec, "t0k3n")
    assert secret["metadata"]["name"] == "s-jupyter-token"
    assert secret["stringData"] == {"token": "t0k3n"}
    assert secret["metadata"]["ownerReferences"] == [OWNER.reference()]

    own = SessionSpec.model_validate(
        {"type": "notebook", "environment": "nb", "env": [{"name": "JUPYTER_TOKEN", "value": "x"}]}
    )
    assert agent.jupyter_token_secret(OWNER, resolve.resolve(own, notebook)) is None
    assert agent.jupyter_token_secret(OWNER, resolve.resolve(spec, SSH_ENV)) is None


@pytest.mark.parametrize(
    ("actual", "wanted", "same"),
    [
        (
            {"spec": {"ports": [{"port": 80, "protocol": "TCP"}], "clusterIP": "10.0.0.1"}},
            {"spec": {"ports": [{"port": 80}]}},
            True,
        ),
        ({"spec": {"ports": [{"port": 80}]}}, {"spec": {"ports": [{"port": 81}]}}, False),
        (
            {"spec": {"ports": [{"port": 80}, {"port": 22}]}},
            {"spec": {"ports": [{"port": 80}]}},
            False,
        ),
        ({"spec": {}}, {"spec": {"ingressClassName": None}}, True),
        ({"spec": {"ingressClassName": "nginx"}}, {"spec": {"ingressClassName": None}}, False),
        (
            {"metadata": {"labels": {"a": "1"}}},
            {"metadata": {"labels": {"a": "1", "b": "2"}}},
            False,
        ),
    ],
    ids=[
        "defaults-added",
        "port-changed",
        "port-removed",
        "null-absent",
        "null-set",
        "label-missing",
    ],
)
def test_a_child_is_applied_again_only_when_it_lacks_something_kabin_wants(
    actual: dict[str, Any], wanted: dict[str, Any], same: bool
) -> None:
    assert network.contains(actual, wanted) is same


DATASET_ENV = EnvironmentConfigSpec.model_validate(
    {
        "image": "astro:1",
        "interfaces": [{"name": "jupyterlab", "port": 8888}],
        "command": ["start-astro"],
        "env": [{"name": "LICENCE", "value": "secret-key"}],
        "volumes": [{"name": "survey", "persistentVolumeClaim": {"claimName": "survey"}}],
        "volumeMounts": [{"name": "survey", "mountPath": "/data"}],
        "resources": {"max": {"cpu": "4"}},
        "podOverrides": {"nodeSelector": {"pool": "science"}, "runtimeClassName": "gvisor"},
    }
)


def test_own_image_keeps_what_the_environment_enforces_and_nothing_made_for_its_image() -> None:
    own = pod({"type": "notebook", "environment": "astro", "image": "mine:1"}, DATASET_ENV)
    theirs = pod({"type": "notebook", "environment": "astro"}, DATASET_ENV)
    main_own, main_theirs = own["spec"]["containers"][0], theirs["spec"]["containers"][0]
    assert main_own["image"] == "mine:1"
    # Enforced: the pod overrides (placement, runtime) and the interfaces stay.
    for p in (own, theirs):
        assert p["spec"]["nodeSelector"] == {"pool": "science"}
        assert p["spec"]["runtimeClassName"] == "gvisor"
        assert p["spec"]["containers"][0]["ports"] == [
            {"name": "jupyterlab", "containerPort": 8888}
        ]
    # Made for astro:1 only: its dataset volume, licence variable and command.
    assert "volumes" in theirs["spec"] and "volumes" not in own["spec"]
    assert {e["name"] for e in main_theirs["env"]} >= {"LICENCE"}
    assert "LICENCE" not in {e["name"] for e in main_own["env"]}
    assert main_theirs["command"] == ["start-astro"] and "command" not in main_own
    # Naming the environment's own image is not an override.
    same = pod({"type": "notebook", "environment": "astro", "image": "astro:1"}, DATASET_ENV)
    assert same["spec"]["volumes"] == theirs["spec"]["volumes"]
