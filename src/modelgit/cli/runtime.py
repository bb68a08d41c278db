"""CLI verbs for debugging the runtime: which version a key routes to, and a one-off run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from modelgit.cli._render import emit_json
from modelgit.errors import EXIT_OK, UsageError


def register_commands(cli: click.Group, pass_context: Callable[..., Any]) -> None:
    @cli.command()
    @click.argument("model")
    @click.option("--key", default=None, help="The routing key (user id, session id…); "
                                              "without one, a weighted random choice.")
    @click.option("--ref", default="HEAD", show_default=True, help="Route as the registry at this ref says.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_context
    def route(obj: Any, model: str, key: str | None, ref: str, as_json: bool) -> int:
        """Print the version of MODEL that serves KEY (sticky A/B routing).

        When the routed version cannot load, the active version serves it: the text output
        says so on stderr, the JSON output has both ("version" and "serving")."""
        from modelgit import api

        found = api.route(obj.repo(), model, key=key, ref=ref)
        if as_json:
            emit_json(found.as_dict())
        else:
            click.echo(found.version)
            if found.serving != found.version:
                click.echo(f"note: '{found.version}' cannot be loaded ({found.unloadable}); the active version "
                           f"'{found.serving}' serves it", err=True)
        return EXIT_OK

    @cli.command("run")
    @click.argument("model")
    @click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
                  help="A .npy file with the input array (or .npz with one array per input name).")
    @click.option("--key", default=None, help="The routing key.")
    @click.option("--ref", default="HEAD", show_default=True, help="Serve the registry at this ref.")
    @pass_context
    def run_model(obj: Any, model: str, input_path: str, key: str | None, ref: str) -> int:
        """Run MODEL (or MODEL:VERSION) on an input array and print the outputs as JSON."""
        import json

        from modelgit import api

        inputs = _read_inputs(input_path)
        result = api.run(obj.repo(), model, inputs, key=key, ref=ref, source=input_path, given="the .npz")
        click.echo(json.dumps(result.as_dict()))
        return EXIT_OK


def _read_inputs(input_path: str) -> Any:
    """The array of a .npy file, or a dict of the arrays of a .npz file; exit 2 when unreadable."""
    import numpy as np

    try:
        loaded = np.load(input_path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {name: loaded[name] for name in loaded.files}
        return loaded
    except FileNotFoundError:
        raise UsageError(f"{input_path}: no such file") from None
    except Exception as exc:  # ValueError, EOFError, OSError, zipfile errors, pickled objects…
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{input_path}: cannot read it as .npy/.npz: {reason[:200]}",
                         hint="save the input with numpy.save (one array) or numpy.savez "
                              "(one array per input name)") from None
