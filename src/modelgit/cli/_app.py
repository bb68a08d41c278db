"""The ``modelgit`` click application: the group, the verb modules registered on it, and
:func:`run`, the only translator of errors to exit codes: invalid → 1, usage → 2, a bug → 3
(traceback only with ``--traceback``).

One module per verb group (``registry``, ``proposals``, ``evaluation``, ``runtime``, ``learning``),
each with ``register_commands(cli, pass_context)``; ``_render`` holds what they share. None of them
imports the ``modelgit.cli`` package's names (no import circle): the group and the context
decorator are handed to them.

Heavy modules (onnxruntime, numpy, jsonschema, rich) are imported inside the commands that need
them, so ``modelgit --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any

import click

from modelgit.cli._render import emit_json
from modelgit.errors import EXIT_BUG, EXIT_INVALID, EXIT_OK, EXIT_USAGE, ModelgitError


@dataclass
class Context:
    repo_path: str
    traceback: bool = False

    def repo(self) -> Any:
        from modelgit.gitstore import GitRepo

        return GitRepo.discover(self.repo_path)


pass_context = click.make_pass_decorator(Context)

# The name the verb modules used before the package (kept for modules written against it); new
# code imports modelgit.cli._render.emit_json.
_emit_json = emit_json


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-C", "--repo", "repo_path", default=".", metavar="PATH", show_default=True,
              help="Run as if started in PATH (any directory inside the git repository).")
@click.option("--traceback", is_flag=True, help="Show the full traceback when modelgit fails.")
@click.version_option(package_name="modelgit", message="modelgit %(version)s")
@click.pass_context
def cli(ctx: click.Context, repo_path: str, traceback: bool) -> None:
    """modelgit: a git-native model registry.

    Model versions, blend weights and A/B traffic splits live as YAML files in git. Changes are
    proposed as commits on branches; the runtime serves what is committed at a ref.
    """
    ctx.obj = Context(repo_path=repo_path, traceback=traceback)


# -- verbs: one module per group, each registering its commands on the group -----------------------
VERB_MODULES = (
    "modelgit.cli.registry",
    "modelgit.cli.proposals",
    "modelgit.cli.evaluation",
    "modelgit.cli.runtime",
    "modelgit.cli.learning",
)
# Verb modules outside this package, registered when they are installed (the HTTP server's).
OPTIONAL_VERB_MODULES = ("modelgit.cli_serve",)


def _register_verbs() -> None:
    for name in VERB_MODULES:
        importlib.import_module(name).register_commands(cli, pass_context)
    for name in OPTIONAL_VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module is there but one of its imports is not: a real error
                raise
            continue
        module.register_commands(cli, pass_context)


_register_verbs()


# -- entry point ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """The ``modelgit`` process. It owns its process, so here (and only here) process-wide state
    is tuned: onnxruntime's import-time logging quietened, the cyclic GC paused during bulk loads,
    helper processes allowed to parse uncached files."""
    from modelgit import _process

    os.environ.setdefault("ORT_LOGGING_LEVEL", "3")
    _process.tune_gc = True
    # Cold loads parse with helper processes too, one per other CPU this process may use (at most 3).
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _process.parse_helpers = min(cpus - 1, 3)
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (tests call this)."""
    args = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in args
    try:
        result = cli.main(args=args, prog_name="modelgit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_INVALID
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except ModelgitError as exc:
        click.echo(f"error: {exc.render()}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception:
        if show_traceback:
            import traceback

            traceback.print_exc()
        click.echo("error: modelgit failed unexpectedly; this is a bug, please report it "
                   "(rerun with --traceback for details)", err=True)
        return EXIT_BUG
    return result if isinstance(result, int) else EXIT_OK
