"""Decisions from evidence: recommendations, auto-upgrade and auto-rollback — each one, when acted
on, a proposal commit on a branch whose message carries the evidence. Nothing here merges.

The statistics are :mod:`modelgit.stats`' anytime-valid confidence sequences, so a daily check may
look every day without inflating false decisions; the data are the tracker's rollups of the
model's **current phase** (:mod:`modelgit.usage`), never pooled across phases. A sample-ratio
mismatch between the observed split and the committed one blocks every decision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from modelgit import stats
from modelgit.errors import InvalidError, UsageError
from modelgit.gitstore import GitRepo
from modelgit.snapshot import Snapshot
from modelgit.spec import HostedArtifact, Model, Policy
from modelgit.usage import Arm, Phase, PhaseIndex, arm_summary, arms_by_phase, phases

DEFAULT_MIN_QUALITY_IMPROVEMENT = 0.05


@dataclass
class ModelUsage:
    """A model's phases and, per phase (None: unknown commit), its arms by (version, task)."""

    model: str
    phases: list[Phase]
    arms: dict[int | None, dict[tuple[str, str], Arm]]
    quantiles: dict[tuple[int | None, str, str], dict[str, float | None]] = field(default_factory=dict)

    @property
    def current(self) -> Phase | None:
        return self.phases[-1] if self.phases else None

    def by_version(self, phase: int | None) -> dict[str, Arm]:
        """The arms of one phase with tasks pooled (a request's task does not pick its version)."""
        pooled: dict[str, Arm] = {}
        for (version, _), arm in self.arms.get(phase, {}).items():
            target = pooled.setdefault(version, Arm(version, ""))
            target.n += arm.n
            for name, moments in arm.metrics.items():
                target.metrics[name] = target.metrics[name] + moments
            for day in (arm.first_day, arm.last_day):
                if day is not None:
                    target.first_day = day if target.first_day is None else min(target.first_day, day)
                    target.last_day = day if target.last_day is None else max(target.last_day, day)
        return pooled

    def as_dict(self) -> dict[str, Any]:
        out = []
        for phase in [*self.phases, None]:
            index = phase.index if phase is not None else None
            arms = self.arms.get(index)
            if not arms:
                continue
            out.append({
                "phase": phase.as_dict() if phase is not None else None,
                "arms": [arm_summary(arm, self.quantiles.get((index, arm.version, arm.task)))
                         for _, arm in sorted(arms.items())],
            })
        return {"model": self.model, "phases": out}


def model_usage(repo: GitRepo, tracker: Any, model_id: str, ref: str = "HEAD", *,
                task: str | None = None, since: date | None = None) -> ModelUsage:
    """The model's recorded usage at ``ref``, split into phases: one query summing the tracker's
    rollups per (version, task, commit) in the database, with their latency histograms, then
    pooled per phase here (a phase holds the commits that descend from its start)."""
    from modelgit.usage import _key_of

    found = phases(repo, model_id, ref)
    aggregates = tracker.aggregates(model_id, by=("version", "task", "commit"), task=task, since=since)
    index = PhaseIndex(repo, found)
    usage = ModelUsage(model_id, found, arms_by_phase(aggregates, index))
    histograms: dict[tuple[int | None, str, str], Any] = {}
    for aggregate in aggregates:
        version, arm_task, commit = _key_of(aggregate)
        key = (index.of(commit), version, arm_task)
        histograms[key] = histograms[key] + aggregate.latency if key in histograms else aggregate.latency
    for key, histogram in histograms.items():
        p50, p95 = histogram.quantiles((0.5, 0.95))
        usage.quantiles[key] = {"p50": p50, "p95": p95}
    return usage


def effective_policy(snapshot: Snapshot, model: Model) -> dict[str, Any]:
    """The model's policy over the registry defaults (a key set on the model wins)."""
    settings = snapshot.settings.spec if snapshot.settings is not None else None
    merged: dict[str, Any] = {}
    layers: list[Policy | None] = [settings.defaults.policy if settings and settings.defaults else None,
                                   model.policy]
    for layer in layers:
        if layer is not None:
            merged.update({k: v for k, v in layer.model_dump().items() if v is not None})
    return merged


