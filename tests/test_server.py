"""The HTTP API (`modelgit serve`) as a client sees it: a real uvicorn server on 127.0.0.1 serving a
real git repository (the example registry), requests with httpx. Expected values are read from the
YAML files independently of modelgit."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import EXAMPLE, Repo
from modelgit.server.ids import from_path, is_model_id, split_id
from modelgit.server.limits import RateLimiter
from modelgit.server.tokens import TokenStore, digest
from server_support import Live, live_server

QWEN = "openrouter/qwen-2.5-7b-instruct"


def spec(model_id: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLE / "models" / f"{model_id}.yaml").read_text())


def active_of(data: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in data["versions"] if v["status"] == "active")


@pytest.fixture
def live(example_repo: Repo, tmp_path: Path) -> Any:
    with live_server(example_repo.root, tmp_path) as server:
        yield server


def get(live: Live, path: str, scope: str = "read", **kwargs: Any) -> httpx.Response:
    return httpx.get(live.url + path, headers=live.auth(scope), timeout=30, **kwargs)


def post(live: Live, path: str, body: Any, scope: str = "propose") -> httpx.Response:
    return httpx.post(live.url + path, json=body, headers=live.auth(scope), timeout=60)


# -- reads ---------------------------------------------------------------------------------------
def test_models_list_every_model_with_values_from_the_yaml(live: Live, example_repo: Repo) -> None:
    response = get(live, "/api/models")
    assert response.status_code == 200
    body = response.json()
    assert body["commit"] == example_repo.head()
    files = sorted(str(p.relative_to(EXAMPLE / "models"))[:-5] for p in (EXAMPLE / "models").rglob("*.yaml"))
    assert sorted(m["id"] for m in body["models"]) == files
    for model in body["models"]:
        data = spec(model["id"])
        assert model["task"] == data["task"]
        assert model["currentVersion"] == active_of(data)["version"]
        assert [v["version"] for v in model["versions"]] == [v["version"] for v in data["versions"]]
        assert [v["status"] for v in model["versions"]] == [v["status"] for v in data["versions"]]


def test_model_without_provider_by_id(live: Live) -> None:
    data = spec("calling_score")
    body = get(live, "/api/models/calling_score").json()
    assert (body["id"], body["provider"], body["model"]) == ("calling_score", "local", "calling_score")
    assert body["traffic"] == {k: float(v) for k, v in data["traffic"].items()}
    first = body["versions"][0]
    assert first["artifact"] == {"kind": "file", "path": data["versions"][0]["artifact"]["path"],
                                 "sha256": data["versions"][0]["artifact"]["sha256"], "uri": None,
                                 "provider": None, "modelId": None}
    assert first["metrics"] == data["versions"][0]["metrics"]
    assert first["trafficPercent"] == data["traffic"][first["version"]]
    # Ids of any depth: the namespaced one too.
    assert get(live, f"/api/models/{QWEN}").json()["id"] == QWEN


@pytest.mark.parametrize(("path", "model_id"), [(QWEN, QWEN), ("local/calling_score", "calling_score")])
def test_current(live: Live, path: str, model_id: str) -> None:
    data = spec(model_id)
    active = active_of(data)
    body = get(live, f"/api/model-versions/{path}/current").json()
    assert body["id"] == model_id
    assert body["currentVersion"] == active["version"]
    assert body["version"]["version"] == active["version"]
    assert body["version"]["improvements"] == active.get("improvements", [])
    expected_traffic = data.get("traffic") or {active["version"]: 100}
    assert body["traffic"] == {k: float(v) for k, v in expected_traffic.items()}
    servable = [v["version"] for v in data["versions"] if v["status"] in ("staging", "active")]
    assert body["latestVersion"] == servable[-1]


def test_current_of_hosted_model_shows_provider_and_its_model_id(live: Live) -> None:
    active = active_of(spec(QWEN))
    artifact = get(live, f"/api/model-versions/{QWEN}/current").json()["version"]["artifact"]
    assert (artifact["kind"], artifact["provider"], artifact["modelId"]) == (
        "hosted", active["artifact"]["provider"], active["artifact"]["model_id"])


def test_history(live: Live, example_repo: Repo) -> None:
    data = spec(QWEN)
    body = get(live, f"/api/model-versions/{QWEN}/history").json()
    assert [v["version"] for v in body["versions"]] == [v["version"] for v in data["versions"]]
    assert body["versions"][0]["migrationNotes"] == data["versions"][0]["migration_notes"]
    assert [c["commit"] for c in body["commits"]] == [example_repo.head()]
    assert body["commits"][0]["subject"] == "Add example registry"
    assert body["commits"][0]["author"] == "Test Author"


def test_upgrades(live: Live) -> None:
    data = spec("calling_score")
    body = get(live, "/api/model-versions/local/calling_score/upgrades").json()
    staging = [v for v in data["versions"] if v["status"] == "staging"]
    assert [u["version"] for u in body["upgrades"]] == [v["version"] for v in staging]
    assert body["upgrades"][0]["improvements"] == staging[0]["improvements"]
    assert get(live, f"/api/model-versions/{QWEN}/upgrades").json()["upgrades"] == []


def test_compare(live: Live) -> None:
    v1, v2 = spec("calling_score")["versions"]
    body = get(live, "/api/model-versions/local/calling_score/compare",
               params={"version1": v1["version"], "version2": v2["version"]}).json()
    loss = body["metrics"]["test_loss"]
    a, b = v1["metrics"]["test_loss"], v2["metrics"]["test_loss"]
    assert (loss["version1"], loss["version2"]) == (a, b)
    assert loss["delta"] == pytest.approx(b - a)
    assert loss["relativeChange"] == pytest.approx((b - a) / a)
    assert body["improvements"] == v2["improvements"]
    assert body["breakingChanges"] == []
    missing = get(live, "/api/model-versions/local/calling_score/compare",
                  params={"version1": v1["version"], "version2": "v9"})
    assert missing.status_code == 404
    assert missing.json()["error"] == "model 'calling_score' has no version 'v9'"


def test_upgrade_recommendations(live: Live) -> None:
    body = get(live, "/api/model-versions/upgrade-recommendations").json()
    by_model = {item["model"]: item for item in body["recommendations"]}
    assert set(by_model) == {"calling_score", "outcome_prediction", QWEN}
    item = by_model["calling_score"]
    assert set(item) >= {"provider", "model", "currentVersion", "latestVersion", "improvements", "recommended",
                         "reason", "expectedImprovement", "evidence"}
    assert item["currentVersion"] == active_of(spec("calling_score"))["version"]
    only = get(live, "/api/model-versions/upgrade-recommendations", params={"provider": "openrouter"}).json()
    assert [i["model"] for i in only["recommendations"]] == [QWEN]
    local = get(live, "/api/model-versions/upgrade-recommendations", params={"provider": "local"}).json()
    assert sorted(i["model"] for i in local["recommendations"]) == ["calling_score", "outcome_prediction"]


def test_recommendations_evaluate_each_model_once_per_commit(live: Live, example_repo: Repo,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluations behind recommendations (onnxruntime and a bootstrap) are kept per commit:
    a second request runs none and answers the same as the library computing afresh."""
    from collections import OrderedDict

    import modelgit.upgrades
    from modelgit import api
    from modelgit.server import evaluations

    monkeypatch.setattr(evaluations, "_cache", OrderedDict())  # commits of other tests may share this sha
    calls: list[tuple[str, ...]] = []
    real = modelgit.upgrades.check_upgrades

    def counting(snapshot: Any, root: Any) -> Any:
        calls.append(tuple(snapshot.files))
        return real(snapshot, root)

    monkeypatch.setattr(modelgit.upgrades, "check_upgrades", counting)
    first = get(live, "/api/model-versions/upgrade-recommendations").json()
    assert sorted(calls) == [("calling_score",), ("openrouter/qwen-2.5-7b-instruct",), ("outcome_prediction",)]
    calls.clear()
    second = get(live, "/api/model-versions/upgrade-recommendations").json()
    assert calls == [] and second == first
    monkeypatch.setattr(modelgit.upgrades, "check_upgrades", real)
    fresh = api.recommend(example_repo.root, first["commit"], tracking_url=live.tracking_url)
    assert [(r["model"], r["recommended"], r["reason"]) for r in fresh.recommendations] == \
        [(r["model"], r["recommended"], r["reason"]) for r in first["recommendations"]]


