"""The dashboard without a browser: pages from a real uvicorn server on 127.0.0.1 and real git repositories,
escaping of hostile text, ids that must not name a file, a page without a usage database, and the
chart geometry as pure functions. (tests/test_dashboard_browser.py drives a real browser.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from markupsafe import escape

from conftest import Repo
from dashboard_support import dashboard_app, ramp_calling_score, record_usage
from feed_support import serve
from modelgit.server.dashboard import PALETTE, compare_bars, line_chart, split_bar

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


_servers: list[ExitStack] = []


@pytest.fixture(autouse=True)
def _stop_servers() -> Iterator[None]:
    """Every server a test starts (a real uvicorn on 127.0.0.1) stops when the test ends."""
    with ExitStack() as stack:
        _servers.append(stack)
        yield
        _servers.pop()


def _http(app: Any) -> httpx.Client:
    """A client of ``app`` served by uvicorn on a free loopback port."""
    stack = _servers[-1]
    return stack.enter_context(httpx.Client(base_url=stack.enter_context(serve(app)), timeout=30))


def _client(repo: Repo, tracking_url: str | None = None) -> httpx.Client:
    return _http(dashboard_app(repo.root, tracking_url))


def test_index_lists_every_model_with_its_split_without_a_tracker(example_repo: Repo) -> None:
    page = _client(example_repo).get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    for model in ("calling_score", "outcome_prediction", "openrouter/qwen-2.5-7b-instruct"):
        assert f'<a href="/models/{model}">{model}</a>' in text
    assert 'data-version="v1.0-hybrid" data-percent="90.0">v1.0-hybrid 90%' in text
    assert 'data-version="v2.0-real" data-percent="10.0">v2.0-real 10%' in text
    assert 'style="width: 90.0%; background: #1f6feb"' in text
    assert "No usage database is connected." in text


def test_model_page_renders_without_a_tracker(example_repo: Repo) -> None:
    client = _client(example_repo)
    page = client.get("/models/calling_score")
    assert page.status_code == 200, page.text
    assert '<p class="muted" id="no-usage">No usage database is connected.</p>' in page.text
    assert '<strong class="subject">Add example registry</strong>' in page.text
    assert "model added: v1.0-hybrid (active), v2.0-real (staging)" in page.text
    assert 'id="compare"' in page.text  # the example's ONNX versions have an evaluation set
    hosted = client.get("/models/openrouter/qwen-2.5-7b-instruct")
    assert hosted.status_code == 200
    assert '<p class="muted" id="no-evaluation">no evaluation: the model has no evaluation dataset</p>' in hosted.text


def test_model_page_with_usage_draws_a_chart_per_metric(example_repo: Repo, tmp_path: Path) -> None:
    head = ramp_calling_score(example_repo)
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    record_usage(url, head)
    app = dashboard_app(example_repo.root, url)
    try:
        text = _http(app).get("/models/calling_score").text
    finally:
        app.state.tracker.close()
    assert text.count('<figure class="chart">') == 2
    assert text.count('<g class="series" data-version="v2.0-real">') == 2
    assert "traffic 90/10 → 80/20 (v1.0-hybrid/v2.0-real)" in text
    assert '<th scope="row"><code>v1.0-hybrid</code></th><td class="num">280</td>' in text


def test_hostile_description_subject_and_notes_render_as_text(example_repo: Repo) -> None:
    example_repo.write("registry/models/hostile.yaml", f"""\
name: hostile
description: '{HOSTILE}'
owner: '{HOSTILE}'
task: generation
versions:
  - version: "1.0"
    status: active
    artifact: {{provider: openrouter, model_id: a/b}}
  - version: "2.0"
    status: staging
    artifact: {{provider: openrouter, model_id: a/c}}
    improvements: ['{HOSTILE}']
