"""What every `kabin` command shares: connection options, `-o table|json|yaml`,
tables that fit 80 columns, and errors that exit non-zero with the API server's
message."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, NoReturn, TypeVar

import typer
import yaml
from rich import box
from rich.console import Console
from rich.table import Table

from kabin.api.meta import parse_time
from kabin.client import AsyncSession, KabinError

T = TypeVar("T")

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


class Format(StrEnum):
    """How a command prints what it found."""

    table = "table"
    json = "json"
    yaml = "yaml"


Kubeconfig = Annotated[
    str | None, typer.Option("--kubeconfig", help="Kubeconfig file (default: standard loading).")
]
Context = Annotated[str | None, typer.Option("--context", help="Kubeconfig context.")]
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Namespace (default: the context's)."),
]
Output = Annotated[
    Format, typer.Option("--output", "-o", help="table, json or yaml.", case_sensitive=False)
]


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> AsyncSession:
    """The client of a command, from its connection options."""
    return AsyncSession(kubeconfig=kubeconfig, context=context, namespace=namespace)


def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine; a failure prints `error: <message>` and exits 1."""
    try:
        return asyncio.run(work())
    except KabinError as e:
        fail(e.message)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    errors.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def dump(data: Any, fmt: Format) -> None:
    """Print `data` as JSON or YAML."""
    if fmt is Format.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


def emit(data: Any, fmt: Format, table: Callable[[], Any]) -> None:
    """Print `data` as asked: a table (built by `table`), JSON or YAML."""
    if fmt is Format.table:
        console.print(table())
    else:
        dump(data, fmt)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A kubectl-like table: upper-case headers, no borders, cells wrap to fit the width."""
    grid = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column.upper(), overflow="fold")
    for row in rows:
        grid.add_row(*("" if v is None else str(v) for v in row))
    return grid


def age(timestamp: str | None, *, now: datetime | None = None) -> str:
    """A timestamp as kubectl shows ages: 45s, 12m, 3h, 2d."""
    if not timestamp or timestamp == "<none>":
        return "<none>"
    then = parse_time(timestamp)
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:  # as kubectl: 90s, 119m, 47h, then the larger unit
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"
