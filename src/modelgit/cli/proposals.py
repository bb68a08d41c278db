"""CLI verbs that propose registry changes: each validates, then commits on its own branch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from modelgit.cli._render import emit_json
from modelgit.errors import EXIT_OK, UsageError


def proposal_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options every proposing verb shares."""
    options = [
        click.option("--ref", default="HEAD", show_default=True,
                     help="Build the change on top of this ref."),
        click.option("--branch", default=None, metavar="NAME",
                     help="Branch to create (default: modelgit/<model>/<action>-<version>)."),
        click.option("--on-current-branch", is_flag=True,
                     help="Commit to the checked-out branch instead of a new one (refuses if the "
                          "touched files have uncommitted edits)."),
        click.option("--push", default=None, metavar="REMOTE", help="Push the branch to REMOTE."),
        click.option("--dry-run", is_flag=True, help="Print the diff; commit nothing."),
        click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def run_proposal(obj: Any, action: str, model: str, *, version: str | None = None, ref: str, branch: str | None,
                 on_current_branch: bool, push: str | None, dry_run: bool, as_json: bool, **params: Any) -> int:
    """One proposing command: :func:`modelgit.api.propose`, then its outcome as text or JSON."""
    from modelgit import api

    outcome = api.propose(obj.repo(), action, model, version=version, ref=ref, branch=branch,
                          on_current_branch=on_current_branch, push=push, dry_run=dry_run, **params)
    proposal = outcome.proposal
    if as_json:
        emit_json(outcome.as_dict())
        return EXIT_OK
    if dry_run:
        click.echo(outcome.diff, nl=False)
        click.echo(f"dry run: would commit '{proposal.subject}'; nothing was committed", err=True)
        return EXIT_OK
    assert outcome.commit is not None
    click.echo(f"{proposal.subject}")
    if outcome.on_current_branch:
        click.echo(f"committed {outcome.commit[:12]} on {outcome.branch}")
    else:
        click.echo(f"committed {outcome.commit[:12]} on new branch {outcome.branch}")
        if outcome.pushed:
            click.echo(f"pushed to {outcome.pushed}; open a pull request from {outcome.branch}")
        else:
            click.echo(f"push it and open a pull request:\n  git push origin {outcome.branch}")
    return EXIT_OK


def _parse_metrics(items: tuple[str, ...]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            metrics[key] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key:
            raise UsageError(f"--metric '{item}' is not NAME=NUMBER", hint="e.g. --metric rmse=0.31")
    return metrics


def register_commands(cli: click.Group, pass_context: Callable[..., Any]) -> None:
    @cli.command()
    @click.argument("model")
    @click.argument("version")
    @click.option("--artifact", default=None, metavar="PATH|URI",
                  help="ONNX file to copy under registry/artifacts/, or a URI to record.")
    @click.option("--sha256", default=None, help="Digest of a URI artifact (required for URIs).")
    @click.option("--provider", default=None, metavar="NAME",
                  help="A hosted version (no file): the provider serving it, e.g. openrouter.")
    @click.option("--model-id", "hosted_id", default=None, metavar="ID",
                  help="A hosted version: the provider's model id, e.g. qwen/qwen-2.5-7b-instruct.")
    @click.option("--metric", "metrics", multiple=True, metavar="NAME=VALUE",
                  help="A metric of this version (repeatable).")
    @click.option("--improvement", "improvements", multiple=True, metavar="TEXT",
                  help="What got better (repeatable).")
    @click.option("--breaking-change", "breaking", multiple=True, metavar="TEXT",
                  help="A breaking change, required when inputs/outputs differ from the active version.")
    @click.option("--migration-notes", default=None, metavar="TEXT", help="How callers migrate.")
    @click.option("--data-source", default=None, metavar="NAME", help="Where the training data came from.")
    @click.option("--weight", type=click.FloatRange(0, 1), default=None, help="Blend weight (0..1).")
    @click.option("--description", default=None, metavar="TEXT", help="What this version is, in a sentence.")
    @click.option("--trained", default=None, metavar="YYYY-MM-DD", help="Training date (default: today).")
    @click.option("--task", type=click.Choice(["regression", "binary-classification", "multiclass",
                                               "generation"]), default=None,
                  help="Task of a new model (only when MODEL does not exist yet).")
    @proposal_options
    @pass_context
    def register(obj: Any, model: str, version: str, artifact: str | None, sha256: str | None,
                 provider: str | None, hosted_id: str | None, metrics: tuple[str, ...],
                 improvements: tuple[str, ...], breaking: tuple[str, ...],
                 migration_notes: str | None, data_source: str | None, weight: float | None,
                 description: str | None, trained: str | None, task: str | None, **opts: Any) -> int:
        """Register VERSION of MODEL (status staging) from an ONNX file, a URI, or a hosted model
        (--provider P --model-id ID)."""
        import os

        from modelgit.proposals import is_uri

        if artifact is not None and not is_uri(artifact) and not os.path.isabs(artifact) \
                and obj.repo_path not in ("", "."):
            artifact = os.path.join(obj.repo_path, artifact)  # -C PATH: "run as if started in PATH"
        return run_proposal(
            obj, "register", model, version=version, artifact=artifact, sha256=sha256, provider=provider,
            model_id=hosted_id, metrics=_parse_metrics(metrics), improvements=improvements,
            breaking_changes=breaking, migration_notes=migration_notes, data_source=data_source, weight=weight,
            trained=trained, task=task, description=description, **opts)

    @cli.command()
    @click.argument("model")
    @click.argument("path", metavar="PATH")
    @proposal_options
    @pass_context
    def dataset(obj: Any, model: str, path: str, **opts: Any) -> int:
        """Attach PATH (an .npz with arrays X and y, or a .csv, under registry/) as MODEL's
        evaluation dataset with its sha256; the file is committed with the change if it is new."""
        import os

        if not os.path.isabs(path) and obj.repo_path not in ("", "."):
            path = os.path.join(obj.repo_path, path)  # -C PATH: "run as if started in PATH"
        return run_proposal(obj, "dataset", model, path=path, **opts)

    def lifecycle(name: str, doc: str) -> None:
        @click.argument("model")
        @click.argument("version")
        @proposal_options
        @pass_context
        def command(obj: Any, model: str, version: str, **opts: Any) -> int:
            return run_proposal(obj, name, model, version=version, **opts)

        command.__doc__ = doc
        cli.command(name)(command)

    lifecycle("promote",
              "Make VERSION active; the previous active version becomes deprecated and traffic "
              "that no longer applies is cleared.")
    lifecycle("deprecate", "Deprecate the active VERSION (still loadable by pin); refused "
              "when it would leave the model with no active version (use promote or retire).")
    lifecycle("archive", "Archive a staging or deprecated VERSION (no longer loadable).")

    @cli.command()
    @click.argument("model")
    @proposal_options
    @pass_context
    def retire(obj: Any, model: str, **opts: Any) -> int:
        """Take MODEL out of service on purpose: retired: true, the active version deprecated,
        staging versions archived (promote a version to bring it back)."""
        return run_proposal(obj, "retire", model, **opts)

    @cli.command()
    @click.argument("model")
    @click.argument("version")
    @click.argument("weight", type=float)
    @proposal_options
    @pass_context
    def weight(obj: Any, model: str, version: str, weight: float, **opts: Any) -> int:
        """Set the blend WEIGHT (0..1) of VERSION."""
        return run_proposal(obj, "weight", model, version=version, weight=weight, **opts)

    @cli.command()
    @click.argument("model")
    @click.argument("shares", nargs=-1, required=True, metavar="VERSION=PERCENT...")
    @proposal_options
    @pass_context
    def split(obj: Any, model: str, shares: tuple[str, ...], **opts: Any) -> int:
        """Set the A/B traffic split of MODEL, e.g. v1=90 v2=10 (must sum to 100)."""
        from modelgit.proposals import parse_split

        return run_proposal(obj, "split", model, split=parse_split(shares), **opts)

    @cli.group()
    def ab() -> None:
        """Start or stop an A/B test of a staging version against the active one."""

    @ab.command("start")
    @click.argument("model")
    @click.argument("version")
    @click.option("--traffic", "percent", type=float, required=True,
                  help="Percent of traffic for VERSION; the active version gets the rest.")
    @proposal_options
    @pass_context
    def ab_start(obj: Any, model: str, version: str, percent: float, **opts: Any) -> int:
        """Send PERCENT of MODEL's traffic to staging VERSION."""
        return run_proposal(obj, "ab-start", model, version=version, percent=percent, **opts)

    @ab.command("stop")
    @click.argument("model")
    @click.option("--promote", "outcome", flag_value="promote", help="Promote the tested version.")
    @click.option("--abandon", "outcome", flag_value="abandon",
                  help="Send all traffic back to the active version.")
    @proposal_options
    @pass_context
    def ab_stop(obj: Any, model: str, outcome: str | None, **opts: Any) -> int:
        """End MODEL's A/B test: --promote the tested version or --abandon it."""
        if outcome is None:
            raise click.UsageError("say how the test ends: --promote or --abandon")
        return run_proposal(obj, "ab-stop", model, promote=outcome == "promote", **opts)

    @cli.command()
    @click.argument("model")
    @click.option("--to", "to_version", default=None, metavar="VERSION",
                  help="Instead of reverting, make VERSION active again (a forward change).")
    @proposal_options
    @pass_context
    def rollback(obj: Any, model: str, to_version: str | None, **opts: Any) -> int:
        """Revert the newest commit that changed MODEL's active version, traffic or weights."""
        return run_proposal(obj, "rollback", model, version=to_version, **opts)
