"""Continuous learning on real repositories, a real tracker (SQLite files, a PostgreSQL server) and
real onnxruntime sessions (issue 10, points 1-4): phases from git history, the runtime's own
records, usage never pooled across phases, sample-ratio mismatch, ramps, rollbacks and the
proposals they become.

Outcomes are simulated with a known truth (a seeded generator, Bernoulli quality), so the
expected decisions follow from the truth and from counts computed here, not from the program."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import Repo
from modelgit import Registry, Tracker
from modelgit.gitstore import GitRepo
from modelgit.usage import phases
from runtime_support import RegistryRepo, V, model_bytes, sample_input

MODEL = "score"


def _url(repo: Repo) -> str:
    return f"sqlite:///{repo.root / '.git' / 'modelgit' / 'usage.sqlite'}"


def _simulate(reg: Registry, n: int, truth: dict[str, float], seed: int, offset: int = 0) -> dict[str, int]:
    """``n`` keyed requests through the runtime (real sessions), each then scored with probability
    ``truth[version]`` of being good; returns how many each version answered."""
    rng = random.Random(seed)
    x = sample_input(1)
    served: dict[str, int] = {}
    for i in range(offset, offset + n):
        key = f"user-{i}"
        reg.run(MODEL, x, key=key, request_id=key)
        version = reg.route(MODEL, key)
        served[version] = served.get(version, 0) + 1
        reg.record(MODEL, request_id=key, quality=float(rng.random() < truth[version]))
    return served


def _policy(score: RegistryRepo, versions: list[V], traffic: dict[str, float] | None, **policy: Any) -> None:
    score.model(MODEL, versions, traffic)
    path = score.repo.root / f"registry/models/{MODEL}.yaml"
    doc = yaml.safe_load(path.read_text())
    if policy:
        doc["policy"] = policy
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


# -- phases ---------------------------------------------------------------------------------------------
def test_phases_start_where_the_split_or_a_status_changes(score: RegistryRepo) -> None:
    r = score.repo
    first = r.head()  # v1 active, v2 staging, 90/10
    score.model(MODEL, [V("v1", "active", k=1, weight=0.9), V("v2", "staging", k=2, weight=0.25)],
                {"v1": 90, "v2": 10})
    score.commit("a weight only: no new phase")
    score.model(MODEL, [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 50, "v2": 50})
    second = score.commit("50/50")
    r.write(f"registry/models/{MODEL}.yaml", "name: score\nversions: [")
    score.commit("a broken file never served: no phase")
    score.model(MODEL, [V("v1", "deprecated", k=1), V("v2", "active", k=2)])
    third = score.commit("promote v2")
    found = phases(GitRepo.discover(r.root), MODEL)
    assert [p.start for p in found] == [first, second, third]
    assert [p.split for p in found] == [{"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}, {"v2": 100.0}]
    assert [p.active for p in found] == ["v1", "v1", "v2"]


# -- the runtime records; usage per phase -----------------------------------------------------------------
def test_the_runtime_records_what_answered_and_usage_never_pools_phases(score: RegistryRepo, cli: Any) -> None:
    r = score.repo
    with Tracker(_url(r)) as tracker:
        reg = Registry.open(r.root, ref="main", tracker=tracker)
        first = reg.commit
        served_1 = _simulate(reg, 400, {"v1": 0.5, "v2": 0.5}, seed=1)
        score.model(MODEL, [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 50, "v2": 50})
        second = score.commit("50/50")
        assert reg.reload() is True
        served_2 = _simulate(reg, 600, {"v1": 0.5, "v2": 0.5}, seed=2, offset=400)
        tracker.flush()
        rollups = tracker.rollups(MODEL)
    assert {(ru.commit, ru.version): ru.n for ru in rollups} == {
        (first, v): n for v, n in served_1.items()} | {(second, v): n for v, n in served_2.items()}
    code, out, err = cli("-C", str(r.root), "usage", MODEL, "--json")
    assert code == 0, err
    (model,) = json.loads(out)["models"]
    by_phase = {p["phase"]["start"]: {a["version"]: a["n"] for a in p["arms"]} for p in model["phases"]}
    assert by_phase == {first: served_1, second: served_2}  # two phases, never one pooled table
    latencies = [a["latency_ms"]["p50"] for p in model["phases"] for a in p["arms"]]
    assert all(isinstance(v, float) and v > 0 for v in latencies)


def test_the_version_that_answers_is_recorded_when_the_routed_one_fails(score: RegistryRepo,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """v2's input is named differently: a dict feed for v1 fails on v2, which falls back to v1."""
    r = score.repo
    score.model(MODEL, [V("v1", "active", k=1), V("v2", "staging", data=_renamed_input())], {"v1": 50, "v2": 50})
    score.commit("v2 takes input 'z'")
    with Tracker(_url(r)) as tracker:
        reg = Registry.open(r.root, ref="main", tracker=tracker)
        for i in range(200):
            reg.run(MODEL, {"x": sample_input(1)}, key=f"user-{i}")
        tracker.flush()
        versions = {ru.version: ru.n for ru in tracker.rollups(MODEL)}
    assert versions == {"v1": 200}  # v2's routed share was answered by v1, and recorded as v1


