"""The ``modelgit`` command line: parse, call one library function, render.

Heavy modules (onnxruntime, numpy, jsonschema, rich) are imported inside the commands that need
them, so ``modelgit --help`` stays fast. This module is the only translator of errors to exit
codes: invalid → 1, usage → 2, a bug → 3 (traceback only with ``--traceback``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import click

from modelgit.errors import EXIT_BUG, EXIT_INVALID, EXIT_OK, EXIT_USAGE, ModelgitError


@dataclass
class Context:
    repo_path: str
    traceback: bool = False

    def repo(self) -> Any:
        from modelgit.gitstore import GitRepo

        return GitRepo.discover(self.repo_path)


pass_context = click.make_pass_decorator(Context)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


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


# -- validate -------------------------------------------------------------------------------------
@cli.command()
@click.option("--ref", default="HEAD", show_default=True, help="Validate the registry at this git ref.")
@click.option("--base", default=None, metavar="REF",
              help="Also check what changed since REF (legal status moves, no in-place artifact "
                   "edits, no deletion of unarchived versions), as CI does for a pull request.")
@click.option("--worktree", is_flag=True,
              help="Validate the files on disk instead of a commit (e.g. before committing).")
@click.option("--no-artifacts", is_flag=True,
              help="Skip artifact and dataset checks (existence, sha256, ONNX signature).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_context
def validate(obj: Context, ref: str, base: str | None, worktree: bool, no_artifacts: bool,
             as_json: bool) -> int:
    """Check the registry: strict YAML, schema, rules, artifacts, and base-ref rules.

    Prints every finding as PATH:LINE:COL: CODE message. Exit code 0 when valid, 1 when not.
    """
    from modelgit.validate import Validator

    report = Validator(obj.repo()).validate(
        None if worktree else ref, base=base, worktree=worktree, check_artifacts=not no_artifacts
    )
    if as_json:
        _emit_json(report.as_dict())
    else:
        for finding in report.findings:
            click.echo(finding.render())
        where = report.commit[:12] if report.commit else "working tree"
        if report.valid:
            click.echo(f"valid: {report.models} models, {report.versions} versions, "
                       f"{report.artifacts_checked} files verified at {where}", err=True)
        else:
            files = len({f.path for f in report.findings})
            click.echo(f"invalid: {len(report.findings)} finding(s) in {files} file(s) at {where}",
                       err=True)
    return EXIT_OK if report.valid else EXIT_INVALID


# -- views ----------------------------------------------------------------------------------------
@cli.command()
@click.argument("model", required=False)
@click.option("--ref", default="HEAD", show_default=True, help="Show the registry at this git ref.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_context
def show(obj: Context, model: str | None, ref: str, as_json: bool) -> int:
    """Show models: active version, traffic split, weights and statuses."""
    from modelgit import views
    from modelgit.snapshot import Loader

    data = views.show(Loader(obj.repo()).load(ref), model)
    if as_json:
        _emit_json(data)
        return EXIT_OK
    from modelgit import render

    render.show(data, detailed=model is not None)
    return EXIT_OK


def _history_model(text: str) -> str:
    """MODEL as ``history`` takes it, checked before any git call: a pin (``model:version``), a
    file path or a malformed id is a usage error that shows the id to give instead."""
    from modelgit.errors import UsageError
    from modelgit.proposals import check_model_id
    from modelgit.snapshot import MODELS_DIR

    name, colon, _ = text.partition(":")
    if colon:
        raise UsageError(f"'{text}' names a version; history is kept per model",
                         hint=f"modelgit history {name}" if name else "give a model id, e.g. calling_score")
    if text.endswith((".yaml", ".yml")):
        model_id = text.removeprefix(MODELS_DIR).rsplit(".", 1)[0]
        raise UsageError(f"'{text}' is a file path, not a model id",
                         hint=f"the id is the path under {MODELS_DIR} without .yaml: "
                              f"modelgit history {model_id}")
    check_model_id(text)
    return text


@cli.command()
@click.argument("model")
@click.option("--ref", default="HEAD", show_default=True, help="Follow history from this ref.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=None,
              help="Show at most this many commits.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_context
def history(obj: Context, model: str, ref: str, limit: int | None, as_json: bool) -> int:
    """Each commit that changed MODEL, newest first, with what it changed."""
    from modelgit import views

    data = views.history(obj.repo(), _history_model(model), ref, limit)
    if as_json:
        _emit_json(data)
        return EXIT_OK
    for commit in data["commits"]:
        click.echo(f"{commit['commit'][:12]}  {commit['date'][:10]}  {commit['author']}  "
                   f"{commit['subject']}")
        for change in commit["changes"] or ["(no semantic change)"]:
            click.echo(f"    {change}")
    return EXIT_OK


@cli.command()
@click.argument("base", default="HEAD~1", required=False)
@click.argument("head", default="HEAD", required=False)
@click.option("--worktree", is_flag=True, help="Compare BASE with the files on disk.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_context
def diff(obj: Context, base: str, head: str, worktree: bool, as_json: bool) -> int:
    """Semantic diff of the registry between two refs (default HEAD~1 and HEAD)."""
    from modelgit import views
    from modelgit.snapshot import Loader

    data = views.diff(Loader(obj.repo()), base, head, worktree=worktree)
    if as_json:
        _emit_json(data)
        return EXIT_OK
    if not data["changes"]:
        click.echo("no registry changes")
    current = None
    for change in data["changes"]:
        if change["model"] != current:
            current = change["model"]
            click.echo(f"{current}:")
        click.echo(f"  {change['text']}")
    return EXIT_OK


# -- init -----------------------------------------------------------------------------------------
@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@pass_context
def init(obj: Context, directory: str) -> int:
    """Create a registry in DIRECTORY (made a git repo if it is not one): settings, schemas, an
    example model with a small ONNX artifact, and CI workflows that run 'modelgit validate'.

    A relative DIRECTORY is taken from the -C path."""
    import os

    from modelgit.scaffold import init_registry

    target = os.path.normpath(os.path.join(obj.repo_path, directory))
    result = init_registry(target)
    for path in result.written:
        click.echo(f"wrote {path}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.committed:
        click.echo(f"committed {result.committed[:12]}: registry ready; try: modelgit -C "
                   f"{target} show")
        return EXIT_OK
    if result.commit_error:
        click.echo(f"warning: could not commit: {result.commit_error}", err=True)
    click.echo("next: git add registry schemas .github .gitignore && git commit -m 'Add modelgit registry'")
    return EXIT_OK


# -- proposals (one module per verb group) ---------------------------------------------------------
from modelgit import cli_eval, cli_learning, cli_proposals, cli_runtime, cli_serve  # noqa: E402

cli_proposals.register_commands(cli, pass_context)
cli_eval.register_commands(cli, pass_context)
cli_runtime.register_commands(cli, pass_context)
cli_learning.register_commands(cli, pass_context)
cli_serve.register_commands(cli, pass_context)


# -- entry point ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """The ``modelgit`` process. It owns its process, so here (and only here) process-wide state
    is tuned: onnxruntime's import-time logging quietened, the cyclic GC paused during bulk loads."""
    import os

    from modelgit import _process

    os.environ.setdefault("ORT_LOGGING_LEVEL", "3")
    _process.tune_gc = True
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
