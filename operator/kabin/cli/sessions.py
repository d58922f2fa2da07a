"""`kabin create | ls | info | logs | stats | renew | suspend | resume | delete`: sessions
at a terminal.

Each command is a thin shell around the async client (`kabin.client.AsyncSession`):
it parses flags, calls the client, and prints a table or JSON/YAML.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.status import Status

from kabin.api import names
from kabin.api.environment import SESSION_TYPES
from kabin.cli.output import (
    Context,
    Format,
    Kubeconfig,
    Namespace,
    Output,
    age,
    connect,
    console,
    dump,
    emit,
    fail,
    run,
    table,
)
from kabin.client import AsyncSession, records
from kabin.client.records import NONE

Kind = Annotated[
    str | None,
    typer.Option("--type", "--kind", "-t", help=f"Session type: {', '.join(SESSION_TYPES)}."),
]
Phase = Annotated[
    str | None,
    typer.Option(
        "--status", "-s", help="Pending, Running, Succeeded, Failed, Terminating or Expired."
    ),
]
Names = Annotated[list[str], typer.Argument(help="Session ids: NAME or NAMESPACE/NAME.")]


def _env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--env: {pair!r} is not KEY=VALUE", code=2)
        env[key] = value
    return env


def create(
    name: Annotated[str, typer.Argument(help="Session name (NAME-1 ... NAME-N with --replicas).")],
    image: Annotated[str | None, typer.Option("--image", "-i", help="Container image.")] = None,
    environment: Annotated[
        str | None, typer.Option("--environment", "-e", help="EnvironmentConfig to run in.")
    ] = None,
    kind: Annotated[str, typer.Option("--type", "--kind", "-t", help="Session type.")] = "headless",
    cores: Annotated[
        float | None, typer.Option(help="CPU cores [default: 2, or the environment's].")
    ] = None,
    ram: Annotated[
        float | None, typer.Option(help="Memory in GB [default: 4, or the environment's].")
    ] = None,
    gpu: Annotated[int | None, typer.Option(help="GPUs.")] = None,
    cmd: Annotated[str | None, typer.Option(help="Command to run.")] = None,
    args: Annotated[
        str | None, typer.Option(help="Arguments, one string split as a shell would.")
    ] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE (repeatable).")] = None,
    replicas: Annotated[int, typer.Option("--replicas", "-r", help="Sessions to launch.")] = 1,
    drive: Annotated[str | None, typer.Option(help="Drive holding the session's files.")] = None,
    timeout: Annotated[
        int | None,
        typer.Option(help="Seconds until the session ends, -1 for never [default: env's]."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Show progress until Ready, then the URL.")
    ] = False,
    wait_timeout: Annotated[float, typer.Option(help="Seconds --wait waits.")] = 600,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
    output: Output = Format.table,
) -> None:
    # Over 60 lines: most of it is the Typer options, one per flag.
    """Launch a session (or --replicas of them), optionally waiting until it is Ready."""
    skaha_default = environment is None  # without an environment, Skaha's 2 cores, 4 GB

    async def work() -> None:
        async with connect(kubeconfig, context, namespace) as session:
            ids = await session.create(
                name,
                image,
                cores=cores if cores is not None else (2 if skaha_default else None),
                ram=ram if ram is not None else (4 if skaha_default else None),
                kind=kind,
                gpu=gpu,
                cmd=cmd,
                args=args,
                env=_env(env or []),
                replicas=replicas,
                environment=environment,
                drive=drive,
                timeout=timeout,
            )
            if output is not Format.table:
                dump(ids, output)
            else:
                for i in ids:
                    console.print(f"session/{i} created")
            if wait:
                await _wait(session, ids, wait_timeout, quiet=output is not Format.table)

    run(work)


def _milestones(obj: dict[str, Any]) -> list[str]:
    """What a session has reached so far, in the order people care about."""
    status = obj.get("status") or {}
    reached = []
    if names.is_true(status, names.SCHEDULED):
        reached.append(f"Scheduled ({names.condition(status, names.SCHEDULED).get('message', '')})")
    if names.is_true(status, names.DRIVE_READY):
        granted = names.condition(status, names.DRIVE_READY).get("message", "")
        reached.append(f"Drive granted ({granted})")
    for endpoint in status.get("endpoints") or []:
        if endpoint.get("ready"):
            reached.append(f"{endpoint['name']} ready")
    if names.is_true(status, names.READY):
        reached.append(names.READY)
    return reached


async def _wait(session: AsyncSession, ids: list[str], within: float, *, quiet: bool) -> None:
    """Show each session's progress until it is Ready; fail with its reason otherwise."""
    printed: dict[str, set[str]] = {i: set() for i in ids}
    latest: dict[str, dict[str, Any]] = {}
    spinner = Status("waiting", console=console)

    def show(obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        latest[name] = obj
        for step in _milestones(obj):
            if step not in printed[name] and not quiet:
                printed[name].add(step)
                spinner.console.print(f"{name}: {step}", soft_wrap=True)
        ready = names.condition(obj.get("status"), names.READY)
        spinner.update(f"{name}: {ready.get('message') or 'waiting for the operator'}")

    if not quiet:
        spinner.start()
    try:
        verdicts = await session.wait(ids, timeout=within, on_change=show)
    finally:
        spinner.stop()
    failed = [i for i, ok in verdicts.items() if not ok]
    for i in ids:
        status = latest.get(i, {}).get("status") or {}
        if i not in failed and not quiet:
            url = status.get("connectURL")
            text = f"{i}: connect at {url}" if url else f"{i}: {status.get('phase')}"
            console.print(text, soft_wrap=True)  # a URL stays whole, to copy
    if failed:
        reasons = []
        for i in failed:
            status = latest.get(i, {}).get("status") or {}
            why = ": ".join(x for x in (status.get("reason"), status.get("message")) if x)
            reasons.append(f"{i} is {status.get('phase', 'gone')}" + (f" ({why})" if why else ""))
        fail("; ".join(reasons))


def ls(
    kind: Kind = None,
    status: Phase = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Every namespace you may read.")
    ] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
    output: Output = Format.table,
) -> None:
    """List sessions (Skaha's fetch), oldest first."""

    async def work() -> tuple[str, list[dict[str, Any]], list[dict[str, str]]]:
        async with connect(kubeconfig, context, namespace) as session:
            listed = await session.listed(kind, status, "all" if all_namespaces else None)
            images = await session.images(listed)
            found = [records.record(s, home=session.namespace, images=images) for s in listed]
            return session.namespace, listed, found

    home, listed, found = run(work)

    def rows() -> Any:
        columns = ["name", "type", "status", "queue", "cpu", "ram", "gpu", "age"]
        if all_namespaces:
            columns.insert(0, "namespace")
        body = []
        for s, obj in zip(found, listed, strict=True):
            ns = s["id"].rpartition("/")[0] or home
            row = [s["name"], s["type"], s["status"], records.queue_of(obj)]
            row += [s["requestedCPUCores"], s["requestedRAM"], s["requestedGPUCores"]]
            row += [age(s["startTime"])]
            body.append([ns, *row] if all_namespaces else row)
        return table(columns, body)

    emit(found, output, rows)