def _renamed_input() -> bytes:
    from runtime_support import linear_onnx, weights

    return linear_onnx(*weights(2), input_name="z")


def test_record_without_a_tracker_says_how_to_get_one(score: RegistryRepo) -> None:
    from modelgit.errors import UsageError

    reg = Registry.open(score.repo.root, ref="main")
    with pytest.raises(UsageError, match="this registry has no tracker"):
        reg.record(MODEL, "user-1", quality=1.0)
    np.testing.assert_array_equal(reg.run(MODEL, sample_input(1), key="u")[0].shape, (1, 2))


# -- decisions --------------------------------------------------------------------------------------------
def _ab(score: RegistryRepo, split: dict[str, float], **policy: Any) -> None:
    _policy(score, [V("v1", "active", k=1), V("v2", "staging", k=2)], split, **policy)
    score.commit(f"A/B {split}")


def test_auto_upgrade_promotes_a_true_gain_with_its_evidence_in_the_commit(score: RegistryRepo, cli: Any) -> None:
    r = score.repo
    _ab(score, {"v1": 50, "v2": 50}, min_quality_improvement=0.05)
    with Tracker(_url(r)) as tracker:
        reg = Registry.open(r.root, ref="main", tracker=tracker)
        served = _simulate(reg, 3000, {"v1": 0.55, "v2": 0.75}, seed=3)
    code, out, err = cli("-C", str(r.root), "auto-upgrade", MODEL, "--propose", "--json")
    assert code == 0, err
    verdict = json.loads(out)
    assert verdict["decision"] == "upgrade" and verdict["action"] == "promote" and verdict["version"] == "v2"
    assert (verdict["evidence"]["control"]["n"], verdict["evidence"]["treatment"]["n"]) == (served["v1"], served["v2"])
    assert verdict["branch"] == "modelgit/score/auto-upgrade-v2"
    message = r.git("log", "-1", "--format=%B", verdict["branch"])
    assert "Modelgit-Decision: upgrade" in message and "Modelgit-Action: auto-upgrade" in message
    assert f'"n": {served["v2"]}' in message  # the evidence travels with the proposal
    promoted = yaml.safe_load(r.git("show", f"{verdict['branch']}:registry/models/{MODEL}.yaml"))
    assert {v["version"]: v["status"] for v in promoted["versions"]} == {"v1": "deprecated", "v2": "active"}
    assert r.git("rev-parse", "main") == r.head()  # nothing merged, the working tree untouched


def test_no_gain_holds(score: RegistryRepo, cli: Any) -> None:
    r = score.repo
    _ab(score, {"v1": 50, "v2": 50})
    with Tracker(_url(r)) as tracker:
        _simulate(Registry.open(r.root, ref="main", tracker=tracker), 2000, {"v1": 0.6, "v2": 0.6}, seed=4)
    code, out, _ = cli("-C", str(r.root), "auto-upgrade", MODEL, "--propose")
    assert code == 0 and out.startswith("hold: score: ")
    assert r.git("branch", "--list", "modelgit/*") == ""


def test_a_sample_ratio_mismatch_blocks_the_decision(score: RegistryRepo, cli: Any) -> None:
    """The committed split is 50/50 but 70 % of the recorded requests say v1 (a logging bug)."""
    r = score.repo
    _ab(score, {"v1": 50, "v2": 50})
    commit = r.head()
    rng = random.Random(5)
    with Tracker(_url(r)) as tracker:
        for i in range(2000):
            version = "v1" if i % 10 < 7 else "v2"
            tracker.record(MODEL, version, quality=float(rng.random() < (0.5 if version == "v1" else 0.9)),
                           commit=commit, request_id=f"r{i}")
    code, out, _ = cli("-C", str(r.root), "auto-upgrade", MODEL, "--json")
    verdict = json.loads(out)
    assert verdict["decision"] == "hold" and "sample-ratio mismatch" in verdict["reason"]
    assert verdict["evidence"]["srm"]["observed"] == {"v1": 1400, "v2": 600}
    code, out, _ = cli("-C", str(r.root), "recommend", "--json")
    assert code == 0
    (item,) = [i for i in json.loads(out)["recommendations"] if i["model"] == MODEL]
    assert item["recommended"] is False and "sample-ratio mismatch" in item["reason"]


