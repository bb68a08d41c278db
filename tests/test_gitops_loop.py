"""The pull-request loop end to end, on real repositories: revert is rollback and passes the gate,
repeated rollbacks walk back, nothing goes offline by accident, and the CI gate judges a pull
request by the base's evaluation and policy (issue 8, points 3-5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn import metrics as skm

from conftest import Repo, affine_onnx, make_repo, npz_bytes, ok, sha256_hex
from test_ci import ci
from test_proposals import merge

CS = "registry/models/calling_score.yaml"


def fails(cli: Any, *args: str, code: int = 1) -> tuple[str, str]:
    got, out, err = cli(*args)
    assert got == code, out + err
    assert "Traceback" not in out + err
    return out, err


def at(r: Repo, ref: str, path: str = CS) -> bytes:
    return r.git("show", f"{ref}:{path}").encode() + b"\n"


def rollback_branch(r: Repo, cli: Any) -> str:
    out = ok(cli, "-C", str(r.root), "rollback", "calling_score")
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("committed "))


# -- 3. revert is rollback, through the gate ------------------------------------------------------------
def test_repeated_rollbacks_walk_back_through_serving_states(example_repo: Repo, cli: Any, tmp_path: Path) -> None:
    r = example_repo
    s0 = at(r, "main")
    ok(cli, "-C", str(r.root), "split", "calling_score", "v1.0-hybrid=80", "v2.0-real=20")
    merge(r, "modelgit/calling_score/split-80-20")
    s1 = at(r, "main")
    ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real")
    merge(r, "modelgit/calling_score/promote-v2.0-real", ff=True)
    assert len({s0, s1, at(r, "main")}) == 3

    for step, (expected, ff) in enumerate([(s1, False), (s0, True)]):
        branch = rollback_branch(r, cli)
        assert at(r, branch) == expected, f"rollback {step + 1}"
        ok(cli, "-C", str(r.root), "validate", "--ref", branch, "--base", "main")
        code, _, report = ci(cli, r, branch, tmp_path / f"ci{step}")
        assert code == 0, report["failures"]
        assert any(d["check"] == "restore" and d["model"] == "calling_score" for d in report["decisions"])
        merge(r, branch, ff=ff)
        assert at(r, "main") == expected

    _, err = fails(cli, "-C", str(r.root), "rollback", "calling_score")
    assert err.startswith("error: every change to what 'calling_score' serves is rolled back already")
    # The forward alternative still works.
    ok(cli, "-C", str(r.root), "rollback", "calling_score", "--to", "v2.0-real", "--dry-run")


def test_a_reapplied_change_is_rolled_back_again_not_the_reapply_undone(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    s0 = at(r, "main")
    ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real")
    merge(r, "modelgit/calling_score/promote-v2.0-real")
    s1 = at(r, "main")
    first = rollback_branch(r, cli)
    merge(r, first)
    r.git("branch", "-D", first)  # merged: deleted, as a forge does
    assert at(r, "main") == s0
    r.git("revert", "--no-edit", "HEAD", "-m", "1")  # "Reapply": a revert of the rollback
    assert at(r, "main") == s1
    assert at(r, rollback_branch(r, cli)) == s0


def test_hand_commits_without_trailers_are_found_by_semantic_diff_in_order(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    s0 = at(r, "main")
    r.write(CS, r.read(CS).replace("  v1.0-hybrid: 90\n  v2.0-real: 10\n", "  v1.0-hybrid: 70\n  v2.0-real: 30\n"))
    r.commit("more traffic to the new model")
    s1 = at(r, "main")
    r.write(CS, r.read(CS).replace("owner: ml-platform", "owner: someone-else"))
    r.commit("new owner")  # not a serving change: skipped
    r.write(CS, r.read(CS).replace("    weight: 0.3\n", "    weight: 0.6\n"))
    r.commit("heavier blend")
    merge(r, rollback_branch(r, cli), ff=True)
    assert at(r, "main") == s1.replace(b"owner: ml-platform", b"owner: someone-else")
    merge(r, rollback_branch(r, cli), ff=True)
    assert at(r, "main") == s0.replace(b"owner: ml-platform", b"owner: someone-else")


def test_git_revert_of_a_merged_promotion_passes_the_gate_and_reports_metrics(example_repo: Repo, cli: Any,
                                                                             tmp_path: Path) -> None:
    r = example_repo
    ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real")
    merged = merge(r, "modelgit/calling_score/promote-v2.0-real")
    r.git("checkout", "-q", "-b", "revert-promote")
    r.git("revert", "--no-edit", "-m", "1", merged)
    ok(cli, "-C", str(r.root), "validate", "--base", "main")
    code, md, report = ci(cli, r, "revert-promote", tmp_path / "ci")
    assert code == 0 and report["ok"]
    (restore,) = [d for d in report["decisions"] if d["check"] == "restore"]
    assert merged[:12] in restore["detail"]
    (check,) = report["checks"]
    assert check["version"] == "v1.0-hybrid" and "promoted" in check["reasons"]
    assert set(check["evaluations"]["base"]["metrics"]) == {"rmse", "mae", "r2"}  # reported, not skipped
    assert "Verdict on rmse" in md


def test_git_revert_of_a_register_passes_the_gate(example_repo: Repo, cli: Any, tmp_path: Path) -> None:
    r = example_repo
    model = tmp_path / "v3.onnx"
    model.write_bytes(affine_onnx(np.ones(10), 150.0))
    ok(cli, "-C", str(r.root), "register", "calling_score", "v3.0", "--artifact", str(model))
    registered = merge(r, "modelgit/calling_score/register-v3.0", ff=True)
    r.git("checkout", "-q", "-b", "revert-register")
    r.git("revert", "--no-edit", registered)
    assert "v3.0" not in r.read(CS)
    ok(cli, "-C", str(r.root), "validate", "--base", "main")
    code, _, report = ci(cli, r, "revert-register", tmp_path / "ci")
    assert code == 0 and report["ok"]


def test_a_revert_of_a_commit_that_never_landed_earns_no_allowance(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    # A side history the pull request made up: X "adds" v2.0-real, so its revert would delete it.
    r.git("checkout", "-q", "-b", "side")
    text = r.read(CS)
    start = text.index("  - version: v2.0-real")
    end = text.index("traffic:")
    r.write(CS, text[:start] + text[end:].replace("  v2.0-real: 10\n", "").replace("90", "100"))
    r.commit("drop it")
    r.write(CS, text)
    x = r.commit("X: add v2.0-real")
    r.git("checkout", "-q", "main")
    r.git("checkout", "-q", "-b", "pr")
    r.write(CS, text[:start] + text[end:].replace("  v2.0-real: 10\n", "").replace("90", "100"))
    r.commit(f"Remove v2.0-real\n\nThis reverts commit {x}.")
    _, _ = fails(cli, "-C", str(r.root), "validate", "--base", "main")
    out, _ = fails(cli, "-C", str(r.root), "validate", "--base", "main", "--json")
    assert [f["code"] for f in json.loads(out)["findings"]] == ["BASE001"]


# -- a registry whose numbers are known: y = X @ w + 1 --------------------------------------------------
def _regression_repo(root: Path, errors: dict[str, float], active: str, *, policy: str = "",
                     staging: tuple[str, ...] = ()) -> tuple[Repo, dict[str, float]]:
    """Model ``m``: version ``name`` predicts y + scale·e for one fixed error vector e, so the rmse of
    each version is exactly ``scale`` times that of the one with scale 1 (the known truth)."""
    r = make_repo(root)
    r.write("registry/modelgit.yaml", "schema_version: 1\nname: known\n")
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (600, 4)).astype(np.float32)
    w = np.array([1.0, -2.0, 0.5, 3.0])
    y = (x.astype(np.float64) @ w + 1.0).astype(np.float32)
    direction = rng.normal(0, 1, 4)
    data = npz_bytes(X=x, y=y)
    r.write("registry/datasets/m.npz", data)
    versions, rmse = [], {}
    for name, scale in errors.items():
        weights, bias = w + scale * direction, 1.0 + scale * 0.3
        blob = affine_onnx(weights, bias)
        r.write(f"registry/artifacts/m_{name}.onnx", blob)
        status = "active" if name == active else "staging" if name in staging else "deprecated"
        versions.append(f"  - version: {name}\n    status: {status}\n    weight: 0.1\n"
                        f"    artifact: {{path: registry/artifacts/m_{name}.onnx, sha256: {sha256_hex(blob)}}}\n")
        rmse[name] = float(np.sqrt(skm.mean_squared_error(y, x.astype(np.float64) @ weights + bias)))
    r.write("registry/models/m.yaml",
            "name: m\ntask: regression\nevaluation:\n"
            f"  dataset: {{path: registry/datasets/m.npz, sha256: {sha256_hex(data)}}}\n"
            "  metrics: [rmse, mae]\n  primary: rmse\n" + policy + "versions:\n" + "".join(versions))
    r.commit("known registry")
    return r, rmse


@pytest.mark.parametrize(("margin", "blocked"), [(None, True), (0.04, True), (0.06, False)])
def test_promotion_must_be_non_inferior_within_max_regression(tmp_path: Path, cli: Any,
                                                              margin: float | None, blocked: bool) -> None:
    policy = f"policy:\n  max_regression: {margin}\n" if margin is not None else ""
    r, rmse = _regression_repo(tmp_path / "r", {"v1": 1.0, "v2": 1.05}, "v1", policy=policy, staging=("v2",))
    assert rmse["v2"] / rmse["v1"] == pytest.approx(1.05, rel=1e-4)  # v2 is exactly 5 % worse
    ok(cli, "-C", str(r.root), "promote", "m", "v2")
    code, _, report = ci(cli, r, "modelgit/m/promote-v2", tmp_path / "ci")
    decisions = [(d["check"], d["outcome"]) for d in report["decisions"]]
    assert code == (1 if blocked else 0)
    assert decisions == [("non-inferiority", "fail" if blocked else "pass")]
    upper = report["checks"][0]["compare"]["metrics"]["rmse"]["relative_gain_upper_95"]
    assert upper == pytest.approx(-0.05, abs=1e-3)  # every paired resample is 5 % worse


def test_more_weight_for_a_worse_version_is_gated(tmp_path: Path, cli: Any) -> None:
    r, _ = _regression_repo(tmp_path / "r", {"v1": 1.0, "v2": 3.0}, "v1", staging=("v2",))
    ok(cli, "-C", str(r.root), "weight", "m", "v2", "0.9")
    code, _, report = ci(cli, r, "modelgit/m/weight-v2", tmp_path / "ci")
    assert code == 1 and report["checks"][0]["reasons"] == ["weight 0.1 → 0.9"]


def test_the_gate_uses_the_bases_dataset_and_policy_not_the_pull_requests(tmp_path: Path, cli: Any) -> None:
    r, rmse = _regression_repo(tmp_path / "r", {"v1": 1.0, "v2": 3.0}, "v1", staging=("v2",))
    assert rmse["v2"] > 2.5 * rmse["v1"]
    # The pull request promotes the worse v2, swaps in a dataset on which v2 looks perfect and
    # loosens the policy as far as it goes.
    ok(cli, "-C", str(r.root), "promote", "m", "v2", "--branch", "pr")
    r.git("checkout", "-q", "pr")
    with np.load(r.root / "registry/datasets/m.npz") as npz:
        x = npz["X"]
    import onnxruntime as ort

    session = ort.InferenceSession((r.root / "registry/artifacts/m_v2.onnx").read_bytes(),
                                   providers=["CPUExecutionProvider"])
    easy = npz_bytes(X=x, y=session.run(None, {"X": x})[0][:, 0])
    r.write("registry/datasets/m_easy.npz", easy)
    text = r.read("registry/models/m.yaml").replace("registry/datasets/m.npz", "registry/datasets/m_easy.npz")
    text = text.replace(sha256_hex((r.root / "registry/datasets/m.npz").read_bytes()), sha256_hex(easy))
    r.write("registry/models/m.yaml", text.replace("versions:\n", "policy:\n  max_regression: 1\nversions:\n"))
    r.commit("an easier yardstick")
    code, _, report = ci(cli, r, "pr", tmp_path / "ci")
    assert code == 1
    by_check = {(d["check"], d["outcome"]) for d in report["decisions"]}
    assert ("evaluation-changed", "info") in by_check and ("policy-changed", "info") in by_check
    fail = [d for d in report["decisions"] if d["outcome"] == "fail"]
    assert [d["check"] for d in fail] == ["non-inferiority"]
    assert "base dataset registry/datasets/m.npz" in fail[0]["detail"]
    check = report["checks"][0]
    assert set(check["evaluations"]) == {"base", "pull request"}
    assert check["evaluations"]["pull request"]["metrics"]["rmse"] == pytest.approx(0, abs=1e-4)
    assert check["evaluations"]["base"]["metrics"]["rmse"] == pytest.approx(rmse["v2"], rel=1e-4)


def test_a_rollback_to_a_worse_version_is_reported_not_blocked(tmp_path: Path, cli: Any) -> None:
    r, _ = _regression_repo(tmp_path / "r", {"v1": 3.0, "v2": 1.0}, "v1", staging=("v2",))
    ok(cli, "-C", str(r.root), "promote", "m", "v2")
    merge(r, "modelgit/m/promote-v2")
    out = ok(cli, "-C", str(r.root), "rollback", "m")
    branch = next(line.split()[-1] for line in out.splitlines() if line.startswith("committed "))
    code, _, report = ci(cli, r, branch, tmp_path / "ci")
    assert code == 0, report["failures"]
    (restore,) = [d for d in report["decisions"] if d["check"] == "restore" and d["version"] == "v1"]
    assert restore["detail"].startswith("worse than v2 on rmse")
    # The same state reached by a forward change is gated like any promotion.
    ok(cli, "-C", str(r.root), "rollback", "m", "--to", "v1")
    code, _, report = ci(cli, r, "modelgit/m/rollback-v1", tmp_path / "ci2")
    assert code == 1 and [d["check"] for d in report["decisions"] if d["outcome"] == "fail"] == ["non-inferiority"]


# -- 4. nothing goes offline by accident ----------------------------------------------------------------
def test_deprecating_the_only_active_version_is_refused_everywhere(example_repo: Repo, cli: Any,
                                                                   tmp_path: Path) -> None:
    r = example_repo
    branches = r.git("branch", "--list")
    _, err = fails(cli, "-C", str(r.root), "deprecate", "calling_score", "v1.0-hybrid")
    assert "BASE004 the change leaves 'calling_score' with no active version" in err
    assert "retired: true" in err
    assert r.git("branch", "--list") == branches  # nothing committed
    # By hand, as a pull request: refused by validate --base and so by ci.
    r.git("checkout", "-q", "-b", "offline")
    text = r.read(CS).replace("    status: active\n", "    status: deprecated\n").replace(
        "traffic:  # A/B split in percent\n  v1.0-hybrid: 90\n  v2.0-real: 10\n", "")
    r.write(CS, text)
    r.commit("switch it off")
    out, _ = fails(cli, "-C", str(r.root), "validate", "--base", "main")
    assert "BASE004" in out
    code, _, report = ci(cli, r, "offline", tmp_path / "ci")
    assert code == 1 and report["failures"][0].startswith("[validation] fail")
    # Retired on purpose: accepted (the staging version must go too).
    retired = text.replace("task: regression\n", "task: regression\nretired: true\n").replace(
        "    status: staging\n", "    status: archived\n")
    r.write(CS, retired)
    r.commit("retire calling_score")
    ok(cli, "-C", str(r.root), "validate", "--base", "main")
    assert "retired: taken out of service on purpose" in ok(cli, "-C", str(r.root), "diff", "main", "HEAD")
    r.write(CS, retired.replace("    status: archived\n", "    status: staging\n"))
    r.commit("a retired model with a staging version")
    out, _ = fails(cli, "-C", str(r.root), "validate")
    assert "RULE006 the model is retired but version 'v2.0-real' is staging" in out


def test_removing_the_evaluation_of_a_serving_model_is_refused(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    r.git("checkout", "-q", "-b", "no-eval")
    data = yaml.safe_load(r.read(CS))
    text = r.read(CS)
    start, end = text.index("evaluation:\n"), text.index("versions:")
    r.write(CS, text[:start] + text[end:])
    assert "evaluation" in data and "evaluation:" not in r.read(CS)
    r.commit("no more evaluation")
    out, _ = fails(cli, "-C", str(r.root), "validate", "--base", "main")
    assert "BASE005 the change removes the evaluation of 'calling_score' while it serves" in out


def test_runtime_refuses_a_commit_that_takes_a_model_offline(example_repo: Repo) -> None:
    from modelgit import Registry
    from modelgit.errors import InvalidError

    r = example_repo
    serving = r.head()
    reg = Registry.open(r.root, ref="main")
    assert reg.route("calling_score", key="k") in ("v1.0-hybrid", "v2.0-real")
    text = r.read(CS).replace("    status: active\n", "    status: deprecated\n").replace(
        "traffic:  # A/B split in percent\n  v1.0-hybrid: 90\n  v2.0-real: 10\n", "")
    r.write(CS, text)
    offline = r.commit("switch it off by hand")
    assert reg.reload() is False
    assert reg.commit == serving
    assert any(offline[:12] in item["reason"] and "no active version" in item["reason"]
               for item in reg.info()["refused"])
    assert reg.route("calling_score", key="k") in ("v1.0-hybrid", "v2.0-real")
    r.write(CS, text.replace("task: regression\n", "task: regression\nretired: true\n").replace(
        "    status: staging\n", "    status: archived\n"))
    retired = r.commit("retire it")
    assert reg.reload() is True and reg.commit == retired
    with pytest.raises(InvalidError, match="no active version"):
        reg.route("calling_score", key="k")
    reg.close()


def test_retire_takes_a_model_out_of_service_and_promote_brings_it_back(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    ok(cli, "-C", str(r.root), "retire", "calling_score")
    branch = "modelgit/calling_score/retire"
    data = yaml.safe_load(at(r, branch))
    assert data["retired"] is True and "traffic" not in data
    assert {v["version"]: v["status"] for v in data["versions"]} == {"v1.0-hybrid": "deprecated",
                                                                   "v2.0-real": "archived"}
    assert list(data)[:3] == ["name", "description", "owner"] and list(data).index("retired") == \
        list(data).index("task") + 1
    ok(cli, "-C", str(r.root), "validate", "--ref", branch, "--base", "main")
    merge(r, branch)
    _, err = fails(cli, "-C", str(r.root), "retire", "calling_score")
    assert err.startswith("error: 'calling_score' is retired already; nothing to change")
    ok(cli, "-C", str(r.root), "promote", "calling_score", "v1.0-hybrid")
    back = yaml.safe_load(at(r, "modelgit/calling_score/promote-v1.0-hybrid"))
    assert "retired" not in back and back["versions"][0]["status"] == "active"
    ok(cli, "-C", str(r.root), "validate", "--ref", "modelgit/calling_score/promote-v1.0-hybrid", "--base", "main")
