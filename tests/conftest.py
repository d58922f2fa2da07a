"""Test harness: the local control plane, API clients, namespaces, the operator.

Integration tests run against a real API server, scheduler, controller manager
and admission chain: the local control plane (`make cluster-up`), started here
when it is not already running, or any cluster named by KABIN_TEST_KUBECONFIG
(kind, a cloud cluster). Unit tests request none of these fixtures and run
without a cluster.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTROLPLANE = ROOT / "hack" / "controlplane"
LOCAL_KUBECONFIG = ROOT / ".cluster" / "kubeconfig"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# Sessions are served from their own hosts under this origin, through the ingress
# controller (Traefik, the `sessions` fixture) on this port, as `make up` serves them.
SESSIONS_PORT = _free_port()
SESSIONS_URL = f"http://sessions.localhost:{SESSIONS_PORT}"
# Traefik's middlewares on session Ingresses (hack/traefik.sh): the access check, the
# vscode base path stripped, the starting page for 502/503.
MIDDLEWARES = subprocess.run(
    [str(ROOT / "hack" / "traefik.sh"), "middlewares"], capture_output=True, text=True, check=True
).stdout.strip()


def session_url(namespace: str, name: str, path: str) -> str:
    """Where a session's interface is served: its own host under SESSIONS_URL."""
    return f"http://{name}.{namespace}.sessions.localhost:{SESSIONS_PORT}{path}"


# kubernetes_asyncio reads KUBECONFIG once, when it is imported, and kopf's login
# (in the in-process operator) uses that default: export it before the import.
os.environ["KUBECONFIG"] = os.environ.get("KABIN_TEST_KUBECONFIG") or str(LOCAL_KUBECONFIG)

from kubernetes_asyncio import client, config  # noqa: E402
from kubernetes_asyncio.client.rest import ApiException  # noqa: E402

from tests.support import eventually  # noqa: E402


