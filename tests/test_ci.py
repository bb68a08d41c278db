"""`modelgit ci` (the pull-request gate), `modelgit check-upgrades` and the two GitHub workflows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn import metrics as skm

from conftest import ROOT, Repo, affine_onnx, make_repo, npz_bytes, sha256_hex

WORKFLOWS = ROOT / ".github" / "workflows"
CS = "registry/models/calling_score.yaml"
CHECKS = ("validation", "evaluation", "non-inferiority", "restore", "evaluation-changed", "policy-changed")


def run_ok(cli: Any, *args: str) -> str:
    code, out, err = cli(*args)
    assert code == 0, out + err
    return out


# -- workflows --------------------------------------------------------------------------------------
def actionlint() -> str:
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.exists() else shutil.which("actionlint")
    if found is None:
        pytest.fail("actionlint is not installed (pip install -e '.[test]' installs it)")
    return found


@pytest.mark.parametrize("name", ["registry-ci.yml", "upgrade-check.yml"])
def test_workflow_passes_actionlint(name: str) -> None:
    proc = subprocess.run([actionlint(), "-no-color", str(WORKFLOWS / name)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _triggers(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    return data.get("on", data.get(True))  # YAML 1.1 reads the key `on` as true


def test_registry_ci_runs_on_pull_request_never_pull_request_target() -> None:
    triggers = _triggers("registry-ci.yml")
    assert set(triggers) == {"pull_request"}
    data = yaml.safe_load((WORKFLOWS / "registry-ci.yml").read_text())
    assert data["permissions"]["contents"] == "read"
    runs = [step.get("run", "") for step in data["jobs"]["registry-ci"]["steps"]]
    assert any(run.startswith("modelgit ci --base") for run in runs)
    code = [line for line in (WORKFLOWS / "registry-ci.yml").read_text().splitlines()
            if not line.lstrip().startswith("#")]
    assert not any("pull_request_target" in line for line in code)


def test_upgrade_check_runs_daily_at_two() -> None:
    triggers = _triggers("upgrade-check.yml")
    assert triggers["schedule"] == [{"cron": "0 2 * * *"}]
    text = (WORKFLOWS / "upgrade-check.yml").read_text()
    assert "modelgit check-upgrades --propose --json" in text


def test_init_writes_byte_identical_workflows(tmp_path: Path, cli: Any) -> None:
    run_ok(cli, "init", str(tmp_path / "new"))
    for name in ("registry-ci.yml", "upgrade-check.yml"):
        assert (tmp_path / "new" / ".github" / "workflows" / name).read_bytes() == (WORKFLOWS / name).read_bytes()


# -- ci -----------------------------------------------------------------------------------------------
def ci(cli: Any, r: Repo, ref: str, out: Path) -> tuple[int, str, dict[str, Any]]:
    code, stdout, err = cli("-C", str(r.root), "ci", "--base", "main", "--ref", ref, "--out", str(out))
    assert code in (0, 1), stdout + err
    md = (out / "report.md").read_text("utf-8")
    assert stdout == md
    report = json.loads((out / "report.json").read_text("utf-8"))
    # Every decision names the check that made it, in report.md as in report.json.
    rendered = [f"- [{d['check']}] " for d in report["decisions"]]
    assert all(d["check"] in CHECKS for d in report["decisions"])
    assert [line[: len(r)] for line, r in zip(md.split("### Decisions\n\n")[-1].splitlines(), rendered,
                                              strict=False)] == rendered
    return code, md, report


def test_ci_passes_a_good_promotion_and_an_empty_change(example_repo: Repo, cli: Any, tmp_path: Path) -> None:
    r = example_repo
    run_ok(cli, "-C", str(r.root), "promote", "calling_score", "v2.0-real")
    code, md, report = ci(cli, r, "modelgit/calling_score/promote-v2.0-real", tmp_path / "good")
    assert code == 0 and report["ok"] is True and report["failures"] == []
    assert md.startswith("## ✅ modelgit CI passed")
    (check,) = report["checks"]
    assert (check["model"], check["version"]) == ("calling_score", "v2.0-real")
    assert "promoted" in check["reasons"]
    assert check["compare"]["v1"] == "v1.0-hybrid" and check["compare"]["verdict"] != "worse"
    assert "#### calling_score:v2.0-real (promoted" in md and "Verdict on rmse" in md
    code, md, report = ci(cli, r, "main", tmp_path / "none")
    assert code == 0 and report["checks"] == [] and "No model version was added or changed." in md


def _bad_model(tmp_path: Path) -> Path:
    """A deliberately bad calling_score: the right signature [None, 10] → [None, 1], a constant output."""
    path = tmp_path / "constant.onnx"
    path.write_bytes(affine_onnx(np.zeros(10), 20.0))
    return path


def _constant_is_far_worse(r: Repo) -> None:
    """Independent sanity check of the case: the constant's rmse vs the active model's."""
    import onnxruntime as ort

    with np.load(r.root / "registry/datasets/calling_score_eval.npz") as npz:
        x, y = npz["X"], npz["y"].astype(np.float64)
    session = ort.InferenceSession((r.root / "registry/artifacts/calling_score_v1_0_hybrid.onnx").read_bytes(),
                                   providers=["CPUExecutionProvider"])
    active = session.run(None, {"X": x})[0][:, 0]
    assert np.sqrt(skm.mean_squared_error(y, np.full(len(y), 20.0))) > 2 * np.sqrt(skm.mean_squared_error(y, active))


def test_ci_blocks_a_bad_model_registered_and_promoted_in_one_pull_request(example_repo: Repo, cli: Any,
                                                                           tmp_path: Path) -> None:
    r = example_repo
    _constant_is_far_worse(r)
    run_ok(cli, "-C", str(r.root), "register", "calling_score", "v3.0-bad", "--artifact", str(_bad_model(tmp_path)),
           "--branch", "pr-register")
    run_ok(cli, "-C", str(r.root), "promote", "calling_score", "v3.0-bad", "--ref", "pr-register", "--branch", "pr")
    code, md, report = ci(cli, r, "pr", tmp_path / "bad")
    assert code == 1 and report["ok"] is False and report["valid"] is True
    (failed,) = [d for d in report["decisions"] if d["outcome"] == "fail"]
    assert (failed["check"], failed["model"], failed["version"]) == ("non-inferiority", "calling_score", "v3.0-bad")
    assert failed["detail"].startswith("worse than v1.0-hybrid on rmse beyond the policy's max_regression on "
                                       "the base dataset registry/datasets/calling_score_eval.npz")
    assert failed["detail"].endswith("would serve more (added, promoted, traffic 0% → 100%)")
    why = "[non-inferiority] calling_score:v3.0-bad fail: worse than v1.0-hybrid on rmse"
    assert report["failures"][0].startswith(why)
    assert md.startswith("## ❌ modelgit CI failed") and "### Why it fails" in md and why in md
    (check,) = report["checks"]
    assert check["compare"]["verdict"] == "worse"
    # the register step alone gives it no traffic: reported, not blocked
    code, _, report = ci(cli, r, "pr-register", tmp_path / "register-only")
    assert code == 0 and report["checks"][0]["reasons"] == ["added"]


def test_ci_blocks_a_bad_model_given_traffic_and_ignores_forged_results(example_repo: Repo, cli: Any,
                                                                        tmp_path: Path) -> None:
    r = example_repo
    run_ok(cli, "-C", str(r.root), "register", "calling_score", "v3.0-bad", "--artifact", str(_bad_model(tmp_path)),
           "--branch", "pr-register")
    run_ok(cli, "-C", str(r.root), "split", "calling_score", "v1.0-hybrid=80", "v2.0-real=10", "v3.0-bad=10",
           "--ref", "pr-register", "--branch", "pr")
    # the pull request also commits a result file that claims the active model's numbers
    run_ok(cli, "-C", str(r.root), "eval", "calling_score", "v1.0-hybrid")
    forged = json.loads((r.root / "registry/evaluations/calling_score/v1.0-hybrid.json").read_text())
    forged["version"] = "v3.0-bad"
    forged["artifact_sha256"] = sha256_hex((tmp_path / "constant.onnx").read_bytes())
    r.git("checkout", "-q", "pr")
    r.write("registry/evaluations/calling_score/v3.0-bad.json", json.dumps(forged))
    r.commit("results")
    code, _, report = ci(cli, r, "HEAD", tmp_path / "traffic")
    assert code == 1
    (failure,) = report["failures"]
    assert failure.startswith("[non-inferiority] calling_score:v3.0-bad fail: worse than v1.0-hybrid on rmse")
    assert failure.endswith("would serve more (added, traffic 0% → 10%)")


def test_ci_fails_when_validation_fails(example_repo: Repo, cli: Any, tmp_path: Path) -> None:
    r = example_repo
    r.git("checkout", "-q", "-b", "broken")
    r.write(CS, r.read(CS).replace("  v2.0-real: 10\n", "  v2.0-real: 5\n"))
    r.commit("traffic typo")
    code, md, report = ci(cli, r, "broken", tmp_path / "broken")
    assert code == 1 and report["valid"] is False
    assert report["failures"][0] == "[validation] fail: validation failed with 1 finding(s)"
    assert "### Validation findings" in md and "RULE010 traffic sums to 95, not 100" in md


# -- check-upgrades -----------------------------------------------------------------------------------
def _model_yaml(name: str, dataset_sha: str, shas: dict[str, str]) -> str:
    return (
        f"name: {name}\ntask: regression\nevaluation:\n"
        f"  dataset: {{path: registry/datasets/{name}.npz, sha256: {dataset_sha}}}\n"
        "  metrics: [rmse, mae, r2]\n  primary: rmse\nversions:\n"
        f"  - version: v1\n    status: active\n    artifact: {{path: registry/artifacts/{name}_v1.onnx, "
        f"sha256: {shas['v1']}}}\n"
        f"  - version: v2\n    status: staging\n    artifact: {{path: registry/artifacts/{name}_v2.onnx, "
        f"sha256: {shas['v2']}}}\n"
    )


@pytest.fixture
def upgrade_repo(tmp_path: Path) -> tuple[Repo, dict[str, float]]:
    """Two linear models on y = X @ w + 1: for `exact` the staging version is the exact function and
    the active one has noisy weights; for `worse` it is the other way round. Returns the repo and
    each model's rmse per version, computed here with numpy/sklearn."""
    r = make_repo(tmp_path / "upgrades")
    r.write("registry/modelgit.yaml", "schema_version: 1\nname: upgrades\ndefaults:\n  policy:\n"
                                      "    min_quality_improvement: 0.05\n")
    rng = np.random.default_rng(42)
    x = rng.normal(0, 1, (400, 10)).astype(np.float32)
    w = rng.normal(0, 1, 10)
    y = (x.astype(np.float64) @ w + 1.0).astype(np.float32)
    data = npz_bytes(X=x, y=y)
    noisy = w + rng.normal(0, 0.5, 10)
    rmse = {}
    for name, (w1, w2) in {"exact": (noisy, w), "worse": (w, noisy)}.items():
        shas = {}
        for version, weights in (("v1", w1), ("v2", w2)):
            blob = affine_onnx(weights, 1.0)
            r.write(f"registry/artifacts/{name}_{version}.onnx", blob)
            shas[version] = sha256_hex(blob)
            pred = x.astype(np.float64) @ weights + 1.0
            rmse[f"{name}:{version}"] = float(np.sqrt(skm.mean_squared_error(y, pred)))
        r.write(f"registry/datasets/{name}.npz", data)
        r.write(f"registry/models/{name}.yaml", _model_yaml(name, sha256_hex(data), shas))
    r.commit("two models with a staging version each")
    return r, rmse


