"""The registry verbs: validate, show, history, diff, init."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from modelgit.cli._render import emit_json, emit_json_listing
from modelgit.errors import EXIT_INVALID, EXIT_OK


def register_commands(cli: click.Group, pass_context: Callable[..., Any]) -> None:
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
    def validate(obj: Any, ref: str, base: str | None, worktree: bool, no_artifacts: bool,
                 as_json: bool) -> int:
        """Check the registry: strict YAML, schema, rules, artifacts, and base-ref rules.

        Prints every finding as PATH:LINE:COL: CODE message. Exit code 0 when valid, 1 when not.
        """
        from modelgit import api

        report = api.validate(obj.repo(), ref, base=base, worktree=worktree, check_artifacts=not no_artifacts)
        if as_json:
            emit_json(report.as_dict())
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

    @cli.command()
    @click.argument("model", required=False)
    @click.option("--ref", default="HEAD", show_default=True, help="Show the registry at this git ref.")
    @click.option("--json", "as_json", is_flag=True,
                  help="Print JSON instead of a table (all models: one model a line, written as it is read).")
    @pass_context
    def show(obj: Any, model: str | None, ref: str, as_json: bool) -> int:
        """Show models: active version, traffic split, weights and statuses.

        A table on a terminal; piped, or past 200 rows, a plain aligned table (same columns)."""
        from modelgit import api

        shown = api.show_stream(obj.repo(), ref, model, versions=as_json or model is not None)
        if as_json:
            if model is not None:  # one model: indented, as every other --json
                emit_json({"commit": shown.commit, "models": list(shown.dicts()), "invalid": list(shown.invalid)})
            else:
                emit_json_listing({"commit": shown.commit}, "models", shown.dicts(),
                                  {"invalid": list(shown.invalid)})
            return EXIT_OK
        from modelgit import render

        render.show(shown.commit, shown.dicts(), shown.invalid, detailed=model is not None)
        return EXIT_OK


    @cli.command()
    @click.argument("model")
    @click.option("--ref", default="HEAD", show_default=True, help="Follow history from this ref.")
    @click.option("-n", "--limit", type=click.IntRange(min=1), default=None,
                  help="Show at most this many commits.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @pass_context
    def history(obj: Any, model: str, ref: str, limit: int | None, as_json: bool) -> int:
        """Each commit that changed MODEL, newest first, with what it changed."""
        from modelgit import api

        data = api.history(obj.repo(), _history_model(model), ref, limit).as_dict()
        if as_json:
            emit_json(data)
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
    def diff(obj: Any, base: str, head: str, worktree: bool, as_json: bool) -> int:
        """Semantic diff of the registry between two refs (default HEAD~1 and HEAD)."""
        from modelgit import api

        data = api.diff(obj.repo(), base, head, worktree=worktree).as_dict()
        if as_json:
            emit_json(data)
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

    @cli.command()
    @click.argument("directory", default=".", type=click.Path(file_okay=False))
    @pass_context
    def init(obj: Any, directory: str) -> int:
        """Create a registry in DIRECTORY (made a git repo if it is not one): settings, schemas, an
        example model with a small ONNX artifact, and CI workflows that run 'modelgit validate'.

        A relative DIRECTORY is taken from the -C path."""
        import os

        from modelgit import api

        target = os.path.normpath(os.path.join(obj.repo_path, directory))
        result = api.init(target)
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
