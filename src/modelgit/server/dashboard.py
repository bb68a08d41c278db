"""The dashboard: server-rendered HTML pages of the registry at the served ref (Jinja2, autoescaped;
charts are inline SVG drawn from numbers computed here, so there is no JavaScript to build).

``GET /`` lists every model: its active version, a bar of its traffic split, weights and statuses.
``GET /models/{id}`` shows one model: its history (commits with semantic changes), recommendations
with their evidence, usage per version and day from the tracker, and the evaluation comparison.

The page data come from the library (:mod:`modelgit.views`, :mod:`modelgit.upgrades`,
:mod:`modelgit.decisions`, :mod:`modelgit.compare`); the geometry of the charts comes from pure
functions (:func:`split_bar`, :func:`line_chart`, :func:`compare_bars`) tested without a server.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader

from modelgit.errors import ModelgitError
from modelgit.gitstore import GitRepo
from modelgit.snapshot import Loader, Snapshot

__all__ = ["ChartSeries", "LineChart", "Segment", "compare_bars", "line_chart", "router", "split_bar"]

router = APIRouter()

# The model-id grammar of spec.Model.name (and proposals.MODEL_ID): lower-case path segments, no
# '..', no leading '/': an id that fails it cannot name a file under registry/models/.
_MODEL_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*")  # fullmatch: no "\n" after "$"

# Colour per version by its place in the model file (release order), so a version keeps its colour
# in the split bar, the usage charts and the comparison. Chosen to stay apart for colour-blind eyes.
PALETTE = ("#1f6feb", "#e8710a", "#1a7f37", "#a371f7", "#cf222e", "#8c6d1f", "#0f7b8a", "#6e7781")

_env = Environment(loader=PackageLoader("modelgit.server", "templates"), autoescape=True,
                   trim_blocks=True, lstrip_blocks=True)


# -- where the data come from -----------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """What one request reads: the repository, the served ref, its snapshot, and the tracker
    (None when the server has no usage database)."""

    repo: GitRepo
    ref: str
    snapshot: Snapshot
    tracker: Any | None


_lock = threading.Lock()


def _context(request: Request) -> Source:
    """The one place that knows where the server keeps its state: the server's
    :class:`~modelgit.server.context.ServerContext` (``app.state.context``: ``repo``, ``ref``, the
    hot-reloaded ``snapshot.current`` and ``tracker``) when there is one, else
    ``app.state.repo_path``/``ref``/``tracking_url`` (a bare app with only this router)."""
    state = request.app.state
    context = getattr(state, "context", None)
    if context is not None:
        live = context.snapshot
        snapshot = live.current if hasattr(live, "current") else live
        return Source(context.repo, context.ref, snapshot, getattr(context, "tracker", None))
    with _lock:  # one loader and one tracker per app, made on first use; a Loader is not thread-safe
        loader = getattr(state, "dashboard_loader", None)
        if loader is None:
            loader = state.dashboard_loader = Loader(GitRepo.discover(getattr(state, "repo_path", ".")))
        tracker = getattr(state, "tracker", None)
        url = getattr(state, "tracking_url", None)
        if tracker is None and url:
            from modelgit.tracking import Tracker

            tracker = state.tracker = Tracker(url)
        ref = getattr(state, "ref", None) or "HEAD"
        snapshot = loader.load(ref)
    return Source(loader.repo, ref, snapshot, tracker)


# -- pure geometry ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """One version's part of a traffic bar: ``x`` and ``width`` in percent of the bar."""

    version: str
    percent: float
    x: float
    width: float
    color: str


def colors(versions: list[str]) -> dict[str, str]:
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(versions)}


def split_bar(split: dict[str, float], palette: dict[str, str]) -> list[Segment]:
    """The traffic bar: a segment per version with traffic, widths scaled to the split's total
    (a split always sums to 100 in a valid file; scaling keeps a bad one inside the bar)."""
    total = sum(p for p in split.values() if p > 0)
    segments, x = [], 0.0
    for version, percent in split.items():
        if percent <= 0 or total <= 0:
            continue
        width = 100.0 * percent / total
        segments.append(Segment(version, percent, round(x, 3), round(width, 3), palette.get(version, PALETTE[-1])))
        x += width
    return segments


@dataclass(frozen=True)
class ChartSeries:
    version: str
    color: str
    points: list[tuple[float, float, date, float]]  # (x, y, day, value)

    @property
    def polyline(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in self.points)


