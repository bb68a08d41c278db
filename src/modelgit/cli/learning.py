"""Commands of continuous learning: usage, recommend, auto-upgrade, auto-rollback.

Each reads the tracker's rollups (``--tracking-url``, else ``MODELGIT_TRACKING_URL``, else
``tracking.url`` in modelgit.yaml, else ``.git/modelgit/usage.sqlite``) and the registry at
``--ref``, and prints a table or ``--json``; ``--propose`` commits the decision on a branch.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

import click

from modelgit.cli._render import emit_json, fmt
from modelgit.errors import EXIT_OK, UsageError

TRACKING_HELP = ("Usage database (sqlite:///PATH or postgresql+psycopg://…); default: MODELGIT_TRACKING_URL, "
                 "then tracking.url in modelgit.yaml, then .git/modelgit/usage.sqlite.")


def _since(text: str | None) -> _dt.date | None:
    if text is None:
        return None
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since '{text}' is not a date", hint="write it as YYYY-MM-DD") from None


def register_commands(cli: click.Group, pass_context: Callable[..., Any]) -> None:
    @cli.command()
    @click.argument("model", required=False)
    @click.option("--task", default=None, help="Only usage recorded with this task.")
    @click.option("--since", default=None, metavar="YYYY-MM-DD", help="Only usage from this day on.")
    @click.option("--ref", default="HEAD", show_default=True, help="Phases from the history of this ref.")
    @click.option("--tracking-url", default=None, metavar="URL", help=TRACKING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_context
    def usage(obj: Any, model: str | None, task: str | None, since: str | None, ref: str,
              tracking_url: str | None, as_json: bool) -> int:
        """Observed usage per phase, version and task: n, mean quality and satisfaction with 95 %
        intervals, latency p50/p95, tokens. A phase starts at each commit that changes the model's
        split or statuses; numbers are never pooled across phases."""
        from modelgit import api

        repo = obj.repo()
        day = _since(since)
        result = api.usage(repo, model, task=task, since=day, ref=ref, tracking_url=tracking_url)
        data = result.as_dict()
        if as_json:
            emit_json(data)
            return EXIT_OK
        any_rows = False
        for entry in data["models"]:
            for phase in entry["phases"]:
                any_rows = True
                head = phase["phase"]
                where = (f"phase {head['index']} from {head['start'][:12]} ({head['date'][:10]}, "
                         f"split {head['split']})" if head else "unknown commit (not in this history)")
                click.echo(f"{entry['model']}: {where}")
                for arm in phase["arms"]:
                    q, s = arm["quality"] or {}, arm["satisfaction"] or {}
                    lat = arm["latency_ms"]
                    ci = (f"[{fmt(q.get('low'))}, {fmt(q.get('high'))}]" if q else "")
                    click.echo(f"  {arm['version']:<16} {arm['task'] or '-':<12} n={arm['n']:<8} "
                               f"quality={fmt(q.get('mean'))} {ci:<22} satisfaction={fmt(s.get('mean'))} "
                               f"p50={fmt(lat['p50'], '.1f')}ms p95={fmt(lat['p95'], '.1f')}ms "
                               f"tokens={fmt((arm['tokens'] or {}).get('mean'), '.1f')}")
        if not any_rows:
            click.echo("no usage recorded" + (f" for {model}" if model else ""))
        return EXIT_OK

    @cli.command()
    @click.option("--provider", default=None, help="Only models served by this provider.")
    @click.option("--ref", default="HEAD", show_default=True, help="Recommend for the registry at this ref.")
    @click.option("--tracking-url", default=None, metavar="URL", help=TRACKING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_context
    def recommend(obj: Any, provider: str | None, ref: str, tracking_url: str | None, as_json: bool) -> int:
        """Per model: should it move to its newest version, why, and by how much — from observed
        usage (anytime-valid) when there is enough, else from the evaluation comparison."""
        from modelgit import api

        result = api.recommend(obj.repo(), ref, provider=provider, tracking_url=tracking_url)
        if as_json:
            emit_json(result.as_dict())
            return EXIT_OK
        for item in result.recommendations:
            mark = "upgrade" if item["recommended"] else "keep"
            gain = item["expectedImprovement"]
            click.echo(f"{mark:<8} {item['model']}: {item['currentVersion']} → {item['latestVersion']}"
                       f"{'' if gain is None else f' ({gain:+.1%})'}: {item['reason']}")
        return EXIT_OK

    def decide(name: str, doc: str, rollback: bool) -> None:
        @click.argument("model")
        @click.option("--ref", default="HEAD", show_default=True, help="Decide for the registry at this ref.")
        @click.option("--tracking-url", default=None, metavar="URL", help=TRACKING_HELP)
        @click.option("--propose", is_flag=True,
                      help="Commit the decision (when not hold) on its own branch, with the evidence.")
        @click.option("--push", default=None, metavar="REMOTE", help="With --propose: push the branch.")
        @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
        @pass_context
        def command(obj: Any, model: str, ref: str, tracking_url: str | None, propose: bool,
                    push: str | None, as_json: bool, **extra: Any) -> int:
            from modelgit import api

            if rollback:
                verdict = api.auto_rollback(obj.repo(), model, ref, propose=propose, push=push,
                                            tracking_url=tracking_url)
            else:
                verdict = api.auto_upgrade(obj.repo(), model, ref,
                                           min_quality_improvement=extra.get("min_quality_improvement"),
                                           propose=propose, push=push, tracking_url=tracking_url)
            if as_json:
                emit_json(verdict.as_dict())
                return EXIT_OK
            click.echo(f"{verdict.decision}: {model}: {verdict.reason}")
            if verdict.branch:
                click.echo(f"proposed on branch {verdict.branch} ({verdict.commit[:12] if verdict.commit else ''})")
            return EXIT_OK

        command.__doc__ = doc
        if not rollback:
            command = click.option("--min-quality-improvement", type=float, default=None, metavar="X",
                                   help="Relative quality gain the lower bound must clear (0.1 = 10 %); "
                                        "default: the model's policy, else 0.05.")(command)
        cli.command(name)(command)

    decide("auto-upgrade",
           "Promote (or ramp, with policy.ramp) the staging version under test when the anytime-valid "
           "lower bound of its relative quality gain over the active version clears the threshold.",
           rollback=False)
    decide("auto-rollback",
           "Propose a rollback when the active version's quality is surely under "
           "policy.rollback_below_quality, or surely worse than the version it replaced.",
           rollback=True)
