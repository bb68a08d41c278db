"""Human output of the CLI (tables). Imported only by commands that print tables, since rich
costs ~30 ms to import.

Every value from a registry file goes through :func:`_text`: rich reads ``[...]`` as markup, so a
description like "see [/docs]" would otherwise vanish or crash the command.
"""

from __future__ import annotations

from typing import Any

STATUS_STYLE = {"active": "bold green", "staging": "yellow", "deprecated": "dim", "archived": "dim"}


def _console() -> Any:
    from rich.console import Console

    # emoji=False: ":smile:" in a description is text, not an emoji code.
    console = Console(emoji=False)
    if not console.is_terminal:  # piped: don't squeeze ids into 80 columns
        console = Console(width=200, emoji=False)
    return console


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _text(value: Any) -> str:
    from rich.markup import escape

    return escape(str(value))


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
            table.add_row(_text(model["model"]), _text(model["task"]), _text(model["active"] or "-"),
                          _text(traffic), _text(summary))
        console.print(table)
        if data["invalid"]:
            console.print(f"[red]invalid (see 'modelgit validate'):[/red] {_text(', '.join(data['invalid']))}")
        return
    for model in data["models"]:
        console.print(f"[bold]{_text(model['model'])}[/bold] ({_text(model['task'])}) at {commit}")
        if model["description"]:
            console.print(f"  {_text(model['description'])}")
        table = Table()
        for column in ("version", "status", "traffic %", "weight", "artifact", "trained"):
            table.add_column(column)
        for version in model["versions"]:
            style = STATUS_STYLE.get(version["status"], "")
            table.add_row(
                _text(version["version"]), f"[{style}]{_text(version['status'])}[/{style}]",
                _num(model["traffic"].get(version["version"])), _num(version["weight"]),
                _text(version["artifact"]), _text(version["trained"] or "-"),
            )
        console.print(table)
