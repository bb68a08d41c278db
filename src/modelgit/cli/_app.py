"""The ``modelgit`` click application: the group, the verb modules registered on it, and
:func:`run`, the only translator of errors to exit codes: invalid → 1, usage → 2, a bug → 3
(traceback only with ``--traceback``).

One module per verb group (``registry``, ``proposals``, ``evaluation``, ``runtime``, ``learning``),
each with ``register_commands(cli, pass_context)``; ``_render`` holds what they share. None of them
imports the ``modelgit.cli`` package's names (no import circle): the group and the context
decorator are handed to them. The group is lazy (:class:`LazyGroup`): a verb module is imported
and registered when one of its commands is used; ``modelgit --help`` lists the commands from
:data:`VERBS` and imports none of them.

Heavy modules (onnxruntime, numpy, jsonschema, rich) are imported inside the commands that need
them, so ``modelgit --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any

import click

from modelgit.cli._render import emit_json

# modelgit.errors is imported where a run fails or ends: `modelgit --help` and `--version` end
# before, and the module (its frozen dataclass, and dataclasses itself) was ~1.7 ms of their CPU.


class Context:
    """What the group's options give every command (``ctx.obj``). A plain class, not a
    dataclass: this module is on the path of ``modelgit --help``, which imports no dataclasses."""

    __slots__ = ("repo_path", "traceback")

    def __init__(self, repo_path: str, traceback: bool = False) -> None:
        self.repo_path = repo_path
        self.traceback = traceback

    def repo(self) -> Any:
        from modelgit.gitstore import GitRepo

        return GitRepo.discover(self.repo_path)


pass_context = click.make_pass_decorator(Context)

# The name the verb modules used before the package (kept for modules written against it); new
# code imports modelgit.cli._render.emit_json.
_emit_json = emit_json


# -- verbs: one module per group, each registering its commands on the group -----------------------
# Each verb module's commands, with the first sentence of each command's help: all that click makes
# the `modelgit --help` listing from (it shortens the text to the terminal's width), so the listing
# needs no verb module imported. tests/test_cli_lazy.py keeps this table equal to the commands the
# modules register (names and text), and prints the table to paste when they drift.
VERBS: dict[str, dict[str, str]] = {
    "modelgit.cli.registry": {
        "validate": "Check the registry: strict YAML, schema, rules, artifacts, and base-ref rules.",
        "show": "Show models: active version, traffic split, weights and statuses.",
        "history": "Each commit that changed MODEL, newest first, with what it changed.",
        "diff": "Semantic diff of the registry between two refs (default HEAD~1 and HEAD).",
        "init": "Create a registry in DIRECTORY (made a git repo if it is not one): settings, schemas, an "
                "example model with a small ONNX artifact, and CI workflows that run 'modelgit validate'.",
    },
    "modelgit.cli.proposals": {
        "register": "Register VERSION of MODEL (status staging) from an ONNX file, a URI, or a hosted model "
                    "(--provider P --model-id ID).",
        "dataset": "Attach PATH (an .npz with arrays X and y, or a .csv, under registry/) as MODEL's evaluation "
                   "dataset with its sha256; the file is committed with the change if it is new.",
        "promote": "Make VERSION active; the previous active version becomes deprecated and traffic that no "
                   "longer applies is cleared.",
        "deprecate": "Deprecate the active VERSION (still loadable by pin); refused when it would leave the "
                     "model with no active version (use promote or retire).",
        "archive": "Archive a staging or deprecated VERSION (no longer loadable).",
        "retire": "Take MODEL out of service on purpose: retired: true, the active version deprecated, staging "
                  "versions archived (promote a version to bring it back).",
        "weight": "Set the blend WEIGHT (0..1) of VERSION.",
        "split": "Set the A/B traffic split of MODEL, e.g. v1=90 v2=10 (must sum to 100).",
        "ab": "Start or stop an A/B test of a staging version against the active one.",
        "rollback": "Revert the newest commit that changed MODEL's active version, traffic or weights.",
    },
    "modelgit.cli.evaluation": {
        "eval": "Run VERSION of MODEL over its evaluation dataset; write registry/evaluations/MODEL/VERSION.json "
                "(a local cache, not committed: init's .gitignore lists it).",
        "compare": "Compare V2 against V1 of MODEL: metric deltas with 95 % intervals, a verdict, latency and "
                   "signature changes.",
        "ci": "Validate against BASE, evaluate and compare changed versions, write report.md and report.json; "
              "exit 1 if invalid or if a version gaining traffic is significantly worse.",
        "check-upgrades": "Recommend staging versions that beat the active one on the primary metric by the "
                          "policy's minimum improvement, with 95 % confidence, and read the registry's sources "
                          "for new versions (a provider catalog, an artifact folder); for models with "
                          "policy.auto_upgrade: true, decide auto-upgrade and auto-rollback from observed usage.",
    },
    "modelgit.cli.runtime": {
        "route": "Print the version of MODEL that serves KEY (sticky A/B routing).",
        "run": "Run MODEL (or MODEL:VERSION) on an input array and print the outputs as JSON.",
    },
    "modelgit.cli.learning": {
        "usage": "Observed usage per phase, version and task: n, mean quality and satisfaction with 95 % "
                 "intervals, latency p50/p95, tokens.",
        "recommend": "Per model: should it move to its newest version, why, and by how much — from observed "
                     "usage (anytime-valid) when there is enough, else from the evaluation comparison.",
        "auto-upgrade": "Promote (or ramp, with policy.ramp) the staging version under test when the "
                        "anytime-valid lower bound of its relative quality gain over the active version clears "
                        "the threshold.",
        "auto-rollback": "Propose a rollback when the active version's quality is surely under "
                         "policy.rollback_below_quality, or surely worse than the version it replaced.",
    },
    "modelgit.cli_serve": {
        "serve": "Serve the registry at REF over HTTP (FastAPI): seed 000's /api/model-versions/… endpoints, "
                 "/api/models, /api/usage and /api/feedback; OpenAPI at /openapi.json, docs at /docs.",
        "token": "Bearer tokens for 'modelgit serve' (stored as sha256 digests).",
    },
}
# Verb modules outside this package, listed when they are installed (the HTTP server's).
OPTIONAL_VERB_MODULES = ("modelgit.cli_serve",)
VERB_MODULES = tuple(name for name in VERBS if name not in OPTIONAL_VERB_MODULES)


def register_module(module_name: str, group: click.Group) -> None:
    """Import a verb module and register its commands on ``group`` (what ``modelgit`` does on the
    first use of one of the module's commands)."""
    importlib.import_module(module_name).register_commands(group, pass_context)


class _Commands(MutableMapping[str, click.Command]):
    """The group's ``commands``: every name of :data:`VERBS` (a name needs no import), and a
    command's object once its module is registered, which asking for it does. So click's own
    listing, lookup and "Did you mean" work unchanged, and ``modelgit show`` imports only the
    module that defines ``show``."""

    def __init__(self, group: click.Group, verbs: dict[str, dict[str, str]]) -> None:
        self._group = group
        self._module_of = {name: module for module, names in verbs.items() for name in names}
        self._registered: set[str] = set()
        self._commands: dict[str, click.Command] = {}

    def loaded(self, name: str) -> click.Command | None:
        """The command ``name`` if its module is registered already (no import)."""
        return self._commands.get(name)

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._commands and name in self._module_of:
            module = self._module_of[name]
            if module not in self._registered:
                register_module(module, self._group)  # its commands come back through __setitem__
                self._registered.add(module)
            if name not in self._commands:  # a bug: click's get() would turn a KeyError into "No such command"
                raise RuntimeError(f"{module} registered no command '{name}' (modelgit.cli._app.VERBS lists it)")
        return self._commands[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._module_of.pop(name, None)
        self._commands.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._module_of), **dict.fromkeys(self._commands)})

    def __len__(self) -> int:
        return len(self._module_of.keys() | self._commands.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._module_of or name in self._commands


def _available(verbs: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """``verbs`` without the optional modules that are not installed. find_spec looks for the
    module without importing it; one that is there but fails to import fails where it is used."""
    from importlib.util import find_spec

    return {module: names for module, names in verbs.items()
            if module not in OPTIONAL_VERB_MODULES or find_spec(module) is not None}


class LazyGroup(click.Group):
    """A click group whose commands are imported from their modules on first use ("lazily loading
    subcommands" in click's docs); its ``--help`` lists them from :data:`VERBS` without importing
    any. The listing is still click's own (``format_commands``): for a command not yet imported
    it gets a stand-in with the command's first sentence, which click shortens exactly as it
    shortens the real command's help (only the first sentence of it counts)."""

    def __init__(self, *args: Any, verbs: dict[str, dict[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = _Commands(self, _available(verbs))
        self.commands = self._lazy
        self._summaries = {name: text for names in verbs.values() for name, text in names.items()}
        self._listing = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if self._listing and cmd_name in self._summaries and self._lazy.loaded(cmd_name) is None:
            return click.Command(cmd_name, help=self._summaries[cmd_name])
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's format_commands asks get_command for each listed name and the command for its
        # short help; while it does, a command not imported yet is answered by its stand-in.
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False


# -- the group ---------------------------------------------------------------------------------------
@click.group(cls=LazyGroup, verbs=VERBS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    except (Exception, KeyboardInterrupt) as exc:
        return _failed(exc, show_traceback)
    if isinstance(result, int):  # a command's exit code, or click's for --help and --version
        return result
    from modelgit.errors import EXIT_OK

    return EXIT_OK


def _failed(exc: BaseException, show_traceback: bool) -> int:
    """Tell the user why the run failed (called while handling ``exc``) and return its exit code."""
    from modelgit.errors import EXIT_BUG, EXIT_INVALID, EXIT_USAGE, ModelgitError

    if isinstance(exc, click.exceptions.Abort):
        click.echo("aborted", err=True)
        return EXIT_INVALID
    if isinstance(exc, click.ClickException):
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    if isinstance(exc, ModelgitError):
        click.echo(f"error: {exc.render()}", err=True)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    if show_traceback:
        import traceback

        traceback.print_exc()
    click.echo("error: modelgit failed unexpectedly; this is a bug, please report it "
               "(rerun with --traceback for details)", err=True)
    return EXIT_BUG