# -- writes --------------------------------------------------------------------------------------
def test_upgrade_creates_a_branch_and_leaves_the_served_ref_and_worktree_alone(live: Live,
                                                                               example_repo: Repo) -> None:
    before = example_repo.head()
    response = post(live, f"/api/model-versions/{QWEN}/upgrade", {
        "version": "1.2.0", "modelId": "qwen/qwen-2.5-7b-instruct-2025-09",
        "improvements": ["longer context"], "breakingChanges": ["new tokenizer"],
        "migrationNotes": "re-run the prompt tests"})
    assert response.status_code == 201, response.text
    body = response.json()
    branch = f"modelgit/{QWEN}/register-1.2.0"
    assert (body["branch"], body["base"], body["version"], body["action"]) == (branch, before, "1.2.0", "register")
    assert example_repo.git("rev-parse", f"refs/heads/{branch}") == body["commit"]
    assert example_repo.head() == before
    assert example_repo.git("status", "--porcelain") == ""
    proposed = yaml.safe_load(example_repo.git("show", f"{body['commit']}:registry/models/{QWEN}.yaml"))
    new = proposed["versions"][-1]
    assert new == {"version": "1.2.0", "status": "staging",
                   "artifact": {"provider": "openrouter", "model_id": "qwen/qwen-2.5-7b-instruct-2025-09"},
                   "improvements": ["longer context"], "breaking_changes": ["new tokenizer"],
                   "migration_notes": "re-run the prompt tests"}
    # The served registry did not change; the same proposal again is refused (the branch exists).
    assert get(live, f"/api/model-versions/{QWEN}/current").json()["commit"] == before
    again = post(live, f"/api/model-versions/{QWEN}/upgrade", {"version": "1.2.0"})
    assert again.status_code == 409
    assert "already exists" in again.json()["error"]


