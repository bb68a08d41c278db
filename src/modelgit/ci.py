"""`modelgit ci`: what a pull request's reviewer needs, as report.md and report.json.

Validate the head against the base, evaluate every version the pull request adds or changes, and
compare each with the version it would displace (the base's active version). The gate is judged
by the **base's** evaluation block (dataset, metrics, primary metric) and policy, so a pull
request cannot pass by editing them: a pull request that changes them is reported as such and its
versions are evaluated on both, the stricter verdict counting. A version that is promoted or
gains traffic or weight must be non-inferior to the one it displaces within the policy's
``max_regression`` (one-sided, 95 %). A pull request that reverts landed commits and so restores a
serving state that served before is evaluated and reported, but not blocked: that is a rollback.

Every decision names the check that made it (``Decision.check``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelgit.compare import compare_results, max_regression, non_inferior, to_markdown
from modelgit.errors import ModelgitError
from modelgit.evaluate import evaluate
from modelgit.gitstore import GitRepo
from modelgit.rules import artifact_identity
from modelgit.snapshot import Snapshot
from modelgit.spec import Evaluation, FileArtifact, Model
from modelgit.validate import Validator

# The checks a decision can come from, as named in the report.
VALIDATION = "validation"
EVALUATION = "evaluation"
NON_INFERIORITY = "non-inferiority"
RESTORE = "restore"
EVALUATION_CHANGED = "evaluation-changed"
POLICY_CHANGED = "policy-changed"


@dataclass(frozen=True)
class Decision:
    check: str  # one of the names above
    outcome: str  # "pass", "fail", "info" or "skipped"
    detail: str
    model: str | None = None
    version: str | None = None

    def render(self) -> str:
        where = f"{self.model}:{self.version} " if self.version else f"{self.model} " if self.model else ""
        return f"[{self.check}] {where}{self.outcome}: {self.detail}"


@dataclass
class CiReport:
    base: str
    head: str
    valid: bool
    findings: list[dict[str, Any]]
    checks: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return [d.render() for d in self.decisions if d.outcome == "fail"]

    @property
    def ok(self) -> bool:
        return self.valid and not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "base": self.base, "head": self.head, "valid": self.valid,
                "findings": self.findings, "failures": self.failures,
                "decisions": [asdict(d) for d in self.decisions], "checks": self.checks}


def changed_versions(base: Model | None, head: Model) -> list[tuple[str, list[str]]]:
    """(version, reasons) for every version the change adds, re-points, promotes or gives more
    traffic or weight. A version added and promoted (or given traffic) in the same change counts
    as promoted (or gaining traffic) too. A new model's versions are only "added": they displace
    nothing. Pure."""
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
            if old is not None and (version.weight or 0) > (old.weight or 0):
                reasons.append(f"weight {old.weight or 0:g} → {version.weight:g}")
        if reasons and version.status != "archived":
            out.append((version.version, reasons))
    return out


def gains_serving(reasons: list[str]) -> bool:
    return any(r == "promoted" or r.startswith(("traffic", "weight")) for r in reasons)


def serving_state(model: Model | None) -> tuple[Any, ...] | None:
    """What a model serves: its active version, split and the weights of the versions in it."""
    if model is None:
        return None
    split = model.split()
    weights = tuple(sorted((v.version, v.weight) for v in model.versions if v.version in split))
    return model.active.version if model.active else None, tuple(sorted(split.items())), weights


def _restored(validator: Validator, base: Snapshot, head: Snapshot, reverted: list[str]) -> dict[str, str]:
    """Models whose head serving state is the one they had just before a commit that the pull
    request reverts (``reverted``: landed on the base, as validation found them): model id → that
    reverted commit."""
    found: dict[str, str] = {}
    for commit in reverted:
        parents = validator.repo.parents(commit)
        if not parents:
            continue
        before = validator.loader.load(parents[0])
        for model_id, model in head.models.items():
            if model_id in found or serving_state(model) == serving_state(base.models.get(model_id)):
                continue
            if serving_state(before.models.get(model_id)) == serving_state(model):
                found[model_id] = commit
    return found


def _effective_policy(model: Model | None, snapshot: Snapshot) -> dict[str, Any]:
    settings = snapshot.settings.spec if snapshot.settings is not None else None
    defaults = settings.defaults.policy if settings is not None and settings.defaults else None
    merged = defaults.model_dump(exclude_none=True) if defaults else {}
    if model is not None and model.policy is not None:
        merged |= model.policy.model_dump(exclude_none=True)
    return merged


@dataclass(frozen=True)
class _Yardstick:
    label: str  # "base" or "pull request"
    evaluation: Evaluation
    dataset_at: Snapshot  # the commit its dataset is read at


@dataclass(frozen=True)
class _Judged:
    """One model as the gate judges it: the base's version of it, the policy and any restore."""
    model_id: str
    model: Model
    base_model: Model | None
    settings: Any
    margin: float
    restore_of: str | None


