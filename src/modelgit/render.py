"""Human output of the CLI (tables).

Two ways to draw the same table: rich (colours, wrapping to the terminal) for a few rows on a
terminal, and a plain aligned table drawn here with the same box characters for everything else.
rich costs ~30 ms to import and lays out a 1,000-row table in ~3 s (measured on the 2-core CI box:
a third of ``modelgit show`` at 1,000 models); the plain table is a few string joins per row.
Past :data:`PLAIN_ROWS` rows, or when stdout is not a terminal (piped, redirected, CI), the plain
table is printed.

Every value from a registry file goes through :func:`_clean` (control characters shown as escapes,
so a description cannot move the cursor or recolour the terminal) and, for rich, :func:`_rich_escape`:
rich reads ``[...]`` as markup, so a description like "see [/docs]" would otherwise vanish or crash
the command.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import click

STATUS_STYLE = {"active": "bold green", "staging": "yellow", "deprecated": "dim", "archived": "dim"}
#: Past this many rows a table is printed plain even on a terminal.
PLAIN_ROWS = 200
SUMMARY_COLUMNS = ("model", "task", "active", "traffic", "versions")
VERSION_COLUMNS = ("version", "status", "traffic %", "weight", "artifact", "trained")
# rich's default box (HEAVY_HEAD): top, header, under the header, rows, bottom; ASCII when the output
# encoding cannot carry the box characters.
_BOX = {"top": "┏━┳┓", "head": "┃┃┃", "rule": "┡━╇┩", "row": "│││", "bottom": "└─┴┘"}
_ASCII_BOX = {"top": "+-++", "head": "|||", "rule": "+-++", "row": "|||", "bottom": "+-++"}
_CHUNK_LINES = 512  # lines per write: one write per row costs more than drawing it


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _clean(value: Any) -> str:
    """``value`` as text safe to print: control and other unprintable characters as escapes."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _width(text: str) -> int:
    """Terminal columns of ``text``: wide (CJK) characters take two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def _is_terminal() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None,
                *, ascii_only: bool = False) -> Iterator[str]:
    """The lines of an aligned table (cells already cleaned), drawn like rich's default table."""
    box = _ASCII_BOX if ascii_only else _BOX
    widths = [_width(c) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            w = _width(cell)
            if w > widths[i]:
                widths[i] = w

    def line(kind: str, cells: Sequence[str]) -> str:
        left, mid, right = box[kind]
        return left + mid.join(f" {c}{' ' * (w - _width(c))} " for c, w in zip(cells, widths, strict=True)) + right

    def rule(kind: str) -> str:
        left, fill, mid, right = box[kind]
        return left + mid.join(fill * (w + 2) for w in widths) + right

    if title is not None:
        yield title
    yield rule("top")
    yield line("head", columns)
    yield rule("rule")
    for row in rows:
        yield line("row", row)
    yield rule("bottom")


def _write_lines(lines: Iterable[str]) -> None:
    chunk: list[str] = []
    for text in lines:
        chunk.append(text)
        if len(chunk) >= _CHUNK_LINES:
            click.echo("\n".join(chunk))
            chunk.clear()
    if chunk:
        click.echo("\n".join(chunk))


def _ascii_only() -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return "utf" not in encoding.lower()


def _rich_console() -> Any:
    from rich.console import Console

    # emoji=False: ":smile:" in a description is text, not an emoji code.
    console = Console(emoji=False)
    if not console.is_terminal:  # piped: don't squeeze ids into 80 columns
        console = Console(width=200, emoji=False)
    return console


def _summary_row(model: dict[str, Any]) -> tuple[str, ...]:
    traffic = " / ".join(f"{v} {_num(p)}%" for v, p in model["traffic"].items()) or "-"
    counts = model.get("statuses")
    if counts is None:
        counts = {}
        for version in model["versions"]:
            counts[version["status"]] = counts.get(version["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    return (_clean(model["model"]), _clean(model["task"]), _clean(model["active"] or "-"), _clean(traffic),
            _clean(summary))


def _version_row(model: dict[str, Any], version: dict[str, Any]) -> tuple[str, ...]:
    return (_clean(version["version"]), _clean(version["status"]), _num(model["traffic"].get(version["version"])),
            _num(version["weight"]), _clean(version["artifact"]), _clean(version["trained"] or "-"))


def show(commit: str | None, models: Iterable[dict[str, Any]], invalid: Sequence[str], *, detailed: bool,
         plain: bool | None = None) -> None:
    """Print ``show``'s models (their ``as_dict()`` form, consumed once; for the summary, the
    ``statuses`` form of :func:`modelgit.views.model_summary` does): one summary row per model, or
    with ``detailed`` each model's versions. ``plain`` forces (True) or forbids (False)
    the plain table; by default it is chosen as the module doc says."""
    where = (commit or "working tree")[:12]
    terminal = _is_terminal() if plain is None else not plain
    if not detailed:
        rows = [_summary_row(m) for m in models]
        invalid_line = f"invalid (see 'modelgit validate'): {_clean(', '.join(invalid))}" if invalid else None
        if not terminal or len(rows) > PLAIN_ROWS:
            lines = plain_table(SUMMARY_COLUMNS, rows, f"models at {where}", ascii_only=_ascii_only())
            _write_lines([*lines, invalid_line] if invalid_line else lines)
            return
        from rich.table import Table

        console = _rich_console()
        table = Table(title=f"models at {where}", title_justify="left")
        for column in SUMMARY_COLUMNS:
            table.add_column(column)
        for row in rows:
            table.add_row(*(_rich_escape(cell) for cell in row))
        console.print(table)
        if invalid_line:
            console.print(f"[red]invalid (see 'modelgit validate'):[/red] {_rich_escape(_clean(', '.join(invalid)))}")
        return
    for model in models:
        heading = f"{_clean(model['model'])} ({_clean(model['task'])}) at {where}"
        description = f"  {_clean(model['description'])}" if model["description"] else None
        rows = [_version_row(model, v) for v in model["versions"]]
        if not terminal or len(rows) > PLAIN_ROWS:
            _write_lines([heading, *([description] if description else []),
                          *plain_table(VERSION_COLUMNS, rows, ascii_only=_ascii_only())])
            continue
        from rich.table import Table

        console = _rich_console()
        console.print(f"[bold]{_rich_escape(heading)}[/bold]")
        if description:
            console.print(_rich_escape(description))
        table = Table()
        for column in VERSION_COLUMNS:
            table.add_column(column)
        for row in rows:
            style = STATUS_STYLE.get(row[1], "")
            cells = [_rich_escape(cell) for cell in row]
            cells[1] = f"[{style}]{cells[1]}[/{style}]" if style else cells[1]
            table.add_row(*cells)
        console.print(table)


def _rich_escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