def test_upgrade_of_an_onnx_model_needs_an_artifact(live: Live) -> None:
    response = post(live, "/api/model-versions/local/calling_score/upgrade", {"version": "v3"})
    assert response.status_code == 422
    assert response.json()["hint"] == "send artifactUri and sha256 of the new ONNX file"


def test_auto_upgrade_holds_without_usage(live: Live, example_repo: Repo) -> None:
    response = post(live, "/api/model-versions/local/calling_score/auto-upgrade",
                    {"autoUpgrade": True, "minQualityImprovement": 0.1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["decision"], body["branch"], body["commit"]) == ("hold", None, None)
    assert body["reason"].startswith("not enough samples")
    assert body["evidence"]["min_relative_improvement"] == 0.1
    assert example_repo.git("branch", "--list", "modelgit/*") == ""


def test_usage_and_feedback_reach_the_tracker(example_repo: Repo, tmp_path: Path) -> None:
    with live_server(example_repo.root, tmp_path) as live:
        for i in range(3):
            response = post(live, "/api/usage", {"model": "calling_score", "version": "v1.0-hybrid",
                                                 "latencyMs": 10 + i, "requestId": f"r-{i}", "task": "t"})
            assert response.status_code == 202, response.text
            assert response.json() == {"accepted": True, "requestId": f"r-{i}", "commit": example_repo.head()}
        assert post(live, "/api/feedback", {"requestId": "r-1", "quality": 0.75}).status_code == 202
        unknown = post(live, "/api/usage", {"model": "calling_score", "version": "v7"})
        assert unknown.status_code == 404
        bad = post(live, "/api/usage", {"model": "calling_score", "version": "v1.0-hybrid", "latencyMs": -1})
        assert bad.status_code == 422
        assert bad.json()["findings"][0].startswith("body.latencyMs:")
    from modelgit.tracking import Tracker

    with Tracker(live.tracking_url) as tracker:
        (aggregate,) = tracker.aggregates("calling_score", by=("version", "commit"))
        assert aggregate.group == {"version": "v1.0-hybrid", "commit": example_repo.head()}
        assert aggregate.n == 3
        assert aggregate.quality.count == 1
        assert aggregate.quality.mean == pytest.approx(0.75)


# -- auth, limits, ids ---------------------------------------------------------------------------
def test_auth_401_and_403(live: Live) -> None:
    url = live.url + "/api/models"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json() == {"error": "missing or invalid bearer token",
                              "hint": "send Authorization: Bearer <token>; create one with 'modelgit token create'"}
    assert httpx.get(url, headers={"Authorization": "Bearer mgt_wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Basic abc"}).status_code == 401
    forbidden = post(live, "/api/feedback", {"requestId": "x"}, scope="read")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == "token 'test-read' has scope 'read'; this needs 'propose'"
    assert post(live, "/api/feedback", {"requestId": "x"}, scope="admin").status_code == 202
    # The docs need no token.
    assert httpx.get(live.url + "/openapi.json").status_code == 200
    assert httpx.get(live.url + "/docs").status_code == 200


def test_body_limit_413(example_repo: Repo, tmp_path: Path) -> None:
    with live_server(example_repo.root, tmp_path, max_body=1000) as live:
        big = {"requestId": "x" * 2000}
        declared = post(live, "/api/feedback", big)
        assert declared.status_code == 413
        assert declared.json()["error"] == "request body larger than 1000 bytes"

        def chunks() -> Any:  # no Content-Length: the limit applies while the body streams in
            for _ in range(100):
                yield b" " * 100

        streamed = httpx.post(live.url + "/api/feedback", content=chunks(), timeout=30,
                              headers={**live.auth("propose"), "content-type": "application/json"})
        assert streamed.status_code == 413
        assert post(live, "/api/feedback", {"requestId": "small"}).status_code == 202


def test_rate_limit_429(example_repo: Repo, tmp_path: Path) -> None:
    with live_server(example_repo.root, tmp_path, rate=0.5, burst=3) as live:
        codes = [get(live, "/api/status").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = get(live, "/api/status")
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        # Per token: another token still has its burst.
        assert get(live, "/api/status", scope="admin").status_code == 200
        # Guessing tokens is limited per client address.
        guesses = [httpx.get(live.url + "/api/status", headers={"Authorization": f"Bearer guess-{i}"}).status_code
                   for i in range(4)]
        assert guesses == [401, 401, 401, 429]


def test_rate_limiter_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 2, clock=lambda: now[0])
    assert [limiter.take("a"), limiter.take("a")] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] = 0.5
    assert limiter.take("a") == 0.0
    assert RateLimiter.retry_after(0.2) == "1"


