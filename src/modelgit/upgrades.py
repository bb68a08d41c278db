"""Upgrade recommendations from evaluations: a staging version that beats the active one on the
primary metric, significantly and by at least the policy's minimum improvement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelgit.compare import compare_results
from modelgit.errors import ModelgitError
from modelgit.evaluate import evaluate
from modelgit.snapshot import Snapshot
from modelgit.spec import FileArtifact


def recommendations(snapshot: Snapshot, root: Path | None) -> list[dict[str, Any]]:
    """One recommendation per model at most: its newest staging version that meets the policy."""
    settings = snapshot.settings.spec if snapshot.settings is not None else None
    found = []
    for model_id, model in snapshot.models.items():
        active = model.active
        if model.evaluation is None or active is None or not isinstance(active.artifact, FileArtifact):
            continue
        candidates = [v for v in model.versions
                      if v.status == "staging" and isinstance(v.artifact, FileArtifact)]
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
    return found
