"""Sessions that really run, and open only for their owner: a JupyterLab made with the
real `skaha` client runs on the real node (its image built here), kabin's agent in the
pod opens its readiness gate when JupyterLab answers, and its connectURL, on a host of
its own, is served through Traefik, which asks the gateway about every request
(forward auth):

- the owner's bearer token gets JupyterLab, and a kernel runs code over its websocket;
- no token gets 401, another user's token 403, a browser without a cookie a redirect to
  the dashboard, which sends the owner back with a cookie for that host alone.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
import pytest

from tests.conftest import Gateway, Person
from tests.support import command, eventually, run

pytestmark = pytest.mark.integration

IMAGE = "localhost/kabin-notebook:1"


def bearer(person: Person) -> dict[str, str]:
    return {"Authorization": f"Bearer {person.token}"}


def local(url: str) -> tuple[str, dict[str, str]]:
    """The URL as sent to Traefik on loopback, and the Host header that names the
    session (`*.localhost` resolves to loopback in browsers, not in every resolver)."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    address = parts._replace(netloc=f"127.0.0.1:{parts.port}").geturl()
    return address, {"Host": f"{parts.hostname}:{parts.port}"}


async def delete(person: Person, session_id: str) -> None:
    """The real node has two cores: each test gives its sessions' back (once gone)."""
    await run(
        "kubectl", "delete", "session", session_id, "-n", person.namespace,
        "--ignore-not-found", "--wait=true",
    )  # fmt: skip


async def ready_notebook(gateway: Gateway, me: Person) -> dict[str, Any]:
    """A notebook made by the real skaha client, once kabin says it is Ready."""
    from skaha.session import Session

    client = Session(server=gateway.skaha, token=me.token)
    (session_id,) = await asyncio.to_thread(
        client.create, name="lab", image=IMAGE, kind="notebook", cores=1, ram=1
    )
    return await ready_session(me, session_id)


async def test_a_notebook_opens_for_its_owner_only(gateway: Gateway, sessions: str) -> None:
    me, other = gateway.person(), gateway.person()
    async with httpx.AsyncClient(timeout=30) as http:
        for person in (me, other):  # their namespaces, made on first use
            assert (
                await http.get(f"{gateway.skaha}/v1/session", headers=bearer(person))
            ).is_success
    started = time.monotonic()
    obj = await ready_notebook(gateway, me)
    session_id = obj["metadata"]["name"]
    url = obj["status"]["connectURL"]
    host = f"{session_id}.{me.namespace}.sessions.localhost"
    assert urlsplit(url).hostname == host, url
    pod: dict[str, Any] = json.loads(
        await run("kubectl", "get", "pod", f"{session_id}-1", "-n", me.namespace, "-o", "json")
    )
    assert pod["spec"]["nodeName"] == "realnode-1"
    print(f"notebook Ready {time.monotonic() - started:.1f} s after the create")

    address, headers = local(url)
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:

        async def served() -> httpx.Response:
            answer = await http.get(address, headers={**headers, **bearer(me)})
            assert answer.status_code == 200, (answer.status_code, answer.text[:300])
            return answer

        page = await eventually(served, timeout=60)
        assert "JupyterLab" in page.text
        # Nobody else: no token, a bogus one, another user's, and a browser without a cookie.
        nobody = await http.get(address, headers=headers)
        assert nobody.status_code == 401 and "Bearer" in nobody.headers["WWW-Authenticate"]
        bogus = await http.get(address, headers={**headers, "Authorization": "Bearer nope"})
        assert bogus.status_code == 401
        theirs = await http.get(address, headers={**headers, **bearer(other)})
        assert theirs.status_code == 403 and "JupyterLab" not in theirs.text
        browser = await http.get(address, headers={**headers, "Accept": "text/html"})
        assert browser.status_code == 302
        location = browser.headers["location"]
        assert location.startswith(f"{gateway.url}/open/{me.namespace}/{session_id}?next="), (
            location
        )
        # A request that forges the forwarded host is judged by the host it was sent to.
        forged = await http.get(
            address,
            headers={**headers, **bearer(other), "X-Forwarded-Host": "x.y.sessions.localhost"},
        )
        assert forged.status_code == 403

    # A kernel runs code through the URL's websocket, as the owner.
    api, kernel = await start_kernel(url, me)
    assert await run_code(api, headers, me, kernel, "print(6*7)") == "42\n"
    await delete(me, session_id)