def test_a_ramp_moves_one_step_per_proposal_and_a_failed_step_is_abandoned(score: RegistryRepo, cli: Any) -> None:
    r = score.repo
    _policy(score, [V("v1", "active", k=1), V("v2", "staging", k=2)], None, ramp=[10, 50, 100], min_samples=100)
    score.commit("v2 staged, ramp policy")
    code, out, _ = cli("-C", str(r.root), "auto-upgrade", MODEL, "--json")
    verdict = json.loads(out)
    assert (verdict["action"], verdict["split"]) == ("split", {"v1": 90.0, "v2": 10.0})
    _policy(score, [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 90, "v2": 10},
            ramp=[10, 50, 100], min_samples=100)
    score.commit("ramp step 1: 10 %")
    with Tracker(_url(r)) as tracker:
        _simulate(Registry.open(r.root, ref="main", tracker=tracker), 3000, {"v1": 0.6, "v2": 0.62}, seed=6)
    code, out, _ = cli("-C", str(r.root), "auto-upgrade", MODEL, "--propose", "--json")
    verdict = json.loads(out)
    assert verdict["decision"] == "upgrade" and verdict["split"] == {"v1": 50.0, "v2": 50.0}
    assert verdict["branch"] == "modelgit/score/auto-ramp-v2-50"
    # The next step on main goes badly: the step fails and the proposal abandons the test.
    _policy(score, [V("v1", "active", k=1), V("v2", "staging", k=2)], {"v1": 50, "v2": 50},
            ramp=[10, 50, 100], min_samples=100)
    score.commit("ramp step 2: 50 %")
    with Tracker(_url(r)) as tracker:
        _simulate(Registry.open(r.root, ref="main", tracker=tracker), 2000, {"v1": 0.6, "v2": 0.3}, seed=7,
                  offset=5000)
    code, out, _ = cli("-C", str(r.root), "auto-upgrade", MODEL, "--propose", "--json")
    assert code == 0
    verdict = json.loads(out)
    assert verdict["decision"] == "rollback" and verdict["action"] == "ab-stop"
    stopped = yaml.safe_load(r.git("show", f"{verdict['branch']}:registry/models/{MODEL}.yaml"))
    assert "traffic" not in stopped


def test_auto_rollback_under_the_floor(score: RegistryRepo, cli: Any) -> None:
    r = score.repo
    _policy(score, [V("v1", "active", k=1), V("v2", "staging", k=2)], None, rollback_below_quality=0.5)
    score.commit("floor 0.5")
    with Tracker(_url(r)) as tracker:
        _simulate(Registry.open(r.root, ref="main", tracker=tracker), 1500, {"v1": 0.3, "v2": 0.3}, seed=8)
    code, out, _ = cli("-C", str(r.root), "auto-rollback", MODEL, "--json")
    assert code == 0
    verdict = json.loads(out)
    assert verdict["decision"] == "rollback" and "floor" in verdict["reason"]
    assert verdict["evidence"]["active"]["n"] == 1500


def test_auto_rollback_against_the_version_it_replaced_proposes_a_revert(score: RegistryRepo, cli: Any) -> None:
    r = score.repo
    with Tracker(_url(r)) as tracker:
        _simulate(Registry.open(r.root, ref="main", tracker=tracker), 2000, {"v1": 0.7, "v2": 0.7}, seed=9)
    score.model(MODEL, [V("v1", "deprecated", k=1), V("v2", "active", k=2)])
    promotion = score.commit("promote v2")
    with Tracker(_url(r)) as tracker:
        _simulate(Registry.open(r.root, ref="main", tracker=tracker), 1500, {"v2": 0.45}, seed=10, offset=3000)
    code, out, _ = cli("-C", str(r.root), "auto-rollback", MODEL, "--propose", "--json")
    assert code == 0
    verdict = json.loads(out)
    assert verdict["decision"] == "rollback" and verdict["evidence"]["previous_version"] == "v1"
    message = r.git("log", "-1", "--format=%B", verdict["branch"])
    assert f"This reverts commit {promotion}." in message and "Modelgit-Decision: rollback" in message
    restored = yaml.safe_load(r.git("show", f"{verdict['branch']}:registry/models/{MODEL}.yaml"))
    assert {v["version"]: v["status"] for v in restored["versions"]}["v1"] == "active"


