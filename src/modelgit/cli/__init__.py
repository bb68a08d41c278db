"""The ``modelgit`` command line: parse, call one function of :mod:`modelgit.api`, render.

The click application (the group, the verbs, :func:`run`) lives in :mod:`modelgit.cli._app`; its
names are served from here on first use (``from modelgit.cli import run, cli``).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["main", "run"]


def main(argv: list[str] | None = None) -> None:
    """The ``modelgit`` process (see :func:`modelgit.cli._app.main`)."""
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