def info(
    ids: Names,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
    output: Output = Format.table,
) -> None:
    """Describe sessions: Skaha's record, plus conditions and endpoints in a table."""

    async def work() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with connect(kubeconfig, context, namespace) as session:
            records = await session.info(ids)
            objects = [await session.get(i) for i in ids] if output is Format.table else []
            return records, objects

    records, objects = run(work)

    def describe() -> Any:
        from rich.console import Group

        parts: list[Any] = []
        for record, obj in zip(records, objects, strict=True):
            status = obj.get("status") or {}
            fields = [(k, v) for k, v in record.items() if v != NONE]
            if status.get("message"):
                fields.append(("message", f"{status.get('reason', '')}: {status['message']}"))
            parts.append(table(["field", "value"], fields))
            conditions = status.get("conditions") or []
            if conditions:
                parts.append(
                    table(
                        ["condition", "status", "reason", "message"],
                        [
                            (c["type"], c["status"], c.get("reason"), c.get("message"))
                            for c in conditions
                        ],
                    )
                )
            endpoints = status.get("endpoints") or []
            if endpoints:
                parts.append(
                    table(
                        ["interface", "ready", "url"],
                        [(e["name"], e["ready"], e["url"]) for e in endpoints],
                    )
                )
        return Group(*parts)

    emit(records, output, describe)


