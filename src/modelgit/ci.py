"""`modelgit ci`: what a pull request's reviewer needs, as report.md and report.json.

Validate the head against the base, evaluate every version the pull request adds or changes,
compare each with the version it would displace (the base's active version), and fail when a
version being promoted or given more traffic is significantly worse on the primary metric.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelgit.compare import WORSE, compare_results, to_markdown
from modelgit.errors import ModelgitError
from modelgit.evaluate import evaluate
from modelgit.gitstore import GitRepo
from modelgit.rules import artifact_identity
from modelgit.spec import FileArtifact, Model
from modelgit.validate import Validator


@dataclass
class CiReport:
    base: str
    head: str
    valid: bool
    findings: list[dict[str, Any]]
    checks: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.valid and not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "base": self.base, "head": self.head, "valid": self.valid,
                "findings": self.findings, "failures": self.failures, "checks": self.checks}


def changed_versions(base: Model | None, head: Model) -> list[tuple[str, list[str]]]:
    """(version, reasons) for every version the change adds, re-points, promotes or gives more
    traffic. A version added and promoted (or given traffic) in the same change counts as promoted
    (or gaining traffic) too. A new model's versions are only "added": they displace nothing. Pure."""
    out = []
    base_split = base.split() if base else {}
    head_split = head.split()
    for version in head.versions:
        old = base.version(version.version) if base else None
        reasons = []
        if old is None:
            reasons.append("added")
        elif artifact_identity(old) != artifact_identity(version):
            reasons.append("artifact changed")
        if base is not None:
            if version.status == "active" and (old is None or old.status != "active"):
                reasons.append("promoted")
            before, after = base_split.get(version.version, 0), head_split.get(version.version, 0)
            if after > before:
                reasons.append(f"traffic {before:g}% → {after:g}%")
        if reasons and version.status != "archived":
            out.append((version.version, reasons))
    return out


def run_ci(repo: GitRepo, base_ref: str, head_ref: str = "HEAD", *,
           validator: Validator | None = None) -> CiReport:
    validator = validator or Validator(repo)
    validation = validator.validate(head_ref, base=base_ref)
    head = validation.snapshot
    assert head is not None and head.commit is not None
    base = validator.loader.load(base_ref)
    report = CiReport(base.commit or base_ref, head.commit, validation.valid,
                      [f.as_dict() | {"text": f.render()} for f in validation.findings])
    if not validation.valid:
        report.failures.append(f"validation failed with {len(validation.findings)} finding(s)")
    settings = head.settings.spec if head.settings is not None else None
    results: dict[tuple[str, str], dict[str, Any]] = {}

    def result(model_id: str, version: str) -> dict[str, Any]:
        key = (model_id, version)
        if key not in results:
            # root=None: never reuse results stored under registry/evaluations/. In CI they come
            # from the pull request's own checkout, so a committed result file could claim any
            # numbers for a bad artifact; the gate recomputes from the artifact and dataset.
            results[key] = evaluate(head, model_id, version, root=None)
        return results[key]

    for model_id, model in head.models.items():
        base_model = base.models.get(model_id)
        for version, reasons in changed_versions(base_model, model):
            check: dict[str, Any] = {"model": model_id, "version": version, "reasons": reasons}
            report.checks.append(check)
            entry = model.version(version)
            assert entry is not None
            if model.evaluation is None or not isinstance(entry.artifact, FileArtifact):
                check["skipped"] = "no evaluation dataset or no ONNX file to evaluate"
                continue
            try:
                mine = result(model_id, version)
            except ModelgitError as exc:
                check["error"] = exc.render()
                report.failures.append(f"{model_id}:{version}: evaluation failed: {exc.message}")
                continue
            check["metrics"] = mine["metrics"]
            displaced = base_model.active if base_model else None
            if displaced is None or displaced.version == version or model.version(displaced.version) is None:
                check["compare"] = None
                continue
            if not isinstance(model.version(displaced.version).artifact, FileArtifact):  # type: ignore[union-attr]
                check["compare"] = None
                continue
            try:
                theirs = result(model_id, displaced.version)
            except ModelgitError as exc:
                check["error"] = exc.render()
                continue
            comparison = compare_results(model, settings, theirs, mine)
            check["compare"] = comparison
            gains_serving = any(r == "promoted" or r.startswith("traffic") for r in reasons)
            if gains_serving and comparison["verdict"] == WORSE:
                report.failures.append(
                    f"{model_id}:{version} is significantly worse than {displaced.version} on "
                    f"{comparison['primary']} and would serve more traffic ({', '.join(reasons)})")
    return report


def to_markdown_report(report: CiReport) -> str:
    status = "✅ modelgit CI passed" if report.ok else "❌ modelgit CI failed"
    lines = [f"## {status}", "", f"`{report.base[:12]}` → `{report.head[:12]}`", ""]
    if report.findings:
        lines += ["### Validation findings", "", "```"] + [f["text"] for f in report.findings] + ["```", ""]
    if report.failures:
        lines += ["### Why it fails", ""] + [f"- {f}" for f in report.failures] + [""]
    if not report.checks:
        lines.append("No model version was added or changed.")
    for check in report.checks:
        lines.append(f"#### {check['model']}:{check['version']} ({', '.join(check['reasons'])})")
        lines.append("")
        if check.get("skipped"):
            lines.append(f"Not evaluated: {check['skipped']}.")
        elif check.get("error"):
            lines += ["```", check["error"], "```"]
        elif check.get("compare"):
            lines.append(to_markdown(check["compare"]))
        elif check.get("metrics"):
            lines.append("Metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in check["metrics"].items())
                         + " (nothing to compare with).")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_reports(report: CiReport, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "report.md", out_dir / "report.json"
    md.write_text(to_markdown_report(report), "utf-8")
    js.write_text(json.dumps(report.as_dict(), indent=1, default=str) + "\n", "utf-8")
    return md, js