async def start_kernel(url: str, me: Person) -> tuple[str, str]:
    """A Python kernel in the session's JupyterLab, started through its URL as `me`;
    the API's URL (on loopback) and the kernel's id."""
    address, headers = local(url)
    base = url.split("/lab")[0] + "/"
    api, _ = local(base + "api/")
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        page = await http.get(address, headers={**headers, **bearer(me)})
        xsrf = page.cookies.get("_xsrf") or http.cookies.get("_xsrf")
        assert xsrf, page.headers
        made = await http.post(
            api + "kernels",
            json={"name": "python3"},
            headers={**headers, **bearer(me), "X-XSRFToken": xsrf},
        )
        assert made.status_code == 201, made.text
        return api, str(made.json()["id"])


async def run_code(api: str, headers: dict[str, str], me: Person, kernel: str, code: str) -> str:
    """Execute `code` in the kernel over its websocket channels; its stdout."""
    session = uuid.uuid4().hex
    message = {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "username": me.user,
            "session": session,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
        },
        "channel": "shell",
    }
    ws_url = api.replace("http://", "ws://") + f"kernels/{kernel}/channels?session_id={session}"
    out = ""
    async with (
        aiohttp.ClientSession() as client,
        client.ws_connect(
            ws_url, headers={**headers, **bearer(me)}, timeout=aiohttp.ClientWSTimeout(ws_close=10)
        ) as ws,
    ):
        await ws.send_str(json.dumps(message))
        async with asyncio.timeout(60):
            async for frame in ws:
                reply = json.loads(frame.data)
                if reply.get("parent_header", {}).get("msg_id") != message["header"]["msg_id"]:
                    continue
                if reply["msg_type"] == "stream":
                    out += reply["content"]["text"]
                if reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
                    break
    return out


@pytest.mark.timeout(600)
async def test_a_suspended_notebook_resumes_on_its_drive_at_the_same_url(
    gateway: Gateway, sessions: str
) -> None:
    """On the real node: a kernel writes a file to the drive; a suspend stops the
    process (its pod is gone, the drive free); a resume brings JupyterLab back at the
    same URL, where a new kernel reads the file."""
    me = gateway.person()
    obj = await ready_notebook(gateway, me)
    session_id, url = obj["metadata"]["name"], obj["status"]["connectURL"]
    address, headers = local(url)

    async def served() -> None:
        # Ready in kabin's status; Traefik's endpoints may take a moment more.
        async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
            answer = await http.get(address, headers={**headers, **bearer(me)})
        assert answer.status_code == 200 and "JupyterLab" in answer.text, answer.status_code

    await eventually(served, timeout=60)
    api, kernel = await start_kernel(url, me)
    write = "open('kept.txt', 'w').write('42'); print('written')"
    assert await run_code(api, headers, me, kernel, write) == "written\n"

    async def act(action: str) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(
                f"{gateway.skaha}/v1/session/{session_id}",
                params={"action": action},
                headers=bearer(me),
            )
        assert answer.status_code == 200, answer.text

    async def phase() -> str:
        found = json.loads(
            await run("kubectl", "get", "session", session_id, "-n", me.namespace, "-o", "json")
        )
        return str(found.get("status", {}).get("phase"))

    async def stopped() -> None:
        assert await phase() == "Suspended"
        pods = await run("kubectl", "get", "pods", "-n", me.namespace, "-o", "name")
        assert f"pod/{session_id}-1" not in pods, pods

    await act("suspend")
    await eventually(stopped, timeout=60, interval=0.5)
    await act("resume")
    again = await ready_session(me, session_id)
    assert again["status"]["connectURL"] == url
    await eventually(served, timeout=60)
    api, kernel = await start_kernel(url, me)
    read = "print(open('kept.txt').read())"
    assert await run_code(api, headers, me, kernel, read) == "42\n"
    await delete(me, session_id)