@pytest.mark.parametrize("path", [
    "/api/models/..%2f..%2fetc%2fpasswd", "/api/models/%2e%2e/x", "/api/models/%2fetc%2fpasswd",
    "/api/models/calling_score%00", "/api/models/Calling_Score", "/api/models/a%0ab",
    "/api/model-versions/%2e%2e/calling_score/current", "/api/model-versions/local/..%2fx/current",
    "/api/model-versions/local/%2e%2e/current", "/api/model-versions/openrouter/%2fetc/history",
    "/api/models/registry/models/calling_score.yaml", "/api/models/" + "a" * 300,
])
def test_traversal_and_malformed_ids_are_404_or_422(live: Live, path: str) -> None:
    response = httpx.get(live.url + path, headers=live.auth("read"))
    assert response.status_code in (404, 422), (path, response.status_code, response.text)
    assert set(response.json()) >= {"error", "hint"}


def test_id_mapping() -> None:
    assert from_path("openrouter", "qwen-2.5-7b-instruct") == QWEN
    assert from_path("local", "calling_score") == "calling_score"
    assert from_path("local", "..") is None
    assert from_path("..", "x") is None
    assert from_path("a", "b/c") is None
    assert split_id(QWEN) == ("openrouter", "qwen-2.5-7b-instruct")
    assert split_id("calling_score") == ("local", "calling_score")
    assert split_id("a/b/c") == ("a", "b/c")
    assert not is_model_id("a//b") and not is_model_id("/a") and not is_model_id("a/") and is_model_id("a/b/c")


