"""`modelgit compare`: is the new version better, by how much, and how sure are we?

Per-metric deltas get 95 % confidence intervals from a *paired* bootstrap over dataset rows: each
resample draws the same rows for both versions, so row difficulty cancels out. Seeded, so the
same inputs give the same report. The verdict on the primary metric follows the model's policy.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from modelgit import metrics as M
from modelgit.spec import LOWER_IS_BETTER, FileArtifact, Model, UriArtifact, Version

RESAMPLES = 1000
SEED = 20251228
MAX_INDICES = 4_000_000  # bootstrap row indices held in memory at once (32 MB)
BETTER, WORSE, SAME = "better", "worse", "no significant difference"


def _resampled(name: str, y: np.ndarray, p1: np.ndarray, p2: np.ndarray, idx: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """The metric of both versions on every resample (rows idx[b]); vectorised where it can be."""
    if name in ("rmse", "mae"):
        e1 = (y - p1) ** 2 if name == "rmse" else np.abs(y - p1)
        e2 = (y - p2) ** 2 if name == "rmse" else np.abs(y - p2)
        m1, m2 = e1[idx].mean(axis=1), e2[idx].mean(axis=1)
        return (np.sqrt(m1), np.sqrt(m2)) if name == "rmse" else (m1, m2)
    if name == "r2":
        ys = y[idx]
        total = ((ys - ys.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        total = np.where(total == 0, np.nan, total)
        return (1 - ((ys - p1[idx]) ** 2).sum(axis=1) / total,
                1 - ((ys - p2[idx]) ** 2).sum(axis=1) / total)
    if name == "accuracy":
        c1 = (np.argmax(p1, axis=1) == y).astype(np.float64)
        c2 = (np.argmax(p2, axis=1) == y).astype(np.float64)
        return c1[idx].mean(axis=1), c2[idx].mean(axis=1)
    if name == "log_loss":
        l1, l2 = M.row_log_loss(y, p1), M.row_log_loss(y, p2)
        return l1[idx].mean(axis=1), l2[idx].mean(axis=1)
    function = M.FUNCTIONS[name]
    return (np.array([function(y[i], p1[i]) for i in idx]),
            np.array([function(y[i], p2[i]) for i in idx]))


def paired_bootstrap(names: list[str], y: np.ndarray, p1: np.ndarray, p2: np.ndarray,
                     resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, dict[str, float]]:
    """Point values, delta (v2 - v1) and its 95 % interval per metric."""
    rng = np.random.default_rng(seed)
    # The (resamples x rows) index matrix is drawn in blocks of resamples that stay under
    # MAX_INDICES entries (1,000 resamples of 200,000 rows would take 1.6 GB at once); every metric
    # sees the same rows. A small dataset is one block: rng.integers(0, rows, (resamples, rows)).
    block = max(1, min(resamples, MAX_INDICES // max(1, len(y))))
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in names}
    for start in range(0, resamples, block):
        idx = rng.integers(0, len(y), size=(min(block, resamples - start), len(y)))
        for name in names:
            parts[name].append(_resampled(name, y, p1, p2, idx))
    out = {}
    for name in names:
        m1, m2 = M.FUNCTIONS[name](y, p1), M.FUNCTIONS[name](y, p2)
        b1 = np.concatenate([pair[0] for pair in parts[name]])
        b2 = np.concatenate([pair[1] for pair in parts[name]])
        deltas = (b2 - b1)[~np.isnan(b2 - b1)]
        low, high = (np.percentile(deltas, [2.5, 97.5]) if deltas.size else (np.nan, np.nan))
        i1 = np.percentile(b1[~np.isnan(b1)], [2.5, 97.5]) if np.any(~np.isnan(b1)) else (np.nan, np.nan)
        i2 = np.percentile(b2[~np.isnan(b2)], [2.5, 97.5]) if np.any(~np.isnan(b2)) else (np.nan, np.nan)
        # Relative gain of v2 over v1 per resample (positive = better), for the one-sided
        # non-inferiority check: its 95th percentile is the one-sided 95 % upper bound.
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = (b1 - b2 if name in LOWER_IS_BETTER else b2 - b1) / np.abs(b1)
        gain = gain[np.isfinite(gain)]
        upper = float(np.percentile(gain, 95)) if gain.size else float("nan")
        out[name] = {"v1": m1, "v2": m2, "delta": m2 - m1, "ci_low": float(low), "ci_high": float(high),
                     "relative_gain_upper_95": upper,
                     "v1_ci": [float(i1[0]), float(i1[1])], "v2_ci": [float(i2[0]), float(i2[1])],
                     "lower_is_better": name in LOWER_IS_BETTER}
    return out


def verdict(stats: dict[str, float], name: str) -> str:
    """better / worse / no significant difference, from the interval of the delta."""
    low, high = stats["ci_low"], stats["ci_high"]
    if np.isnan(low) or np.isnan(high):
        return SAME
    if name in LOWER_IS_BETTER:
        low, high = -high, -low
    if low > 0:
        return BETTER
    if high < 0:
        return WORSE
    return SAME


def relative_improvement(stats: dict[str, float], name: str) -> float | None:
    base = stats["v1"]
    if base == 0:
        return None
    gain = -stats["delta"] if name in LOWER_IS_BETTER else stats["delta"]
    return float(gain / abs(base))


def _signature(version: Version) -> dict[str, Any] | None:
    artifact = version.artifact
    if isinstance(artifact, FileArtifact | UriArtifact) and artifact.signature is not None:
        return artifact.signature.model_dump()
    return None


def signature_diff(old: Version, new: Version) -> dict[str, Any]:
    """Inputs/outputs added, removed, retyped (type or shape). Removed, retyped or new inputs break
    callers."""
    s1, s2 = _signature(old), _signature(new)
    diff: dict[str, Any] = {"known": s1 is not None and s2 is not None, "changes": [], "breaking": False}
    if not diff["known"]:
        return diff
    assert s1 is not None and s2 is not None
    for part in ("inputs", "outputs"):
        a = {t["name"]: t for t in s1[part]}
        b = {t["name"]: t for t in s2[part]}
        for name in a.keys() - b.keys():
            diff["changes"].append({"part": part, "name": name, "change": "removed"})
        for name in b.keys() - a.keys():
            diff["changes"].append({"part": part, "name": name, "change": "added"})
        for name in a.keys() & b.keys():
            if (a[name]["type"], a[name]["shape"]) != (b[name]["type"], b[name]["shape"]):
                diff["changes"].append({"part": part, "name": name, "change": "retyped",
                                        "from": f"{a[name]['type']}{a[name]['shape']}",
                                        "to": f"{b[name]['type']}{b[name]['shape']}"})
    diff["changes"].sort(key=lambda c: (c["part"], c["name"]))
    diff["breaking"] = any(c["change"] != "added" or c["part"] == "inputs" for c in diff["changes"])
    return diff


def max_regression(model: Model, settings: Any) -> float:
    """The policy's ``max_regression`` (the model's, else the registry default, else 0)."""
    if model.policy is not None and model.policy.max_regression is not None:
        return float(model.policy.max_regression)
    defaults = settings.defaults.policy if settings is not None and settings.defaults else None
    return float(defaults.max_regression or 0) if defaults is not None else 0.0


def policy_threshold(model: Model, settings: Any) -> float | None:
    if model.policy is not None and model.policy.min_quality_improvement is not None:
        return model.policy.min_quality_improvement
    defaults = settings.defaults.policy if settings is not None and settings.defaults else None
    return defaults.min_quality_improvement if defaults is not None else None


def non_inferior(stats: dict[str, Any], max_regression: float) -> bool:
    """Whether v2 is not worse than v1 by more than ``max_regression`` (relative, 0.02 = 2 %) on
    this metric, one-sided at 95 %: refused only when even the upper 95 % bound of its relative
    gain is below ``-max_regression``. With 0: refused when significantly worse. Pure."""
    upper = stats["relative_gain_upper_95"]
    return bool(np.isnan(upper) or upper >= -max_regression)


def compare_results(model: Model, settings: Any, r1: dict[str, Any], r2: dict[str, Any],
                    resamples: int = RESAMPLES, seed: int = SEED, *, primary: str | None = None,
                    policy_model: Model | None = None) -> dict[str, Any]:
    """The comparison report of two evaluation results of one model (same dataset). ``primary``
    and ``policy_model`` (whose policy applies) default to ``model``'s own."""
    if r1["dataset_sha256"] != r2["dataset_sha256"]:
        raise ValueError("the two results come from different datasets")
    v1 = model.version(r1["version"])
    v2 = model.version(r2["version"])
    assert v1 is not None and v2 is not None
    y = np.asarray(r1["labels"])
    if model.task != "regression":
        y = y.astype(np.int64)
    p1, p2 = np.asarray(r1["predictions"], dtype=np.float64), np.asarray(r2["predictions"], dtype=np.float64)
    names = [n for n in r1["metrics"] if n in r2["metrics"]]
    stats = paired_bootstrap(names, y, p1, p2, resamples, seed)
    primary = primary or (model.evaluation.primary if model.evaluation and model.evaluation.primary else names[0])
    for name, s in stats.items():
        s["verdict"] = verdict(s, name)
        s["relative_improvement"] = relative_improvement(s, name)
    threshold = policy_threshold(policy_model or model, settings)
    head = stats[primary]
    meets = head["verdict"] == BETTER and (
        threshold is None or (head["relative_improvement"] or 0) >= threshold)
    lat1, lat2 = r1["latency"]["p50_ms_per_row"], r2["latency"]["p50_ms_per_row"]
    return {
        "model": model.name, "v1": r1["version"], "v2": r2["version"], "rows": r1["rows"],
        "dataset": r1["dataset"], "resamples": resamples, "seed": seed, "primary": primary,
        "verdict": head["verdict"], "policy_min_improvement": threshold, "meets_policy": meets,
        "metrics": stats,
        "latency": {"v1_p50_ms_per_row": lat1, "v2_p50_ms_per_row": lat2, "delta_ms": lat2 - lat1},
        "signature": signature_diff(v1, v2),
        "text": {"v1": {"improvements": v1.improvements, "breaking_changes": v1.breaking_changes},
                 "v2": {"improvements": v2.improvements, "breaking_changes": v2.breaking_changes,
                        "migration_notes": v2.migration_notes}},
        "commits": {"v1": r1.get("commit"), "v2": r2.get("commit")},
    }