def test_check_upgrades_recommends_a_clearly_better_staging_version_and_proposes_it(
        upgrade_repo: tuple[Repo, dict[str, float]], cli: Any) -> None:
    r, rmse = upgrade_repo
    assert (rmse["exact:v1"] - rmse["exact:v2"]) / rmse["exact:v1"] > 0.5  # far above the 5 % policy
    assert rmse["worse:v2"] > rmse["worse:v1"]
    run_ok(cli, "-C", str(r.root), "validate")
    out = run_ok(cli, "-C", str(r.root), "check-upgrades")
    lines = out.splitlines()
    assert any(line.startswith("upgrade  exact: v1 → v2: rmse") and line.endswith(": better") for line in lines)
    assert any(line.startswith("keep     worse: v1 → v2: rmse") for line in lines)
    assert "branch" not in out and r.git("branch", "--list") == "* main"
    data = json.loads(run_ok(cli, "-C", str(r.root), "check-upgrades", "--propose", "--json"))
    by_model = {item["model"]: item for item in data["recommendations"]}
    assert by_model["exact"]["recommended"] is True and by_model["worse"]["recommended"] is False
    assert by_model["exact"]["relative_improvement"] == pytest.approx(
        (rmse["exact:v1"] - rmse["exact:v2"]) / rmse["exact:v1"], rel=1e-4)
    (proposal,) = data["proposals"]
    assert proposal["model"] == "exact" and proposal["version"] == "v2"
    assert r.git("rev-parse", "--verify", proposal["branch"]) == proposal["commit"]
    shown = json.loads(run_ok(cli, "-C", str(r.root), "show", "exact", "--ref", proposal["branch"], "--json"))
    statuses = {v["version"]: v["status"] for v in shown["models"][0]["versions"]}
    assert statuses["v2"] == "active"
    assert r.git("rev-parse", "HEAD") == r.git("rev-parse", "main")  # nothing checked out or moved
    run_ok(cli, "-C", str(r.root), "validate", "--ref", proposal["branch"], "--base", "main")


def test_check_upgrades_keeps_the_example_registry(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    out = run_ok(cli, "-C", str(r.root), "check-upgrades", "--propose")
    lines = out.splitlines()
    assert len(lines) == 3 and all(line.startswith("keep") for line in lines[:2])
    assert lines[2] == "skipped  openrouter/qwen-2.5-7b-instruct: no staging version"
    assert r.git("branch", "--list") == "* main"


def test_relative_report_paths_are_taken_from_the_dash_c_path(example_repo: Repo, cli: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = example_repo
    run_ok(cli, "-C", str(r.root), "ci", "--base", "main", "--out", "ci-report")
    run_ok(cli, "-C", str(r.root), "compare", "calling_score", "v1.0-hybrid", "v2.0-real", "--out", "cmp.md")
    assert (r.root / "ci-report" / "report.md").is_file() and (r.root / "ci-report" / "report.json").is_file()
    assert (r.root / "cmp.md").read_text().startswith("### calling_score: v2.0-real vs v1.0-hybrid")
    assert list(elsewhere.iterdir()) == []