@pytest.mark.timeout(600)
async def test_in_chromium_the_button_opens_jupyterlab_runs_code_and_saves_to_the_drive(
    gateway: Gateway, sessions: str
) -> None:
    """Sign in, start a notebook with the form, click its JupyterLab button when it
    appears: JupyterLab loads on the session's own host (the dashboard sent the browser
    there with a one-minute ticket), a notebook runs print(6*7) and shows 42. Saved, the
    notebook is on the user's drive: after the session is deleted, a new one on the same
    drive lists it."""
    from playwright.async_api import async_playwright, expect

    from tests.integration.test_dashboard import ARGS, CHROMIUM, signed_in

    me = gateway.person()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await signed_in(browser, gateway, me)
            lab = await start_and_open(page, me, "here")
            await lab.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
            # The kernel started (the status bar says Idle), the cell's editor took the
            # code: then run it.
            await expect(lab.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(
                timeout=120_000
            )
            cell = lab.locator(".jp-Notebook .jp-Cell .cm-content").first
            await expect(cell).to_be_visible(timeout=60_000)
            await cell.click()
            await lab.keyboard.type("print(6*7)")
            await expect(cell).to_have_text("print(6*7)")
            await lab.keyboard.press("Shift+Enter")
            await expect(lab.locator(".jp-OutputArea-output").first).to_have_text(
                "42", timeout=60_000
            )
            # The dashboard's cookie never reaches the session's host: another origin.
            cookies = {c["name"] for c in await page.context.cookies(lab.url)}
            assert "kabin_session" not in cookies and "kabin_access" in cookies, cookies

            # Saved, the notebook is on the user's drive (JupyterLab asks to name it on
            # its first save): it outlives the session.
            await lab.keyboard.press("Control+s")
            dialog = lab.locator(".jp-Dialog")
            await expect(dialog).to_be_visible(timeout=30_000)
            await dialog.get_by_role("textbox", name="File name").fill("answer.ipynb")
            await dialog.get_by_role("button", name="Rename").click()
            saved = lab.locator(".jp-DirListing-item", has_text="answer.ipynb")
            await expect(saved).to_be_visible(timeout=30_000)
            await lab.close()
            await delete(me, "here")
            await page.goto(f"{gateway.url}/")
            again = await start_and_open(page, me, "again")
            found = again.locator(".jp-DirListing-item", has_text="answer.ipynb")
            await expect(found).to_be_visible(timeout=60_000)
            await found.dblclick()
            await expect(again.locator(".jp-OutputArea-output").first).to_have_text(
                "42", timeout=60_000
            )
        finally:
            await browser.close()
            for name in ("here", "again"):
                await delete(me, name)


async def appears(page: Any, selector: str, timeout: float = 60_000) -> None:
    """`selector` shows on `page`, which is reloaded once if it has not within a third of
    the time: Chromium drops a page's loads with ERR_NETWORK_CHANGED when a pod's network
    interface comes or goes on this machine (another session starting or ending), and
    what a person does then is reload."""
    from playwright.async_api import expect

    try:
        await expect(page.locator(selector).first).to_be_visible(timeout=timeout / 3)
    except AssertionError:
        await page.reload()
        await expect(page.locator(selector).first).to_be_visible(timeout=timeout)


async def start_and_open(
    page: Any,
    me: Person,
    name: str,
    environment: str = "JupyterLab (runs here)",
    button: str = "JupyterLab",
) -> Any:
    """Start a session of `environment` with the dashboard's form, click its `button`
    when it appears; the page it opened, on the session's own host (a JupyterLab's once
    its launcher shows)."""
    from playwright.async_api import expect

    from tests.integration.test_dashboard import choose, session_card

    await page.get_by_role("link", name="Start a session").click()
    await choose(page, environment)
    await page.get_by_label("Name").fill(name)
    await page.get_by_role("button", name="Start session").click()
    link = session_card(page, name).get_by_role("link", name=button)
    started = time.monotonic()
    await expect(link).to_be_visible(timeout=180_000)
    print(f"{button} button {time.monotonic() - started:.1f} s after the click")
    async with page.context.expect_page() as opened:
        await link.click()
    shown = await opened.value
    if button == "JupyterLab":
        try:
            await appears(shown, ".jp-LauncherCard")
        except AssertionError as e:  # say where the browser ended, and what it shows
            raise AssertionError(f"{shown.url}: {await shown.content()}"[:2000]) from e
    host = urlsplit(shown.url).hostname
    assert host == f"{name}.{me.namespace}.sessions.localhost", shown.url
    return shown


@pytest.mark.timeout(540)
async def test_an_idle_timeout_holds_while_a_kernel_works_and_ends_on_time(
    gateway: Gateway, sessions: str
) -> None:
    """A notebook with a 2-minute idle timeout: code run every 50 s for 150 s keeps it
    (the agent in the pod sees the busy kernel); once the work stops, it ends within
    5 s of the deadline kabin shows (suspended, the default for an idle notebook)."""
    me = gateway.person()
    async with httpx.AsyncClient(timeout=30) as http:
        made = await http.post(
            f"{gateway.skaha}/v1/session",
            params={"name": "idle", "type": "notebook", "image": IMAGE, "timeout": "120"},
            headers=bearer(me),
        )
    assert made.status_code == 200, made.text
    session_id = made.text.strip()

    async def status() -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            await run("kubectl", "get", "session", session_id, "-n", me.namespace, "-o", "json")
        )
        return dict(found.get("status") or {})

    url = (await ready_session(me, session_id))["status"]["connectURL"]
    api, kernel = await start_kernel(url, me)
    _, headers = local(url)
    started = time.monotonic()
    while time.monotonic() - started < 150:
        assert (
            await run_code(api, headers, me, kernel, "import time; time.sleep(1); print(1)")
            == "1\n"
        )
        now = await status()
        assert now["phase"] == "Running", now
        assert now["timeoutMode"] == "idle"
        await asyncio.sleep(50)
    # Past the first 120 s: the work held it, seen in the kernel by Jupyter's API.
    now = await status()
    assert now["phase"] == "Running" and now["lastActivitySource"] == "jupyter", now

    async def suspended() -> dict[str, Any]:
        now = await status()
        assert now["phase"] == "Suspended", now.get("phase")
        return now

    # An idle notebook is suspended by default, not ended: its drive keeps the work.
    ended = await eventually(suspended, timeout=200, interval=0.5)
    from datetime import UTC, datetime

    deadline = datetime.fromisoformat(ended["expiryTime"].replace("Z", "+00:00"))
    late = (datetime.now(UTC) - deadline).total_seconds()
    assert ended["reason"] == "IdleTimeout", ended
    assert -1 <= late <= 5 + 1, f"suspended {late:.1f} s after its deadline"  # 1 s: this poll
    await delete(me, session_id)