def _srm(usage: ModelUsage, by_version: dict[str, Arm]) -> stats.SrmResult | None:
    phase = usage.current
    if phase is None or len([w for w in phase.split.values() if w > 0]) < 2:
        return None
    observed = {version: by_version[version].n if version in by_version else 0 for version in phase.split}
    if sum(observed.values()) == 0:
        return None
    return stats.srm_test(observed, phase.split)


@dataclass(frozen=True)
class Verdict:
    """A decision for one model, with what acting on it would change (``plan``) and, once
    proposed, the branch and commit."""

    model: str
    decision: str
    reason: str
    evidence: dict[str, Any]
    action: str | None = None  # "promote", "split", "ab-stop", "rollback"
    version: str | None = None
    split: dict[str, float] | None = None
    branch: str | None = None
    commit: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "decision": self.decision, "reason": self.reason,
                "action": self.action, "version": self.version, "split": self.split,
                "evidence": self.evidence, "branch": self.branch, "commit": self.commit}


def _hold(model_id: str, reason: str, evidence: dict[str, Any] | None = None) -> Verdict:
    return Verdict(model_id, "hold", _why(reason), evidence or {})


def _why(reason: str) -> str:
    """A reason without the decision word stats puts first ("hold: …"): the verdict says it."""
    head, sep, rest = reason.partition(": ")
    return rest if sep and head in ("upgrade", "hold", "rollback") else reason


def _treatment(model: Model, split: dict[str, float]) -> str | None:
    """The staging version under test: the one with the largest share, the newest on a tie."""
    staging = [v.version for v in model.versions if v.status == "staging" and split.get(v.version, 0) > 0]
    if not staging:
        return None
    return max(reversed(staging), key=lambda v: split[v])


def decide_auto_upgrade(snapshot: Snapshot, usage: ModelUsage, model_id: str, *,
                        min_quality_improvement: float | None = None) -> Verdict:
    """Promote (or ramp) the staging version under test when the lower bound of its relative
    quality gain over the active version clears the threshold (``--min-quality-improvement``, else
    the policy's ``min_quality_improvement``, else 5 %). With ``policy.ramp`` each step is one
    proposal and a step that is significantly worse is abandoned (a rollback of the ramp)."""
    model = snapshot.model(model_id)
    policy = effective_policy(snapshot, model)
    threshold = (min_quality_improvement if min_quality_improvement is not None
                 else policy.get("min_quality_improvement", DEFAULT_MIN_QUALITY_IMPROVEMENT))
    active = model.active
    if active is None:
        return _hold(model_id, "no active version to compare with")
    split = model.split()
    ramp = policy.get("ramp")
    treatment = _treatment(model, split)
    phase = usage.current
    if phase is None or phase.split != split:
        return _hold(model_id, "the registry at this ref has no recorded phase for the model's "
                               "current split (is the ref the one that serves?)")
    if treatment is None:
        staging = [v.version for v in model.versions if v.status == "staging"]
        if ramp and staging:
            first = int(ramp[0])
            newest = staging[-1]
            return Verdict(model_id, "upgrade", f"start the ramp of {newest} at {first} %",
                           {"ramp": list(ramp), "next_percent": first}, action="split", version=newest,
                           split=_ramped(split, active.version, newest, first))
        return _hold(model_id, f"no staging version takes traffic; start an A/B test first "
                               f"(modelgit ab start {model_id} VERSION PERCENT)")
    by_version = usage.by_version(phase.index)
    control = by_version.get(active.version, Arm(active.version, "")).quality
    treated = by_version.get(treatment, Arm(treatment, "")).quality
    srm = _srm(usage, by_version)
    min_samples = int(policy.get("min_samples", stats.DEFAULT_MIN_SAMPLES))
    if ramp:
        current = float(split.get(treatment, 0))
        found = stats.ramp_step(current, ramp, control=control, treatment=treated,
                                min_samples_per_step=min_samples, srm=srm)
        evidence = {**found.evidence, "phase": phase.as_dict(), "versions": [active.version, treatment]}
        if found.decision == "rollback":
            return Verdict(model_id, "rollback", _why(found.reason), evidence, action="ab-stop", version=treatment)
        if found.decision == "upgrade":
            step = int(found.evidence["next_percent"])
            if step >= 100:
                return Verdict(model_id, "upgrade", _why(found.reason), evidence, action="promote", version=treatment)
            return Verdict(model_id, "upgrade", _why(found.reason), evidence, action="split", version=treatment,
                           split=_ramped(split, active.version, treatment, step))
        return Verdict(model_id, "hold", _why(found.reason), evidence)
    found = stats.decide_upgrade(control, treated, min_relative_improvement=threshold,
                                 min_samples=min_samples, srm=srm)
    evidence = {**found.evidence, "phase": phase.as_dict(), "versions": [active.version, treatment]}
    if found.decision == "upgrade":
        return Verdict(model_id, "upgrade", _why(found.reason), evidence, action="promote", version=treatment)
    return Verdict(model_id, "hold", _why(found.reason), evidence)