def test_unknown_route_and_model_are_json(live: Live) -> None:
    response = get(live, "/api/model-versions/local/nope/current")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown model 'nope'"
    assert "Traceback" not in response.text
    assert get(live, "/api/nowhere").json() == {"error": "Not Found", "hint": "see /docs for the endpoints"}


# -- hot reload ----------------------------------------------------------------------------------
def test_hot_reload_after_a_commit(live: Live, example_repo: Repo) -> None:
    path = "registry/models/calling_score.yaml"
    text = example_repo.read(path).replace("v1.0-hybrid: 90\n  v2.0-real: 10", "v1.0-hybrid: 70\n  v2.0-real: 30")
    example_repo.write(path, text)
    commit = example_repo.commit("calling_score: 70/30")
    deadline = time.monotonic() + 15
    body = {}
    while time.monotonic() < deadline:
        body = get(live, "/api/model-versions/local/calling_score/current").json()
        if body["commit"] == commit:
            break
        time.sleep(0.1)
    assert body["commit"] == commit
    assert body["traffic"] == {"v1.0-hybrid": 70.0, "v2.0-real": 30.0}
    # An invalid commit is refused: the last good snapshot keeps serving, the status says why.
    example_repo.write(path, "name: calling_score\nversions: [oops\n")
    bad = example_repo.commit("break it")
    deadline = time.monotonic() + 15
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = get(live, "/api/status").json()
        if status["lastError"]:
            break
        time.sleep(0.1)
    assert status["commit"] == commit
    assert bad[:12] in status["lastError"]
    assert get(live, "/api/model-versions/local/calling_score/current").json()["commit"] == commit


def test_a_restart_on_an_invalid_tip_serves_the_last_good_commit(example_repo: Repo, tmp_path: Path) -> None:
    good = example_repo.head()
    with live_server(example_repo.root, tmp_path):
        pass  # served once: the commit is remembered
    path = "registry/models/calling_score.yaml"
    example_repo.write(path, "name: calling_score\nversions: [oops\n")
    bad = example_repo.commit("break it")
    with live_server(example_repo.root, tmp_path) as again:  # starts: no crash loop
        status = get(again, "/api/status").json()
        assert status["commit"] == good and bad[:12] in status["lastError"]
        assert get(again, "/api/model-versions/local/calling_score/current").json()["commit"] == good
    # Fixed, served, then the branch is moved back in time: a restart keeps the newer commit.
    example_repo.git("checkout", "-q", good, "--", path)
    fixed = example_repo.commit("restore calling_score")
    with live_server(example_repo.root, tmp_path) as again:
        assert get(again, "/api/status").json()["commit"] == fixed
    example_repo.git("update-ref", "refs/heads/main", good)
    with live_server(example_repo.root, tmp_path) as again:
        status = get(again, "/api/status").json()
        assert status["commit"] == fixed and "does not descend" in status["lastError"]


