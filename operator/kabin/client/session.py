"""`AsyncSession`: kabin sessions driven the way the Skaha client drives CANFAR's.

Every method is written here once, as a coroutine; `kabin.client.sync` makes the
blocking `Session` from these. Calls run in parallel up to `concurrency` requests
in flight, each request bounded by `timeout`, and every failure is an exception
carrying the API server's message (`kabin.client.errors`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client.rest import ApiException

from kabin.api.names import RENEW_ANNOTATION, SESSION_LABEL, SUSPEND_REASON_ANNOTATION
from kabin.client import errors, records
from kabin.client.errors import KabinError, NotFound
from kabin.k8s import kueue, objects
from kabin.k8s.client import connect
from kabin.logic.resolve import replica_of

T = TypeVar("T")
log = logging.getLogger("kabin.client")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
CONTAINER = "main"
"""The session container, whose log `logs` reads."""


def default_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig's context (or `context`), or the pod's own inside
    a cluster; "default" when the context names none."""
    if kubeconfig is None and context is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        if SERVICE_ACCOUNT_NAMESPACE.exists():
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        return "default"
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    try:
        contexts, active = kube_config.list_kube_config_contexts(config_file=path)
    except (OSError, kube_config.ConfigException) as e:
        raise errors.Invalid(f"kubeconfig: cannot read {path}: {e}") from None
    if context is not None:
        chosen = next((c for c in contexts if c.get("name") == context), None)
        if chosen is None:
            names = ", ".join(c.get("name", "?") for c in contexts)
            raise errors.Invalid(f"context: {context!r} is not in {path} (it has {names})")
    else:
        chosen = active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


class Options:
    """What both clients are built from. Every argument is optional.

    Args:
        kubeconfig: Path of a kubeconfig. Default: standard loading ($KUBECONFIG, then
            ~/.kube/config), or the pod's ServiceAccount inside a cluster.
        context: Kubeconfig context. Default: its current context.
        namespace: Namespace of the sessions. Default: the context's namespace.
        timeout: Seconds each API request may take. Default 30, as Skaha's.
        concurrency: The most API requests in flight. Default 32.
        loglevel: Level of the `kabin.client` logger. Default logging.INFO (20).
    """

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespace: str | None = None,
        timeout: float = 30,
        concurrency: int = 32,
        loglevel: int | str = logging.INFO,
    ) -> None:
        if not timeout > 0:
            raise errors.Invalid(f"timeout: {timeout} must be more than 0 seconds")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise errors.Invalid(f"concurrency: {concurrency!r} must be a whole number >= 1")
        self.kubeconfig = kubeconfig
        self.context = context
        self.namespace = namespace or default_namespace(kubeconfig, context)
        self.timeout = float(timeout)
        self.concurrency = concurrency
        self.loglevel = loglevel
        log.setLevel(loglevel)
        self._ready()

    def _ready(self) -> None:
        """What a client sets up once its options are known (nothing, here)."""

    def options(self) -> dict[str, Any]:
        """The arguments this client was built with (its namespace resolved)."""
        return {
            "kubeconfig": self.kubeconfig,
            "context": self.context,
            "namespace": self.namespace,
            "timeout": self.timeout,
            "concurrency": self.concurrency,
            "loglevel": self.loglevel,
        }


def _token() -> str:
    """A new value for kabin.dev/renew: the time, and some randomness."""
    return f"{datetime.now(UTC).isoformat(timespec='seconds')}-{uuid.uuid4().hex[:6]}"