def run_ci(repo: GitRepo, base_ref: str, head_ref: str = "HEAD", *,
           validator: Validator | None = None) -> CiReport:
    validator = validator or Validator(repo)
    validation = validator.validate(head_ref, base=base_ref)
    head = validation.snapshot
    assert head is not None and head.commit is not None
    base = validator.loader.load(base_ref)
    gate = _Gate(CiReport(base.commit or base_ref, head.commit, validation.valid,
                          [f.as_dict() | {"text": f.render()} for f in validation.findings]), head)
    if not validation.valid:
        gate.decide(VALIDATION, "fail", f"validation failed with {len(validation.findings)} finding(s)")
    restored = _restored(validator, base, head, validation.reverted)
    for model_id, model in head.models.items():
        base_model = base.models.get(model_id)
        # The yardsticks: the base's evaluation first (the one the pull request cannot change),
        # then the pull request's own when it differs (a new model has only its own).
        yardsticks: list[_Yardstick] = []
        if base_model is not None and base_model.evaluation is not None:
            yardsticks.append(_Yardstick("base", base_model.evaluation, base))
        if model.evaluation is not None and (base_model is None or model.evaluation != base_model.evaluation):
            yardsticks.append(_Yardstick("pull request", model.evaluation, head))
            if len(yardsticks) == 2:
                gate.decide(EVALUATION_CHANGED, "info", "the pull request changes the evaluation block "
                            "(dataset, metrics or primary metric); versions are evaluated on the base's and "
                            "on the new one, and the stricter verdict counts", model_id)
        if base_model is not None:
            policy_before, policy_after = _effective_policy(base_model, base), _effective_policy(model, head)
            if policy_before != policy_after:
                gate.decide(POLICY_CHANGED, "info", f"the pull request changes the policy {policy_before} → "
                            f"{policy_after}; the base's policy gates this pull request", model_id)
        restore_of = restored.get(model_id)
        if restore_of is not None:
            gate.decide(RESTORE, "info", f"restores what served before commit {restore_of[:12]}, which the "
                        "pull request reverts: evaluated and reported, not blocked (a rollback)", model_id)
        policy_at = base if base_model is not None else head  # a new model has only its own policy
        settings = policy_at.settings.spec if policy_at.settings is not None else None
        judged = _Judged(model_id, model, base_model, settings,
                         max_regression(base_model or model, settings), restore_of)
        for version, reasons in changed_versions(base_model, model):
            gate.version(judged, version, reasons, yardsticks)
    return gate.report


