"""CLI verbs for debugging the runtime: which version a key routes to, and a one-off run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

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
        """Print the version of MODEL that serves KEY (sticky A/B routing)."""
        from modelgit.runtime.registry import Registry

        reg = Registry(obj.repo(), ref)
        version = reg.route(model, key=key)
        if as_json:
            from modelgit.cli import _emit_json

            _emit_json({"model": model, "key": key, "version": version, "commit": reg.commit,
                        "weight": reg.weight(f"{model}:{version}")})
        else:
            click.echo(version)
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

        import numpy as np

        from modelgit.runtime.registry import Registry

        try:
            loaded = np.load(input_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{input_path}: cannot read it as .npy/.npz: {exc}",
                             hint="save the input with numpy.save") from None
        inputs: Any = dict(loaded) if isinstance(loaded, np.lib.npyio.NpzFile) else loaded
        reg = Registry(obj.repo(), ref)
        version = reg.route(model, key=key)
        name = model if ":" in model else f"{model}:{version}"
        try:
            outputs = reg.run(name, inputs)
        except UsageError:
            raise
        except Exception as exc:  # onnxruntime rejects the input: say so, it is the user's data
            raise UsageError(f"{input_path}: the model rejected the input: {str(exc).strip()[:300]}",
                             hint="check the input's shape and dtype against 'modelgit show MODEL'") \
                from None
        click.echo(json.dumps({"model": model, "version": version, "commit": reg.commit,
                               "outputs": [np.asarray(o).tolist() for o in outputs]}))
        return EXIT_OK
