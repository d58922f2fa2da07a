"""`kabin drives ls | create` and `kabin envs ls`: what sessions run on and in."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kabin.cli.output import (
    Context,
    Format,
    Kubeconfig,
    Namespace,
    Output,
    connect,
    console,
    emit,
    run,
    table,
)

drives = typer.Typer(
    help="Drives: storage held by one running session at a time.", no_args_is_help=True
)
envs = typer.Typer(
    help="EnvironmentConfigs: the session types administrators publish.", no_args_is_help=True
)


@drives.command("ls")
@drives.command("list", hidden=True)
def drives_ls(
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
    output: Output = Format.table,
) -> None:
    """List the drives of a namespace, with who holds them and who waits."""

    async def work() -> list[dict[str, Any]]:
        async with connect(kubeconfig, context, namespace) as session:
            return await session.drives()

    found = run(work)
    emit(
        found,
        output,
        lambda: table(
            ["name", "size", "access", "owner", "phase", "holder", "waiting"],
            [
                (
                    d["name"],
                    d["size"],
                    d["access"],
                    d["owner"],
                    d["phase"],
                    d["holder"],
                    len(d["waiting"]),
                )
                for d in found
            ],
        ),
    )


@drives.command("create")
def drives_create(
    name: Annotated[str, typer.Argument(help="Drive name.")],
    size: Annotated[str, typer.Option(help="Capacity, such as 10Gi (may only grow).")] = "10Gi",
    access: Annotated[
        str, typer.Option(help="private (your sessions only) or shared (the namespace's).")
    ] = "shared",
    reclaim_policy: Annotated[
        str, typer.Option(help="Retain or Delete the data when the Drive is deleted.")
    ] = "Retain",
    storage_class: Annotated[
        str | None, typer.Option(help="StorageClass [default: the cluster's].")
    ] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Create a drive."""

    async def work() -> str:
        async with connect(kubeconfig, context, namespace) as session:
            return await session.create_drive(
                name,
                size=size,
                access=access,
                reclaim_policy=reclaim_policy,
                storage_class=storage_class,
            )

    console.print(f"drive/{run(work)} created")


@envs.command("ls")
@envs.command("list", hidden=True)
def envs_ls(
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    output: Output = Format.table,
) -> None:
    """List the published EnvironmentConfigs: their types, interfaces and image."""

    async def work() -> list[dict[str, Any]]:
        async with connect(kubeconfig, context, None) as session:
            return await session.environments()

    found = run(work)
    emit(
        found,
        output,
        lambda: table(
            ["name", "types", "interfaces", "image"],
            [
                (e["name"], ", ".join(e["types"]), ", ".join(e["interfaces"]), e["image"])
                for e in found
            ],
        ),
    )
