"""The `kabin` command line (also `python -m kabin`)."""

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="kabin",
    help="Interactive and batch compute sessions on Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Interactive and batch compute sessions on Kubernetes."""


@app.command()
def operator(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Watch only this namespace (repeatable)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """Run the kabin operator in the foreground, watching all namespaces by default."""
    import json
    import logging
    import os

    import kopf

    import kabin.handlers
    import kabin.webhooks  # noqa: F401  (importing registers the handlers and webhooks)
    from kabin.settings import current, load

    if namespace:  # the flags are the setting: what is watched is what is cached
        os.environ["KABIN_NAMESPACES"] = json.dumps(namespace)
        load()
    namespaces = list(current().namespaces)
    json_logs = current().log_format == "json"
    kopf.configure(
        verbose=verbose, log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.FULL
    )
    if not verbose:
        # kopf logs every handler call of every watch event at INFO ("Handler
        # 'child_changed' succeeded."): in a burst, a line per pod change, and a tenth of
        # the operator's CPU. Its warnings and errors, and kabin's own lines, stay.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    port = current().liveness_port
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=True,  # kabin's own leader election, not kopf's peering (handlers/leader.py)
        liveness_endpoint=f"http://0.0.0.0:{port}/healthz" if port else None,
    )


@app.command()
def agent(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """Run a session's agent, the sidecar of interactive session pods.

    It sets the readiness gates, renews the activity Lease and reports usage,
    configured by the KABIN_AGENT_* variables the operator sets in the pod.
    """
    import asyncio
    import logging

    from pydantic import ValidationError

    from kabin.agent import run
    from kabin.settings import AgentSettings

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = AgentSettings()  # the required fields come from the environment
    except ValidationError as e:
        missing = ", ".join(f"KABIN_AGENT_{str(err['loc'][0]).upper()}" for err in e.errors())
        raise typer.BadParameter(f"set {missing}", param_hint="environment") from e
    asyncio.run(run(settings))


@app.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [8000].")] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help='kube-apiserver\'s static token file (token,user,uid,"groups"). '
            "Default: check tokens with a Kubernetes TokenReview."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """Serve Skaha's REST API on kabin (`skaha` and `canfar` clients work unchanged).

    Settings not given as options come from KABIN_GATEWAY_* variables.
    """
    import asyncio
    import contextlib
    import logging

    from kabin.gateway import serve
    from kabin.settings import GatewaySettings

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    given: dict[str, Any] = {
        "host": host,
        "port": port,
        "token_file": token_file and str(token_file),
    }
    settings = GatewaySettings(**{k: v for k, v in given.items() if v is not None})

    async def run() -> None:
        runner = await serve(settings)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops it
        asyncio.run(run())


from kabin.cli import catalog, sessions  # noqa: E402  (after `app`, which they extend)

app.command("create")(sessions.create)
app.command("ls")(sessions.ls)
app.command("list", hidden=True)(sessions.ls)
app.command("info")(sessions.info)
app.command("logs")(sessions.logs)
app.command("stats")(sessions.stats)
app.command("renew")(sessions.renew)
app.command("suspend")(sessions.suspend)
app.command("resume")(sessions.resume)
app.command("schedule")(sessions.schedule)
app.command("delete")(sessions.delete)
app.add_typer(catalog.drives, name="drives")
app.add_typer(catalog.envs, name="envs")


def main() -> None:
    """Entry point of the `kabin` console script, and of `kubectl kabin` (kubectl runs
    the `kubectl-kabin` script it finds on PATH)."""
    plugin = Path(sys.argv[0]).name.startswith("kubectl-")
    app(prog_name="kubectl kabin" if plugin else "kabin")