def _ramped(split: dict[str, float], active: str, treatment: str, percent: float) -> dict[str, float]:
    """``split`` with ``treatment`` at ``percent`` and the active version taking what others leave."""
    others = {v: w for v, w in split.items() if v not in (active, treatment) and w > 0}
    rest = 100 - percent - sum(others.values())
    if rest < 0:
        raise InvalidError(f"cannot give {treatment} {percent:g} %: other versions take "
                           f"{sum(others.values()):g} %")
    return {active: rest, **others, treatment: float(percent)}


def decide_auto_rollback(snapshot: Snapshot, usage: ModelUsage, model_id: str) -> Verdict:
    """Roll back when the active version's quality upper bound is under
    ``policy.rollback_below_quality``, or it is significantly worse than the version it replaced
    (compared with that version's last phase as the active one: across time, not randomised)."""
    model = snapshot.model(model_id)
    policy = effective_policy(snapshot, model)
    active = model.active
    phase = usage.current
    if active is None or phase is None or phase.active != active.version:
        return _hold(model_id, "the registry at this ref has no recorded phase for its active version")
    by_version = usage.by_version(phase.index)
    current = by_version.get(active.version, Arm(active.version, "")).quality
    previous_version, previous = None, None
    for earlier in reversed(usage.phases[:-1]):
        if earlier.active is not None and earlier.active != active.version:
            previous_version = earlier.active
            arm = usage.by_version(earlier.index).get(previous_version)
            previous = arm.quality if arm is not None and arm.quality.n else None
            break
    found = stats.decide_rollback(current, floor=policy.get("rollback_below_quality"), previous=previous,
                                  min_samples=int(policy.get("min_samples", stats.DEFAULT_MIN_SAMPLES)),
                                  srm=_srm(usage, by_version))
    evidence = {**found.evidence, "phase": phase.as_dict(), "active_version": active.version,
                "previous_version": previous_version}
    if found.decision == "rollback":
        return Verdict(model_id, "rollback", _why(found.reason), evidence, action="rollback", version=previous_version)
    return Verdict(model_id, "hold", _why(found.reason), evidence)


def plan(repo: GitRepo, snapshot: Snapshot, usage: ModelUsage, verdict: Verdict) -> Any:
    """The proposal (a :class:`modelgit.proposals.Proposal`) that acts on ``verdict``, its message
    carrying the evidence."""
    from modelgit import proposals
    model_id = verdict.model
    if verdict.action == "promote":
        assert verdict.version is not None
        base = proposals.plan_promote(snapshot, model_id, verdict.version, action="auto-upgrade")
    elif verdict.action == "split":
        assert verdict.split is not None
        base = proposals.plan_split(snapshot, model_id, verdict.split)
    elif verdict.action == "ab-stop":
        base = proposals.plan_ab_stop(snapshot, model_id, promote=False)
    elif verdict.action == "rollback":
        phases_ = usage.phases
        promoted_here = len(phases_) >= 2 and phases_[-1].active != phases_[-2].active
        if promoted_here or verdict.version is None:
            base = proposals.plan_rollback(repo, snapshot, model_id)  # a revert of the promotion
        else:
            base = proposals.plan_promote(snapshot, model_id, verdict.version, action="rollback")
    else:
        raise UsageError(f"'{model_id}': nothing to propose for a {verdict.decision} decision")
    trailers = {**base.extra_trailers, "Modelgit-Decision": verdict.decision,
                "Modelgit-Test": str(verdict.evidence.get("test", "")),
                "Modelgit-Phase": usage.current.start if usage.current else ""}
    action = {"promote": "auto-upgrade", "split": "auto-ramp", "ab-stop": "auto-rollback",
              "rollback": "auto-rollback"}[verdict.action]
    # Branch names say what moves: auto-upgrade-V, auto-ramp-V-PERCENT, auto-rollback-<version leaving>.
    leaving = verdict.evidence.get("active_version") if verdict.action == "rollback" else verdict.version
    slug = f"{action}-{leaving}" if leaving else action
    if verdict.action == "split" and verdict.split is not None and verdict.version is not None:
        slug += f"-{verdict.split[verdict.version]:g}"
    body = "\n\n".join(part for part in (base.body, f"{verdict.reason}", "Evidence:\n" + _evidence_text(
        verdict.evidence)) if part)
    return proposals.Proposal(base.model, action, base.version, base.subject, base.base_commit, base.changes,
                              base.modes, body, trailers, slug)


