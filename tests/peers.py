"""Real peers for the activity tests, run on this machine: a Jupyter server, an sshd
with an ssh client, and `kabin agent` itself with its session's ServiceAccount.

Simulated pods run no processes, so the agent runs here, pointed at these peers
(through the ports the test hands it) and at the local control plane, with the
token of the ServiceAccount the operator made for its session.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from kubernetes_asyncio import client

from tests.support import free_port

SSHD = "/usr/sbin/sshd"


def _wait_for(check: Any, what: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {within}s")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Jupyter:
    """A running Jupyter server (JupyterLab) under a session's base path."""

    port: int
    base: str
    token: str
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    async def touch(self) -> None:
        """What a user's browser does: an API request (listing the files)."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}api/contents", headers=self.headers()) as r,
        ):
            assert r.status == 200, await r.text()

    async def execute(self, code: str) -> str:
        """Run `code` in a fresh kernel over the kernel's WebSocket, as JupyterLab does;
        return the kernel id once the execute request is sent."""
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{self.url}api/kernels", headers=self.headers(), json={"name": "python3"}
            ) as r:
                assert r.status == 201, await r.text()
                kernel = (await r.json())["id"]
            async with http.ws_connect(
                f"ws://127.0.0.1:{self.port}{self.base}api/kernels/{kernel}/channels",
                headers=self.headers(),
            ) as ws:
                msg_id = secrets.token_hex(8)
                await ws.send_json(
                    {
                        "header": {
                            "msg_id": msg_id,
                            "msg_type": "execute_request",
                            "username": "test",
                            "session": secrets.token_hex(8),
                            "version": "5.3",
                        },
                        "parent_header": {},
                        "metadata": {},
                        "content": {"code": code, "silent": False, "store_history": False},
                        "channel": "shell",
                    }
                )
                # Wait until the kernel says it is busy with our request.
                async for message in ws:
                    data = json.loads(message.data)
                    if (
                        data.get("msg_type") == "status"
                        and data["parent_header"].get("msg_id") == msg_id
                        and data["content"]["execution_state"] == "busy"
                    ):
                        break
        return str(kernel)


@contextlib.contextmanager
def jupyter_server(base: str, tmp: Path, token: str | None = None) -> Iterator[Jupyter]:
    """Start JupyterLab's server on a free port under `base` with `token` (default: a new
    one), as the session image would."""
    port, token = free_port(), token or secrets.token_hex(16)
    root = tmp / "notebooks"
    root.mkdir(exist_ok=True)
    log = tmp / "jupyter.log"
    argv = [
        sys.executable,
        "-m",
        "jupyter_server",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--ServerApp.base_url={base}",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.open_browser=False",
        "--ServerApp.allow_root=True",
    ]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp / "runtime")}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Jupyter(port, base, token, log)
    try:
        _wait_for(lambda: _answers(f"{server.url}api/status", token), "jupyter_server")
        yield server
    finally:
        _stop(proc)


def _answers(url: str, token: str) -> bool:
    import urllib.request

    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@dataclass
class Sshd:
    """A running sshd on a high port, and what a client needs to log in."""

    port: int
    key: Path
    user: str

    def connect(self) -> subprocess.Popen[bytes]:
        """A real ssh client, logged in and running a long command."""
        return subprocess.Popen(
            [
                "ssh",
                "-i",
                str(self.key),
                "-p",
                str(self.port),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                f"{self.user}@127.0.0.1",
                "sleep 120",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


@contextlib.contextmanager
def sshd(tmp: Path) -> Iterator[Sshd]:
    """Debian's sshd with a configuration of its own: host key, authorized key and pid
    file under `tmp`, listening on a free port of 127.0.0.1, no PAM."""
    if not Path(SSHD).exists() or shutil.which("ssh") is None:
        raise RuntimeError("openssh-server and openssh-client are needed (.ci/run installs them)")
    port, user = free_port(), getpass.getuser()
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)], check=True
        )
    (tmp / "authorized_keys").write_text((tmp / "client.pub").read_text())
    (tmp / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp / 'host'}\n"
        f"PidFile {tmp / 'sshd.pid'}\nAuthorizedKeysFile {tmp / 'authorized_keys'}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    log = tmp / "sshd.log"
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(tmp / "sshd_config"), "-E", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: _banner(port), "sshd")
        yield Sshd(port, tmp / "client", user)
    finally:
        _stop(proc)


def _banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(7) == b"SSH-2.0"
    except OSError:
        return False


async def service_account_kubeconfig(
    api: client.ApiClient, admin: Path, namespace: str, account: str, into: Path
) -> Path:
    """A kubeconfig that authenticates as `account`, with a token from the TokenRequest
    API, as the agent's projected token does in a pod."""
    token = await client.CoreV1Api(api).create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 3600}}
    )
    return _write_kubeconfig(admin, namespace, account, token.status.token, into)


def _write_kubeconfig(admin: Path, namespace: str, account: str, token: str, into: Path) -> Path:
    config = yaml.safe_load(admin.read_text())
    cluster = config["clusters"][0]
    into.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": account,
                        "context": {
                            "cluster": cluster["name"],
                            "user": account,
                            "namespace": namespace,
                        },
                    }
                ],
                "current-context": account,
            }
        )
    )
    return into


@contextlib.contextmanager
def agent(env: dict[str, str], kubeconfig: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`kabin agent`, the real entry point, with the pod's KABIN_AGENT_* variables."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("KABIN_")}
    full.update(env)
    # Outside the pod it reads its token from a kubeconfig, not from the pod's files: no
    # in-cluster address (the pod's own, or the operator's agent_api_server).
    full.pop("KUBERNETES_SERVICE_HOST", None)
    full.pop("KUBERNETES_SERVICE_PORT", None)
    full["KUBECONFIG"] = str(kubeconfig)
    kabin = Path(sys.executable).with_name("kabin")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(kabin), "agent", "--verbose"], stdout=out, stderr=subprocess.STDOUT, env=full
        )
    try:
        yield proc
    finally:
        _stop(proc)


async def pause(seconds: float) -> None:
    """Let time pass on purpose (to show that something does NOT happen)."""
    await asyncio.sleep(seconds)