# -- rendering ----------------------------------------------------------------------------------------
def _f(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"### {report['model']}: {report['v2']} vs {report['v1']}", ""]
    mark = {BETTER: "✅ better", WORSE: "❌ worse", SAME: "⚪ no significant difference"}[report["verdict"]]
    policy = report["policy_min_improvement"]
    lines.append(f"**Verdict on {report['primary']}: {mark}**"
                 + (f" (policy needs ≥ {policy:.0%} relative improvement: "
                    f"{'met' if report['meets_policy'] else 'not met'})" if policy is not None else ""))
    lines += ["", f"{report['rows']} rows of `{report['dataset']}`, paired bootstrap "
              f"({report['resamples']} resamples, seed {report['seed']}), 95 % intervals.", "",
              f"| metric | {report['v1']} | {report['v2']} | delta | 95 % CI | verdict |",
              "|---|---:|---:|---:|---|---|"]
    for name, s in report["metrics"].items():
        arrow = " (lower is better)" if s["lower_is_better"] else ""
        lines.append(f"| {name}{arrow} | {_f(s['v1'])} | {_f(s['v2'])} | {_f(s['delta'])} | "
                     f"[{_f(s['ci_low'])}, {_f(s['ci_high'])}] | {s['verdict']} |")
    lat = report["latency"]
    lines += ["", f"Latency p50 per row: {_f(lat['v1_p50_ms_per_row'])} ms → "
              f"{_f(lat['v2_p50_ms_per_row'])} ms ({lat['delta_ms']:+.4f} ms)."]
    sig = report["signature"]
    if not sig["known"]:
        lines.append("Signature: not recorded for both versions.")
    elif not sig["changes"]:
        lines.append("Signature: unchanged.")
    else:
        lines.append(f"Signature changes{' (BREAKING)' if sig['breaking'] else ''}:")
        for c in sig["changes"]:
            extra = f" {c['from']} → {c['to']}" if c["change"] == "retyped" else ""
            lines.append(f"- {c['part'][:-1]} `{c['name']}` {c['change']}{extra}")
    text = report["text"]["v2"]
    for title, items in (("Improvements", text["improvements"]), ("Breaking changes", text["breaking_changes"])):
        if items:
            lines += ["", f"**{title} in {report['v2']}:**"] + [f"- {item}" for item in items]
    if text.get("migration_notes"):
        lines += ["", f"**Migration notes:** {text['migration_notes']}"]
    return "\n".join(lines) + "\n"