def _evidence_text(evidence: dict[str, Any]) -> str:
    return json.dumps(evidence, indent=2, sort_keys=True, default=str)


def propose(repo: GitRepo, snapshot: Snapshot, usage: ModelUsage, verdict: Verdict, *,
            validator: Any = None, push: str | None = None) -> Verdict:
    """Commit the proposal for ``verdict`` on its own branch (validated first); the verdict with
    the branch and commit."""
    from modelgit import proposals

    proposal = plan(repo, snapshot, usage, verdict)
    outcome = proposals.apply(repo, proposal, validator=validator, base=snapshot, push=push)
    return Verdict(verdict.model, verdict.decision, verdict.reason, verdict.evidence, verdict.action,
                   verdict.version, verdict.split, outcome.branch, outcome.commit)


def provider_of(model: Model) -> str | None:
    """The provider serving the model's active (else newest) version, None for ONNX files."""
    version = model.active or model.versions[-1]
    return version.artifact.provider if isinstance(version.artifact, HostedArtifact) else None


def recommend(snapshot: Snapshot, usages: dict[str, ModelUsage], evaluated: list[dict[str, Any]],
              *, provider: str | None = None) -> list[dict[str, Any]]:
    """Per model, the seed's fields (provider, model, currentVersion, latestVersion, improvements,
    recommended, reason, expectedImprovement) plus the evidence: observed usage decides when it
    has enough samples; otherwise the evaluation comparison (``evaluated``: check_upgrades'
    recommendations) does. A sample-ratio mismatch blocks a recommendation."""
    by_model = {item["model"]: item for item in evaluated}
    found = []
    for model_id, parsed in snapshot.files.items():
        model = parsed.spec
        if model is None or model.retired:
            continue
        if provider is not None and provider_of(model) != provider:
            continue
        active = model.active
        latest = model.latest
        item: dict[str, Any] = {
            "provider": provider_of(model), "model": model_id,
            "currentVersion": active.version if active else None,
            "latestVersion": latest.version if latest else None,
            "improvements": list(latest.improvements) if latest else [],
            "recommended": False, "reason": "", "expectedImprovement": None,
            "evidence": {"usage": None, "evaluation": None},
        }
        usage = usages.get(model_id)
        verdict = decide_auto_upgrade(snapshot, usage, model_id) if usage is not None else None
        evaluation = by_model.get(model_id)
        if evaluation is not None:
            item["evidence"]["evaluation"] = {k: v for k, v in evaluation.items() if k != "model"}
        if verdict is not None and verdict.evidence:
            item["evidence"]["usage"] = verdict.evidence
        # The usage verdict speaks when its interval was computed (enough samples in both arms);
        # a sample-ratio mismatch speaks too, to block.
        srm = (verdict.evidence.get("srm") or {}) if verdict is not None else {}
        enough = verdict is not None and "interval" in verdict.evidence
        if verdict is not None and srm.get("mismatch"):
            item["reason"] = f"observed usage: {verdict.reason}"
        elif enough and verdict is not None:
            item["recommended"] = verdict.decision == "upgrade"
            item["reason"] = f"observed usage: {verdict.reason}"
            interval = verdict.evidence.get("interval") or {}
            item["expectedImprovement"] = interval.get("estimate")
            if verdict.version:
                item["latestVersion"] = verdict.version
        elif evaluation is not None:
            item["recommended"] = bool(evaluation.get("recommended"))
            item["reason"] = f"evaluation: {evaluation.get('reason', '')}"
            item["expectedImprovement"] = evaluation.get("relative_improvement")
            item["latestVersion"] = evaluation.get("to", item["latestVersion"])
        else:
            item["reason"] = verdict.reason if verdict is not None else "no usage recorded and no evaluation"
        found.append(item)
    return found
