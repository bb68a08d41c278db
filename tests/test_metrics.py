"""The numpy metrics, the paired bootstrap and the pure parts of compare/ci, checked against
independent implementations: scikit-learn's own metric functions and a bootstrap written here."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from modelgit import compare as C
from modelgit import metrics as M
from modelgit.ci import changed_versions
from modelgit.spec import Model, Version


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- regression -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 17, 500, 4096])
@pytest.mark.parametrize("seed", [0, 1])
def test_regression_metrics_match_sklearn(n: int, seed: int) -> None:
    rng = _rng(seed * 1000 + n)
    y = rng.normal(50, 20, n)
    pred = y + rng.normal(0, 10, n) * rng.uniform(0.1, 3)
    assert M.rmse(y, pred) == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)), rel=1e-12)
    assert M.mae(y, pred) == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12)
    assert M.r2(y, pred) == pytest.approx(skm.r2_score(y, pred), rel=1e-10, abs=1e-12)


def test_regression_metrics_on_integer_like_and_perfect_predictions() -> None:
    y = np.arange(10, dtype=np.float64)
    assert M.rmse(y, y) == 0.0 == skm.mean_squared_error(y, y)
    assert M.r2(y, y) == skm.r2_score(y, y) == 1.0
    pred = np.full(10, y.mean())  # the mean predictor: r2 exactly 0
    assert M.r2(y, pred) == pytest.approx(skm.r2_score(y, pred), abs=1e-15)


@pytest.mark.parametrize("pred", [np.full(6, 3.0), np.array([3.0, 3, 3, 3, 3, 4])])
def test_r2_of_a_constant_target_follows_sklearn(pred: np.ndarray) -> None:
    y = np.full(6, 3.0)
    assert M.r2(y, pred) == skm.r2_score(y, pred)


# -- classification ---------------------------------------------------------------------------------
def _binary_case(n: int, seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]  # both classes present
    p1 = np.clip(0.5 * y + rng.uniform(0, 0.6, n) - 0.05, 0.0, 1.0)
    if ties:
        p1 = np.round(p1, 1)  # only 11 distinct scores: many ties for the AUC
    return y, np.column_stack([1 - p1, p1])


@pytest.mark.parametrize("n", [4, 9, 60, 2000])
@pytest.mark.parametrize("ties", [False, True])
def test_binary_metrics_match_sklearn(n: int, ties: bool) -> None:
    y, proba = _binary_case(n, seed=n, ties=ties)
    if ties:
        assert len(np.unique(proba[:, 1])) < n
    labels = np.argmax(proba, axis=1)
    assert M.accuracy(y, proba) == pytest.approx(skm.accuracy_score(y, labels), rel=1e-12)
    assert M.f1(y, proba) == pytest.approx(skm.f1_score(y, labels, zero_division=0.0), rel=1e-12)
    assert M.roc_auc(y, proba) == pytest.approx(skm.roc_auc_score(y, proba[:, 1]), rel=1e-12)
    assert M.log_loss(y, proba) == pytest.approx(skm.log_loss(y, proba, labels=[0, 1]), rel=1e-12)


def test_auc_with_every_score_tied_is_one_half() -> None:
    y = np.array([0, 1, 0, 1, 1])
    proba = np.full((5, 2), 0.5)
    assert M.roc_auc(y, proba) == skm.roc_auc_score(y, proba[:, 1]) == 0.5


def test_auc_with_a_single_class_is_undefined() -> None:
    assert np.isnan(M.roc_auc(np.ones(4, dtype=np.int64), np.full((4, 2), 0.5)))


def test_log_loss_with_certain_predictions_matches_sklearn_clipping() -> None:
    y = np.array([0, 1, 1, 0, 1])
    proba = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.3, 0.7], [0.5, 0.5]])  # row 2 is certain and wrong
    assert M.log_loss(y, proba) == pytest.approx(skm.log_loss(y, proba), rel=1e-12)


def test_f1_with_no_predicted_or_true_positives_is_zero_like_sklearn() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1]] * 4)  # always class 0
    assert M.f1(y, proba) == skm.f1_score(y, np.zeros(4, dtype=int), zero_division=0.0) == 0.0


def _multiclass_case(n: int, k: int, seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng(seed)
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)  # every class present
    if ties:  # each row a permutation of a few fixed values: heavy ties within every column
        base = np.array([0.5, 0.3, 0.2] + [0.0] * (k - 3))
        proba = np.array([rng.permutation(base) for _ in range(n)])
    else:
        proba = rng.dirichlet(np.ones(k), n)
        proba[np.arange(n), y] += rng.uniform(0, 1.5, n)  # informative, but not perfect
        proba /= proba.sum(axis=1, keepdims=True)
    return y, proba


@pytest.mark.parametrize(("n", "k"), [(6, 3), (50, 3), (300, 5), (3000, 4)])
@pytest.mark.parametrize("ties", [False, True])
def test_multiclass_metrics_match_sklearn(n: int, k: int, ties: bool) -> None:
    y, proba = _multiclass_case(n, k, seed=n + k, ties=ties)
    labels = np.argmax(proba, axis=1)
    assert M.accuracy(y, proba) == pytest.approx(skm.accuracy_score(y, labels), rel=1e-12)
    assert M.f1(y, proba) == pytest.approx(skm.f1_score(y, labels, average="macro", zero_division=0.0),
                                           rel=1e-12)
    assert M.roc_auc(y, proba) == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"), rel=1e-12)
    assert M.log_loss(y, proba) == pytest.approx(skm.log_loss(y, proba, labels=list(range(k))), rel=1e-12)


def test_metric_names_per_task() -> None:
    assert M.for_task("regression") == ("rmse", "mae", "r2")
    assert M.for_task("multiclass") == M.for_task("binary-classification") == (
        "accuracy", "f1", "roc_auc", "log_loss")
    y, proba = _binary_case(40, 3, ties=False)
    assert set(M.compute(["accuracy", "log_loss"], y, proba)) == {"accuracy", "log_loss"}


# -- the paired bootstrap ------------------------------------------------------------------------
def _own_bootstrap(y: np.ndarray, p1: np.ndarray, p2: np.ndarray, metric: Any, resamples: int,
                   seed: int, block: int | None = None) -> tuple[float, float]:
    """Percentile interval of metric(v2) - metric(v1) over row resamples drawn with
    numpy.random.default_rng(seed).integers (in blocks of ``block`` resamples if given)."""
    rng = np.random.default_rng(seed)
    block = block or resamples
    idx = np.concatenate([rng.integers(0, len(y), size=(min(block, resamples - s), len(y)))
                          for s in range(0, resamples, block)])
    deltas = np.array([metric(y[i], p2[i]) - metric(y[i], p1[i]) for i in idx])
    low, high = np.percentile(deltas, [2.5, 97.5])
    return float(low), float(high)


def _regression_pair(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = _rng(seed)
    y = rng.normal(0, 1, n)
    return y, y + rng.normal(0, 1.0, n), y + rng.normal(0, 0.8, n)


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(skm.mean_squared_error(y, p)))


@pytest.mark.parametrize(("name", "metric"), [("rmse", _rmse), ("mae", skm.mean_absolute_error),
                                              ("r2", skm.r2_score)])
def test_bootstrap_interval_matches_an_independent_one(name: str, metric: Any) -> None:
    y, p1, p2 = _regression_pair(80, seed=7)
    stats = C.paired_bootstrap([name], y, p1, p2, resamples=400, seed=11)[name]
    low, high = _own_bootstrap(y, p1, p2, metric, 400, 11)
    assert stats["ci_low"] == pytest.approx(low, rel=1e-9, abs=1e-12)
    assert stats["ci_high"] == pytest.approx(high, rel=1e-9, abs=1e-12)
    assert stats["delta"] == pytest.approx(metric(y, p2) - metric(y, p1), rel=1e-12)


def test_bootstrap_of_classification_metrics_matches_an_independent_one() -> None:
    rng = _rng(5)
    y = rng.integers(0, 2, 70)
    p1 = np.clip(0.3 * y + rng.uniform(0, 0.7, 70), 0, 1)
    p2 = np.clip(0.5 * y + rng.uniform(0, 0.5, 70), 0, 1)
    a, b = np.column_stack([1 - p1, p1]), np.column_stack([1 - p2, p2])

    def labels_of(metric: Any) -> Any:
        return lambda yy, pp: metric(yy, np.argmax(pp, axis=1))

    checks = {"accuracy": labels_of(skm.accuracy_score),
              "f1": labels_of(lambda t, p: skm.f1_score(t, p, zero_division=0.0)),
              "roc_auc": lambda t, p: skm.roc_auc_score(t, p[:, 1]) if len(set(t)) == 2 else np.nan,
              "log_loss": lambda t, p: skm.log_loss(t, p, labels=[0, 1])}
    stats = C.paired_bootstrap(list(checks), y, a, b, resamples=150, seed=3)
    for name, metric in checks.items():
        low, high = _own_bootstrap(y, a, b, metric, 150, 3)
        assert (stats[name]["ci_low"], stats[name]["ci_high"]) == pytest.approx((low, high), rel=1e-9), name


def test_bootstrap_is_seeded_and_large_datasets_are_drawn_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    y, p1, p2 = _regression_pair(60, seed=2)
    first = C.paired_bootstrap(["rmse", "mae"], y, p1, p2, resamples=300, seed=9)
    assert first == C.paired_bootstrap(["rmse", "mae"], y, p1, p2, resamples=300, seed=9)
    assert first != C.paired_bootstrap(["rmse", "mae"], y, p1, p2, resamples=300, seed=10)
    # index blocks of 7 resamples (a memory cap hit by big datasets): same rows for every metric
    monkeypatch.setattr(C, "MAX_INDICES", 7 * len(y))
    blocked = C.paired_bootstrap(["rmse", "mae"], y, p1, p2, resamples=300, seed=9)
    for name, metric in (("rmse", _rmse), ("mae", skm.mean_absolute_error)):
        low, high = _own_bootstrap(y, p1, p2, metric, 300, 9, block=7)
        assert (blocked[name]["ci_low"], blocked[name]["ci_high"]) == pytest.approx((low, high), rel=1e-9)


@pytest.mark.parametrize(("name", "low", "high", "expected"), [
    ("rmse", -3.0, -1.0, C.BETTER), ("rmse", 1.0, 3.0, C.WORSE), ("rmse", -1.0, 1.0, C.SAME),
    ("r2", 0.1, 0.2, C.BETTER), ("r2", -0.2, -0.1, C.WORSE), ("accuracy", -0.01, 0.02, C.SAME),
    ("log_loss", 0.01, 0.02, C.WORSE), ("accuracy", float("nan"), float("nan"), C.SAME),
])
def test_verdict_reads_the_interval_in_the_metric_direction(name: str, low: float, high: float,
                                                            expected: str) -> None:
    assert C.verdict({"ci_low": low, "ci_high": high}, name) == expected


# -- signature diff and what a pull request changes -----------------------------------------------
def _version(vid: str, status: str = "staging", inputs: Any = None, outputs: Any = None) -> Version:
    inputs = inputs if inputs is not None else [{"name": "X", "type": "tensor(float)", "shape": [None, 10]}]
    outputs = outputs if outputs is not None else [{"name": "variable", "type": "tensor(float)", "shape": [None, 1]}]
    return Version.model_validate({"version": vid, "status": status, "artifact": {
        "path": f"registry/artifacts/{vid}.onnx", "sha256": "0" * 64,
        "signature": {"inputs": inputs, "outputs": outputs}}})


def test_signature_diff_names_added_removed_and_retyped_tensors() -> None:
    old = _version("v1")
    assert C.signature_diff(old, _version("v2")) == {"known": True, "changes": [], "breaking": False}
    extra_output = _version("v2", outputs=[{"name": "variable", "type": "tensor(float)", "shape": [None, 1]},
                                           {"name": "std", "type": "tensor(float)", "shape": [None, 1]}])
    diff = C.signature_diff(old, extra_output)
    assert diff["changes"] == [{"part": "outputs", "name": "std", "change": "added"}]
    assert diff["breaking"] is False  # a new output breaks nobody
    retyped = _version("v2", inputs=[{"name": "X", "type": "tensor(double)", "shape": [None, 12]}])
    diff = C.signature_diff(old, retyped)
    assert diff["changes"] == [{"part": "inputs", "name": "X", "change": "retyped",
                                "from": "tensor(float)[None, 10]", "to": "tensor(double)[None, 12]"}]
    assert diff["breaking"] is True
    renamed = _version("v2", outputs=[{"name": "score", "type": "tensor(float)", "shape": [None, 1]}])
    diff = C.signature_diff(old, renamed)
    assert {(c["name"], c["change"]) for c in diff["changes"]} == {("score", "added"), ("variable", "removed")}
    assert diff["breaking"] is True
    new_input = _version("v2", inputs=[{"name": "X", "type": "tensor(float)", "shape": [None, 10]},
                                       {"name": "mask", "type": "tensor(float)", "shape": [None, 10]}])
    assert C.signature_diff(old, new_input)["breaking"] is True  # callers do not feed it yet


def _model(versions: list[Version], traffic: dict[str, float] | None = None) -> Model:
    data: dict[str, Any] = {"name": "m", "task": "regression",
                            "versions": [v.model_dump(exclude_none=True) for v in versions]}
    if traffic is not None:
        data["traffic"] = traffic
    return Model.model_validate(data)


def test_changed_versions_counts_a_version_added_and_promoted_in_one_change() -> None:
    base = _model([_version("v1", "active")])
    head = _model([_version("v1", "deprecated"), _version("v2", "active")])
    assert changed_versions(base, head) == [("v2", ["added", "promoted", "traffic 0% → 100%"])]
    head = _model([_version("v1", "active"), _version("v2")], traffic={"v1": 80, "v2": 20})
    assert changed_versions(base, head) == [("v2", ["added", "traffic 0% → 20%"])]
    head = _model([_version("v1", "active"), _version("v2")])
    assert changed_versions(base, head) == [("v2", ["added"])]


def test_changed_versions_of_existing_versions_and_of_a_new_model() -> None:
    base = _model([_version("v1", "active"), _version("v2")], traffic={"v1": 90, "v2": 10})
    assert changed_versions(base, base) == []
    more = _model([_version("v1", "active"), _version("v2")], traffic={"v1": 50, "v2": 50})
    assert changed_versions(base, more) == [("v2", ["traffic 10% → 50%"])]
    promoted = _model([_version("v1", "deprecated"), _version("v2", "active")])
    assert changed_versions(base, promoted) == [("v2", ["promoted", "traffic 10% → 100%"])]
    assert changed_versions(None, base) == [("v1", ["added"]), ("v2", ["added"])]