def _svg_chart(report: dict[str, Any]) -> str:
    """Each metric as a small panel: both versions' values with their 95 % intervals."""
    panels = []
    width, height, pad = 220, 150, 30
    for index, (name, s) in enumerate(report["metrics"].items()):
        values = [s["v1"], s["v2"], *s["v1_ci"], *s["v2_ci"]]
        finite = [v for v in values if v is not None and not np.isnan(v)]
        low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        span = (high - low) or 1.0
        low, high = low - 0.1 * span, high + 0.1 * span

        def y_of(value: float, low: float = low, high: float = high) -> float:
            return pad + (height - 2 * pad) * (1 - (value - low) / (high - low))

        x0 = index * width
        parts = [f'<text x="{x0 + width / 2}" y="16" text-anchor="middle" font-size="13">'
                 f'{html.escape(name)}{" ↓" if s["lower_is_better"] else " ↑"}</text>']
        for j, (label, value, ci, color) in enumerate((
                (report["v1"], s["v1"], s["v1_ci"], "#888"), (report["v2"], s["v2"], s["v2_ci"], "#1f6feb"))):
            cx = x0 + width * (0.33 + 0.34 * j)
            if not any(np.isnan(v) for v in ci):
                parts.append(f'<line x1="{cx}" x2="{cx}" y1="{y_of(ci[0]):.1f}" y2="{y_of(ci[1]):.1f}" '
                             f'stroke="{color}" stroke-width="2"/>')
            parts.append(f'<circle cx="{cx}" cy="{y_of(value):.1f}" r="5" fill="{color}">'
                         f'<title>{html.escape(label)}: {_f(value)}</title></circle>')
            parts.append(f'<text x="{cx}" y="{height - 8}" text-anchor="middle" font-size="11">'
                         f'{html.escape(label)}</text>')
        panels.append("".join(parts))
    total = width * max(1, len(report["metrics"]))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="{height}" '
            f'role="img" aria-label="metric per version with 95% intervals">{"".join(panels)}</svg>')


def to_html(report: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{_f(s['v1'])}</td><td>{_f(s['v2'])}</td><td>{_f(s['delta'])}</td>"
        f"<td>[{_f(s['ci_low'])}, {_f(s['ci_high'])}]</td><td>{html.escape(s['verdict'])}</td></tr>"
        for n, s in report["metrics"].items())
    title = html.escape(f"{report['model']}: {report['v2']} vs {report['v1']}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;border-bottom:1px solid #ddd}"
            "</style></head><body>"
            f"<h1>{title}</h1><p><b>Verdict on {html.escape(report['primary'])}: "
            f"{html.escape(report['verdict'])}</b></p>{_svg_chart(report)}"
            f"<table><tr><th>metric</th><th>{html.escape(report['v1'])}</th><th>{html.escape(report['v2'])}</th>"
            f"<th>delta</th><th>95% CI</th><th>verdict</th></tr>{rows}</table>"
            f"<pre>{html.escape(to_markdown(report))}</pre></body></html>\n")
