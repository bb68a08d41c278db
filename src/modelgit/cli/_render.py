"""Rendering shared by the verb modules: JSON output, a progress bar, number formatting.

Nothing here imports the ``modelgit.cli`` package: the verb modules import this, never the package
that registers them (no import circle).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import click


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON (what every ``--json`` prints)."""
    import json  # here, not at the top: `modelgit --help` imports this module and never prints JSON

    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def emit_json_listing(before: dict[str, Any], key: str, items: Iterable[Any], after: dict[str, Any]) -> None:
    """Print ``{**before, key: [*items], **after}`` as JSON, the list written as it is consumed,
    one item a line (compact, by the C encoder: ``indent=`` makes json fall back to its pure-Python
    encoder, 0.6 s for 1,000 models of 20 versions). Nothing is printed until the first item is
    made, so an error there leaves stdout empty."""
    import json

    iterator = iter(items)
    first = next(iterator, _NOTHING)
    encode = json.JSONEncoder(default=str, ensure_ascii=True).encode
    parts = ["{"]
    for name, value in before.items():
        parts.append(f"\n  {encode(name)}: {_indented(value)},")
    parts.append(f"\n  {encode(key)}: [")
    if first is not _NOTHING:
        parts.append(f"\n    {encode(first)}")
        for item in iterator:
            parts.append(f",\n    {encode(item)}")
            if len(parts) >= 256:
                click.echo("".join(parts), nl=False)
                parts.clear()
        parts.append("\n  ")
    parts.append("]")
    for name, value in after.items():
        parts.append(f",\n  {encode(name)}: {_indented(value)}")
    parts.append("\n}")
    click.echo("".join(parts))


_NOTHING = object()


def _indented(value: Any) -> str:
    """``value`` as indented JSON one level in (as json.dumps(indent=2) of the enclosing object)."""
    import json

    return json.dumps(value, indent=2, default=str).replace("\n", "\n  ")


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on an interactive terminal; nothing in CI or when piped."""
    if os.environ.get("CI") or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update



def fmt(value: Any, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)