async def make_namespace(gateway: Gateway, person: Person) -> None:
    """The person's namespace, made by the gateway on their first request."""
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.get(f"{gateway.skaha}/v1/session", headers=bearer(person))
        assert answer.is_success, answer.text


async def ready_session(person: Person, name: str) -> dict[str, Any]:
    async def ready() -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            await run("kubectl", "get", "session", name, "-n", person.namespace, "-o", "json")
        )
        conditions = {c["type"]: c for c in found.get("status", {}).get("conditions", [])}
        assert conditions.get("Ready", {}).get("status") == "True", found.get("status")
        return found

    return await eventually(ready, timeout=180, interval=1)


async def activity_from(person: Person, name: str, source: str) -> None:
    """The session's last activity came from `source`, as its agent reported it (the
    agent writes at most once a minute: the session's start may have used that turn)."""

    async def seen() -> None:
        found = json.loads(
            await run("kubectl", "get", "session", name, "-n", person.namespace, "-o", "json")
        )
        assert found["status"].get("lastActivitySource") == source, found["status"]

    await eventually(seen, timeout=100, interval=2)


@pytest.mark.timeout(400)
async def test_the_ssh_connect_string_logs_in_with_the_users_key(
    gateway: Gateway, sessions: str, tmp_path: Path
) -> None:
    """An ssh session on the real node: its connect string, with the user's key, logs in
    as the user and runs a command in the pod, on the drive that is its home; another
    key is refused. The agent in the pod sees the login, then the CPU of a process left
    busy, as activity."""
    me = gateway.person()
    await make_namespace(gateway, me)
    for name in ("mine", "theirs"):
        await run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name))
    manifest = {
        "apiVersion": "kabin.dev/v1alpha1",
        "kind": "Session",
        "metadata": {"name": "shell"},
        "spec": {
            "type": "ssh",
            "environment": "ssh-local",
            "env": [{"name": "SSH_AUTHORIZED_KEYS", "value": (tmp_path / "mine.pub").read_text()}],
        },
    }
    await run(
        "kubectl", "apply", "--as", me.user, "--as-group", "kabin:users", "-n", me.namespace,
        "-f", "-", stdin=json.dumps(manifest),
    )  # fmt: skip
    try:
        obj = await ready_session(me, "shell")
        connect = obj["status"]["connectURL"]
        found = re.fullmatch(r"ssh -p (\d+) (\S+)@(\S+)", connect)
        assert found, connect
        port, user = found.group(1), found.group(2)
        assert user == me.user

        def ssh(key: str, *remote: str) -> list[str]:
            return [
                "ssh", "-i", str(tmp_path / key), "-p", port, "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
                f"{user}@127.0.0.1", *remote,
            ]  # fmt: skip

        # kube-proxy opens the NodePort within its sync period of the pod turning Ready.
        out = await eventually(
            lambda: run(*ssh("mine", "echo hello from $(hostname) as $(whoami) in $PWD")),
            timeout=20,
        )
        assert out.strip() == f"hello from shell-1 as {me.user} in /home/user", out
        refused = await command(*ssh("theirs", "true"), within=30)
        assert refused.code == 255 and "Permission denied" in refused.err, refused
        # While someone is logged in, the agent in the pod sees the ssh connection.
        held = await asyncio.create_subprocess_exec(
            *ssh("mine", "sleep 120"), stdout=asyncio.subprocess.DEVNULL
        )
        try:
            await activity_from(me, "shell", "ssh")
        finally:
            held.kill()
            await held.wait()
        # Logged out, a process left busy for 90 s: the agent sees the pod's CPU.
        busy = "end=$(($(date +%s)+90)); while [ $(date +%s) -lt $end ]; do :; done"
        await run(*ssh("mine", f"nohup sh -c '{busy}' >/dev/null 2>&1 &"))
        await activity_from(me, "shell", "cpu")
    finally:
        await delete(me, "shell")


