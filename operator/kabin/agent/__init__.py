"""`kabin agent`: the sidecar of every interactive session pod.

It sets the pod's readiness gate `kabin.dev/<interface>-ready` once an interface
really answers, and renews the session's activity Lease when it sees activity
(Jupyter, code-server, ssh connections, CPU, GPU), at most once per interval,
naming the signal. It reports usage on the same Lease when usage moves. An idle
session costs no API writes. Its ServiceAccount may touch nothing else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp

from kabin import k8s
from kabin.agent import probes
from kabin.api import names
from kabin.api.names import Reason, readiness_gate
from kabin.k8s import ApiClient, ApiException, objects
from kabin.logic import activity
from kabin.settings import AgentSettings

log = logging.getLogger("kabin.agent")

STARTING_PROBE_INTERVAL = 0.25
"""Seconds between readiness probes while an interface has not answered yet."""

FAILURES_TO_UNREADY = 3
"""Probes in a row that must fail before a ready interface is marked not ready."""


def micro_time(when: datetime) -> str:
    """A Kubernetes MicroTime (Lease renewTime)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Agent:
    """One agent: its settings, its API client, and what it has written so far."""

    def __init__(self, settings: AgentSettings, api: ApiClient) -> None:
        self.settings = settings
        self.api = api
        self.interfaces = [probes.Probe(**i) for i in json.loads(settings.interfaces)]
        self.lease = settings.lease or settings.session
        self.gates: dict[str, bool] = {}
        self.failures: dict[str, int] = {}
        self.processes = probes.Processes(settings.proc)
        self.reporter = activity.Reporter(
            started=datetime.now(UTC),
            interval=settings.renew_interval,
            usage_interval=settings.usage_interval,
        )

    def pause(self) -> float:
        """Seconds until the next round: quick (`STARTING_PROBE_INTERVAL`) until every
        interface has answered once, since someone is waiting for the button."""
        every = min(self.settings.probe_interval, self.settings.sample_interval)
        if any(not self.gates.get(i.name) for i in self.interfaces):
            return min(every, STARTING_PROBE_INTERVAL)
        return every

    async def probe(self, http: aiohttp.ClientSession) -> None:
        """Set each interface's readiness gate when whether it answers changes."""
        for iface in self.interfaces:
            ok = await probes.answers(http, self.settings.host, iface, self.settings.jupyter_token)
            self.failures[iface.name] = 0 if ok else self.failures.get(iface.name, 0) + 1
            known = self.gates.get(iface.name)
            if known == ok or (known is None and not ok):
                continue  # unchanged; an absent gate already reads "not ready"
            if not ok and self.failures[iface.name] < FAILURES_TO_UNREADY:
                continue  # one slow answer (a busy server) does not cut the user off
            await objects.set_pod_condition(
                self.api,
                self.settings.namespace,
                self.settings.pod,
                {
                    "type": readiness_gate(iface.name),
                    "status": "True" if ok else "False",
                    "reason": Reason.ANSWERING if ok else Reason.NOT_ANSWERING,
                    "message": f"{iface.name} {'answers' if ok else 'does not answer'} "
                    f"on port {iface.port}",
                    "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            )
            self.gates[iface.name] = ok
            log.info("%s is %s", iface.name, "ready" if ok else "not ready")

    async def signals(
        self, http: aiohttp.ClientSession, now: datetime
    ) -> tuple[list[activity.Seen], activity.Measured]:
        """Every signal this session has, sampled once, and the usage seen meanwhile."""
        host, token = self.settings.host, self.settings.jupyter_token
        seen: list[activity.Seen | None] = []
        for iface in self.interfaces:
            if iface.name == "jupyterlab":
                seen.append(await probes.jupyter(http, host, iface, token, now))
            elif iface.name == "vscode":
                seen.append(await probes.code_server(http, host, iface, now))
            else:  # ssh, desktop, http: someone connected to it
                seen.append(probes.connections(iface.name, iface.port, self.settings.proc, now))
        cpu, cores, rss = self.processes.sample(
            threshold=self.settings.cpu_threshold, now=now, clock=time.monotonic()
        )
        seen.append(cpu)
        gpus = probes.nvml()
        if gpus is not None:
            seen.append(
                activity.gpu(
                    utilization_percent=gpus[0],
                    threshold_percent=int(self.settings.gpu_threshold),
                    now=now,
                )
            )
        usage = activity.Measured(
            cpu_cores=cores,
            memory_bytes=rss,
            gpu_utilization=max(gpus[0]) if gpus else None,
            gpu_memory_bytes=gpus[1] if gpus else None,
        )
        return [s for s in seen if s is not None], usage

    async def report(self, http: aiohttp.ClientSession) -> None:
        """Renew the Lease if there was new activity; report usage if it moved."""
        now = datetime.now(UTC)
        seen, used = await self.signals(http, now)
        body: dict[str, Any] = {}
        fresh = self.reporter.activity(seen, now)
        if fresh is not None and fresh.last is not None:
            body["spec"] = {
                "renewTime": micro_time(fresh.last),
                "holderIdentity": self.settings.pod,
            }
            body["metadata"] = {"annotations": {names.ACTIVITY_SOURCE_ANNOTATION: fresh.source}}
        usage = self.reporter.usage_report(used, now)
        if usage is not None:
            body.setdefault("metadata", {}).setdefault("annotations", {})[
                names.USAGE_ANNOTATION
            ] = json.dumps(usage, sort_keys=True)
        if not body:
            return
        await objects.patch_lease(self.api, self.settings.namespace, self.lease, body)
        if fresh is not None:
            self.reporter.wrote(fresh, now)
            log.info("activity from %s at %s", fresh.source, fresh.last)

    async def run(self) -> None:
        """Probe and sample until stopped; API errors are logged and retried next round."""
        timeout = aiohttp.ClientTimeout(total=2)
        next_sample = 0.0
        # No kept-alive connections: to code-server an open connection is a user.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            while True:
                try:
                    await self.probe(http)
                    if time.monotonic() >= next_sample:
                        next_sample = time.monotonic() + self.settings.sample_interval
                        await self.report(http)
                except (ApiException, aiohttp.ClientError) as e:
                    log.warning("API call failed, retrying: %s", getattr(e, "body", None) or e)
                except Exception:  # the agent outlives any one bad round; its pod stays up
                    log.exception("probing or reporting failed, retrying")
                await asyncio.sleep(self.pause())


async def run(settings: AgentSettings) -> None:
    """Run the agent: the pod's ServiceAccount inside a cluster, else $KUBECONFIG."""
    api = await k8s.connect()
    try:
        log.info(
            "agent of session %s/%s in pod %s: %s",
            settings.namespace,
            settings.session,
            settings.pod,
            ", ".join(i["name"] for i in json.loads(settings.interfaces)) or "no interfaces",
        )
        await Agent(settings, api).run()
    finally:
        await api.close()
