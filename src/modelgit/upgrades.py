"""Upgrade recommendations from evaluations: a staging version that beats the active one on the
primary metric, significantly and by at least the policy's minimum improvement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelgit.compare import compare_results
from modelgit.errors import ModelgitError
from modelgit.evaluate import evaluate
from modelgit.snapshot import Snapshot
from modelgit.spec import FileArtifact, HostedArtifact


def _not_evaluable(artifact: Any) -> str:
    if isinstance(artifact, HostedArtifact):
        return f"is hosted by {artifact.provider} ({artifact.model_id}): no ONNX file to evaluate"
    return "is a URI artifact: no ONNX file in the repository to evaluate"


def recommendations(snapshot: Snapshot, root: Path | None) -> list[dict[str, Any]]:
    """One recommendation per model at most: its newest staging version that meets the policy."""
    return check_upgrades(snapshot, root)[0]


def check_upgrades(snapshot: Snapshot, root: Path | None
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(recommendations, skipped): what :func:`recommendations` returns, and every model or staging
    version that was not compared, with why (``{"model", "version", "reason"}``; ``version`` is
    None when the whole model was skipped)."""
    settings = snapshot.settings.spec if snapshot.settings is not None else None
    found: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []

    def skip(model_id: str, version: str | None, reason: str) -> None:
        skipped.append({"model": model_id, "version": version, "reason": reason})

    for model_id, parsed in snapshot.files.items():
        model = parsed.spec
        if model is None:
            skip(model_id, None, f"its file is invalid ({len(parsed.findings)} finding(s); see modelgit validate)")
            continue
        active = model.active
        staging = [v for v in model.versions if v.status == "staging"]
        if not staging:
            skip(model_id, None, "no staging version")
            continue
        if active is None:
            skip(model_id, None, "no active version to compare with")
            continue
        if model.evaluation is None:
            skip(model_id, None, f"no evaluation dataset (attach one: modelgit dataset {model_id} PATH)")
            continue
        if not isinstance(active.artifact, FileArtifact):
            skip(model_id, None, f"active version {active.version} {_not_evaluable(active.artifact)}")
            continue
        candidates = []
        for v in staging:
            if isinstance(v.artifact, FileArtifact):
                candidates.append(v)
            else:
                skip(model_id, v.version, f"staging version {v.version} {_not_evaluable(v.artifact)}")
        baseline = None
        for candidate in reversed(candidates):
            try:
                baseline = baseline or evaluate(snapshot, model_id, active.version, root=root)
                result = evaluate(snapshot, model_id, candidate.version, root=root)
            except ModelgitError as exc:
                found.append({"model": model_id, "from": active.version, "to": candidate.version,
                              "recommended": False, "reason": f"evaluation failed: {exc.message}"})
                break
            report = compare_results(model, settings, baseline, result)
            stats = report["metrics"][report["primary"]]
            gain = stats["relative_improvement"]
            reason = (f"{report['primary']} {stats['v1']:.4g} → {stats['v2']:.4g} "
                      f"({'n/a' if gain is None else f'{gain:+.1%}'}; 95% CI of delta "
                      f"[{stats['ci_low']:.4g}, {stats['ci_high']:.4g}]): {report['verdict']}")
            if report["meets_policy"]:
                found.append({"model": model_id, "from": active.version, "to": candidate.version,
                              "recommended": True, "reason": reason, "primary": report["primary"],
                              "relative_improvement": gain})
                break
            found.append({"model": model_id, "from": active.version, "to": candidate.version,
                          "recommended": False, "reason": reason + " (does not meet the policy)"})
    return found, skipped