class AsyncSession(Options):
    """Sessions on kabin, asynchronously: Skaha's `AsyncSession`, on Kubernetes.

    Examples:
        >>> from kabin import AsyncSession
        >>> async with AsyncSession(namespace="alice", timeout=30, concurrency=32) as session:
        ...     ids = await session.create(name="test", image="busybox", replicas=2)
    """

    def _ready(self) -> None:
        """No connection yet: the first call opens one."""
        self._api: client.ApiClient | None = None
        self._borrowed = False
        self._connecting = asyncio.Lock()
        self._slots = asyncio.Semaphore(self.concurrency)

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @classmethod
    def over(
        cls, api: client.ApiClient, *, namespace: str, timeout: float = 30, concurrency: int = 32
    ) -> AsyncSession:
        """A client on a connection someone else owns (the gateway's, impersonating a
        user); `close` leaves that connection open.

        Examples:
            >>> session = AsyncSession.over(api, namespace="kabin-alice")
        """
        session = cls(
            namespace=namespace, timeout=timeout, concurrency=concurrency, loglevel=logging.WARNING
        )
        session._api = api
        session._borrowed = True
        return session

    async def close(self) -> None:
        """Close the connection to the API server (a later call opens a new one).

        Examples:
            >>> session = AsyncSession()
            >>> await session.close()
        """
        api, self._api = self._api, None
        if api is not None and not self._borrowed:
            await api.close()

    # -- plumbing: one place for connection, concurrency, timeouts and errors ---------------

    async def _connection(self) -> client.ApiClient:
        async with self._connecting:
            if self._api is None:
                try:
                    self._api = await connect(kubeconfig=self.kubeconfig, context=self.context)
                except (OSError, kube_config.ConfigException) as e:
                    raise errors.Invalid(f"kubeconfig: {e}") from None
            return self._api

    async def _call(
        self, request: Callable[[client.ApiClient], Awaitable[T]], *, limit: float | None = 0
    ) -> T:
        """One API request: waits for a free slot, then answers within `timeout` (the
        client's by default, None for none) or raises the typed error."""
        api = await self._connection()
        limit = self.timeout if limit == 0 else limit
        async with self._slots:
            try:
                async with asyncio.timeout(limit):
                    return await request(api)
            except ApiException as e:
                raise errors.from_api(e) from None
            except TimeoutError:
                raise errors.Timeout(f"the API server did not answer within {limit:g} s") from None
            except aiohttp.ClientError as e:
                host = api.configuration.host
                raise errors.Unreachable(f"cannot reach the API server at {host}: {e}") from None

    @staticmethod
    async def _all(calls: Iterable[Awaitable[T]]) -> list[T]:
        """Await every call (in parallel) and return their results in order; if any failed,
        raise the first failure once all have finished, with the others as notes."""
        results = await asyncio.gather(*calls, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            first = failures[0]
            for other in failures[1:]:
                first.add_note(f"also: {other}")
            raise first
        return [r for r in results if not isinstance(r, BaseException)]

    async def images(self, sessions: list[dict[str, Any]]) -> dict[str, str]:
        """The images of the environments that these Session objects name without an image
        of their own, by environment (empty when the environments cannot be read).

        Examples:
            >>> await session.images(await session.session_objects())
            {'notebook': 'quay.io/jupyter/scipy-notebook'}
        """
        if all(s["spec"].get("image") for s in sessions):
            return {}
        try:
            envs = await self.environment_objects()
        except KabinError as e:  # cosmetic: the record says <none> instead
            log.debug("cannot read EnvironmentConfigs for session images: %s", e)
            return {}
        return {e["metadata"]["name"]: e["spec"]["image"] for e in envs}

    async def _read(self, session_id: str) -> dict[str, Any]:
        namespace, name = records.parse_id(session_id, self.namespace)
        obj = await self._call(lambda api: objects.get_custom(api, "sessions", namespace, name))
        if obj is None:
            raise NotFound(f'session "{name}" not found in namespace "{namespace}"', status=404)
        return obj

    async def session_objects(self, *, everywhere: bool = False) -> list[dict[str, Any]]:
        """The Session objects of this namespace, or of every namespace the caller may
        read, as stored.

        Examples:
            >>> [s["metadata"]["name"] for s in await session.session_objects()]
            ['my-notebook']
        """
        if not everywhere:
            return await self._call(
                lambda api: objects.list_custom(api, "sessions", self.namespace)
            )
        try:
            return await self._call(lambda api: objects.list_custom_everywhere(api, "sessions"))
        except errors.Forbidden as denied:
            # No cluster-wide read: gather the namespaces the caller may read one by one.
            try:
                namespaces = await self._call(objects.list_namespaces)
            except errors.Forbidden:
                raise denied from None

            async def readable(namespace: str) -> list[dict[str, Any]]:
                try:
                    return await self._call(
                        lambda api: objects.list_custom(api, "sessions", namespace)
                    )
                except errors.Forbidden:
                    return []

            found = await self._all(readable(n) for n in namespaces)
            return [s for group in found for s in group]

    async def pod_objects(self, session_id: str) -> list[dict[str, Any]]:
        """A session's pods, as stored, by replica (NotFound when there is no such
        session).

        Examples:
            >>> [p["metadata"]["name"] for p in await session.pod_objects("my-notebook")]
            ['my-notebook-1']
        """
        namespace, name = records.parse_id(session_id, self.namespace)
        # NotFound when there is no such session, even while the garbage collector is
        # still removing the pods of one just deleted.
        await self._read(session_id)
        pods = await self._call(
            lambda api: objects.list_owned(api, "Pod", namespace, f"{SESSION_LABEL}={name}")
        )
        return sorted(pods, key=replica_of)

    # -- Skaha's methods ----------------------------------------------------------------------

    async def fetch(
        self, kind: str | None = None, status: str | None = None, view: str | None = None
    ) -> list[dict[str, str]]:
        """List sessions, oldest first.

        Args:
            kind: Only sessions of this type (notebook, headless, ...). Default: all.
            status: Only sessions in this phase (Pending, Running, Succeeded, Failed,
                Terminating, Expired; Skaha's "Error" means Failed). Default: all.
            view: "all" lists every namespace the caller may read; ids of sessions in
                other namespaces are `namespace/name`. Default: this namespace.

        Returns:
            One dict per session with Skaha's keys: id, userid, image, type, status, name,
            startTime, expiryTime, connectURL, requestedRAM, requestedCPUCores,
            requestedGPUCores, ramInUse, gpuRAMInUse, cpuCoresInUse, gpuUtilization.

        Examples:
            >>> session = AsyncSession()
            >>> await session.fetch(kind="notebook")
            [{'id': 'my-notebook', 'userid': 'alice', 'image': 'quay.io/jupyter/scipy-notebook',
              'type': 'notebook', 'status': 'Running', 'name': 'my-notebook', ...}]
        """
        found = await self.listed(kind, status, view)
        images = await self.images(found)
        return [records.record(s, home=self.namespace, images=images) for s in found]

    async def listed(
        self, kind: str | None = None, status: str | None = None, view: str | None = None
    ) -> list[dict[str, Any]]:
        """The Session objects `fetch` lists (same arguments), oldest first, as stored.

        Examples:
            >>> [s["status"].get("queue") for s in await session.listed(status="Pending")]
            ['team-a']
        """
        wanted_kind = records.check_kind(kind)
        phase = records.check_status(status)
        everywhere = records.check_view(view) == "all"
        found = [
            s
            for s in await self.session_objects(everywhere=everywhere)
            if (wanted_kind is None or s["spec"]["type"] == wanted_kind)
            and (phase is None or records.phase_of(s) == phase)
        ]
        found.sort(key=records.sort_key)
        return found

    async def stats(self) -> dict[str, Any]:
        """Statistics of the whole platform (needs cluster-wide read of nodes and pods).

        Returns:
            Skaha's shape: `instances` (active sessions by type, and total), `cores`
            (requestedCPUCores, cpuCoresAvailable, maxCPUCores with cpuCores and withRam), `ram`
            (maxRAM with ram and withCPUCores; also requestedRAM, ramAvailable), and kabin's
            `gpus`: requested and available GPUs by product.

        Examples:
            >>> await AsyncSession().stats()
            {'instances': {'notebook': 2, ..., 'headless': 5, 'total': 7},
             'cores': {'requestedCPUCores': 14, 'cpuCoresAvailable': 128,
                       'maxCPUCores': {'cpuCores': 32, 'withRam': '256Gi'}},
             'ram': {'requestedRAM': '28Gi', 'ramAvailable': '768Gi',
                     'maxRAM': {'ram': '256Gi', 'withCPUCores': 32}},
             'gpus': {'NVIDIA-H100-80GB-HBM3': {'requested': 2, 'available': 16}}}

            With Kueue's ClusterQueues, the cores and memory available and requested are
            their quotas and usage, and `queues` has each one's quota, use, and admitted
            and waiting workloads.
        """
        nodes, pods, sessions, queues = await self._all(
            [
                self._call(objects.list_nodes),
                self._call(lambda api: objects.list_pods_everywhere(api, SESSION_LABEL)),
                self._call(lambda api: objects.list_custom_everywhere(api, "sessions")),
                self._call(kueue.cluster_queues),
            ]
        )
        return records.stats(nodes=nodes, pods=pods, sessions=sessions, cluster_queues=queues)

    async def info(self, ids: str | list[str]) -> list[dict[str, Any]]:
        """Describe sessions.

        Args:
            ids: A session id or a list of them (`name`, or `namespace/name`).

        Returns:
            One dict per id, in order, with the keys of `fetch`.

        Raises:
            NotFound: A session does not exist (after every id was looked up).

        Examples:
            >>> await session.info("test-1")
            >>> await session.info(["test-1", "test-2"])
        """
        found = await self._all(self._read(i) for i in records.as_ids(ids))
        images = await self.images(found)
        return [records.record(s, home=self.namespace, images=images) for s in found]

    async def logs(self, ids: str | list[str], verbose: bool = False) -> dict[str, str]:
        """The logs of sessions: every replica's pod, from its start.

        Args:
            ids: A session id or a list of them.
            verbose: Also print each log to stdout, under a `Session ID:` line.

        Returns:
            Log text by id. A session whose pods have not started (or are gone) has "".
            A session with several pods has each under a `==> pod <==` header.

        Examples:
            >>> await session.logs("test-1")
            {'test-1': '[kabin-sim] container started\\n...'}
            >>> await session.logs(["test-1", "test-2"], verbose=True)
        """
        wanted = records.as_ids(ids)

        async def read(pod: dict[str, Any]) -> tuple[str, str]:
            namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            text = await self._call(
                lambda api: objects.read_pod_log(api, namespace, name, CONTAINER)
            )
            return name, text

        async def one(session_id: str) -> str:
            pods = [p for p in await self.pod_objects(session_id) if records.started(p)]
            return records.join_logs(await self._all(read(p) for p in pods))

        results = dict(zip(wanted, await self._all(one(i) for i in wanted), strict=True))
        if verbose:
            for session_id, text in results.items():
                sys.stdout.write(f"Session ID: {session_id}\n{text}")
            sys.stdout.flush()
        return results

    async def create(
        self,
        name: str,
        image: str | None,
        cores: float | None = 2,
        ram: float | None = 4,
        kind: str = "headless",
        gpu: int | None = None,
        cmd: str | None = None,
        args: str | None = None,
        env: dict[str, Any] | None = None,
        replicas: int = 1,
        *,
        environment: str | None = None,
        drive: str | None = None,
        timeout: int | None = None,  # noqa: ASYNC109  (the session's spec.timeout)
    ) -> list[str]:
        # Over 60 lines: a Google-style docstring with an example, as every public method has.
        """Launch sessions.

        Args:
            name: Name of the session; with `replicas=N`, the sessions are `name-1` ...
                `name-N`.
            image: Container image. May be None when `environment` names one.
            cores: CPU cores (fractions allowed). Default 2. None: the environment's.
            ram: Memory in GB, requested as `<ram>Gi`. Default 4. None: the environment's.
            kind: Session type: notebook, vscode, desktop, ssh, headless, carta, firefly
                or contributed. Default "headless".
            gpu: Whole GPUs. Default: none (or the environment's).
            cmd: The command to run (the executable, as given).
            args: Its arguments, one string split as a shell would.
            env: Environment variables; values become strings.
            replicas: How many sessions to launch. Each gets REPLICA_ID (1..N) and
                REPLICA_COUNT (N) in its environment. Default 1.
            environment: kabin: the EnvironmentConfig to run in.
            drive: kabin: the Drive holding the session's files.
            timeout: kabin: seconds until the session ends (-1: never).

        Returns:
            The ids (names) of the sessions, in replica order.

        Raises:
            Invalid: An argument is out of range (named, with its limit), or the API
                server refused the session (its message names the field).
            AlreadyExists: A session of that name exists already.

        Examples:
            >>> await session.create(
            ...     name="test",
            ...     image="images.canfar.net/skaha/terminal:1.1.1",
            ...     cores=2,
            ...     ram=8,
            ...     kind="headless",
            ...     cmd="env",
            ...     env={"TEST": "test"},
            ...     replicas=2,
            ... )
            ['test-1', 'test-2']
        """
        manifests = records.session_manifests(
            name=name,
            namespace=self.namespace,
            image=image,
            cores=cores,
            ram=ram,
            kind=kind,
            gpu=gpu,
            cmd=cmd,
            args=args,
            env=env,
            replicas=replicas,
            environment=environment,
            drive=drive,
            timeout=timeout,
        )

        async def one(manifest: dict[str, Any]) -> str:
            created = await self._call(lambda api: objects.create_custom(api, "sessions", manifest))
            if not created:
                raise errors.AlreadyExists(
                    f'session "{manifest["metadata"]["name"]}" already exists in namespace '
                    f'"{self.namespace}"',
                    status=409,
                )
            return str(manifest["metadata"]["name"])

        log.info("Creating %d %s session[s] in %s.", replicas, kind, self.namespace)
        return await self._all(one(m) for m in manifests)

    async def destroy(
        self, ids: str | list[str], *, uids: dict[str, str] | None = None
    ) -> dict[str, bool]:
        """Delete sessions (their pods, services and ingress go with them).

        Args:
            ids: A session id or a list of them.
            uids: The uid each id must still have (a session deleted and made again
                under the same name since it was read is not deleted: Conflict).

        Returns:
            True for each session deleted; False for one that did not exist (Skaha's
            contract: it was not destroyed). Any other failure raises.

        Examples:
            >>> await session.destroy("test-1")
            {'test-1': True}
            >>> await session.destroy(["test-1", "test-2"])
            {'test-1': True, 'test-2': True}
        """
        wanted = records.as_ids(ids)

        async def one(session_id: str) -> bool:
            namespace, name = records.parse_id(session_id, self.namespace)
            uid = (uids or {}).get(session_id)
            deleted = await self._call(
                lambda api: objects.delete_custom(api, "sessions", namespace, name, uid=uid)
            )
            if not deleted:
                log.warning('session "%s" not found in namespace "%s"', name, namespace)
            return deleted

        return dict(zip(wanted, await self._all(one(i) for i in wanted), strict=True))

    async def destroy_with(
        self, prefix: str, kind: str | None = "headless", status: str | None = "Succeeded"
    ) -> dict[str, bool]:
        """Delete the sessions whose name starts with `prefix` (case-sensitive).

        Args:
            prefix: Start of the names.
            kind: Only sessions of this type. Default "headless"; None: any.
            status: Only sessions in this phase. Default "Succeeded"; None: any.

        Returns:
            As `destroy`.

        Examples:
            >>> await session.destroy_with(prefix="test")
            >>> await session.destroy_with(prefix="test", kind="desktop")
            >>> await session.destroy_with(prefix="test", kind="headless", status="Running")
        """
        matching = [s["id"] for s in await self.fetch(kind=kind, status=status)]
        return await self.destroy([i for i in matching if i.startswith(prefix)])

    # -- kabin's additions --------------------------------------------------------------------

    async def get(self, session_id: str) -> dict[str, Any]:
        """The Session object as stored: spec, status, conditions, endpoints.

        Examples:
            >>> (await session.get("my-notebook"))["status"]["conditions"]
        """
        return await self._read(session_id)

    async def renew(self, ids: str | list[str], *, uids: dict[str, str] | None = None) -> list[str]:
        """Restart the absolute timeout of sessions (sets a new `kabin.dev/renew` value).

        Returns:
            The ids renewed. The operator moves each `expiryTime` shortly after.

        Examples:
            >>> await session.renew(["my-shell"])
            ['my-shell']
        """
        body = {"metadata": {"annotations": {RENEW_ANNOTATION: _token()}}}
        return await self._patch_each(ids, body, uids)

    async def suspend(
        self, ids: str | list[str], *, uids: dict[str, str] | None = None
    ) -> list[str]:
        """Suspend sessions: their pods stop and their drives are freed; each keeps its
        name, URL and history, to resume (`spec.suspend: true`).

        Returns:
            The ids suspended. Each is `Suspended` (reason `User`) once its pods are gone.

        Examples:
            >>> await session.suspend(["my-lab"])
            ['my-lab']
        """
        body = {
            "metadata": {"annotations": {SUSPEND_REASON_ANNOTATION: None}},
            "spec": {"suspend": True},
        }
        return await self._patch_each(ids, body, uids)

    async def resume(
        self, ids: str | list[str], *, uids: dict[str, str] | None = None
    ) -> list[str]:
        """Resume suspended (or expired) sessions: each takes its drive again (waiting
        for it if someone holds it), starts new pods and gets a new deadline
        (`spec.suspend: false`, and a new `kabin.dev/renew` value).

        Returns:
            The ids resumed.

        Examples:
            >>> await session.resume(["my-lab"])
            ['my-lab']
        """
        body = {
            "metadata": {
                "annotations": {RENEW_ANNOTATION: _token(), SUSPEND_REASON_ANNOTATION: None}
            },
            "spec": {"suspend": False},
        }
        return await self._patch_each(ids, body, uids)

    async def schedule(
        self,
        ids: str | list[str],
        *,
        suspend: str | None = None,
        resume: str | None = None,
        time_zone: str | None = None,
        uids: dict[str, str] | None = None,
    ) -> list[str]:
        """Set when sessions suspend and resume on their own (`spec.schedule`), as cron
        expressions in an IANA time zone; neither clears it.

        Returns:
            The ids scheduled. A bad expression or zone raises Invalid naming its field.

        Examples:
            >>> await session.schedule("my-lab", suspend="0 19 * * 1-5",
            ...                        resume="0 8 * * 1-5", time_zone="Europe/Paris")
            ['my-lab']
        """
        given = {"suspend": suspend, "resume": resume, "timeZone": time_zone}
        plan = given if suspend or resume else None
        return await self._patch_each(ids, {"metadata": {}, "spec": {"schedule": plan}}, uids)

    async def _patch_each(
        self, ids: str | list[str], body: dict[str, Any], uids: dict[str, str] | None
    ) -> list[str]:
        """Merge-patch each session with `body`; the ids patched."""

        async def one(session_id: str) -> str:
            namespace, name = records.parse_id(session_id, self.namespace)
            uid = (uids or {}).get(session_id)
            # A uid in the patch is a precondition: the API server refuses to patch
            # another object that took the name since.
            sent = {**body, "metadata": {**body["metadata"], "uid": uid}} if uid else body
            try:
                await self._call(
                    lambda api: objects.patch_custom(api, "sessions", namespace, name, sent)
                )
            except errors.Invalid as e:
                # A uid that differs is refused as a change of an immutable field.
                if uid and "metadata.uid" in e.message:
                    raise errors.Conflict(
                        f'session "{session_id}" is not the one read (uid {uid}): it was '
                        "deleted and made again; read it again",
                        status=409,
                    ) from None
                raise
            return session_id

        return await self._all(one(i) for i in records.as_ids(ids))

    async def wait(
        self,
        ids: str | list[str],
        timeout: float = 300,  # noqa: ASYNC109  (as kubectl wait --timeout)
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, bool]:
        # Over 60 lines: a Google-style docstring with an example; the code is one watch loop.
        """Wait until sessions are Ready (or, for batch runs, Succeeded), watching them.

        Args:
            ids: A session id or a list of them.
            timeout: Seconds to wait in all.
            on_change: Called with the Session object as it is now and after each change.

        Returns:
            True for each session that became Ready or Succeeded, False for one that
            ended otherwise (Failed, Expired, deleted); its status says why.

        Raises:
            Timeout: A session was still on its way after `timeout` seconds.

        Examples:
            >>> await session.wait(["my-notebook"], timeout=120)
            {'my-notebook': True}
        """
        wanted = records.as_ids(ids)
        deadline = asyncio.get_running_loop().time() + timeout
        pending = set(wanted)

        async def one(session_id: str) -> bool:
            namespace, name = records.parse_id(session_id, self.namespace)
            await self._read(session_id)  # NotFound at once for a wrong id
            while True:
                left = deadline - asyncio.get_running_loop().time()
                async for obj in self._stream(
                    functools.partial(
                        objects.watch_custom,
                        plural="sessions",
                        namespace=namespace,
                        name=name,
                        seconds=left,
                    )
                ):
                    if on_change is not None:
                        on_change(obj)
                    verdict = records.settled(obj)
                    if verdict is not None:
                        pending.discard(session_id)
                        return verdict
                # The stream ended: the session was deleted, or the server closed it.
                if (
                    await self._call(
                        lambda api: objects.get_custom(api, "sessions", namespace, name)
                    )
                    is None
                ):
                    pending.discard(session_id)
                    return False

        try:
            async with asyncio.timeout(timeout):
                return dict(zip(wanted, await self._all(one(i) for i in wanted), strict=True))
        except TimeoutError:
            late = ", ".join(i for i in wanted if i in pending)
            raise errors.Timeout(f"not Ready within {timeout:g} s: {late}") from None

    async def follow(self, ids: str | list[str]) -> AsyncIterator[tuple[str, str]]:
        """Follow the logs of sessions' started pods as they grow: (pod, line) pairs.

        Examples:
            >>> async for pod, line in session.follow("test-1"):
            ...     print(pod, line)
        """
        pods = [
            p
            for group in await self._all(self.pod_objects(i) for i in records.as_ids(ids))
            for p in group
            if records.started(p)
        ]
        if not pods:
            raise errors.KabinError(f"no started pod to follow in {', '.join(records.as_ids(ids))}")
        lines: asyncio.Queue[tuple[str, str] | BaseException | None] = asyncio.Queue()

        async def pump(pod: dict[str, Any]) -> None:
            namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            try:
                async for line in self._stream(
                    lambda api: objects.follow_pod_log(api, namespace, name, CONTAINER)
                ):
                    await lines.put((name, line))
                await lines.put(None)
            except BaseException as e:  # handed to the reader, which raises it
                await lines.put(e)

        tasks = [asyncio.create_task(pump(p)) for p in pods]
        try:
            running = len(tasks)
            while running:
                item = await lines.get()
                if item is None:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _stream(
        self, items: Callable[[client.ApiClient], AsyncIterator[T]]
    ) -> AsyncIterator[T]:
        """A long-lived stream (a watch, a followed log): no slot, no per-request timeout,
        the same typed errors."""
        api = await self._connection()
        try:
            async for item in items(api):
                yield item
        except ApiException as e:
            raise errors.from_api(e) from None
        except aiohttp.ClientError as e:
            host = api.configuration.host
            raise errors.Unreachable(f"cannot reach the API server at {host}: {e}") from None

    async def drives(self) -> list[dict[str, Any]]:
        """The Drives of this namespace: size, access, owner, phase, holder, queue.

        Examples:
            >>> await session.drives()
            [{'id': 'team-scratch', 'name': 'team-scratch', 'size': '100Gi',
              'access': 'shared', 'owner': 'alice', 'phase': 'Available', ...}]
        """
        found = await self.drive_objects()
        found.sort(key=records.sort_key)
        return [records.drive_record(d, home=self.namespace) for d in found]

    async def create_drive(
        self,
        name: str,
        size: str = "10Gi",
        access: str = "shared",
        reclaim_policy: str = "Retain",
        storage_class: str | None = None,
    ) -> str:
        """Create a Drive (a PVC with a lock) in this namespace.

        Args:
            name: Name of the drive.
            size: Capacity, a quantity such as "10Gi". It may only grow later.
            access: "private" (only your sessions) or "shared" (anyone who may create
                sessions in the namespace). Default "shared", as the API's.
            reclaim_policy: "Retain" keeps the data when the Drive is deleted; "Delete"
                deletes it.
            storage_class: StorageClass of the PVC. Default: the cluster's.

        Returns:
            The drive's id (its name).

        Examples:
            >>> await session.create_drive("data", size="50Gi", access="shared")
            'data'
        """
        manifest = records.drive_manifest(
            name=name,
            namespace=self.namespace,
            size=size,
            access=access,
            reclaim_policy=reclaim_policy,
            storage_class=storage_class,
        )
        if not await self._call(lambda api: objects.create_custom(api, "drives", manifest)):
            raise errors.AlreadyExists(
                f'drive "{name}" already exists in namespace "{self.namespace}"', status=409
            )
        return name

    async def environments(self) -> list[dict[str, Any]]:
        """The EnvironmentConfigs published on the cluster: image, types, interfaces, caps.

        Examples:
            >>> [e["name"] for e in await session.environments()]
            ['desktop', 'notebook', 'pytorch-gpu', 'ssh', 'vscode']
        """
        found = await self.environment_objects()
        return [
            records.environment_record(e)
            for e in sorted(found, key=lambda e: e["metadata"]["name"])
        ]

    # -- the objects as stored, for servers built on the client (kabin's gateway) ------------

    async def environment_objects(self) -> list[dict[str, Any]]:
        """The EnvironmentConfig objects, as stored.

        Examples:
            >>> [e["metadata"]["name"] for e in await session.environment_objects()]
            ['desktop', 'notebook']
        """
        return await self._call(
            lambda api: objects.list_custom_everywhere(api, "environmentconfigs")
        )

    async def drive_objects(self) -> list[dict[str, Any]]:
        """The Drive objects of this namespace, as stored.

        Examples:
            >>> [d["spec"]["access"] for d in await session.drive_objects()]
            ['private']
        """
        return await self._call(lambda api: objects.list_custom(api, "drives", self.namespace))

    async def event_objects(self) -> list[dict[str, Any]]:
        """The Events of this namespace.

        Examples:
            >>> [e["reason"] for e in await session.event_objects()]
            ['Pulled', 'Started']
        """
        return await self._call(lambda api: objects.list_events(api, self.namespace))

    async def node_objects(self) -> list[dict[str, Any]]:
        """The cluster's Nodes (needs cluster-wide read of nodes).

        Examples:
            >>> len(await session.node_objects())
            3
        """
        return await self._call(objects.list_nodes)

    async def create_object(self, plural: str, manifest: dict[str, Any]) -> bool:
        """Create a Session or Drive from its manifest; False when one of that name
        exists.

        Examples:
            >>> await session.create_object("drives", manifest)
            True
        """
        return await self._call(lambda api: objects.create_custom(api, plural, manifest))

    async def delete_drive(self, name: str) -> bool:
        """Delete a Drive of this namespace (its data too if its reclaim policy is Delete);
        False when there was none.

        Examples:
            >>> await session.delete_drive("scratch")
            True
        """
        return await self._call(
            lambda api: objects.delete_custom(api, "drives", self.namespace, name)
        )

    async def ping(self) -> dict[str, Any]:
        """The API server's version: whether it answers.

        Examples:
            >>> (await session.ping())["gitVersion"]
            'v1.36.3'
        """
        return await self._call(objects.server_version)
