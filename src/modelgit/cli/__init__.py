"""The ``modelgit`` command line: parse, call one function of :mod:`modelgit.api`, render.

The click application (the group, the verbs, :func:`run`) lives in :mod:`modelgit.cli._app`; its
names are served from here on first use (``from modelgit.cli import run, cli``). This module is
the entry point and imports nothing heavy itself: ``modelgit --help``, the first command most
people run, prints the text click renders for it, stored ahead of time in
:mod:`modelgit.cli._help_text` (a test keeps the two equal), without importing click, which is
half of the start-up (~50 ms of ~110 ms on the 2-core CI box).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["main", "run"]


def main(argv: list[str] | None = None) -> None:
    """The ``modelgit`` process (see :func:`modelgit.cli._app.main`)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 1 and args[0] in ("--help", "-h"):
        from modelgit.cli import _help_text

        text = _help_text.for_this_terminal()
        if text is not None:
            sys.stdout.write(text)
            sys.stdout.flush()
            sys.exit(0)
    importlib.import_module("modelgit.cli._app").main(argv)


def __getattr__(name: str) -> Any:
    # The click application's names (run, cli, Context, pass_context, VERB_MODULES, _emit_json…),
    # imported on first use. Other private names are submodules: let the import system find them.
    if name.startswith("__") or (name.startswith("_") and name != "_emit_json"):
        raise AttributeError(f"module 'modelgit.cli' has no attribute {name!r}")
    app = importlib.import_module("modelgit.cli._app")
    try:
        return getattr(app, name)
    except AttributeError:
        raise AttributeError(f"module 'modelgit.cli' has no attribute {name!r}") from None