@pytest.mark.timeout(600)
async def test_in_chromium_the_desktop_button_opens_a_connected_novnc(
    gateway: Gateway, sessions: str
) -> None:
    """A desktop session on the real node, started with the dashboard's form: its
    Desktop button opens noVNC on the session's own host, which connects to the VNC
    server through the websocket and draws the desktop."""
    from playwright.async_api import async_playwright, expect

    from tests.integration.test_dashboard import ARGS, CHROMIUM, signed_in

    me = gateway.person()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await signed_in(browser, gateway, me)
            novnc = await start_and_open(page, me, "desk", "Desktop (runs here)", "Desktop")
            said: list[str] = []
            novnc.on("console", lambda m: said.append(m.text))
            # noVNC is connected (it marks the page so), and its canvas has the desktop's size.
            try:
                await appears(novnc, "html.noVNC_connected")
            except AssertionError as e:
                status = await novnc.locator("#noVNC_status").text_content()
                raise AssertionError(f"{novnc.url}: status {status!r}, console {said}") from e
            canvas = novnc.locator("#noVNC_container canvas")
            await expect(canvas).to_be_visible(timeout=30_000)
            size = await canvas.evaluate("c => [c.width, c.height]")
            assert size[0] > 100 and size[1] > 100, size
            # The agent in the pod sees the browser's VNC connection as activity.
            await activity_from(me, "desk", "desktop")
        finally:
            await browser.close()
            await delete(me, "desk")