@dataclass
class _Gate:
    report: CiReport
    head: Snapshot
    results: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    def decide(self, check: str, outcome: str, detail: str, model: str | None = None,
               version: str | None = None) -> None:
        self.report.decisions.append(Decision(check, outcome, detail, model, version))

    def result(self, model_id: str, version: str, yardstick: _Yardstick) -> dict[str, Any]:
        key = (model_id, version, yardstick.label)
        if key not in self.results:
            # root=None: never reuse results stored under registry/evaluations/. In CI they come
            # from the pull request's own checkout, so a committed result file could claim any
            # numbers for a bad artifact; the gate recomputes from the artifact and dataset.
            self.results[key] = evaluate(self.head, model_id, version, root=None,
                                         evaluation=yardstick.evaluation, dataset_snapshot=yardstick.dataset_at)
        return self.results[key]

    def version(self, judged: _Judged, version: str, reasons: list[str], yardsticks: list[_Yardstick]) -> None:
        """Evaluate one changed version on every yardstick and record what each decides."""
        model_id, model = judged.model_id, judged.model
        check: dict[str, Any] = {"model": model_id, "version": version, "reasons": reasons,
                                 "compare": None, "evaluations": {}}
        self.report.checks.append(check)
        entry = model.version(version)
        assert entry is not None
        if not isinstance(entry.artifact, FileArtifact):
            check["skipped"] = "a hosted or remote version has no ONNX file in the repository to evaluate"
        elif not yardsticks:
            check["skipped"] = "the model has no evaluation block"
        if "skipped" in check:
            self.decide(EVALUATION, "skipped", check["skipped"], model_id, version)
            return
        displaced = judged.base_model.active if judged.base_model else None
        if displaced is not None and (displaced.version == version or not isinstance(
                getattr(model.version(displaced.version), "artifact", None), FileArtifact)):
            displaced = None
        for yardstick in yardsticks:
            check["evaluations"][yardstick.label] = self.judge(
                judged, version, reasons, yardstick, displaced.version if displaced else None)
        first = next(iter(check["evaluations"].values()))
        check["metrics"] = first.get("metrics")
        check["compare"] = first.get("compare")
        if "error" in first:
            check["error"] = first["error"]

    def judge(self, judged: _Judged, version: str, reasons: list[str], yardstick: _Yardstick,
              displaced: str | None) -> dict[str, Any]:
        """Evaluate one changed version on one yardstick, record the decision; return what it saw."""
        model_id = judged.model_id
        evaluation = yardstick.evaluation
        where = f"{yardstick.label} dataset {evaluation.dataset.path}"
        out: dict[str, Any] = {"dataset": evaluation.dataset.path, "dataset_sha256": evaluation.dataset.sha256}
        try:
            mine = self.result(model_id, version, yardstick)
            out["metrics"] = mine["metrics"]
            theirs = self.result(model_id, displaced, yardstick) if displaced else None
        except ModelgitError as exc:
            out["error"] = exc.render()
            self.decide(EVALUATION, "fail", f"evaluation on the {where} failed: {exc.message}", model_id, version)
            return out
        if theirs is None:
            self.decide(EVALUATION, "info", f"evaluated on the {where}; no active version to compare with",
                        model_id, version)
            return out
        primary = evaluation.primary or next(iter(mine["metrics"]))
        comparison = compare_results(judged.model, judged.settings, theirs, mine, primary=primary,
                                     policy_model=judged.base_model or judged.model)
        out["compare"] = comparison
        stats = comparison["metrics"][primary]
        verdict = f"{primary} {comparison['verdict']} (two-sided 95 %) vs {displaced}"
        bound = (f"one-sided upper 95 % bound of the relative gain {stats['relative_gain_upper_95']:+.2%}, "
                 f"allowed down to {-judged.margin:+.2%}")
        if not gains_serving(reasons):
            self.decide(EVALUATION, "info", f"{verdict} on the {where} ({bound}); it gains no traffic, weight "
                        "or status, so it is not gated", model_id, version)
        elif non_inferior(stats, judged.margin):
            self.decide(NON_INFERIORITY, "pass", f"not worse than {displaced} beyond the margin on the {where}: "
                        f"{verdict} ({bound})", model_id, version)
        else:
            what = (f"worse than {displaced} on {primary} beyond the policy's max_regression on the {where} "
                    f"({verdict}; {bound}) and would serve more ({', '.join(reasons)})")
            if judged.restore_of is not None:
                self.decide(RESTORE, "info", f"{what}, but it restores what served before "
                            f"{judged.restore_of[:12]}: not blocked", model_id, version)
            else:
                self.decide(NON_INFERIORITY, "fail", what, model_id, version)
        return out


def to_markdown_report(report: CiReport) -> str:
    status = "✅ modelgit CI passed" if report.ok else "❌ modelgit CI failed"
    lines = [f"## {status}", "", f"`{report.base[:12]}` → `{report.head[:12]}`", ""]
    if report.findings:
        lines += ["### Validation findings", "", "```"] + [f["text"] for f in report.findings] + ["```", ""]
    if report.failures:
        lines += ["### Why it fails", ""] + [f"- {f}" for f in report.failures] + [""]
    if report.decisions:
        lines += ["### Decisions", ""] + [f"- {d.render()}" for d in report.decisions] + [""]
    if not report.checks:
        lines.append("No model version was added or changed.")
    for check in report.checks:
        lines.append(f"#### {check['model']}:{check['version']} ({', '.join(check['reasons'])})")
        lines.append("")
        if check.get("skipped"):
            lines.append(f"Not evaluated: {check['skipped']}.")
        for label, out in check["evaluations"].items():
            if len(check["evaluations"]) > 1:
                lines += [f"On the {label} dataset `{out['dataset']}`:", ""]
            if out.get("error"):
                lines += ["```", out["error"], "```"]
            elif out.get("compare"):
                lines.append(to_markdown(out["compare"]))
            elif out.get("metrics"):
                lines.append("Metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in out["metrics"].items())
                             + " (nothing to compare with).")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_reports(report: CiReport, out_dir: Path, *, within: Path | None = None) -> tuple[Path, Path]:
    """report.md and report.json in ``out_dir``; under ``within`` (the repository) never through a
    committed symlink, and never into an existing special file (see :mod:`modelgit.outputs`)."""
    from modelgit.outputs import write_output

    md = write_output(out_dir / "report.md", to_markdown_report(report), within=within)
    js = write_output(out_dir / "report.json", json.dumps(report.as_dict(), indent=1, default=str) + "\n",
                      within=within)
    return md, js
