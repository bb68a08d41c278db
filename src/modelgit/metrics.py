"""Evaluation metrics in numpy: pure functions, checked in tests against scikit-learn's own.

Every metric takes ``(y_true, prediction)`` where the prediction is what :func:`predictions` of
:mod:`modelgit.evaluate` stores per row: the value for regression, the class-probability matrix
(n_rows x n_classes) for classification. ``paired_rows`` metrics also have a per-row form so the
bootstrap in :mod:`modelgit.compare` can resample rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

REGRESSION = ("rmse", "mae", "r2")
CLASSIFICATION = ("accuracy", "f1", "roc_auc", "log_loss")
# scikit-learn clips probabilities to [eps, 1 - eps] with eps of the dtype (float64 here) and
# does not renormalise them afterwards; so do we, so that the two agree to the last digit.
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - pred) ** 2)))


def mae(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(y - pred)))


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    residual = np.sum((y - pred) ** 2)
    total = np.sum((y - np.mean(y)) ** 2)
    if total == 0:
        return 1.0 if residual == 0 else 0.0  # scikit-learn's convention for a constant target
    return float(1 - residual / total)


def _labels(proba: np.ndarray) -> np.ndarray:
    return np.argmax(proba, axis=1)


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float(np.mean(_labels(proba) == y))


def f1(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary: F1 of class 1. Multiclass: macro average over the classes present."""
    predicted = _labels(proba)
    n_classes = proba.shape[1]
    classes = [1] if n_classes == 2 else sorted(set(y.tolist()) | set(predicted.tolist()))
    scores = []
    for cls in classes:
        tp = np.sum((predicted == cls) & (y == cls))
        fp = np.sum((predicted == cls) & (y != cls))
        fn = np.sum((predicted != cls) & (y == cls))
        denominator = 2 * tp + fp + fn
        scores.append(0.0 if denominator == 0 else 2 * tp / denominator)
    return float(np.mean(scores))


def _binary_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney U with average ranks for ties (vectorised: no Python loop over rows)."""
    positives = y == 1
    n_pos = int(np.sum(positives))
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")  # undefined with one class, as scikit-learn says
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    # average (1-based) rank of each run of equal scores, spread over the run's rows
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(score)]))
    ranks = np.empty(len(score), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return float((np.sum(ranks[positives]) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary: AUC of class 1's probability. Multiclass: macro one-vs-rest."""
    if proba.shape[1] == 2:
        return _binary_auc(y, proba[:, 1])
    return float(np.mean([_binary_auc((y == c).astype(int), proba[:, c]) for c in range(proba.shape[1])]))


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    return float(np.mean(row_log_loss(y, proba)))


def row_log_loss(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(proba, dtype=np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return -np.log(clipped[np.arange(len(y)), y.astype(np.int64)])


FUNCTIONS: dict[str, Any] = {
    "rmse": rmse, "mae": mae, "r2": r2,
    "accuracy": accuracy, "f1": f1, "roc_auc": roc_auc, "log_loss": log_loss,
}


def for_task(task: str) -> tuple[str, ...]:
    return REGRESSION if task == "regression" else CLASSIFICATION


def compute(names: list[str] | tuple[str, ...], y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {name: FUNCTIONS[name](y, pred) for name in names}