""")
    example_repo.commit(HOSTILE)
    client = _client(example_repo)
    for path in ("/", "/models/hostile"):
        page = client.get(path)
        assert page.status_code == 200, page.text
        assert "<script>" not in page.text and "<img" not in page.text
        assert escape(HOSTILE) in page.text
    model_page = client.get("/models/hostile").text
    assert f'<strong class="subject">{escape(HOSTILE)}</strong>' in model_page
    assert f'<p id="description">{escape(HOSTILE)}</p>' in model_page


@pytest.mark.parametrize("model_id", [
    "..%2F..%2Fetc%2Fpasswd", "calling_score%2F..%2F..%2Fmodelgit", "%2e%2e/registry/modelgit",
    "calling_score/..%2Foutcome_prediction", "Calling_Score", "nope", "calling_score.yaml", "-x", "a" * 200,
    "%2Fcalling_score", "calling%0A_score",
])
def test_ids_that_name_no_model_are_404(example_repo: Repo, model_id: str) -> None:
    page = _client(example_repo).get(f"/models/{model_id}")
    assert page.status_code == 404
    if page.headers["content-type"].startswith("application/json"):
        assert page.json() == {"detail": "Not Found"}  # a "\n" in the path matches no route at all
    else:
        assert "<h1>No such model</h1>" in page.text
        assert "registry/" not in page.text and "root:" not in page.text


def test_an_unknown_id_is_echoed_as_text_on_the_404_page(example_repo: Repo) -> None:
    page = _client(example_repo).get("/models/nope.x")
    assert page.status_code == 404
    assert "<p>There is no model &#39;nope.x&#39; in the registry at this commit.</p>" in page.text
    hostile = _client(example_repo).get("/models/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert hostile.status_code == 404 and "<script>" not in hostile.text


def test_pages_read_the_servers_shared_context_when_there_is_one(example_repo: Repo) -> None:
    """With ``app.state.context`` (the server's ServerContext: repo, ref, the hot-reloaded
    ``snapshot.current``, tracker) the pages show its snapshot, not the ref's newest commit."""
    from types import SimpleNamespace

    from fastapi import FastAPI

    from modelgit.gitstore import GitRepo
    from modelgit.server.dashboard import router
    from modelgit.snapshot import Loader

    repo = GitRepo.discover(example_repo.root)
    served = Loader(repo).load("HEAD")
    ramp_calling_score(example_repo)  # the ref moves on; the context still serves the old commit
    app = FastAPI()
    app.include_router(router)
    app.state.context = SimpleNamespace(repo=repo, ref="main", snapshot=SimpleNamespace(current=served),
                                        tracker=None)
    client = _http(app)
    index = client.get("/").text
    assert f'at <code title="{served.commit}">' in index
    assert "v1.0-hybrid 90%" in index and "v1.0-hybrid 80%" not in index
    page = client.get("/models/calling_score").text
    assert page.count('<li class="commit">') == 1  # the history of the served commit


def test_an_invalid_model_file_is_listed_with_its_findings(example_repo: Repo) -> None:
    example_repo.write("registry/models/broken.yaml", "name: broken\ntask: regression\nversions: []\n")
    example_repo.commit("broken model")
    client = _client(example_repo)
    index = client.get("/")
    assert index.status_code == 200
    assert '<a href="/models/broken">broken</a>\n<span class="badge badge-invalid">invalid</span></th>\n' \
        '      <td colspan="4"><div>versions: needs at least 1 item, has 0</div></td>' in index.text
    page = client.get("/models/broken")
    assert page.status_code == 200
    assert "<h2>Findings</h2>\n<ul><li>versions: needs at least 1 item, has 0</li></ul>" in page.text
    assert "model added, invalid (see &#39;modelgit validate&#39;)" in page.text


# -- pure geometry ----------------------------------------------------------------------------------
def test_split_bar_scales_segments_and_skips_zero_shares() -> None:
    palette = {"a": "#111", "b": "#222", "c": "#333"}
    bar = split_bar({"a": 75, "b": 0, "c": 25}, palette)
    assert [(s.version, s.percent, s.x, s.width, s.color) for s in bar] == [
        ("a", 75, 0.0, 75.0, "#111"), ("c", 25, 75.0, 25.0, "#333")]
    assert [s.width for s in split_bar({"a": 30, "b": 30}, palette)] == [50.0, 50.0]  # a bad total stays inside
    assert split_bar({}, palette) == []


def test_line_chart_maps_values_into_the_plot_area() -> None:
    values = {"v1": {date(2026, 1, 1): 1.0, date(2026, 1, 3): 2.0}, "v2": {date(2026, 1, 2): 1.5}}
    chart = line_chart("Quality", "", values, {"v1": PALETTE[0], "v2": PALETTE[1]})
    assert chart is not None
    (x1, y1, _, _), (x3, y3, _, _) = chart.series[0].points
    (x2, y2, _, _), = chart.series[1].points
    assert (x1, x3) == (chart.left, chart.right)
    assert x2 == pytest.approx((chart.left + chart.right) / 2)
    assert chart.top < y3 < y2 < y1 < chart.bottom  # higher values are drawn higher, padded from the edges
    assert y2 == pytest.approx((y1 + y3) / 2)
    assert [label for _, label in chart.x_ticks] == ["2026-01-01", "2026-01-03"]
    flat = line_chart("Latency", "ms", {"v1": {date(2026, 1, 1): 5.0}}, {})
    assert flat is not None and flat.series[0].points[0][:2] == ((flat.left + flat.right) / 2,
                                                                 pytest.approx((flat.top + flat.bottom) / 2))
    assert line_chart("Empty", "", {}, {}) is None


def test_compare_bars_scale_to_the_larger_magnitude() -> None:
    report = {"v1": "a", "v2": "b", "metrics": {"rmse": {
        "v1": 2.0, "v2": 1.0, "v1_ci": [1.5, 2.5], "v2_ci": [0.5, 1.5], "delta": -1.0, "ci_low": -1.2,
        "ci_high": -0.8, "verdict": "better", "lower_is_better": True}}}
    (panel,) = compare_bars(report, {"a": "#111", "b": "#222"})
    assert panel.bars == [("a", 2.0, 100.0, "#111", "[1.5, 2.5]"), ("b", 1.0, 50.0, "#222", "[0.5, 1.5]")]
    assert (panel.delta, panel.ci, panel.verdict, panel.lower_is_better) == ("-1", "[-1.2, -0.8]", "better", True)
