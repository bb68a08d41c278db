"""The dashboard in a real browser (issue 11, point 4): a real uvicorn server on loopback serving a
real git repository with the example registry and a real SQLite usage database, driven by Debian's
chromium through Playwright. The numbers on the page are checked against the registry's YAML read
here, independently of modelgit; screenshots are kept as test artifacts (under tmp_path, and in
``$MODELGIT_SCREENSHOT_DIR`` when it is set)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import Repo
from dashboard_support import dashboard_app, ramp_calling_score, record_usage


def find_chromium() -> str | None:
    """``$MODELGIT_CHROMIUM``, else Debian's chromium (``make browser`` installs it)."""
    for candidate in (os.environ.get("MODELGIT_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture
def served(example_repo: Repo, tmp_path: Path) -> Iterator[tuple[str, Repo]]:
    """The base URL of a uvicorn server for the example repository (with recorded usage)."""
    from feed_support import serve

    head = ramp_calling_score(example_repo)
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    record_usage(url, head)
    app = dashboard_app(example_repo.root, url)
    try:
        with serve(app) as base:
            yield base, example_repo
    finally:
        tracker = getattr(app.state, "tracker", None)
        if tracker is not None:
            tracker.close()


def _registry(root: Path) -> dict[str, dict[str, Any]]:
    """Model id → the model file's YAML, read with PyYAML (not through modelgit)."""
    models = root / "registry" / "models"
    return {str(p.relative_to(models))[: -len(".yaml")]: yaml.safe_load(p.read_text())
            for p in sorted(models.rglob("*.yaml"))}


def _expected_split(doc: dict[str, Any]) -> dict[str, float]:
    if doc.get("traffic"):
        return {str(k): float(v) for k, v in doc["traffic"].items()}
    active = [v["version"] for v in doc["versions"] if v["status"] == "active"]
    return {str(active[0]): 100.0} if active else {}


def _save(page: Any, name: str, tmp_path: Path) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    out_dir = os.environ.get("MODELGIT_SCREENSHOT_DIR")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(out_dir) / name)
    return shot


def test_dashboard_in_chromium(served: tuple[str, Repo], tmp_path: Path) -> None:
    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium not found: run `make browser` (installs Debian's chromium) or set MODELGIT_CHROMIUM")
    from playwright.sync_api import sync_playwright

    base, repo = served
    registry = _registry(repo.root)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(base + "/")
            assert page.title() == "Models · modelgit"
            rows = page.locator("tr.model")
            assert rows.count() == len(registry)
            for model_id, doc in registry.items():
                row = page.locator(f'tr.model[data-model="{model_id}"]')
                active = [v["version"] for v in doc["versions"] if v["status"] == "active"]
                assert row.locator("td.active").inner_text().strip() == (active[0] if active else "none")
                split = _expected_split(doc)
                shares = row.locator(".share")
                assert [shares.nth(i).inner_text() for i in range(shares.count())] == \
                    [f"{v} {p:g}%" for v, p in split.items()]
                # The bar as the browser laid it out: each segment's width is its share of the bar.
                bar = row.locator(".split").bounding_box()
                assert bar is not None and bar["width"] > 100
                segments = row.locator(".split span")
                assert segments.count() == len(split)
                for i, percent in enumerate(split.values()):
                    box = segments.nth(i).bounding_box()
                    assert box is not None and box["height"] > 10
                    assert box["width"] / bar["width"] == pytest.approx(percent / 100, abs=0.01)
                items = row.locator("ul.versions li")
                assert [" ".join(items.nth(i).inner_text().split()) for i in range(items.count())] == [
                    " ".join([v["version"], v["status"], *([f"weight {v['weight']:g}"] if "weight" in v else [])])
                    for v in doc["versions"]]
            _save(page, "dashboard.png", tmp_path)

            page.click('a[href="/models/calling_score"]')
            page.wait_for_url(base + "/models/calling_score")
            assert page.locator("h1").inner_text() == "calling_score"
            commits = repo.git("log", "--format=%s", "--", "registry/models/calling_score.yaml").splitlines()
            entries = page.locator("#history li.commit")
            assert [entries.nth(i).locator(".subject").inner_text() for i in range(entries.count())] == commits
            assert entries.nth(0).locator(".changes li").all_inner_texts() == [
                "traffic 90/10 → 80/20 (v1.0-hybrid/v2.0-real)"]  # the change ramp_calling_score made
            charts = page.locator("figure.chart svg")
            assert charts.count() == 2  # quality and latency
            for i in range(2):
                assert charts.nth(i).get_attribute("role") == "img"
                for version in ("v1.0-hybrid", "v2.0-real"):
                    points = charts.nth(i).locator(f'g.series[data-version="{version}"] circle')
                    assert points.count() == 7  # one per day recorded
            assert page.locator("#usage-totals tbody tr").count() == 2
            assert page.locator("#compare .metric").count() == 3  # rmse, mae, r2
            assert page.locator(".recommendation").count() == 1
            shot = _save(page, "dashboard-model.png", tmp_path)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()


def test_the_api_docs_render_in_chromium_without_internet(example_repo: Repo, tmp_path: Path) -> None:
    """/docs is Swagger UI from files the server serves itself: with every request that leaves
    127.0.0.1 refused, the page still lists every operation of /openapi.json."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium not found: run `make browser` (installs Debian's chromium) or set MODELGIT_CHROMIUM")
    import httpx
    from playwright.sync_api import sync_playwright

    from server_support import live_server

    with live_server(example_repo.root, tmp_path) as live, sync_playwright() as p:
        spec = httpx.get(live.url + "/openapi.json").json()
        operations = sum(1 for item in spec["paths"].values() for method in item
                         if method in ("get", "post", "put", "patch", "delete"))
        assert operations >= 10
        outside: list[str] = []

        def only_loopback(route: Any) -> None:
            if route.request.url.startswith(live.url + "/"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.route("**/*", only_loopback)
            page.goto(live.url + "/docs")
            page.wait_for_selector(".opblock", timeout=20_000)
            assert page.locator(".opblock").count() == operations
            assert page.locator(".opblock-summary-path", has_text="/api/snapshot").count() == 1
            assert outside == []
            _save(page, "api-docs.png", tmp_path)
        finally:
            browser.close()
