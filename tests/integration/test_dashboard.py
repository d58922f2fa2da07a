"""The dashboard in a real Chromium (Debian's, driven by Playwright), against the
gateway and the operator on the local control plane, doing what a Shakudo user does:
sign in, start a session with the form, wait for its buttons, renew, delete, add a
drive, queue for a held drive; and never see another person's sessions.

Screenshots go to $KABIN_SCREENSHOTS (docs/images for the README) when it is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import Gateway, Person
from tests.support import eventually

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT = 30_000  # ms: what a person would wait for a live change


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


async def signed_in(browser: Browser, gateway: Gateway, person: Person) -> Page:
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    await page.goto(gateway.url + "/")
    await expect(page.get_by_role("heading", name="Sign in to kabin")).to_be_visible()
    await page.get_by_label("Token").fill(person.token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    return page


async def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("KABIN_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        await page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def kubectl_json(*args: str) -> Any:
    done = subprocess.run(["kubectl", *args, "-o", "json"], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


async def choose(page: Page, choice: str) -> None:
    radio = page.get_by_role("radio", name=choice, exact=True)
    await radio.check()
    # The form opens with the first type's fields; wait until htmx has swapped
    # in the chosen type's, or what is typed next would be replaced.
    value = await radio.get_attribute("value")
    await expect(page.locator("#fields")).to_have_attribute("data-choice", value or "")


async def start(page: Page, gateway: Gateway, *, choice: str, name: str, **fields: str) -> None:
    await page.goto(gateway.url + "/start")
    await choose(page, choice)
    await page.get_by_label("Name", exact=True).fill(name)
    if "drive" in fields:
        await page.get_by_label("Drive", exact=True).select_option(fields.pop("drive"))
    for label, value in fields.items():
        await page.get_by_label(label).fill(value)
    await page.get_by_role("button", name="Start session").click()


def session_card(page: Page, name: str) -> Any:
    return page.get_by_role("listitem").filter(
        has=page.get_by_role("heading", name=name, exact=True)
    )


async def test_sign_in_start_watch_renew_and_delete(
    browser: Browser, gateway: Gateway, api: Any
) -> None:
    from kubernetes_asyncio import client

    me = gateway.person()
    page = await browser.new_page()
    await page.goto(gateway.url + "/signin")
    await page.get_by_label("Token").fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not valid")
    page = await signed_in(browser, gateway, me)
    await expect(page.get_by_role("link", name="Start a session")).to_be_visible()

    await page.get_by_role("link", name="Start a session").click()
    await choose(page, "JupyterLab (SciPy)")
    await expect(page.get_by_test_id("timeout-mode")).to_contain_text("Idle timeout")
    await page.get_by_label("Name").fill("lab")
    await screenshot(page, "start-form")
    await page.get_by_role("button", name="Start session").click()
    card = session_card(page, "lab")
    await expect(card).to_be_visible()

    obj = kubectl_json("get", "session", "lab", "-n", me.namespace)
    assert obj["spec"]["user"] == me.user
    assert (obj["spec"]["type"], obj["spec"]["environment"]) == ("notebook", "notebook")

    # Running, but JupyterLab does not answer yet: no button, and the reason says so.
    await expect(card.get_by_test_id("status")).to_contain_text("Running", timeout=WAIT)
    await expect(card.get_by_test_id("reason")).to_contain_text("waiting for jupyterlab")
    assert await card.get_by_role("link", name="JupyterLab").count() == 0
    await page.evaluate("window.kabinNoReload = true")

    # The agent opens the readiness gate: the button appears, live, with the connectURL.
    await client.CoreV1Api(api).patch_namespaced_pod_status(
        "lab-1",
        me.namespace,
        {"status": {"conditions": [{"type": "kabin.dev/jupyterlab-ready", "status": "True"}]}},
    )
    button = card.get_by_role("link", name="JupyterLab")
    await expect(button).to_be_visible(timeout=WAIT)
    url = kubectl_json("get", "session", "lab", "-n", me.namespace)["status"]["connectURL"]
    assert await button.get_attribute("href") == url
    assert await page.evaluate("window.kabinNoReload") is True  # no reload happened
    await expect(card.get_by_test_id("status")).to_contain_text("Ready")
    await screenshot(page, "sessions")

    await page.evaluate(
        "window.kabinLive = 0;"
        "document.body.addEventListener('htmx:sseMessage', () => window.kabinLive++)"
    )
    await card.get_by_role("button", name="Renew").click()
    await expect(card.get_by_role("status")).to_contain_text("Renewed")
    renewed = kubectl_json("get", "session", "lab", "-n", me.namespace)
    assert renewed["metadata"]["annotations"]["kabin.dev/renew"]
    # The renew changes the session, so the list is re-rendered live: the answer stays.
    await page.wait_for_function("window.kabinLive > 0", timeout=WAIT)
    await expect(card.get_by_role("status")).to_contain_text("Renewed")

    page.once("dialog", lambda dialog: dialog.accept())
    await card.get_by_role("button", name="Delete").click()
    await expect(session_card(page, "lab")).to_have_count(0, timeout=WAIT)

    async def deleted() -> None:
        assert kubectl_json("get", "session", "lab", "-n", me.namespace) is None

    await eventually(deleted, timeout=30)


async def test_suspend_and_resume_from_the_dashboard(browser: Browser, gateway: Gateway) -> None:
    me = gateway.person()
    page = await signed_in(browser, gateway, me)
    await start(page, gateway, choice="JupyterLab (SciPy)", name="nap")
    card = session_card(page, "nap")
    await expect(card.get_by_test_id("status")).to_contain_text("Running", timeout=WAIT)
    assert await card.get_by_role("button", name="Resume").count() == 0

    await card.get_by_role("button", name="Suspend").click()
    await expect(card.get_by_role("status")).to_contain_text("Suspending")
    await expect(card.get_by_test_id("status")).to_contain_text("Suspended", timeout=WAIT)
    await expect(card.get_by_test_id("reason")).to_contain_text("suspended by its user")
    await expect(card.get_by_test_id("reason").locator("time")).to_have_count(1)
    assert await card.get_by_role("button", name="Suspend").count() == 0
    obj = kubectl_json("get", "session", "nap", "-n", me.namespace)
    assert obj["spec"]["suspend"] is True and obj["status"]["reason"] == "User"
    assert kubectl_json("get", "pod", "nap-1", "-n", me.namespace) is None
    await screenshot(page, "suspended")

    await card.get_by_role("button", name="Resume").click()
    await expect(card.get_by_role("status")).to_contain_text("Resuming")
    await expect(card.get_by_test_id("status")).to_contain_text("Running", timeout=WAIT)
    assert kubectl_json("get", "session", "nap", "-n", me.namespace)["spec"]["suspend"] is False


async def test_a_schedule_is_set_in_the_form_and_edited_on_the_session(
    browser: Browser, gateway: Gateway
) -> None:
    me = gateway.person()
    page = await signed_in(browser, gateway, me)
    await page.goto(gateway.url + "/start")
    await choose(page, "JupyterLab (SciPy)")
    await page.get_by_label("Name", exact=True).fill("weekdays")
    await page.get_by_label("Suspend at").fill("0 19 * * 1-5")
    await page.get_by_label("Time zone").fill("Mars/Olympus")
    await page.get_by_role("button", name="Start session").click()
    # A zone that does not exist is refused next to its field, and nothing is made.
    zone = page.get_by_label("Time zone")
    await expect(zone).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#schedule-zone-error")).to_contain_text("IANA time zone")
    assert kubectl_json("get", "session", "weekdays", "-n", me.namespace) is None
    await zone.fill("Europe/Paris")
    await page.get_by_role("button", name="Start session").click()
    card = session_card(page, "weekdays")
    await expect(card.get_by_test_id("schedule")).to_contain_text(
        "suspend at 19:00 on Monday through Friday (Europe/Paris)", timeout=WAIT
    )
    obj = kubectl_json("get", "session", "weekdays", "-n", me.namespace)
    assert obj["spec"]["schedule"] == {"suspend": "0 19 * * 1-5", "timeZone": "Europe/Paris"}

    await card.get_by_text("Edit schedule").click()
    await card.get_by_label("Resume at").fill("99 8 * * *")
    await card.get_by_role("button", name="Save schedule").click()
    await expect(card.locator("#schedule-note-weekdays")).to_contain_text("spec.schedule.resume")
    await card.get_by_label("Resume at").fill("0 8 * * 1-5")
    await card.get_by_role("button", name="Save schedule").click()
    await expect(card.locator("#schedule-note-weekdays")).to_contain_text("Saved")
    await expect(card.get_by_test_id("schedule")).to_contain_text(
        "resume at 08:00 on Monday through Friday", timeout=WAIT
    )
    resume = kubectl_json("get", "session", "weekdays", "-n", me.namespace)["spec"]["schedule"]
    assert resume["resume"] == "0 8 * * 1-5"


async def test_drives_and_waiting_for_a_held_drive(
    browser: Browser, gateway: Gateway, api: Any
) -> None:
    from kubernetes_asyncio import client

    me = gateway.person()
    page = await signed_in(browser, gateway, me)
    await page.get_by_role("link", name="Drives").click()
    await page.get_by_label("Name", exact=True).fill("data")
    await page.get_by_label("Size", exact=True).fill("5Gi")
    await page.get_by_label("Shared: anyone in this namespace").check()
    await page.get_by_role("button", name="Add drive").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="data"))
    await expect(row).to_contain_text("5Gi")
    await expect(row).to_contain_text("shared")

    await start(page, gateway, choice="Shell (SSH): ssh", name="first", drive="data")
    await expect(session_card(page, "first").get_by_test_id("drive")).to_have_text("data")
    await start(page, gateway, choice="JupyterLab (SciPy)", name="second", drive="data")
    second = session_card(page, "second")
    await expect(second.get_by_test_id("reason")).to_contain_text(
        'Drive "data" is held by session "first"', timeout=WAIT
    )
    await expect(second.get_by_test_id("status")).to_contain_text("Pending")
    await screenshot(page, "sessions-waiting")

    await page.goto(gateway.url + "/drives")
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="data"))
    await expect(row).to_contain_text("first")
    await expect(row).to_contain_text("second")
    await screenshot(page, "drives")

    # SSH shows its command, with a copy button, once sshd answers.
    await client.CoreV1Api(api).patch_namespaced_pod_status(
        "first-1",
        me.namespace,
        {"status": {"conditions": [{"type": "kabin.dev/ssh-ready", "status": "True"}]}},
    )
    await page.goto(gateway.url + "/")
    first = session_card(page, "first")
    await expect(first.locator("code")).to_contain_text("ssh -p ", timeout=WAIT)
    await expect(first.get_by_role("button", name="Copy the SSH command")).to_be_visible()

    # The drive in use shows so in the start form's menu.
    await page.goto(gateway.url + "/start")
    await expect(page.get_by_label("Drive", exact=True)).to_contain_text("in use by first")


async def test_admission_refusal_is_shown_on_its_field(browser: Browser, gateway: Gateway) -> None:
    me = gateway.person()
    page = await signed_in(browser, gateway, me)
    await start(page, gateway, choice="JupyterLab (SciPy)", name="toolong", Timeout="999999")
    error = page.locator("#timeout-error")
    await expect(error).to_contain_text("exceeds the maximum of 86400")
    await expect(page.get_by_label("Timeout (seconds)")).to_have_attribute("aria-invalid", "true")
    assert kubectl_json("get", "session", "toolong", "-n", me.namespace) is None
    # A name that is taken is refused on the name field.
    await start(page, gateway, choice="JupyterLab (SciPy)", name="twice")
    await start(page, gateway, choice="JupyterLab (SciPy)", name="twice")
    await expect(page.locator("#name-error")).to_contain_text("already exists")


async def test_other_peoples_sessions_never_appear(browser: Browser, gateway: Gateway) -> None:
    alice, bob = gateway.person(), gateway.person()
    page = await signed_in(browser, gateway, alice)
    await start(page, gateway, choice="Shell (SSH): ssh", name="alices")
    await expect(session_card(page, "alices")).to_be_visible()

    theirs = await signed_in(browser, gateway, bob)
    await start(theirs, gateway, choice="Shell (SSH): ssh", name="bobs")
    await expect(session_card(theirs, "bobs")).to_be_visible()
    await expect(session_card(theirs, "alices")).to_have_count(0)
    assert "alices" not in await theirs.content()
    for path in ("/sessions/alices/logs", "/sessions/alices/events"):
        answer = await theirs.goto(gateway.url + path)
        assert answer is not None and answer.status == 404
    await expect(session_card(page, "bobs")).to_have_count(0)


def test_changes_need_the_csrf_token(gateway: Gateway) -> None:
    me = gateway.person()
    with httpx.Client(base_url=gateway.url, follow_redirects=False, timeout=30) as http:
        signed = http.post("/signin", data={"token": me.token})
        assert signed.status_code == 303
        # The cookie is the token sealed, never the bearer token itself: a page that
        # catches it has nothing the REST API takes.
        sealed = signed.cookies["kabin_session"]
        assert me.token not in sealed and me.token not in signed.headers["set-cookie"]
        assert "httponly" in signed.headers["set-cookie"].lower()
        assert "samesite=strict" in signed.headers["set-cookie"].lower()
        as_bearer = http.get("/skaha/v1/session", headers={"Authorization": f"Bearer {sealed}"})
        assert as_bearer.status_code == 401
        assert http.get("/").status_code == 200  # the client keeps it for what follows
        refused = http.post("/start", data={"name": "x", "choice": "notebook/notebook"})
        assert refused.status_code == 403 and "CSRF" in refused.text
    with httpx.Client(base_url=gateway.url, follow_redirects=False, timeout=30) as http:
        answer = http.get("/")  # no cookie: to the sign-in page
        assert answer.status_code == 303 and answer.headers["location"] == "/signin"
        # Another site's page cannot sign a visitor in (login CSRF).
        foreign = http.post(
            "/signin", data={"token": me.token}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403 and "kabin_session" not in foreign.cookies
        # An altered or forged cookie signs no one in.
        for forged in (sealed[:-4] + "AAAA", me.token, "x"):
            answer = http.get("/", cookies={"kabin_session": forged})
            assert answer.status_code == 303 and answer.headers["location"] == "/signin"
    assert kubectl_json("get", "session", "x", "-n", me.namespace) is None


def test_suspend_resume_and_schedule_reach_only_the_visitors_own_sessions(
    gateway: Gateway,
) -> None:
    """An attacker's try: someone else's session, by its name, with and without the
    CSRF token, on each new action; the owner's session is left as it was."""
    import re

    owner, other = gateway.person(), gateway.person()
    made = httpx.post(
        f"{gateway.skaha}/v1/session",
        params={"name": "mine", "type": "headless", "image": "busybox", "cmd": "sleep"},
        headers={"Authorization": f"Bearer {owner.token}"},
        timeout=30,
    )
    assert made.status_code == 200, made.text
    sid = made.text.strip()
    with httpx.Client(base_url=gateway.url, follow_redirects=False, timeout=30) as http:
        assert http.post("/signin", data={"token": other.token}).status_code == 303
        token = re.search(r'"X-CSRF-Token": "([^"]+)"', http.get("/").text)
        assert token is not None
        for action in ("suspend", "resume", "schedule"):
            form = {"schedule-suspend": "0 1 * * *"}
            forged = http.post(f"/sessions/{sid}/{action}", data=form)
            assert forged.status_code == 403, (action, forged.status_code)
            answer = http.post(
                f"/sessions/{sid}/{action}", data=form, headers={"X-CSRF-Token": token[1]}
            )
            assert answer.status_code == 404, (action, answer.status_code, answer.text)
    obj = kubectl_json("get", "session", sid, "-n", owner.namespace)
    assert not obj["spec"].get("suspend") and "schedule" not in obj["spec"], obj["spec"]