@dataclass(frozen=True)
class LineChart:
    """An SVG line chart's geometry: one series per version, axes' labels and ticks."""

    title: str
    unit: str
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    series: list[ChartSeries]
    y_ticks: list[tuple[float, str]]  # (y, label)
    x_ticks: list[tuple[float, str]]


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def line_chart(title: str, unit: str, values: dict[str, dict[date, float]], palette: dict[str, str], *,
               width: int = 560, height: int = 220) -> LineChart | None:
    """A chart of ``values`` (version → day → value); None when there is no value to draw."""
    left, right, top, bottom = 56, width - 12, 12, height - 30
    days = sorted({d for by_day in values.values() for d in by_day})
    finite = [v for by_day in values.values() for v in by_day.values() if math.isfinite(v)]
    if not days or not finite:
        return None
    low, high = min(finite), max(finite)
    if high == low:  # a flat line sits in the middle
        low, high = low - (abs(low) * 0.1 or 1.0), high + (abs(high) * 0.1 or 1.0)
    else:
        pad = 0.08 * (high - low)
        low, high = low - pad, high + pad
    first, span_days = days[0], (days[-1] - days[0]).days

    def x_of(day: date) -> float:
        return (left + right) / 2 if span_days == 0 else left + (right - left) * (day - first).days / span_days

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * (value - low) / (high - low)

    series = []
    for version, by_day in values.items():
        points = [(x_of(d), y_of(v), d, v) for d, v in sorted(by_day.items()) if math.isfinite(v)]
        if points:
            series.append(ChartSeries(version, palette.get(version, PALETTE[-1]), points))
    y_ticks = [(y_of(v), _fmt(v, 3)) for v in (low + (high - low) * k / 4 for k in range(5))]
    x_ticks = [(x_of(days[0]), days[0].isoformat())]
    if span_days:
        x_ticks.append((x_of(days[-1]), days[-1].isoformat()))
    return LineChart(title, unit, width, height, left, right, top, bottom, series, y_ticks, x_ticks)


@dataclass(frozen=True)
class MetricBars:
    """One metric of a comparison: a bar per version (``length`` in percent of the panel), the
    95 % interval of each, the delta's interval and the verdict."""

    metric: str
    lower_is_better: bool
    bars: list[tuple[str, float, float, str, str]]  # (version, value, length, color, "[low, high]")
    delta: str
    ci: str
    verdict: str


def compare_bars(report: dict[str, Any], palette: dict[str, str]) -> list[MetricBars]:
    """The bars of a :func:`modelgit.compare.compare_results` report: per metric, both versions'
    values as bar lengths scaled to the larger magnitude of the two."""
    panels = []
    for name, s in report["metrics"].items():
        pairs = [(report["v1"], s["v1"], s.get("v1_ci")), (report["v2"], s["v2"], s.get("v2_ci"))]
        scale = max((abs(v) for _, v, _ in pairs if v is not None and math.isfinite(v)), default=0.0) or 1.0
        bars = []
        for version, value, ci in pairs:
            finite = value is not None and math.isfinite(value)
            length = 100.0 * abs(value) / scale if finite else 0.0
            interval = f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""
            bars.append((version, value, round(length, 2), palette.get(version, PALETTE[-1]), interval))
        panels.append(MetricBars(name, bool(s.get("lower_is_better")), bars, _fmt(s.get("delta")),
                                 f"[{_fmt(s.get('ci_low'))}, {_fmt(s.get('ci_high'))}]", str(s.get("verdict"))))
    return panels


# -- page data ----------------------------------------------------------------------------------------
def _usage_values(tracker: Any, model_id: str) -> tuple[dict[str, dict[date, float]], dict[str, dict[date, float]],
                                                       list[dict[str, Any]]]:
    """Per version and day: mean quality and p50 latency, summed in the database from the daily
    rollups; and per version the totals (n, mean quality, p50/p95 latency)."""
    quality: dict[str, dict[date, float]] = {}
    latency: dict[str, dict[date, float]] = {}
    for aggregate in tracker.aggregates(model_id, by=("day", "version")):
        version, day = str(aggregate.group["version"]), aggregate.group["day"]
        if isinstance(day, str):
            day = date.fromisoformat(day)
        if aggregate.quality.mean is not None:
            quality.setdefault(version, {})[day] = aggregate.quality.mean
        p50 = aggregate.latency.quantile(0.5)
        if p50 is not None:
            latency.setdefault(version, {})[day] = p50
        elif aggregate.latency_ms.mean is not None:
            latency.setdefault(version, {})[day] = aggregate.latency_ms.mean
    totals = []
    for aggregate in tracker.aggregates(model_id, by=("version",)):
        p50, p95 = aggregate.latency.quantiles((0.5, 0.95))
        totals.append({"version": str(aggregate.group["version"]), "n": aggregate.n,
                       "quality": _fmt(aggregate.quality.mean), "p50": _fmt(p50, 3), "p95": _fmt(p95, 3)})
    return quality, latency, totals


# Evaluations run onnxruntime over the evaluation set (and comparisons a bootstrap): kept per commit
# and model, as a commit's files never change (the working tree, commit None, is never cached).
# Bounded so that a long-lived server does not grow.
_compare_cache: OrderedDict[Any, dict[str, Any]] = OrderedDict()
_CACHE_SIZE = 64


def _remember(cache: OrderedDict[Any, Any], key: tuple[Any, ...], value: Any) -> None:
    if key[0] is None:
        return
    with _lock:
        cache[key] = value
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)