def test_recommend_has_the_seed_fields(example_repo: Repo, cli: Any) -> None:
    code, out, err = cli("-C", str(example_repo.root), "recommend", "--json")
    assert code == 0, err
    items = {i["model"]: i for i in json.loads(out)["recommendations"]}
    seed_fields = {"provider", "model", "currentVersion", "latestVersion", "improvements", "recommended",
                   "reason", "expectedImprovement"}
    assert all(seed_fields <= set(item) for item in items.values())
    hosted = items["openrouter/qwen-2.5-7b-instruct"]
    assert (hosted["provider"], hosted["currentVersion"]) == ("openrouter", "1.1.0")
    assert items["calling_score"]["provider"] is None and items["calling_score"]["latestVersion"] == "v2.0-real"
    code, out, _ = cli("-C", str(example_repo.root), "recommend", "--provider", "openrouter", "--json")
    assert [i["model"] for i in json.loads(out)["recommendations"]] == ["openrouter/qwen-2.5-7b-instruct"]


def test_usage_reads_postgresql_too(score: RegistryRepo, cli: Any, pg_server: Any) -> None:
    r = score.repo
    url = pg_server.create_database("learning_usage")
    with Tracker(url) as tracker:
        served = _simulate(Registry.open(r.root, ref="main", tracker=tracker), 300, {"v1": 0.5, "v2": 0.5}, seed=11)
    code, out, err = cli("-C", str(r.root), "usage", MODEL, "--json", "--tracking-url", url)
    assert code == 0, err
    (phase,) = json.loads(out)["models"][0]["phases"]
    assert {a["version"]: a["n"] for a in phase["arms"]} == served


def test_usage_refuses_a_bad_date_and_an_unknown_model(score: RegistryRepo, cli: Any) -> None:
    root = str(score.repo.root)
    code, _, err = cli("-C", root, "usage", MODEL, "--since", "2026-13-01")
    assert code == 2 and "--since '2026-13-01' is not a date" in err
    code, _, err = cli("-C", root, "usage", "scor")
    assert code == 2 and "unknown model 'scor'" in err


def test_model_bytes_differ_per_version() -> None:
    # The runtime tests tell versions apart by their outputs; so do these.
    x = sample_input(1)
    assert not np.array_equal(model_bytes(1), model_bytes(2)) and x.shape == (1, 3)


def test_default_database_lives_in_the_git_dir(score: RegistryRepo, cli: Any) -> None:
    r = score.repo
    cli("-C", str(r.root), "usage")
    assert (Path(r.root) / ".git" / "modelgit" / "usage.sqlite").exists()


def test_the_daily_check_proposes_for_models_with_auto_upgrade_on(score: RegistryRepo, cli: Any) -> None:
    r = score.repo
    _ab(score, {"v1": 50, "v2": 50}, auto_upgrade=True, min_quality_improvement=0.05)
    root = str(r.root)
    code, out, _ = cli("-C", root, "check-upgrades", "--json")
    assert code == 0
    gaps = [s for s in json.loads(out)["skipped"] if s["model"] == MODEL and "usage database" in s["reason"]]
    assert len(gaps) == 1
    with Tracker(_url(r)) as tracker:
        _simulate(Registry.open(r.root, ref="main", tracker=tracker), 3000, {"v1": 0.55, "v2": 0.75}, seed=12)
    code, out, err = cli("-C", root, "check-upgrades", "--propose", "--json")
    assert code == 0, err
    report = json.loads(out)
    (verdict,) = report["decisions"]
    assert (verdict["decision"], verdict["version"]) == ("upgrade", "v2")
    assert {"model": MODEL, "branch": "modelgit/score/auto-upgrade-v2"}.items() <= report["proposals"][0].items()
    # The next day's run finds the branch there and says so instead of failing.
    code, out, _ = cli("-C", root, "check-upgrades", "--propose", "--json")
    (again,) = json.loads(out)["decisions"]
    assert code == 0 and "not proposed: branch 'modelgit/score/auto-upgrade-v2' already exists" in again["reason"]
