"""The `kabin` command line (also `python -m kabin`)."""

from typing import Annotated

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
    import kopf

    import kabin.handlers
    import kabin.webhooks  # noqa: F401  (importing registers the handlers and webhooks)

    namespaces = namespace or []
    kopf.configure(verbose=verbose)
    kopf.run(clusterwide=not namespaces, namespaces=namespaces, standalone=True)


@app.command()
def agent(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """Run a session's agent (the sidecar of interactive session pods): readiness gates,
    activity Lease renewals and usage. Configured by KABIN_AGENT_* variables."""
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


def main() -> None:
    """Entry point of the `kabin` console script."""
    app()