def _comparison(snapshot: Snapshot, root: Path, model_id: str) -> tuple[dict[str, Any] | None, str]:
    """(report, why not): the evaluation comparison of the active version with the newest staging
    one, or None and the reason there is none."""
    from modelgit.compare import compare_results
    from modelgit.evaluate import evaluate
    from modelgit.spec import FileArtifact

    model = snapshot.model(model_id)
    if model.evaluation is None:
        return None, "no evaluation: the model has no evaluation dataset"
    active = model.active
    others = [v for v in model.versions if v.status == "staging"] or \
        [v for v in model.versions if active is None or v.version != active.version]
    if active is None or not others:
        return None, "no evaluation: there are not two versions to compare"
    candidate = others[-1]
    for version in (active, candidate):
        if not isinstance(version.artifact, FileArtifact):
            return None, f"no evaluation: version {version.version} has no ONNX file in the repository"
    key = (snapshot.commit, model_id, active.version, candidate.version)
    with _lock:
        cached = _compare_cache.get(key)
    if cached is not None:
        return cached, ""
    try:
        r1 = evaluate(snapshot, model_id, active.version, root=root)
        r2 = evaluate(snapshot, model_id, candidate.version, root=root)
        settings = snapshot.settings.spec if snapshot.settings is not None else None
        report = compare_results(model, settings, r1, r2)
    except ModelgitError as exc:
        return None, f"no evaluation: {exc.message}"
    _remember(_compare_cache, key, report)
    return report, ""


def _recommendations(source: Source, model_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The model's recommendation (decisions.recommend: observed usage first, else the evaluation)
    with its evidence as indented JSON, the versions check_upgrades skipped, and a note."""
    from modelgit.decisions import model_usage, recommend
    from modelgit.server.evaluations import upgrades

    one = dataclasses.replace(source.snapshot, files={model_id: source.snapshot.files[model_id]})
    note = ""
    try:
        evaluated, skipped = upgrades(source.snapshot, source.repo.root, [model_id])
    except ModelgitError as exc:
        evaluated, skipped, note = [], [], f"evaluation failed: {exc.message}"
    usages = {}
    if source.tracker is not None:
        try:
            usages[model_id] = model_usage(source.repo, source.tracker, model_id,
                                           source.snapshot.commit or source.ref)
        except ModelgitError as exc:
            note = f"usage unavailable: {exc.message}"
    found = recommend(one, usages, evaluated)
    for item in found:
        item["evidence_json"] = json.dumps(item["evidence"], indent=2, sort_keys=True, default=str)
    return found, skipped, note


def _model_row(model_id: str, parsed: Any) -> dict[str, Any]:
    from modelgit.views import model_summary

    if parsed.spec is None:
        return {"model": model_id, "invalid": True, "findings": [f.message for f in parsed.findings]}
    summary = model_summary(model_id, parsed.spec)
    palette = colors([v["version"] for v in summary["versions"]])
    summary["segments"] = split_bar(summary["traffic"], palette)
    summary["colors"] = palette
    summary["retired"] = bool(parsed.spec.retired)
    summary["invalid"] = False
    return summary


def _render(name: str, status_code: int = 200, **data: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**data), status_code=status_code)


# -- routes -----------------------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request) -> HTMLResponse:
    source = _context(request)
    rows = [_model_row(mid, parsed) for mid, parsed in source.snapshot.files.items()]
    return _render("index.html", ref=source.ref, commit=source.snapshot.commit, models=rows,
                   tracker=source.tracker is not None)


@router.get("/models/{model_id:path}", response_class=HTMLResponse, include_in_schema=False)
def model_page(request: Request, model_id: str) -> HTMLResponse:
    source = _context(request)
    if len(model_id) > 128 or not _MODEL_ID.fullmatch(model_id) or ".." in model_id:
        return _render("not_found.html", 404, ref=source.ref, commit=source.snapshot.commit,
                       message="That is not a model id: ids are lower-case path segments like 'team/model'.")
    parsed = source.snapshot.files.get(model_id)
    if parsed is None:
        return _render("not_found.html", 404, ref=source.ref, commit=source.snapshot.commit,
                       message=f"There is no model '{model_id}' in the registry at this commit.")
    from modelgit.views import history

    row = _model_row(model_id, parsed)
    # The served commit, not the ref: the ref may have moved to a commit the server refused.
    served = source.snapshot.commit or source.ref
    commits = history(source.repo, model_id, served, limit=50)["commits"]
    data: dict[str, Any] = {"ref": source.ref, "commit": source.snapshot.commit, "m": row, "history": commits,
                            "tracker": source.tracker is not None}
    if not row["invalid"]:
        palette = row["colors"]
        data["recommendations"], data["skipped"], data["note"] = _recommendations(source, model_id)
        data["charts"], data["totals"] = [], []
        if source.tracker is not None:
            quality, latency, data["totals"] = _usage_values(source.tracker, model_id)
            for chart in (line_chart("Quality (daily mean)", "", quality, palette),
                          line_chart("Latency (daily p50)", "ms", latency, palette)):
                if chart is not None:
                    data["charts"].append(chart)
        report, why = _comparison(source.snapshot, source.repo.root, model_id)
        data["report"], data["no_report"] = report, why
        data["bars"] = compare_bars(report, palette) if report else []
    return _render("model.html", **data)
