"""Rendering shared by the verb modules: JSON output, a progress bar, number formatting.

Nothing here imports the ``modelgit.cli`` package: the verb modules import this, never the package
that registers them (no import circle).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON (what every ``--json`` prints)."""
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


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
