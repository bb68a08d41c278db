"""Human output of the CLI (tables). Imported only by commands that print tables, since rich
costs ~30 ms to import."""

from __future__ import annotations

from typing import Any

STATUS_STYLE = {"active": "bold green", "staging": "yellow", "deprecated": "dim", "archived": "dim"}


def _console() -> Any:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped: don't squeeze ids into 80 columns
        console = Console(width=200)
    return console


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def show(data: dict[str, Any], *, detailed: bool) -> None:
    from rich.table import Table

    console = _console()
    commit = (data["commit"] or "working tree")[:12]
    if not detailed:
        table = Table(title=f"models at {commit}", title_justify="left")
        for column in ("model", "task", "active", "traffic", "versions"):
            table.add_column(column)
        for model in data["models"]:
            traffic = " / ".join(f"{v} {_num(p)}%" for v, p in model["traffic"].items()) or "-"
            counts: dict[str, int] = {}
            for version in model["versions"]:
                counts[version["status"]] = counts.get(version["status"], 0) + 1
            summary = ", ".join(f"{n} {s}" for s, n in counts.items())
            table.add_row(model["model"], model["task"], model["active"] or "-", traffic, summary)
        console.print(table)
        if data["invalid"]:
            console.print(f"[red]invalid (see 'modelgit validate'):[/red] {', '.join(data['invalid'])}")
        return
    for model in data["models"]:
        console.print(f"[bold]{model['model']}[/bold] ({model['task']}) at {commit}")
        if model["description"]:
            console.print(f"  {model['description']}")
        table = Table()
        for column in ("version", "status", "traffic %", "weight", "artifact", "trained"):
            table.add_column(column)
        for version in model["versions"]:
            style = STATUS_STYLE.get(version["status"], "")
            table.add_row(
                version["version"], f"[{style}]{version['status']}[/{style}]",
                _num(model["traffic"].get(version["version"])), _num(version["weight"]),
                version["artifact"], version["trained"] or "-",
            )
        console.print(table)
