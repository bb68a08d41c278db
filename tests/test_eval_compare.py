"""`modelgit eval` and `modelgit compare` on real git repositories.

Expected numbers come from independent sources: onnxruntime run by the test itself, the original
scikit-learn estimators of scripts/build_example_registry.py, sklearn's metric functions and a
bootstrap written here — never from modelgit's own output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from sklearn import metrics as skm

from conftest import EXAMPLE, Repo, affine_onnx, example_script, npz_bytes, sha256_hex
from modelgit import evaluate as E

CS = "registry/models/calling_score.yaml"
CS_DATA = "registry/datasets/calling_score_eval.npz"
CS_V1 = "registry/artifacts/calling_score_v1_0_hybrid.onnx"
SEED, RESAMPLES = 20251228, 1000  # compare's documented defaults (`modelgit compare --help`)


def run_ok(cli: Any, *args: str) -> str:
    code, out, err = cli(*args)
    assert code == 0, out + err
    return out


def result_file(r: Repo, model: str, version: str) -> Path:
    return r.root / "registry" / "evaluations" / model / f"{version}.json"


def onnx_predict(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})


def dataset(r: Repo, path: str = CS_DATA) -> tuple[np.ndarray, np.ndarray]:
    with np.load(r.root / path) as npz:
        return npz["X"], npz["y"]


@pytest.fixture(scope="module")
def sk() -> dict[str, Any]:
    """The original scikit-learn estimators and data splits of the example registry."""
    script: Any = example_script()
    return {"models": script.train_models(), "data": script.datasets()}


# -- eval ---------------------------------------------------------------------------------------------
def test_eval_writes_a_result_with_digests_commit_runtime_metrics_and_predictions(example_repo: Repo,
                                                                                   cli: Any) -> None:
    r = example_repo
    out = run_ok(cli, "-C", str(r.root), "eval", "calling_score", "v1.0-hybrid")
    assert "wrote registry/evaluations/calling_score/v1.0-hybrid.json" in out
    assert "rows/s" in out and "p95" in out
    result = json.loads(result_file(r, "calling_score", "v1.0-hybrid").read_text())
    x, y = dataset(r)
    assert result["artifact_sha256"] == sha256_hex((r.root / CS_V1).read_bytes())
    assert result["dataset_sha256"] == sha256_hex((r.root / CS_DATA).read_bytes())
    assert result["commit"] == r.head()
    assert result["onnxruntime"] == ort.__version__
    assert result["rows"] == len(x) == 111
    expected = onnx_predict(r.root / CS_V1, x)[0][:, 0].astype(np.float64)
    assert np.array_equal(np.array(result["predictions"]), expected)
    assert np.array_equal(np.array(result["labels"]), y.astype(np.float64))
    assert result["metrics"] == pytest.approx({
        "rmse": np.sqrt(skm.mean_squared_error(y, expected)), "mae": skm.mean_absolute_error(y, expected),
        "r2": skm.r2_score(y, expected)}, rel=1e-9)
    latency = result["latency"]
    assert 0 < latency["p50_ms_per_row"] <= latency["p95_ms_per_row"]
    assert latency["rows_per_second"] > 0
    assert "reused" not in result


def test_eval_reuses_a_stored_result_until_a_digest_changes_and_force_recomputes(
        example_repo: Repo, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    r = example_repo
    run_ok(cli, "-C", str(r.root), "eval", "calling_score", "v1.0-hybrid")
    stored = result_file(r, "calling_score", "v1.0-hybrid")
    before, mtime = stored.read_bytes(), stored.stat().st_mtime_ns
    calls: list[int] = []
    real_run = E.run_batches

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(E, "run_batches", counting)
    out = run_ok(cli, "-C", str(r.root), "eval", "calling_score", "v1.0-hybrid")
    assert "stored result reused: same artifact and dataset digests" in out
    assert "kept registry/evaluations/calling_score/v1.0-hybrid.json" in out
    assert calls == []  # the model did not run
    assert stored.read_bytes() == before and stored.stat().st_mtime_ns == mtime
    # a subset of the stored metrics is reused too; --force runs the model again and rewrites
    assert "reused" in run_ok(cli, "-C", str(r.root), "eval", "calling_score", "v1.0-hybrid", "--metric", "mae")
    assert calls == []
    out = run_ok(cli, "-C", str(r.root), "eval", "calling_score", "v1.0-hybrid", "--force")
    assert "reused" not in out and "wrote registry/evaluations/calling_score/v1.0-hybrid.json" in out
    assert calls == [1]
    # a new dataset (recorded with its new digest) is a new evaluation
    x, y = dataset(r)
    new = npz_bytes(X=x[:50], y=y[:50])
    old_sha = sha256_hex((r.root / CS_DATA).read_bytes())
    r.write(CS_DATA, new)
    r.write(CS, r.read(CS).replace(old_sha, sha256_hex(new)))
    r.commit("smaller evaluation set")
    out = run_ok(cli, "-C", str(r.root), "eval", "calling_score", "v1.0-hybrid")
    assert "reused" not in out and "on 50 rows" in out and calls == [1, 1]
    assert json.loads(stored.read_text())["dataset_sha256"] == sha256_hex(new)
    # --ref evaluates the registry as committed at the older ref, with its dataset
    out = run_ok(cli, "-C", str(r.root), "eval", "calling_score", "v1.0-hybrid", "--ref", "HEAD~1", "--json")
    older = json.loads(out)
    assert older["rows"] == 111 and older["commit"] == r.git("rev-parse", "HEAD~1")
    assert older["dataset_sha256"] == old_sha


def test_real_data_metrics_equal_what_the_original_sklearn_estimators_score(
        example_repo: Repo, cli: Any, sk: dict[str, Any]) -> None:
    r = example_repo
    _, x_test, _, y_test = sk["data"]["outcome_prediction"]
    x, y = dataset(r, "registry/datasets/outcome_prediction_eval.npz")
    assert np.array_equal(x, x_test) and np.array_equal(y, y_test)  # the eval set is the test split
    for version in ("v1.0-hybrid", "v2.0-real"):
        estimator = sk["models"][("outcome_prediction", version)]
        out = run_ok(cli, "-C", str(r.root), "eval", "outcome_prediction", version, "--json")
        got = json.loads(out)["metrics"]
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_test, estimator.predict(x_test)), abs=1e-12)
        proba = estimator.predict_proba(x_test)
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y_test, proba[:, 1]), rel=1e-6)
        assert got["log_loss"] == pytest.approx(skm.log_loss(y_test, proba), rel=1e-5)
        assert got["f1"] == pytest.approx(skm.f1_score(y_test, estimator.predict(x_test)), abs=1e-12)
    _, x_test, _, y_test = sk["data"]["calling_score"]
    x, y = dataset(r)
    assert np.array_equal(x, x_test) and np.array_equal(y, y_test)
    for version in ("v1.0-hybrid", "v2.0-real"):
        estimator = sk["models"][("calling_score", version)]
        got = json.loads(run_ok(cli, "-C", str(r.root), "eval", "calling_score", version, "--json"))["metrics"]
        pred = estimator.predict(x_test)
        assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y_test, pred)), rel=1e-6)
        assert got["mae"] == pytest.approx(skm.mean_absolute_error(y_test, pred), rel=1e-6)


# -- compare ------------------------------------------------------------------------------------------
def _expected_verdict(low: float, high: float) -> str:
    """rmse: lower is better, so an interval of v2 - v1 wholly below 0 means v2 is better."""
    if high < 0:
        return "better"
    if low > 0:
        return "worse"
    return "no significant difference"


def test_example_compare_verdict_equals_an_independent_paired_bootstrap(
        example_repo: Repo, cli: Any, sk: dict[str, Any]) -> None:
    r = example_repo
    _, x_test, _, y_test = sk["data"]["calling_score"]
    y = y_test.astype(np.float64)
    p1 = sk["models"][("calling_score", "v1.0-hybrid")].predict(x_test)
    p2 = sk["models"][("calling_score", "v2.0-real")].predict(x_test)
    idx = np.random.default_rng(SEED).integers(0, len(y), size=(RESAMPLES, len(y)))
    deltas = np.array([np.sqrt(skm.mean_squared_error(y[i], p2[i])) - np.sqrt(skm.mean_squared_error(y[i], p1[i]))
                       for i in idx])
    low, high = np.percentile(deltas, [2.5, 97.5])
    report = json.loads(run_ok(cli, "-C", str(r.root), "compare", "calling_score", "v1.0-hybrid", "v2.0-real",
                               "--format", "json"))
    assert report["primary"] == "rmse"
    assert report["verdict"] == _expected_verdict(low, high)
    # float32 ONNX predictions vs float64 sklearn ones: the same interval to well within 0.1 %
    assert (report["metrics"]["rmse"]["ci_low"], report["metrics"]["rmse"]["ci_high"]) == pytest.approx(
        (low, high), rel=1e-3)
    gain = (np.sqrt(skm.mean_squared_error(y, p1)) - np.sqrt(skm.mean_squared_error(y, p2))) / np.sqrt(
        skm.mean_squared_error(y, p1))
    assert report["metrics"]["rmse"]["relative_improvement"] == pytest.approx(gain, rel=1e-5)
    # the model's policy asks for 10 %: only a significant gain that large meets it
    assert report["policy_min_improvement"] == 0.1
    assert report["meets_policy"] == (report["verdict"] == "better" and gain >= 0.1)


def test_compare_is_reproducible_in_every_format_and_html_has_an_svg_chart(example_repo: Repo, cli: Any,
                                                                           tmp_path: Path) -> None:
    base = ["-C", str(example_repo.root), "compare", "calling_score", "v1.0-hybrid", "v2.0-real"]
    md = run_ok(cli, *base)
    assert md == run_ok(cli, *base)
    assert "Verdict on rmse" in md and "95 % CI" in md and "Signature: unchanged." in md
    assert "- trained on real outcomes instead of the hybrid set" in md  # improvements text
    js = run_ok(cli, *base, "--format", "json")
    assert js == run_ok(cli, *base, "--format", "json")
    report = json.loads(js)
    assert (report["seed"], report["resamples"]) == (SEED, RESAMPLES)
    assert set(report["metrics"]) == {"rmse", "mae", "r2"}
    r1 = json.loads(run_ok(cli, *base[:2], "eval", "calling_score", "v1.0-hybrid", "--json"))
    r2 = json.loads(run_ok(cli, *base[:2], "eval", "calling_score", "v2.0-real", "--json"))
    assert report["latency"]["delta_ms"] == pytest.approx(
        r2["latency"]["p50_ms_per_row"] - r1["latency"]["p50_ms_per_row"])
    for name in ("rmse", "mae", "r2"):
        stats = report["metrics"][name]
        assert stats["v1"] == pytest.approx(r1["metrics"][name]) and stats["v2"] == pytest.approx(r2["metrics"][name])
        assert stats["ci_low"] <= stats["delta"] <= stats["ci_high"]
    out = tmp_path / "report.html"
    assert "wrote" in run_ok(cli, *base, "--format", "html", "--out", str(out))
    page = out.read_text("utf-8")
    assert page.startswith("<!doctype html>") and "<svg" in page and "</svg>" in page and "<circle" in page
    first = out.read_bytes()
    run_ok(cli, *base, "--format", "html", "--out", str(out))
    assert out.read_bytes() == first
    md_rerun = run_ok(cli, *base, "--resamples", "500", "--seed", "1")
    assert "500 resamples, seed 1" in md_rerun


def test_compare_reports_a_breaking_signature_change_and_its_text(example_repo: Repo, cli: Any,
                                                                  tmp_path: Path) -> None:
    r = example_repo
    model = tmp_path / "renamed.onnx"
    model.write_bytes(affine_onnx(np.ones(10), 150.0, output="score"))
    run_ok(cli, "-C", str(r.root), "register", "calling_score", "v3.0", "--artifact", str(model),
           "--improvement", "one output name for every model", "--breaking-change", "output renamed to score",
           "--branch", "pr")
    md = run_ok(cli, "-C", str(r.root), "compare", "calling_score", "v1.0-hybrid", "v3.0", "--ref", "pr")
    assert "Signature changes (BREAKING):" in md
    assert "- output `score` added" in md and "- output `variable` removed" in md
    assert "**Breaking changes in v3.0:**\n- output renamed to score" in md
    assert "**Improvements in v3.0:**\n- one output name for every model" in md


# -- bad inputs: a clear message, the right exit code, and no result file -----------------------------
def _replace_dataset(r: Repo, data: bytes, record: bool = True) -> None:
    old_sha = sha256_hex((r.root / CS_DATA).read_bytes())
    r.write(CS_DATA, data)
    if record:
        r.write(CS, r.read(CS).replace(old_sha, sha256_hex(data)))
    r.commit("change the evaluation set")


def _x_y(r: Repo) -> tuple[np.ndarray, np.ndarray]:
    return dataset(r)


def tampered_dataset(r: Repo) -> None:
    x, y = _x_y(r)
    _replace_dataset(r, npz_bytes(X=x, y=y + 1), record=False)


def narrow_dataset(r: Repo) -> None:
    x, y = _x_y(r)
    _replace_dataset(r, npz_bytes(X=x[:, :5], y=y))


def nan_labels(r: Repo) -> None:
    x, y = _x_y(r)
    y = y.astype(np.float64)
    y[[3, 7]] = np.nan
    _replace_dataset(r, npz_bytes(X=x, y=y))


def no_labels(r: Repo) -> None:
    x, _ = _x_y(r)
    _replace_dataset(r, npz_bytes(X=x))


def corrupt_artifact(r: Repo) -> None:
    junk = np.random.default_rng(0).bytes(900)
    old_sha = sha256_hex((r.root / CS_V1).read_bytes())
    r.write(CS_V1, junk)
    r.write(CS, r.read(CS).replace(old_sha, sha256_hex(junk)))  # recorded to match the bad bytes
    r.commit("corrupt artifact")


def nothing(r: Repo) -> None:
    pass


BAD = {
    "dataset digest mismatch": (tampered_dataset, [], 1, [
        "dataset registry/datasets/calling_score_eval.npz: sha256 is", "not the recorded"]),
    "columns do not fit": (narrow_dataset, [], 1, [
        "dataset registry/datasets/calling_score_eval.npz has 5 columns but input 'X' of "
        "calling_score:v1.0-hybrid expects 10"]),
    "NaN labels": (nan_labels, [], 1, ["2 missing (NaN) label(s), rows 3, 7", "fill in their labels"]),
    "missing y": (no_labels, [], 1, ["no array y (it has X)", "numpy.savez(file, X=features, y=labels)"]),
    "corrupt artifact": (corrupt_artifact, [], 1, [
        "artifact registry/artifacts/calling_score_v1_0_hybrid.onnx: onnxruntime cannot load it"]),
    "unknown metric": (nothing, ["--metric", "nope"], 2, [
        "unknown metric 'nope'", "metrics for regression: rmse, mae, r2"]),
    "metric not for the task": (nothing, ["--metric", "accuracy"], 2, [
        "metric 'accuracy' does not apply to a regression model"]),
    "unknown version": (nothing, ["VERSION=v9"], 2, [
        "model 'calling_score' has no version 'v9'", "known versions: v1.0-hybrid, v2.0-real"]),
    "hosted model": (nothing, ["MODEL=openrouter/qwen-2.5-7b-instruct", "VERSION=1.1.0"], 2, [
        "'openrouter/qwen-2.5-7b-instruct' version '1.1.0' is hosted by openrouter: it has no ONNX file in the "
        "repository to evaluate"]),
    "unknown model": (nothing, ["MODEL=calling_scor"], 2, ["unknown model 'calling_scor'",
                                                           "did you mean calling_score?"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_inputs_fail_clearly_without_writing_a_result(example_repo: Repo, cli: Any, case: str) -> None:
    r = example_repo
    change, extra, exit_code, messages = BAD[case]
    change(r)
    model, version = "calling_score", "v1.0-hybrid"
    options = []
    for item in extra:
        if item.startswith("MODEL="):
            model = item.split("=", 1)[1]
        elif item.startswith("VERSION="):
            version = item.split("=", 1)[1]
        else:
            options.append(item)
    code, out, err = cli("-C", str(r.root), "eval", model, version, *options)
    assert code == exit_code, out + err
    assert err.startswith("error: ")
    for message in messages:
        assert message in err
    assert not (r.root / "registry" / "evaluations").exists()


def test_a_stored_result_does_not_hide_a_dataset_changed_behind_its_digest(example_repo: Repo, cli: Any) -> None:
    r = example_repo
    run_ok(cli, "-C", str(r.root), "eval", "calling_score", "v1.0-hybrid")
    stored = result_file(r, "calling_score", "v1.0-hybrid")
    before = stored.read_bytes()
    tampered_dataset(r)
    code, _, err = cli("-C", str(r.root), "eval", "calling_score", "v1.0-hybrid")
    assert code == 1 and "not the recorded" in err and "reused" not in err
    assert stored.read_bytes() == before


def test_example_registry_fixture_is_the_bundled_one(example_repo: Repo) -> None:
    assert (example_repo.root / CS).read_bytes() == (EXAMPLE / "models" / "calling_score.yaml").read_bytes()
    assert os.path.exists(example_repo.root / CS_DATA)


def test_the_batch_loop_returns_what_bare_onnxruntime_returns_and_reports_progress() -> None:
    session = ort.InferenceSession((EXAMPLE / "artifacts" / "outcome_prediction_v1_0_hybrid.onnx").read_bytes(),
                                   providers=["CPUExecutionProvider"])
    with np.load(EXAMPLE / "datasets" / "outcome_prediction_eval.npz") as npz:
        x = npz["X"]
    seen: list[tuple[int, int]] = []
    outputs, seconds = E.run_batches(session, x, 50, progress=lambda done, total: seen.append((done, total)))
    expected = session.run(None, {session.get_inputs()[0].name: x})
    assert len(outputs) == len(expected) == 2  # label and probabilities
    for got, want in zip(outputs, expected, strict=True):
        assert got.dtype == want.dtype and np.allclose(got, want, rtol=1e-6, atol=1e-7)
    assert seen == [(50, 143), (100, 143), (143, 143)]
    assert len(seconds) == 3 and all(s > 0 for s in seconds)