# -- tokens and the CLI --------------------------------------------------------------------------
def test_token_create_stores_only_the_digest_mode_0600(example_repo: Repo, cli: Any) -> None:
    code, out, err = cli("-C", str(example_repo.root), "token", "create", "--scope", "propose", "--name", "bot")
    assert code == 0, err
    token = out.strip()
    path = example_repo.root / ".git" / "modelgit" / "tokens.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    stored = json.loads(path.read_text())["tokens"]
    assert [(t["name"], t["scope"], t["sha256"]) for t in stored] == [("bot", "propose", digest(token))]
    assert token not in path.read_text()
    assert TokenStore.from_file(path).check(token).scope == "propose"  # type: ignore[union-attr]
    code, _, err = cli("-C", str(example_repo.root), "token", "create", "--scope", "read", "--name", "bot")
    assert code == 2
    assert "a token named 'bot' exists already" in err


def test_tokens_from_the_environment() -> None:
    store = TokenStore.load(None, {"MODELGIT_TOKENS": f"ci:read:{digest('t1')}, ops:admin:{digest('t2')}"})
    assert store.check("t1").name == "ci"  # type: ignore[union-attr]
    assert store.check("t2").scope == "admin"  # type: ignore[union-attr]
    assert store.check("t3") is None
    from modelgit.errors import InvalidError

    with pytest.raises(InvalidError, match="is not name:scope:sha256hex"):
        TokenStore.load(None, {"MODELGIT_TOKENS": "ci:read"})
    with pytest.raises(InvalidError, match="has scope 'root'"):
        TokenStore.load(None, {"MODELGIT_TOKENS": f"ci:root:{digest('x')}"})