def logs(
    ids: Names,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Follow the logs.")] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Print the logs of sessions (every replica's); -f follows them."""

    async def work() -> None:
        async with connect(kubeconfig, context, namespace) as session:
            if follow:
                async for pod, line in session.follow(ids):
                    print(f"[{pod}] {line}" if len(ids) > 1 else line, flush=True)
                return
            found = await session.logs(ids)
            for session_id, text in found.items():
                if len(found) > 1:
                    print(f"==> session {session_id} <==")
                print(text, end="" if text.endswith("\n") or not text else "\n")

    run(work)


def stats(
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
    output: Output = Format.table,
) -> None:
    """Platform statistics: sessions by type, cores, memory and GPUs."""

    async def work() -> dict[str, Any]:
        async with connect(kubeconfig, context, namespace) as session:
            return await session.stats()

    found = run(work)

    def rows() -> Any:
        cores, ram, gpus = found["cores"], found["ram"], found["gpus"]
        body: list[tuple[str, Any, Any]] = [
            (f"sessions: {kind}", count, "")
            for kind, count in found["instances"].items()
            if count or kind == "total"
        ]
        body.append(("cores", cores["requestedCPUCores"], cores["cpuCoresAvailable"]))
        body.append(("memory", ram.get("requestedRAM", ""), ram.get("ramAvailable", "")))
        for product, gpu in gpus.items():
            body.append((f"gpus: {product}", gpu["requested"], gpu["available"]))
        largest = cores["maxCPUCores"]
        body.append(("largest node", f"{largest['cpuCores']} cores", largest["withRam"]))
        return table(["resource", "requested", "available"], body)

    emit(found, output, rows)


def renew(
    ids: Names,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Restart the absolute timeout of sessions (sets kabin.dev/renew)."""
    _each((kubeconfig, context, namespace), lambda session: session.renew(ids), "renewed")


def _each(
    where: tuple[Any, Any, Any],
    call: Callable[[AsyncSession], Awaitable[list[str]]],
    done: str,
) -> list[str]:
    """Connect, make one call of the client that acts on sessions, and say `done` of
    each session it acted on; their ids."""

    async def work() -> list[str]:
        async with connect(*where) as session:
            return await call(session)

    acted: list[str] = run(work)
    for i in acted:
        console.print(f"session/{i} {done}")
    return acted


def _chosen(session: Any, ids: list[str] | None, prefix: str | None) -> Any:
    """The ids given, or those of every session (matching --prefix)."""

    async def pick() -> list[str]:
        if ids:
            return list(ids)
        found = await session.fetch(kind=None, status=None)
        return [s["id"] for s in found if s["id"].startswith(prefix or "")]

    return pick()


Some = Annotated[list[str] | None, typer.Argument(help="Session ids.")]
Prefix = Annotated[
    str | None, typer.Option("--prefix", "-p", help="Every session whose name starts so.")
]
Every = Annotated[bool, typer.Option("--all", help="Every session in the namespace.")]


def _suspend_or_resume(
    verb: str, ids: list[str] | None, prefix: str | None, every: bool, where: tuple[Any, Any, Any]
) -> None:
    if bool(ids) + (prefix is not None) + every != 1:
        fail("give session ids, --prefix or --all (one of them)", code=2)

    async def act(session: AsyncSession) -> list[str]:
        chosen = await _chosen(session, ids, prefix)
        return list(await getattr(session, verb)(chosen)) if chosen else []

    if not _each(where, act, f"{verb}d" if verb.endswith("e") else f"{verb}ed"):
        console.print("no session matched")


def _acting(verb: str, doc: str) -> Callable[..., None]:
    """The `kabin suspend` or `kabin resume` command."""

    def command(
        ids: Some = None,
        prefix: Prefix = None,
        every: Every = False,
        kubeconfig: Kubeconfig = None,
        context: Context = None,
        namespace: Namespace = None,
    ) -> None:
        _suspend_or_resume(verb, ids, prefix, every, (kubeconfig, context, namespace))

    command.__doc__ = doc
    return command


suspend = _acting(
    "suspend", "Suspend sessions: stop their pods and free their drives, keeping them to resume."
)
resume = _acting("resume", "Resume suspended or expired sessions on their drives, anew.")


def schedule(
    ids: Annotated[list[str], typer.Argument(help="Session ids.")],
    suspend: Annotated[
        str | None, typer.Option("--suspend", help='When to suspend: cron, e.g. "0 19 * * 1-5".')
    ] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help='When to resume: cron, e.g. "0 8 * * 1-5".')
    ] = None,
    time_zone: Annotated[
        str | None, typer.Option("--time-zone", "--tz", help='IANA zone, e.g. "Europe/Paris".')
    ] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Suspend and resume sessions at set times (no --suspend or --resume: no schedule)."""

    _each(
        (kubeconfig, context, namespace),
        lambda session: session.schedule(ids, suspend=suspend, resume=resume, time_zone=time_zone),
        "scheduled" if suspend or resume else "unscheduled",
    )


def delete(
    ids: Annotated[list[str] | None, typer.Argument(help="Session ids to delete.")] = None,
    prefix: Annotated[
        str | None, typer.Option("--prefix", "-p", help="Delete sessions whose name starts so.")
    ] = None,
    kind: Kind = None,
    status: Phase = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only print what would be deleted.")
    ] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Delete sessions by id, or every one matching --prefix (and --type, --status)."""
    if bool(ids) == (prefix is not None):
        fail("give session ids or --prefix, not both and not neither", code=2)
    if ids and (kind or status):
        fail("--type and --status go with --prefix", code=2)

    async def work() -> dict[str, bool]:
        async with connect(kubeconfig, context, namespace) as session:
            if prefix is not None:
                found = await session.fetch(kind=kind, status=status)
                chosen = [s["id"] for s in found if s["id"].startswith(prefix)]
            else:
                chosen = list(ids or [])
            if dry_run:
                if ids:
                    await session.info(chosen)  # NotFound names a wrong id
                return dict.fromkeys(chosen, False)
            return await session.destroy(chosen)

    result = run(work)
    for session_id, deleted in result.items():
        if dry_run:
            console.print(f"session/{session_id} would be deleted (dry run)")
        elif deleted:
            console.print(f"session/{session_id} deleted")
    missing = [i for i, deleted in result.items() if not deleted and not dry_run]
    if missing:
        fail("; ".join(f'session "{i}" not found' for i in missing))
    if not result:
        console.print("no session matches")
