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
    import gc

    # Importing the click application (click and the stdlib it needs) makes tens of thousands of
    # objects that live as long as the process and no garbage. The cyclic GC walked them in
    # passes during the import, in the first collections of the run and in the full collections
    # of the interpreter's exit: ~10 ms of `modelgit --help`'s ~55 ms (paused and frozen here:
    # 53.0 -> 44.5 ms, interleaved). So they are made with the GC paused and moved to its
    # permanent generation (gc.freeze), as snapshot.Loader does with a bulk load. Only main, which
    # owns its process, does this; run (tests, other hosts) leaves the collector alone.
    enabled = gc.isenabled()
    gc.disable()
    try:
        app = importlib.import_module("modelgit.cli._app")
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
    app.main(argv)


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