def test_serve_refuses_to_start_without_tokens(example_repo: Repo, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELGIT_TOKENS", raising=False)
    code, _, err = cli("-C", str(example_repo.root), "serve", "--port", "0")
    assert code == 2
    assert "every request would be refused" in err
    assert "modelgit token create --scope read" in err


@pytest.mark.parametrize("missing", ["uvicorn", "fastapi"])
def test_serve_without_the_server_extra_says_what_to_install(example_repo: Repo, cli: Any,
                                                             monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    # A None in sys.modules makes importing that name fail as if it were not installed.
    for name in [n for n in sys.modules if n.split(".")[0] == missing or n.startswith("modelgit.server")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)
    code, out, err = cli("-C", str(example_repo.root), "serve", "--port", "0")
    assert (code, out) == (2, "")
    assert f"{missing} is not installed" in err and "modelgit[server]" in err and "bug" not in err


def test_unknown_query_parameters_and_loose_types_are_422(live: Live) -> None:
    typo = get(live, "/api/model-versions/local/calling_score/compare",
               params={"version1": "v1.0-hybrid", "version2": "v2.0-real", "versoin": "x"})
    assert typo.status_code == 422
    assert typo.json() == {"error": "unknown query parameter 'versoin'",
                           "hint": "allowed: version1, version2 (see /docs)"}
    assert post(live, "/api/feedback", {"requestId": "r", "quality": True}).status_code == 422
    assert post(live, "/api/feedback", {"requestId": "r", "quality": 1}).status_code == 202
    assert post(live, "/api/feedback", {"requestId": "r", "extra": 1}).status_code == 422


def test_upgrade_of_an_onnx_model_by_uri(live: Live, example_repo: Repo) -> None:
    digest_hex = "ab" * 32
    response = post(live, "/api/model-versions/local/calling_score/upgrade", {
        "version": "v3.0", "artifactUri": "s3://models/calling_score/v3.onnx", "sha256": digest_hex,
        "improvements": ["more data"]})
    assert response.status_code == 201, response.text
    commit = response.json()["commit"]
    proposed = yaml.safe_load(example_repo.git("show", f"{commit}:registry/models/calling_score.yaml"))
    assert proposed["versions"][-1]["artifact"] == {"uri": "s3://models/calling_score/v3.onnx", "sha256": digest_hex}
    assert proposed["versions"][-1]["improvements"] == ["more data"]
    no_digest = post(live, "/api/model-versions/local/calling_score/upgrade",
                     {"version": "v3.1", "artifactUri": "s3://models/x.onnx"})
    assert (no_digest.status_code, no_digest.json()["error"]) == (422, "artifactUri needs sha256")
    assert example_repo.git("status", "--porcelain") == ""


def test_auto_upgrade_proposes_on_a_branch_when_usage_says_so(example_repo: Repo, tmp_path: Path) -> None:
    import random

    from modelgit.tracking import Tracker

    head = example_repo.head()
    rng = random.Random(7)
    with Tracker(f"sqlite:///{tmp_path / 'usage.sqlite'}") as tracker:  # the file live_server serves with
        for i in range(2000):
            treated = i % 10 == 0  # the committed 90/10 split
            tracker.record("calling_score", "v2.0-real" if treated else "v1.0-hybrid", commit=head,
                           quality=rng.gauss(0.8 if treated else 0.5, 0.05), request_id=f"q-{i}")
    with live_server(example_repo.root, tmp_path) as live:
        response = post(live, "/api/model-versions/local/calling_score/auto-upgrade",
                        {"autoUpgrade": True, "minQualityImprovement": 0.1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["decision"], body["action"], body["version"]) == ("upgrade", "promote", "v2.0-real")
    assert body["branch"] == "modelgit/calling_score/auto-upgrade-v2.0-real"
    assert example_repo.git("rev-parse", f"refs/heads/{body['branch']}") == body["commit"]
    assert example_repo.head() == head
    assert example_repo.git("status", "--porcelain") == ""
    proposed = yaml.safe_load(example_repo.git("show", f"{body['commit']}:registry/models/calling_score.yaml"))
    assert [v["status"] for v in proposed["versions"]] == ["deprecated", "active"]


def test_hostile_text_is_422_never_500(live: Live) -> None:
    url = f"{live.url}/api/model-versions/{QWEN}/upgrade"
    headers = {**live.auth("propose"), "content-type": "application/json"}
    for raw in (b'{"version": "2.0", "improvements": ["a\\udc00b"]}',  # a lone surrogate
                b'{"version": "2.0", "migrationNotes": "line\\nbreak"}',
                b'{"version": "2.0", "artifactUri": "s3://a\\u0085b", "sha256": "' + b"a" * 64 + b'"}',
                b'{"version": "2.0", "improvements": "not a list"}', b'{"version": ', b"\xff\xfe"):
        response = httpx.post(url, content=raw, headers=headers)
        assert response.status_code == 422, (raw, response.text)


# -- the dashboard and the feed sit behind the same tokens -----------------------------------------------
def test_the_dashboard_and_the_feed_need_a_read_token(live: Live) -> None:
    for path in ("/", "/models/calling_score", "/api/snapshot?ref=main"):
        assert httpx.get(live.url + path).status_code == 401, path
        assert get(live, path).status_code == 200, path


def test_a_browser_logs_in_once_and_the_cookie_opens_the_dashboard(live: Live) -> None:
    with httpx.Client(base_url=live.url) as browser:
        assert browser.get("/login").status_code == 200
        refused = browser.post("/login", data={"token": "not-a-token"})
        assert refused.status_code == 401 and "not valid" in refused.text and not browser.cookies
        done = browser.post("/login", data={"token": live.tokens["read"]})
        assert done.status_code == 303 and done.headers["location"] == "/"
        cookie = done.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get("/").status_code == 200
        assert "calling_score" in browser.get("/models/calling_score").text


def test_a_replica_reads_the_feed_with_its_token(live: Live, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from modelgit import Registry
    from modelgit.errors import ModelgitError

    with pytest.raises(ModelgitError):
        Registry.open(live.url, ref="main", cache_dir=tmp_path / "no-token", feed=True)
    monkeypatch.setenv("MODELGIT_FEED_TOKEN", live.tokens["read"])
    reg = Registry.open(live.url, ref="main", cache_dir=tmp_path / "with-token", feed=True)
    assert reg.commit == live.app.state.context.repo.resolve("main")
    assert reg.route("calling_score", key="user-1") in ("v1.0-hybrid", "v2.0-real")
    reg.close()
