"""CLI verbs for debugging the runtime: which version a key routes to, and a one-off run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from modelgit.cli._render import emit_json
from modelgit.errors import EXIT_OK, ModelgitError, UsageError


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
        from modelgit.runtime.registry import Registry

        reg = Registry(obj.repo(), ref)
        name = model.partition(":")[0]
        routed, serving = reg.resolve(model, key=key)
        if as_json:
            emit_json({"model": name, "key": key, "version": routed, "serving": serving,
                        "commit": reg.commit, "weight": reg.weight(f"{name}:{serving}")})
        else:
            click.echo(routed)
            if serving != routed:
                reason = reg.info(name)["errors"].get(routed, "it cannot be loaded")
                click.echo(f"note: '{routed}' cannot be loaded ({reason}); the active version "
                           f"'{serving}' serves it", err=True)
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

        from modelgit.runtime.inputs import input_problem
        from modelgit.runtime.registry import HostedModel, Registry
        from modelgit.sessions import Deadline

        inputs = _read_inputs(input_path)
        reg = Registry(obj.repo(), ref)
        name, _, pinned = model.partition(":")
        routed, serving = reg.resolve(model, key=key)
        candidates = [serving]
        active = reg.info(name)["active"]
        if not pinned and active and active != serving:
            candidates.append(active)  # the runtime answers with the active version too
        problems: list[str] = []
        for version in candidates:
            session = reg.session(f"{name}:{version}")
            if isinstance(session, HostedModel):
                raise UsageError(f"'{name}' version '{version}' is hosted by {session.provider}; "
                                 f"call the provider with {session.model_id}")
            problem = input_problem(session, inputs, given="the .npz")
            if problem is None:
                deadline = Deadline()
                try:
                    with deadline:
                        outputs = reg.run(f"{name}:{version}", inputs, run_options=deadline.run_options)
                except ModelgitError:
                    raise
                except Exception as exc:  # onnxruntime refuses the input
                    deadline.check(f"{name}:{version}")
                    problem = f"the model rejected the input: {str(exc).strip()[:300]}"
                else:
                    result: dict[str, Any] = {"model": name, "version": version, "commit": reg.commit,
                                              "outputs": [np.asarray(o).tolist() for o in outputs]}
                    if version != routed:
                        result["routed"] = routed
                        result["fallback"] = problems[0] if problems else \
                            reg.info(name)["errors"].get(routed, "")
                    click.echo(json.dumps(result))
                    return EXIT_OK
            problems.append(f"'{version}': {problem}" if len(candidates) > 1 else problem)
        raise UsageError(f"{input_path}: " + "; ".join(problems),
                         hint=f"check the input's shape and dtype against 'modelgit show {name}'")


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
