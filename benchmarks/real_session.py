"""Benchmark: a real JupyterLab through kabin against the same image as a bare pod.

On the local control plane's real node, with warm images, side by side in one run:

- pod: a pod of `localhost/kabin-notebook:1` on the real node, from its create until
  JupyterLab answers 200 on the pod's address (the floor);
- bare: the same pod behind a plain ClusterIP Service, until JupyterLab answers 200 on
  the Service's address (kube-proxy): the baseline the ratios are against;
- kabin: a notebook Session (`kubectl apply`, the `notebook-local` environment) from its
  apply until JupyterLab answers 200 through its connectURL (Traefik, the gateway's
  access check, the owner's bearer token);
- click: in Chromium, from the dashboard's "Start session" click until JupyterLab's
  launcher shows, through the JupyterLab button (the person's wait).

It starts its own operator, gateway and Traefik, so run it on a control plane with no
other kabin running:

    make cluster-up
    .venv/bin/python benchmarks/real_session.py [--runs 3]

A script, not a timed test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
KUBECONFIG = ROOT / ".cluster" / "kubeconfig"
IMAGE = "localhost/kabin-notebook:1"
# Traefik's middlewares on session Ingresses, as make up sets them (hack/traefik.sh).
MIDDLEWARES = subprocess.run(
    [str(ROOT / "hack" / "traefik.sh"), "middlewares"], capture_output=True, text=True, check=True
).stdout.strip()
REAL = {
    "nodeSelector": {"kabin.dev/node": "real"},
    "tolerations": [{"key": "kabin.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}],
}


def kubectl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(KUBECONFIG), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def sh(*argv: str) -> None:
    """Run a helper script or command; its output only on failure."""
    done = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, "KUBECONFIG": str(KUBECONFIG)}
    )
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def until_200(url: str, headers: dict[str, str], within: float = 300) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(url, headers=headers)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(url)


async def bare(namespace: str, n: int, *, service: bool) -> float:
    """A pod of the same image on the real node, from its create until JupyterLab answers:
    behind a plain ClusterIP Service (kube-proxy), or on the pod's own address (the
    floor: no Service to wait for)."""
    name = f"bare{n}{'s' if service else 'p'}"
    base = f"/session/notebook/{namespace}/{name}/"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            **REAL,
            "containers": [
                {
                    "name": "main",
                    "image": IMAGE,
                    "imagePullPolicy": "Never",
                    "env": [{"name": "KABIN_BASE_PATH", "value": base}],
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "768Mi"},
                        "limits": {"memory": "768Mi"},
                    },
                }
            ],
        },
    }
    plain = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [{"port": 8888}]},
    }
    start = time.monotonic()
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {"kind": "List", "apiVersion": "v1", "items": [pod, plain] if service else [pod]}
        ),
    )
    address = ""
    while not address:
        which = (
            ("service", "jsonpath={.spec.clusterIP}")
            if service
            else ("pod", "jsonpath={.status.podIP}")
        )
        address = kubectl("get", which[0], name, "-n", namespace, "-o", which[1])
        await asyncio.sleep(0.1)
    await until_200(f"http://{address}:8888{base}lab", {})
    took = time.monotonic() - start
    kubectl("delete", "pod,service" if service else "pod", name, "-n", namespace, "--wait=true")
    return took


async def session(namespace: str, n: int, token: str) -> float:
    name = f"lab{n}"
    manifest = {
        "apiVersion": "kabin.dev/v1alpha1",
        "kind": "Session",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": "notebook", "environment": "notebook-local", "drive": "bench"},
    }
    start = time.monotonic()
    kubectl(
        "apply", "-f", "-", "--as", "bench", "--as-group", "kabin:users", stdin=json.dumps(manifest)
    )
    url = ""
    while not url:
        url = kubectl(
            "get", "session", name, "-n", namespace, "-o", "jsonpath={.status.connectURL}"
        )
        await asyncio.sleep(0.1)
    host = url.split("/")[2]
    local = url.replace(host, f"127.0.0.1:{host.rsplit(':', 1)[1]}")
    await until_200(local, {"Host": host, "Authorization": f"Bearer {token}"})
    took = time.monotonic() - start
    kubectl("delete", "session", name, "-n", namespace, "--wait=true")
    return took


async def click(gateway: str, token: str, n: int, namespace: str) -> float:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        page = await browser.new_page()
        await page.goto(f"{gateway}/signin")
        await page.get_by_label("Token").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await page.goto(f"{gateway}/start")
        await page.get_by_label("JupyterLab (runs here)").check()
        await page.wait_for_selector('#fields[data-choice="notebook-local/notebook"]')
        await page.get_by_label("Name").fill(f"click{n}")
        await page.get_by_label("Drive").select_option("bench")
        start = time.monotonic()
        await page.get_by_role("button", name="Start session").click()
        card = page.get_by_role("listitem").filter(
            has=page.get_by_role("heading", name=f"click{n}", exact=True)
        )
        button = card.get_by_role("link", name="JupyterLab")
        await button.wait_for(timeout=300_000)
        async with page.context.expect_page() as opened:
            await button.click()
        lab = await opened.value
        await lab.wait_for_selector(".jp-LauncherCard", timeout=300_000)
        took = time.monotonic() - start
        await browser.close()
    # It holds the drive the next run uses.
    kubectl("delete", "session", f"click{n}", "-n", namespace, "--wait=true")
    return took


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-click", action="store_true", help="skip the Chromium run")
    given = parser.parse_args()
    runs = given.runs
    tmp = Path(tempfile.mkdtemp(prefix="kabin-bench-"))
    token = secrets.token_urlsafe(16)
    (tmp / "tokens.csv").write_text(f'{token},bench,bench,"kabin:users"\n')
    port, sessions_port = free_port(), free_port()
    sessions = f"http://sessions.localhost:{sessions_port}"
    server = kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
    node_ip = kubectl(
        "get",
        "node",
        "realnode-1",
        "-o",
        'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}',
    )
    namespace = f"kabin-bench-{uuid.uuid4().hex[:5]}"
    plain = f"{namespace}-bare"
    env = {
        "KUBECONFIG": str(KUBECONFIG),
        "KABIN_METRICS_PORT": "0",
        "KABIN_SESSIONS_URL": sessions,
        "KABIN_INGRESS_ANNOTATIONS": json.dumps(
            {"traefik.ingress.kubernetes.io/router.middlewares": MIDDLEWARES}
        ),
        "KABIN_AGENT_IMAGE": "localhost/kabin:0.1.0",
        "KABIN_AGENT_API_SERVER": f"{node_ip}:{server.rsplit(':', 1)[1]}",
        "KABIN_GATEWAY_SESSIONS_URL": sessions,
        "KABIN_GATEWAY_PROVISION_NAMESPACES": "true",
        "KABIN_GATEWAY_NAMESPACE_TEMPLATE": namespace,
    }
    kabin = str(Path(sys.executable).with_name("kabin"))
    procs = [
        start([kabin, "operator"], env, tmp / "operator.log"),
        start(
            [kabin, "gateway", "--port", str(port), "--token-file", str(tmp / "tokens.csv")],
            env,
            tmp / "gateway.log",
        ),
    ]
    gateway = f"http://127.0.0.1:{port}"
    traefik = ROOT / "hack" / "traefik.sh"
    try:
        await until_200(f"{gateway}/skaha/availability", {}, within=60)
        sh(str(traefik), "start", str(tmp / "traefik"), str(sessions_port), gateway)
        await until_200(
            f"{gateway}/skaha/v1/session", {"Authorization": f"Bearer {token}"}, within=60
        )
        for f in ("envcfg-notebook-local.yaml",):
            kubectl("apply", "--server-side", "-f", str(ROOT / "examples" / f))
        drive = {
            "apiVersion": "kabin.dev/v1alpha1",
            "kind": "Drive",
            "metadata": {"name": "bench", "namespace": namespace},
            "spec": {"size": "1Gi"},
        }
        kubectl(
            "apply",
            "-f",
            "-",
            "--as",
            "bench",
            "--as-group",
            "kabin:users",
            stdin=json.dumps(drive),
        )
        results: dict[str, list[float]] = {"pod": [], "bare": [], "kabin": [], "click": []}
        # Bare pods in a plain namespace of their own: no kabin, no guards.
        kubectl("create", "namespace", plain)
        await bare(plain, 0, service=False)  # warm: the image's first start
        for n in range(runs):
            results["pod"].append(await bare(plain, n + 1, service=False))
            results["bare"].append(await bare(plain, n + 1, service=True))
            results["kabin"].append(await session(namespace, n, token))
            if not given.no_click:
                results["click"].append(await click(gateway, token, n, namespace))
    finally:
        sh(str(traefik), "stop", str(tmp / "traefik"))
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        for ns in (namespace, plain):
            sh("kubectl", "delete", "namespace", ns, "--wait=false")
    floor = statistics.median(results["bare"])
    print(f"{'run (warm images, real node)':<48} {'median':>8} {'runs':>24} {'vs bare':>8}")
    for key, label in (
        ("pod", "bare pod -> JupyterLab 200 on the pod address"),
        ("bare", "bare pod + Service -> 200 on its ClusterIP"),
        ("kabin", "kubectl apply Session -> connectURL 200"),
        ("click", "dashboard click -> JupyterLab page"),
    ):
        times = results[key]
        if not times:
            continue
        spread = ", ".join(f"{t:.1f}" for t in times)
        print(
            f"{label:<48} {statistics.median(times):>7.1f}s {spread:>24} "
            f"{statistics.median(times) / floor:>7.2f}x"
        )


if __name__ == "__main__":
    asyncio.run(main())
