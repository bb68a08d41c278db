"""The dashboard tests' registry: the bundled example (conftest's ``example_repo``) with a second
commit that moves calling_score's split to 80/20, and a week of usage recorded into a real SQLite
tracker (seeded, so every run draws the same charts)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import Repo

SPLIT_BEFORE = "  v1.0-hybrid: 90\n  v2.0-real: 10\n"
SPLIT_AFTER = "  v1.0-hybrid: 80\n  v2.0-real: 20\n"
DAYS = 7


def ramp_calling_score(repo: Repo) -> str:
    """Commit calling_score's split 90/10 → 80/20; returns the new head."""
    path = "registry/models/calling_score.yaml"
    text = repo.read(path)
    assert SPLIT_BEFORE in text
    repo.write(path, text.replace(SPLIT_BEFORE, SPLIT_AFTER))
    return repo.commit("Ramp calling_score v2.0-real to 20 %")


def record_usage(url: str, head: str, seed: int = 11) -> int:
    """A week of requests for calling_score (both versions) and the hosted qwen model, recorded
    through modelgit.Tracker at commit ``head``; returns how many."""
    from modelgit import Tracker

    rng = random.Random(seed)
    start = datetime(2026, 1, 2, 9, 0)
    arms: list[tuple[str, str, int, float, float]] = [  # model, version, per day, quality, latency (ms)
        ("calling_score", "v1.0-hybrid", 40, 0.70, 12.0),
        ("calling_score", "v2.0-real", 10, 0.78, 9.0),
        ("openrouter/qwen-2.5-7b-instruct", "1.1.0", 20, 0.85, 450.0),
    ]
    count = 0
    with Tracker(url) as tracker:
        for day in range(DAYS):
            for model, version, per_day, quality, latency in arms:
                for i in range(per_day):
                    drift = 0.01 * day if version == "v2.0-real" else 0.0
                    tracker.record(model, version, quality=min(1.0, max(0.0, rng.gauss(quality + drift, 0.08))),
                                   latency_ms=max(0.5, rng.gauss(latency, latency * 0.15)), commit=head,
                                   request_id=f"{model}-{day}-{i}-{version}",
                                   ts=start + timedelta(days=day, minutes=i))
                    count += 1
    return count


def dashboard_app(repo_root: Path, tracking_url: str | None = None, ref: str = "HEAD") -> Any:
    """A FastAPI app with only the dashboard's router, reading the repository at ``ref``."""
    from fastapi import FastAPI

    from modelgit.server.dashboard import router

    app = FastAPI()
    app.include_router(router)
    app.state.repo_path = str(repo_root)
    app.state.ref = ref
    app.state.tracking_url = tracking_url
    return app