def _healthy(kubeconfig: Path) -> bool:
    return (
        kubeconfig.exists()
        and subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), "get", "--raw", "/readyz"],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[Path]:
    """The kubeconfig of the cluster under test, exported as KUBECONFIG.

    Starts the local control plane if it is not running, and stops it at the end
    of the run only if this fixture started it (KABIN_KEEP_CLUSTER=1 keeps it).
    """
    external = os.environ.get("KABIN_TEST_KUBECONFIG")
    if external:
        yield Path(external)
        return

    bindir = subprocess.run(
        [str(CONTROLPLANE / "build.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ['PATH']}"
    started = not _healthy(LOCAL_KUBECONFIG)
    subprocess.run([str(CONTROLPLANE / "up.sh")], check=True, stdout=subprocess.DEVNULL)
    yield LOCAL_KUBECONFIG
    if started and os.environ.get("KABIN_KEEP_CLUSTER") != "1":
        subprocess.run([str(CONTROLPLANE / "down.sh")], check=False)


@pytest.fixture(scope="session")
def crds(kubeconfig: Path) -> list[str]:
    """Install kabin's CRDs (crds/) and user roles, and wait until the CRDs are Established."""
    files = sorted((ROOT / "crds").glob("*.kabin.dev.yaml"))
    names: list[str] = []
    roles = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "chart.py"), "--user-roles"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    subprocess.run(
        ["kubectl", "apply", "--server-side", "-f", "-"],
        input=roles,
        check=True,
        capture_output=True,
        text=True,
    )
    for f in files:
        out = subprocess.run(
            ["kubectl", "apply", "--server-side", "--force-conflicts", "-o", "name", "-f", str(f)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        names += out.split()
    if names:
        subprocess.run(
            ["kubectl", "wait", "--for=condition=Established", "--timeout=60s", *names],
            check=True,
            capture_output=True,
        )
    return names


@pytest.fixture
async def api(kubeconfig: Path) -> AsyncIterator[client.ApiClient]:
    """An async API client with the cluster admin's credentials."""
    async with await config.new_client_from_config(config_file=str(kubeconfig)) as api_client:
        yield api_client


@pytest.fixture
async def impersonate(kubeconfig: Path) -> AsyncIterator[object]:
    """A factory of API clients that impersonate a user (and groups), as `--as` does."""
    opened: list[client.ApiClient] = []

    async def make(user: str, groups: tuple[str, ...] = ()) -> client.ApiClient:
        api_client = await config.new_client_from_config(config_file=str(kubeconfig))
        api_client.set_default_header("Impersonate-User", user)
        for group in groups:
            # One header per group; the client keeps one value per name, so join
            # them as HTTP allows for repeated headers.
            prior = api_client.default_headers.get("Impersonate-Group")
            api_client.set_default_header(
                "Impersonate-Group", group if prior is None else f"{prior}, {group}"
            )
        opened.append(api_client)
        return api_client

    yield make
    for api_client in opened:
        await api_client.close()


@pytest.fixture
async def namespace(api: client.ApiClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh namespace for one test, ready once its default ServiceAccount exists."""
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:5]}"
    core = client.CoreV1Api(api)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

    async def default_sa() -> None:
        try:
            await core.read_namespaced_service_account("default", name)
        except ApiException as e:
            raise AssertionError(f"no default ServiceAccount in {name} yet") from e

    # Normally under a second; after a full-size chaos scenario the controller manager
    # is still collecting thousands of objects, and the ServiceAccount waits its turn.
    await eventually(default_sa, timeout=180)
    yield name
    await core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="session")
def operator(kubeconfig: Path, crds: list[str]) -> Iterator[object]:
    """The kabin operator, run in-process by kopf's test runner, with short backoffs.

    It watches all namespaces for the whole test session; tests that need to kill
    and restart an operator start their own process instead.
    """
    from kopf.testing import KopfRunner

    env: dict[str, str] = {
        "KABIN_ERROR_BACKOFFS": "[0.1, 0.5, 1]",
        "KABIN_METRICS_PORT": "0",
        "KABIN_IMAGE_PULL_GRACE": "2",
        "KABIN_RESYNC_INTERVAL": "30",
        # Sessions in namespaces named k-* belong to operators that tests start and kill.
        "KABIN_EXCLUDE_NAMESPACES": '["k-*"]',
        # Each session on a host of its own, checked by the gateway through Traefik.
        "KABIN_SESSIONS_URL": SESSIONS_URL,
        "KABIN_INGRESS_ANNOTATIONS": json.dumps(
            {"traefik.ingress.kubernetes.io/router.middlewares": MIDDLEWARES}
        ),
        # Real pods run kabin's own image as their agent, and reach the API server at
        # the machine's address (its certificate does not name the Service address).
        "KABIN_AGENT_IMAGE": "localhost/kabin:0.1.0",
        "KABIN_AGENT_API_SERVER": _api_server_for_pods(kubeconfig),
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    # The operator reads its settings once; a unit test may have read them before, from
    # an environment without these.
    from kabin import settings as kabin_settings

    kabin_settings.load()
    args = ["run", "--all-namespaces", "--standalone", "--verbose"]
    args += ["-m", "kabin.handlers", "-m", "kabin.webhooks"]
    try:
        with KopfRunner(args, timeout=60) as runner:
            _wait_until_reconciling()
            yield runner
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output


@pytest.fixture(scope="session")
def environments(operator: object) -> None:
    """The example EnvironmentConfigs, published as an administrator would."""
    for f in sorted((ROOT / "examples").glob("envcfg-*.yaml")):
        subprocess.run(
            ["kubectl", "apply", "--server-side", "-f", str(f)], check=True, capture_output=True
        )


def _api_server_for_pods(kubeconfig: Path) -> str:
    """The API server as pods on the real node reach it: this machine's address (the
    real node's InternalIP) and the API server's port."""
    from urllib.parse import urlsplit

    server = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    address = (
        subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                str(kubeconfig),
                "get",
                "node",
                "realnode-1",
                "-o",
                'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}',
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        or "127.0.0.1"
    )
    return f"{address}:{urlsplit(server).port}"


def _webhooks_registered() -> bool:
    names = []
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        names += subprocess.run(
            ["kubectl", "get", kind, "webhooks.kabin.dev", "-o", "jsonpath={.webhooks[*].name}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
    wanted = {"session-user", "drive-owner", "session-fits", "session-scale", "drive-access"}
    return wanted <= {n.split(".")[0] for n in names}


def _wait_until_reconciling(within: float = 60) -> None:
    """Block until the operator reconciles Sessions and its webhooks are registered.

    kopf discovers kabin's resources and registers the webhooks in the background
    while it starts; tests begin once both are done.
    """
    import time

    name = f"t-operator-ready-{uuid.uuid4().hex[:5]}"
    subprocess.run(["kubectl", "create", "namespace", name], check=True, capture_output=True)
    session = (
        '{"apiVersion": "kabin.dev/v1alpha1", "kind": "Session", "metadata": {"name": "probe"},'
        ' "spec": {"type": "headless", "image": "busybox"}}'
    )
    deadline = time.monotonic() + within
    try:
        while True:
            subprocess.run(
                ["kubectl", "apply", "-n", name, "-f", "-"],
                input=session,
                text=True,
                capture_output=True,
                check=False,
            )
            phase = subprocess.run(
                [
                    "kubectl",
                    "get",
                    "session",
                    "probe",
                    "-n",
                    name,
                    "-o",
                    "jsonpath={.status.phase}",
                ],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if phase and _webhooks_registered():
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the operator did not reconcile a probe session in time")
            time.sleep(0.2)
    finally:
        subprocess.run(
            ["kubectl", "delete", "namespace", name, "--wait=false"],
            capture_output=True,
            check=False,
        )


@pytest.fixture
async def k_namespace(api: client.ApiClient, operator: object) -> AsyncIterator[str]:
    """A namespace the in-process operator leaves alone, for operators a test starts."""
    name = f"k-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": name}})
    yield name
    await core.delete_namespace(name, propagation_policy="Background")


@dataclass(frozen=True)
class Person:
    """A user of the gateway: their name, bearer token and namespace."""

    user: str
    token: str
    namespace: str


@dataclass
class Gateway:
    """A running `kabin gateway`: its base URL and the people it signs in."""

    url: str
    people: list[Person]
    taken: int = 0

    @property
    def skaha(self) -> str:
        return f"{self.url}/skaha"

    def person(self) -> Person:
        """Someone who has not used the gateway yet in this run (a namespace of their own)."""
        person = self.people[self.taken]
        self.taken += 1
        return person


def start_gateway(
    tmp: Path, *, kubeconfig: Path, env: dict[str, str], args: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `kabin gateway` on a free port; return the process and the URL it logged."""
    import time

    log_path = tmp / f"gateway-{uuid.uuid4().hex[:6]}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kabin", "gateway", "--port", "0", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "KUBECONFIG": str(kubeconfig), **env},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"serving (http://\S+)/skaha", log_path.read_text())
        if found:
            return proc, found.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the gateway did not start:\n{log_path.read_text()}")


@pytest.fixture(scope="session")
def gateway(
    kubeconfig: Path, operator: object, environments: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """`kabin gateway` as a process, signing in 60 people from a static token file, each
    with a namespace of their own made on first use (`gw<run>-<user>`)."""
    import secrets

    tmp = tmp_path_factory.mktemp("gateway")
    run_id = uuid.uuid4().hex[:5]
    template = f"gw{run_id}-{{user}}"
    people = [
        Person(
            user=f"user{i:02d}",
            token=secrets.token_urlsafe(16),
            namespace=f"gw{run_id}-user{i:02d}",
        )
        for i in range(60)
    ]
    tokens = tmp / "tokens.csv"
    tokens.write_text("".join(f'{p.token},{p.user},{p.user},"researchers"\n' for p in people))
    proc, url = start_gateway(
        tmp,
        kubeconfig=kubeconfig,
        env={
            "KABIN_GATEWAY_PROVISION_NAMESPACES": "true",
            "KABIN_GATEWAY_PROVISION_GROUPS": '["researchers"]',
            "KABIN_GATEWAY_NAMESPACE_TEMPLATE": template,
            "KABIN_GATEWAY_SESSIONS_URL": SESSIONS_URL,
        },
        args=("--token-file", str(tokens)),
    )
    running = Gateway(url=url, people=people)
    try:
        yield running
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for p in people[: running.taken]:
            subprocess.run(
                [
                    "kubectl",
                    "delete",
                    "namespace",
                    p.namespace,
                    "--wait=false",
                    "--ignore-not-found",
                ],
                capture_output=True,
                check=False,
            )


@pytest.fixture
def operator_process(k_namespace: str) -> Iterator[Any]:
    """Start (and restart) `kabin operator` for one namespace (a k-* one, which the
    in-process operator leaves alone; that one serves admission); killed at the end."""
    started: list[subprocess.Popen[bytes]] = []
    env = {
        **os.environ,
        "KABIN_WEBHOOK_MANAGED": "false",  # the in-process operator serves admission
        "KABIN_EXCLUDE_NAMESPACES": "[]",  # which leaves k-* namespaces to this one
        "KABIN_METRICS_PORT": "0",
        "KABIN_ERROR_BACKOFFS": "[0.2, 0.5, 1]",
    }

    def start(*, kubeconfig: str | None = None, **extra: str) -> subprocess.Popen[bytes]:
        where = {"KUBECONFIG": kubeconfig} if kubeconfig else {}
        proc = subprocess.Popen(
            [sys.executable, "-m", "kabin", "operator", "--namespace", k_namespace],
            env={**env, **where, **extra},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def sessions(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Traefik, the ingress controller, on SESSIONS_PORT: it routes session Ingresses to
    their pods and asks the `gateway` fixture about every request (forward auth)."""
    folder = tmp_path_factory.mktemp("traefik")
    traefik = ROOT / "hack" / "traefik.sh"
    subprocess.run(
        [str(traefik), "start", str(folder), str(SESSIONS_PORT), gateway.url],
        check=True,
        capture_output=True,
        text=True,
    )
    try:
        yield SESSIONS_URL
    finally:
        subprocess.run([str(traefik), "stop", str(folder)], check=False)