async def test_before_its_pods_are_ready_a_session_url_shows_a_page_that_reloads(
    gateway: Gateway, sessions: str
) -> None:
    """A session whose interface does not answer yet (a simulated notebook: nothing in
    its pod opens the readiness gate) has its route already: its owner gets kabin's
    starting page, which reloads by itself, not the ingress controller's bare error;
    anyone else still gets 401."""
    me = gateway.person()
    async with httpx.AsyncClient(timeout=30) as http:
        made = await http.post(
            f"{gateway.skaha}/v1/session",
            params={
                "name": "early",
                "type": "notebook",
                "image": "quay.io/jupyter/scipy-notebook:2025-06-02",
            },
            headers=bearer(me),
        )
        assert made.status_code == 200, made.text
    session_id = made.text.strip()
    try:
        await eventually(
            lambda: run("kubectl", "get", "ingress", session_id, "-n", me.namespace),
            timeout=60,
        )
        url = json.loads(
            await run("kubectl", "get", "session", session_id, "-n", me.namespace, "-o", "json")
        )["status"]["connectURL"]
        address, headers = local(url)
        async with httpx.AsyncClient(timeout=30, trust_env=False) as http:

            async def starting() -> None:
                answer = await http.get(address, headers={**headers, **bearer(me)})
                assert answer.status_code == 503, (answer.status_code, answer.text[:300])
                assert "is starting" in answer.text and 'http-equiv="refresh"' in answer.text

            await eventually(starting, timeout=30)
            assert (await http.get(address, headers=headers)).status_code == 401
    finally:
        await delete(me, session_id)


@pytest.mark.timeout(600)
async def test_in_chromium_vs_code_loads_and_its_terminal_runs_a_command(
    gateway: Gateway, sessions: str
) -> None:
    """A vscode session on the real node, started with the dashboard's form: its VS Code
    button opens code-server's workbench on the session's own host, and a command typed
    in its terminal runs in the pod, writing to the drive that is its home."""
    from playwright.async_api import async_playwright, expect

    from tests.integration.test_dashboard import ARGS, CHROMIUM, signed_in

    me = gateway.person()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await signed_in(browser, gateway, me)
            vscode = await start_and_open(page, me, "code", "VS Code (runs here)", "VS Code")
            await appears(vscode, ".monaco-workbench", timeout=120_000)
            # The explorer shows the open folder, the home directory on the drive.
            await expect(vscode.locator(".explorer-folders-view")).to_be_visible(timeout=60_000)
            await vscode.keyboard.press("Control+Backquote")
            terminal = vscode.locator(".terminal-wrapper textarea, .xterm-helper-textarea").first
            await expect(terminal).to_be_attached(timeout=60_000)
            await terminal.focus()
            await vscode.keyboard.type("echo $((6*7)) > answer.txt\n", delay=20)

            async def written() -> None:
                out = await run(
                    "kubectl", "exec", "-n", me.namespace, "code-1", "-c", "main", "--",
                    "cat", "/home/user/answer.txt",
                )  # fmt: skip
                assert out.strip() == "42", out

            await eventually(written, timeout=60, interval=1)
            # The open workbench's heartbeat is activity, as code-server reports it.
            await activity_from(me, "code", "vscode")
            # The explorer sees the new file (code-server watches the folder).
            await expect(vscode.get_by_role("treeitem", name="answer.txt")).to_be_visible(
                timeout=30_000
            )
        finally:
            await browser.close()
            await delete(me, "code")
