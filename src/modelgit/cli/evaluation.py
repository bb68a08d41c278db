"""CLI verbs for evaluation: eval, compare, ci, check-upgrades."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from modelgit.cli._render import emit_json, progress_bar
from modelgit.errors import EXIT_INVALID, EXIT_OK


def register_commands(cli: click.Group, pass_context: Callable[..., Any]) -> None:
    @cli.command("eval")
    @click.argument("model")
    @click.argument("version")
    @click.option("--ref", default="HEAD", show_default=True, help="Evaluate the registry at this ref.")
    @click.option("--metric", "metrics", multiple=True, metavar="NAME",
                  help="Metric to compute (repeatable; default: the model's evaluation.metrics).")
    @click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
                  help="Rows per onnxruntime call.")
    @click.option("--force", is_flag=True, help="Recompute even if a stored result matches.")
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    @pass_context
    def eval_command(obj: Any, model: str, version: str, ref: str, metrics: tuple[str, ...],
                     batch_size: int, force: bool, as_json: bool) -> int:
        """Run VERSION of MODEL over its evaluation dataset; write
        registry/evaluations/MODEL/VERSION.json (a local cache, not committed: init's .gitignore
        lists it)."""
        from modelgit import api

        with progress_bar(f"eval {model}:{version}") as progress:
            result = api.evaluate(obj.repo(), model, version, ref, metrics=metrics, batch_size=batch_size,
                                  force=force, progress=progress)
        if as_json:
            emit_json(result.as_dict())
            return EXIT_OK
        click.echo(f"{model}:{version} on {result.rows} rows of {result.dataset}"
                   + (" (stored result reused: same artifact and dataset digests)" if result.reused else ""))
        for name, value in result.metrics.items():
            click.echo(f"  {name:<9} {value:.6g}")
        lat = result.latency
        click.echo(f"  latency   p50 {lat['p50_ms_per_row'] * 1000:.2f} µs/row, p95 "
                   f"{lat['p95_ms_per_row'] * 1000:.2f} µs/row, {lat['rows_per_second'] or 0:,.0f} rows/s")
        click.echo(f"wrote {result.path}" if not result.reused else f"kept {result.path}")
        return EXIT_OK

    @cli.command()
    @click.argument("model")
    @click.argument("v1")
    @click.argument("v2")
    @click.option("--ref", default="HEAD", show_default=True, help="Compare at this ref.")
    @click.option("--format", "fmt", type=click.Choice(["md", "json", "html"]), default="md",
                  show_default=True, help="Report format.")
    @click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
                  help="Write the report to this file instead of printing it.")
    @click.option("--resamples", type=click.IntRange(min=100), default=1000, show_default=True,
                  help="Bootstrap resamples.")
    @click.option("--seed", type=int, default=20251228, show_default=True, help="Bootstrap seed.")
    @pass_context
    def compare(obj: Any, model: str, v1: str, v2: str, ref: str, fmt: str, out: str | None,
                resamples: int, seed: int) -> int:
        """Compare V2 against V1 of MODEL: metric deltas with 95 % intervals, a verdict, latency
        and signature changes."""
        from modelgit import api

        repo = obj.repo()
        report = api.compare(repo, model, v1, v2, ref, resamples=resamples, seed=seed)
        text = {"md": report.to_markdown, "html": report.to_html, "json": report.to_json}[fmt]()
        if out:
            from pathlib import Path  # here, not at the top: 'modelgit compare --help' needs no pathlib

            from modelgit.outputs import write_output

            target = Path(obj.repo_path) / out  # a relative --out is taken from the -C path, as in init
            write_output(target, text, within=repo.root)
            click.echo(f"wrote {target}: {report.verdict} on {report.primary}")
        else:
            click.echo(text, nl=False)
        return EXIT_OK

    @cli.command()
    @click.option("--base", required=True, metavar="REF", help="The pull request's base (e.g. origin/main).")
    @click.option("--ref", default="HEAD", show_default=True, help="The pull request's head.")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False), default="modelgit-report",
                  show_default=True, help="Directory for report.md and report.json.")
    @pass_context
    def ci(obj: Any, base: str, ref: str, out_dir: str) -> int:
        """Validate against BASE, evaluate and compare changed versions, write report.md and
        report.json; exit 1 if invalid or if a version gaining traffic is significantly worse."""
        from pathlib import Path

        from modelgit import api
        from modelgit.ci import write_reports

        repo = obj.repo()
        report = api.ci(repo, base, ref)
        md, js = write_reports(report, Path(obj.repo_path) / out_dir, within=repo.root)  # relative: from -C
        click.echo(md.read_text("utf-8"), nl=False)
        click.echo(f"wrote {md} and {js}", err=True)
        return EXIT_OK if report.ok else EXIT_INVALID

    @cli.command("check-upgrades")
    @click.option("--ref", default="HEAD", show_default=True, help="Check the registry at this ref.")
    @click.option("--propose", is_flag=True,
                  help="Commit each recommended promotion and each new version found by a source on its own branch.")
    @click.option("--tracking-url", default=None, metavar="URL",
                  help="Usage database for the models with policy.auto_upgrade: true (default: "
                       "MODELGIT_TRACKING_URL, then tracking.url, then .git/modelgit/usage.sqlite if it exists).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_context
    def check_upgrades(obj: Any, ref: str, propose: bool, tracking_url: str | None, as_json: bool) -> int:
        """Recommend staging versions that beat the active one on the primary metric by the
        policy's minimum improvement, with 95 % confidence, and read the registry's sources for new
        versions (a provider catalog, an artifact folder); for models with policy.auto_upgrade:
        true, decide auto-upgrade and auto-rollback from observed usage. --propose opens the
        changes as branches."""
        from modelgit import api

        result = api.check_upgrades(obj.repo(), ref, propose=propose, tracking_url=tracking_url)
        if as_json:
            emit_json(result.as_dict())
            return EXIT_OK
        from modelgit.errors import printable

        sources = result.sources
        if not result.recommendations:
            click.echo("no staging version to compare")
        for item in result.recommendations:
            mark = "upgrade" if item["recommended"] else "keep"
            click.echo(f"{mark:<8} {item['model']}: {item['from']} → {item['to']}: {item['reason']}")
        for item in result.skipped:
            what = item["model"] if item["version"] is None else f"{item['model']}:{item['version']}"
            click.echo(f"{'skipped':<8} {what}: {item['reason']}")
        for new, shown in zip(sources.found, result.new_versions, strict=True):
            click.echo(printable(f"{'new':<8} {new.model}:{new.version} from source '{new.source}': {new.origin}"))
            for line in new.improvements:
                click.echo(printable(f"{'':<9}{line}"))
            if "note" in shown:
                click.echo(f"{'':<9}not proposed: {shown['note']}")
        for warning in sources.warnings:
            what = f"{warning.model}:{warning.version}" if warning.version else (warning.model or "")
            click.echo(printable(f"{'warning':<8} {what + ' ' if what else ''}(source '{warning.source}'): "
                                 f"{warning.message}"))
        for gap in sources.skipped:
            what = " ".join(p for p in (gap.model, gap.item) if p)
            click.echo(printable(f"{'skipped':<8} {what + ' ' if what else ''}(source '{gap.source}'): "
                                 f"{gap.reason}"))
        for verdict in result.decisions:
            click.echo(f"{verdict.decision:<8} {verdict.model} (policy.auto_upgrade): {verdict.reason}")
        for item in result.proposals:
            click.echo(f"proposed on branch {item['branch']}")
        return EXIT_OK

