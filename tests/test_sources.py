"""Sources of new versions (issue 10, point 5): a provider catalog served by a real HTTP server on
127.0.0.1 from a recorded-shape fixture (two pages joined by links.next), an artifact folder of real
ONNX files, and `check-upgrades` proposing what they offer on branches of a real git repository.

Expected texts are built here from the fixture's values, not copied from the program's output."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import EXAMPLE, Repo, affine_onnx, make_repo, ok
from modelgit.gitstore import GitRepo
from modelgit.snapshot import Loader, parse_settings
from modelgit.sources import Limits, check_sources
from modelgit.sources.catalog import CatalogEntry, compare_catalog, parse_page, version_id_for
from modelgit.spec import Model

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PAGE1 = (FIXTURES / "openrouter_models_page1.json").read_bytes()
PAGE2 = (FIXTURES / "openrouter_models_page2.json").read_bytes()
QWEN = "openrouter/qwen-2.5-7b-instruct"
QWEN_FILE = EXAMPLE / "models" / "openrouter" / "qwen-2.5-7b-instruct.yaml"


def _fixture_entries() -> dict[str, dict[str, Any]]:
    return {item["canonical_slug"]: item for page in (PAGE1, PAGE2) for item in json.loads(page)["data"]}


def _price(text: str) -> str:
    return format(Decimal(text).normalize(), "f")


def _day(created: int) -> str:
    return dt.datetime.fromtimestamp(created, tz=dt.UTC).date().isoformat()


# -- the catalog: a real HTTP server ---------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        route(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    routes: dict[str, Callable[[_Handler], None]]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout test) closes its socket mid-answer: expected


def _send(handler: _Handler, body: bytes, status: int = 200, headers: dict[str, str] | None = None,
          length: bool = True) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class Catalog:
    """The server's address and its routes (path with query → handler)."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.port = server.server_address[1]
        self.routes = server.routes

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes, **kwargs: Any) -> None:
        self.routes[path] = lambda handler: _send(handler, body, **kwargs)


@pytest.fixture
def catalog() -> Iterator[Catalog]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.routes = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served = Catalog(server)
    served.serve("/api/v1/models", PAGE1)
    served.serve("/api/v1/models?offset=3&limit=3", PAGE2)
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def _hosted_registry(tmp_path: Path, sources: str, name: str = "reg") -> Repo:
    """The example's hosted LLM (1.0.0 deprecated on qwen/qwen-2.5-7b-instruct, 1.1.0 active on
    …-2025-06) and an ONNX model `score`, with ``sources`` as the settings' sources block."""
    r = make_repo(tmp_path / name)
    r.write("registry/modelgit.yaml", "schema_version: 1\nsources:\n" + sources)
    r.write(f"registry/models/{QWEN}.yaml", QWEN_FILE.read_bytes())
    blob = affine_onnx(np.ones(3), 0.0)
    r.write("registry/artifacts/score_v1.onnx", blob)
    r.write("registry/models/score.yaml", "name: score\ntask: regression\nversions:\n  - version: v1\n"
            "    status: active\n"
            f"    artifact: {{path: registry/artifacts/score_v1.onnx, sha256: {hashlib.sha256(blob).hexdigest()}}}\n")
    r.commit("registry with a hosted model and sources")
    return r


def _catalog_source(name: str, url: str, extra: str = "") -> str:
    return f"  - {{name: {name}, kind: provider-catalog, location: '{url}', provider: openrouter{extra}}}\n"


def test_a_new_canonical_slug_becomes_a_register_proposal_on_a_branch(catalog: Catalog, tmp_path: Path,
                                                                     cli: Any) -> None:
    r = _hosted_registry(tmp_path, _catalog_source("openrouter", catalog.url("/api/v1/models")))
    ok(cli, "-C", str(r.root), "validate")
    entries = _fixture_entries()
    new, old = entries["qwen/qwen-2.5-7b-instruct-2025-11"], entries["qwen/qwen-2.5-7b-instruct-2025-06"]
    version = "qwen-2.5-7b-instruct-2025-11"

    data = json.loads(ok(cli, "-C", str(r.root), "check-upgrades", "--propose", "--json"))
    assert set(data) == {"commit", "recommendations", "proposals", "skipped", "sources", "decisions"}
    assert set(data["sources"]) == {"found", "warnings", "skipped"}
    (found,) = data["sources"]["found"]
    assert (found["source"], found["kind"], found["model"], found["version"]) == (
        "openrouter", "provider-catalog", QWEN, version)
    assert found["artifact"] == {"provider": "openrouter", "model_id": new["canonical_slug"]}
    head, *changes = found["improvements"]
    assert head == (f"new openrouter snapshot {new['canonical_slug']} ({new['name']}), listed as {new['id']}, "
                    f"created {_day(new['created'])}; compared with the active version 1.1.0 ({old['id']})")
    assert changes == [
        f"context length {old['context_length']:,} → {new['context_length']:,} tokens",
        f"prompt price {_price(old['pricing']['prompt'])} → {_price(new['pricing']['prompt'])} USD per token",
        f"completion price {_price(old['pricing']['completion'])} → {_price(new['pricing']['completion'])} "
        "USD per token",
    ]
    # the snapshot the active version pins expires: a warning, with the date
    assert data["sources"]["warnings"] == [{
        "source": "openrouter", "model": QWEN, "version": "1.1.0", "expiration_date": old["expiration_date"],
        "message": f"{old['id']} expires on {old['expiration_date']} by the openrouter catalog "
                   "(active version 1.1.0)"}]
    assert {"source": "openrouter", "model": "score", "item": None,
            "reason": "no version hosted by openrouter"} in data["sources"]["skipped"]

    (proposal,) = data["proposals"]
    branch = f"modelgit/{QWEN}/register-{version}"
    assert (proposal["branch"], proposal["version"], proposal["source"]) == (branch, version, "openrouter")
    assert proposal["reason"] == "; ".join(found["improvements"])
    assert r.git("rev-parse", "--verify", branch) == proposal["commit"]
    assert r.git("rev-parse", "HEAD") == r.git("rev-parse", "main")  # nothing checked out or moved
    shown = json.loads(ok(cli, "-C", str(r.root), "show", QWEN, "--ref", branch, "--json"))
    added = shown["models"][0]["versions"][-1]
    assert (added["version"], added["status"]) == (version, "staging")
    assert added["artifact"] == f"openrouter:{new['canonical_slug']}"
    ok(cli, "-C", str(r.root), "validate", "--ref", branch, "--base", "main")
    message = r.git("log", "-1", "--format=%B", branch)
    assert "Modelgit-Action: register" in message and "Modelgit-Source: openrouter" in message
    assert f"- {changes[0]}" in message

    # the next daily run finds the same version, keeps its branch and proposes nothing twice
    again = json.loads(ok(cli, "-C", str(r.root), "check-upgrades", "--propose", "--json"))
    assert again["proposals"] == [] and again["sources"]["found"][0]["version"] == version
    assert f"branch '{branch}' already exists" in again["sources"]["found"][0]["note"]


def test_human_output_lists_found_warnings_and_skipped(catalog: Catalog, tmp_path: Path, cli: Any) -> None:
    r = _hosted_registry(tmp_path, _catalog_source("openrouter", catalog.url("/api/v1/models")))
    out = ok(cli, "-C", str(r.root), "check-upgrades")
    assert f"new      {QWEN}:qwen-2.5-7b-instruct-2025-11 from source 'openrouter': " \
           "qwen/qwen-2.5-7b-instruct-2025-11\n" in out
    assert f"warning  {QWEN}:1.1.0 (source 'openrouter'): qwen/qwen-2.5-7b-instruct-2025-06 expires on" in out
    assert "skipped  score (source 'openrouter'): no version hosted by openrouter\n" in out
    assert "proposed on branch" not in out and r.git("branch", "--list") == "* main"


def test_a_registry_that_pins_every_snapshot_gets_nothing_new(catalog: Catalog, tmp_path: Path, cli: Any) -> None:
    r = _hosted_registry(tmp_path, _catalog_source("openrouter", catalog.url("/api/v1/models")))
    ok(cli, "-C", str(r.root), "register", QWEN, "1.2.0", "--provider", "openrouter", "--model-id",
       "qwen/qwen-2.5-7b-instruct-2025-11", "--on-current-branch")
    data = json.loads(ok(cli, "-C", str(r.root), "check-upgrades", "--propose", "--json"))
    assert data["sources"]["found"] == [] and data["proposals"] == []
    assert r.git("branch", "--list") == "* main"


# -- the comparison, a pure function -------------------------------------------------------------------------
def _model(*pins: tuple[str, str, str]) -> Model:
    return Model.model_validate({"name": "m", "task": "generation", "versions": [
        {"version": v, "status": s, "artifact": {"provider": "openrouter", "model_id": pin}} for v, s, pin in pins]})


def _entry(id_: str, slug: str, created: int, **kw: Any) -> CatalogEntry:
    return CatalogEntry(id_, slug, created, **kw)


def test_compare_catalog_without_io() -> None:
    model = _model(("1", "active", "a/x-1"))
    same = [_entry("a/x", "a/x-1", 100, context_length=10)]
    assert compare_catalog("s", "openrouter", same, {"m": model}) == ([], [], [])
    newer = [*same, _entry("a/x-2", "a/x-2", 200, context_length=10)]
    # listed under its own id only: not the model's (no version pins a/x-2 nor an id that names it)
    assert compare_catalog("s", "openrouter", newer, {"m": model})[0] == []
    floating = [_entry("a/x-1", "a/x-1", 100, context_length=10, pricing={"prompt": "0.1"}),
                _entry("a/x", "a/x-2", 200, context_length=10, pricing={"prompt": "0.1"})]
    model = _model(("0", "deprecated", "a/x"), ("1", "active", "a/x-1"))
    found, warnings, skipped = compare_catalog("s", "openrouter", floating, {"m": model, "broken": None})
    assert [(f.model, f.version, f.artifact["model_id"]) for f in found] == [("m", "x-2", "a/x-2")]
    assert found[0].improvements[1:] == ("same context length (10 tokens) and pricing as 1",)
    assert warnings == [] and [(s.model, s.reason) for s in skipped] == [
        ("broken", "its file is invalid (see modelgit validate)")]
    # an older snapshot is not an upgrade
    older = [_entry("a/x-1", "a/x-1", 100), _entry("a/x", "a/x-0", 50)]
    found, _, skipped = compare_catalog("s", "openrouter", older, {"m": model})
    assert found == [] and skipped[0].item == "a/x-0" and "is older than a/x-1" in skipped[0].reason
    # another provider's versions are not this catalog's business
    assert compare_catalog("s", "together", floating, {"m": model})[2][0].reason == "no version hosted by together"


def test_describe_change_names_each_moved_price_and_what_it_could_not_compare() -> None:
    from modelgit.sources.catalog import describe_change

    model = _model(("1", "active", "a/x-1"))
    active = model.active
    old = _entry("a/x-1", "a/x-1", 86400, context_length=8192, pricing={"prompt": "0.000001", "image": "0.01"})
    new = _entry("a/x", "a/x-2", 2 * 86400, name="X", context_length=None,
                 pricing={"prompt": "0.000001", "request": "0.002"})
    assert describe_change("openrouter", new, active, old) == [
        "new openrouter snapshot a/x-2 (X), listed as a/x, created 1970-01-03; compared with the active version 1 "
        "(a/x-1)",
        "context length 8,192 → unknown tokens",
        "image price 0.01 → not listed USD per image",
        "request price not listed → 0.002 USD per request",
    ]
    assert describe_change("openrouter", new, active, None)[0].endswith(
        "; the active version 1 pins a/x-1, which the catalog does not list, so there is nothing to compare with")
    assert describe_change("openrouter", new, None, None)[0].endswith("; the model has no active version to "
                                                                      "compare with")


def test_version_ids_are_derived_from_the_slug_and_never_collide() -> None:
    taken = {"x-2", "qwen3-8b"}
    assert version_id_for("qwen/qwen3-8b", taken) == "qwen3-8b-2"
    assert version_id_for("qwen/qwen3-8b", taken) == "qwen3-8b-3"
    assert version_id_for("openai/gpt-4o:free", set()) == "gpt-4o-free"
    assert version_id_for("a/" + "v" * 80, {"v" * 64}) == "v" * 62 + "-2"
    assert version_id_for("a/::", set()) == "catalog"


def test_parse_page_reads_both_fixture_pages() -> None:
    entries, following = parse_page(PAGE1, "s", "page 1")
    assert following == json.loads(PAGE1)["links"]["next"]
    assert [e.canonical_slug for e in entries] == [i["canonical_slug"] for i in json.loads(PAGE1)["data"]]
    assert entries[2].pricing["image"] == _price(json.loads(PAGE1)["data"][2]["pricing"]["image"])
    assert parse_page(PAGE2, "s", "page 2")[1] is None


# -- hostile catalogs -------------------------------------------------------------------------------------
def _slow(handler: _Handler) -> None:
    time.sleep(2.0)
    _send(handler, PAGE2)


def _huge(handler: _Handler) -> None:
    handler.send_response(200)
    handler.end_headers()  # no Content-Length: the client finds out by reading
    for _ in range(64):
        handler.wfile.write(b" " * 4096)


def _needs_token(handler: _Handler) -> None:
    if handler.headers.get("Authorization") == "Bearer s3cret-token":
        _send(handler, PAGE1.replace(b'"/api/v1/models?offset=3&limit=3"', b"null"))
    else:
        _send(handler, b'{"error": "unauthorized"}', status=401)


def test_hostile_catalogs_fail_clearly_and_the_other_sources_still_run(catalog: Catalog, tmp_path: Path) -> None:
    port = catalog.port
    away = f"http://localhost:{port}/api/v1/models"
    catalog.routes["/redirect-away"] = lambda h: _send(h, b"", status=302, headers={"Location": away})
    catalog.serve("/next-away", json.dumps({"data": [], "links": {"next": away}}).encode())
    catalog.routes["/huge"] = _huge
    catalog.serve("/not-json", b"<html><body>models</body></html>")
    catalog.serve("/wrong-shape", b'{"data": {"id": 1}}')
    catalog.serve("/bad-item", json.dumps({"data": [{"id": "a/b", "canonical_slug": 7, "created": 1}]}).encode())
    catalog.routes["/slow"] = _slow
    catalog.routes["/auth"] = _needs_token
    catalog.routes["/deny"] = _needs_token
    sources = "".join([
        _catalog_source("redirect", catalog.url("/redirect-away")),
        _catalog_source("next", catalog.url("/next-away")),
        _catalog_source("huge", catalog.url("/huge")),
        _catalog_source("html", catalog.url("/not-json")),
        _catalog_source("shape", catalog.url("/wrong-shape")),
        _catalog_source("item", catalog.url("/bad-item")),
        _catalog_source("ftp", f"ftp://127.0.0.1:{port}/api/v1/models"),
        _catalog_source("file", "file:///etc/passwd"),
        _catalog_source("creds", f"http://user:pw@127.0.0.1:{port}/api/v1/models"),
        _catalog_source("slow", catalog.url("/slow")),
        _catalog_source("unset", catalog.url("/auth"), ", token_env: NO_SUCH_TOKEN_VAR"),
        _catalog_source("denied", catalog.url("/deny"), ", token_env: WRONG_TOKEN"),
        _catalog_source("good", catalog.url("/auth"), ", token_env: CATALOG_TOKEN"),
    ])
    r = _hosted_registry(tmp_path, sources)
    snapshot = Loader(GitRepo.discover(r.root)).load("HEAD")
    report = check_sources(snapshot, r.root, env={"CATALOG_TOKEN": "s3cret-token", "WRONG_TOKEN": "s3cret-wrong"},
                           limits=Limits(timeout=0.5, deadline=5, max_page_bytes=64 * 1024))
    failed = {s.source: s.reason for s in report.skipped if s.model is None}
    page = "(page 1)"
    assert failed == {
        "redirect": f"http://127.0.0.1:{port}/redirect-away {page} redirects to another origin "
                    f"(http://localhost:{port}/api/v1/models); refused "
                    "(hint: a catalog is read from the host its location names)",
        "next": f"links.next of http://127.0.0.1:{port}/next-away {page} leads to another origin "
                f"(http://localhost:{port}/api/v1/models); refused "
                "(hint: a catalog's pages stay on the host it is read from)",
        "huge": f"http://127.0.0.1:{port}/huge {page} is over the limit of 65,536 bytes a page; stopped reading",
        "html": failed["html"],
        "shape": failed["shape"],
        "item": failed["item"],
        "ftp": "a provider catalog is read over http or https, not 'ftp' "
               "(hint: write its URL, e.g. https://openrouter.ai/api/v1/models)",
        "file": "a provider catalog is read over http or https, not 'file' "
                "(hint: write its URL, e.g. https://openrouter.ai/api/v1/models)",
        "creds": f"http://127.0.0.1:{port}/api/v1/models: credentials in the URL are refused "
                 "(hint: put the token in an environment variable and name it in token_env)",
        "slow": f"http://127.0.0.1:{port}/slow {page}: no answer within 0.5 s "
                "(hint: the catalog is slow or unreachable; the next run tries again)",
        "unset": "the environment variable NO_SUCH_TOKEN_VAR (token_env) is not set "
                 "(hint: export NO_SUCH_TOKEN_VAR=… with the catalog's token, or remove token_env)",
        "denied": f"http://127.0.0.1:{port}/deny {page} answered HTTP 401 Unauthorized "
                  "(hint: check the location and token_env; a 401/403 wants a token)",
    }
    assert failed["html"].startswith(f"http://127.0.0.1:{port}/not-json {page} did not answer with JSON (")
    assert failed["shape"].startswith(f"http://127.0.0.1:{port}/wrong-shape {page} is not a model catalog: "
                                      "data: Input should be a valid list")
    assert failed["item"].startswith(f"http://127.0.0.1:{port}/bad-item {page} is not a model catalog: "
                                     "data.0.canonical_slug: Input should be a valid string")
    assert not any("s3cret" in reason or "pw@" in reason for reason in failed.values())
    # the good source, with its token, ran after all of them
    assert [(f.source, f.version) for f in report.found] == [("good", "qwen-2.5-7b-instruct-2025-11")]


def test_gzip_pages_are_inflated_within_the_limit_and_loops_and_long_catalogs_stop(catalog: Catalog,
                                                                                   tmp_path: Path) -> None:
    import gzip

    limit = 64 * 1024
    catalog.serve("/gz", gzip.compress(PAGE1.replace(b'"/api/v1/models?offset=3&limit=3"', b"null")),
                  headers={"Content-Encoding": "gzip"})
    bomb = gzip.compress(b" " * (100 * limit))
    assert len(bomb) < limit  # small on the wire, a hundred times the limit inflated
    catalog.serve("/bomb", bomb, headers={"Content-Encoding": "gzip"})
    catalog.serve("/brotli", b"\x00", headers={"Content-Encoding": "br"})
    catalog.serve("/loop", json.dumps({"data": [], "links": {"next": "/loop"}}).encode())
    sources = "".join([
        _catalog_source("gz", catalog.url("/gz")),
        _catalog_source("bomb", catalog.url("/bomb")),
        _catalog_source("br", catalog.url("/brotli")),
        _catalog_source("loop", catalog.url("/loop")),
        _catalog_source("long", catalog.url("/api/v1/models")),
    ])
    r = _hosted_registry(tmp_path, sources)
    report = check_sources(Loader(GitRepo.discover(r.root)).load("HEAD"), r.root,
                           limits=Limits(timeout=2, max_page_bytes=limit, max_pages=1))
    failed = {s.source: s.reason for s in report.skipped if s.model is None}
    base = f"http://127.0.0.1:{catalog.port}"
    assert failed == {
        "bomb": f"{base}/bomb (page 1) is over the limit of 65,536 bytes a page; stopped reading",
        "br": f"{base}/brotli (page 1) is sent with Content-Encoding 'br'; modelgit reads gzip or no encoding",
        "loop": f"links.next of page 1 goes back to {base}/loop, a page read already; stopped",
        "long": f"more than 1 pages; stopped at {base}/api/v1/models "
                "(hint: a catalog this long is not what modelgit expects)",
    }
    assert [(f.source, f.version) for f in report.found] == [("gz", "qwen-2.5-7b-instruct-2025-11")]


def test_a_failing_source_is_reported_by_the_cli_without_a_traceback(catalog: Catalog, tmp_path: Path,
                                                                    cli: Any) -> None:
    catalog.serve("/not-json", b"not json at all")
    r = _hosted_registry(tmp_path, _catalog_source("broken", catalog.url("/not-json"))
                         + _catalog_source("openrouter", catalog.url("/api/v1/models")))
    code, out, err = cli("-C", str(r.root), "check-upgrades")
    assert code == 0 and "Traceback" not in out + err
    assert f"skipped  (source 'broken'): http://127.0.0.1:{catalog.port}/not-json (page 1) did not answer with JSON" \
        in out
    assert "from source 'openrouter'" in out


# -- artifact folder ------------------------------------------------------------------------------------
def _folder_registry(tmp_path: Path, folder: Path, extra: str = "") -> tuple[Repo, bytes]:
    r = make_repo(tmp_path / "reg")
    r.write("registry/modelgit.yaml", "schema_version: 1\nsources:\n"
            f"  - {{name: drop, kind: artifact-folder, location: '{folder}'{extra}}}\n")
    v1 = affine_onnx(np.ones(3), 0.0)
    r.write("registry/artifacts/score_v1.onnx", v1)
    r.write("registry/models/score.yaml", "name: score\ntask: regression\nversions:\n  - version: v1\n"
            "    status: active\n"
            f"    artifact: {{path: registry/artifacts/score_v1.onnx, sha256: {hashlib.sha256(v1).hexdigest()}}}\n")
    r.commit("score v1 and a drop folder")
    return r, v1


def test_a_new_onnx_file_in_the_folder_becomes_a_register_proposal(tmp_path: Path, cli: Any) -> None:
    drop = tmp_path / "drop"
    (drop / "score").mkdir(parents=True)
    r, v1 = _folder_registry(tmp_path, drop)
    v2 = affine_onnx(np.array([1.0, 2.0, 3.0]), 0.5)
    (drop / "score" / "v2.onnx").write_bytes(v2)
    (drop / "score" / "v1-again.onnx").write_bytes(v1)  # the same bytes as v1: nothing new
    (drop / "score" / "notes.txt").write_text("not a model")  # not *.onnx: not looked at
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(affine_onnx(np.array([9.0, 9.0, 9.0]), 9.0))
    (drop / "score" / "v3.onnx").symlink_to(outside)  # leaves the folder: never read
    (drop / "score" / "v4.onnx").symlink_to(drop / "score" / "v2.onnx")  # stays inside: read as v2 only
    (drop / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(drop / "score" / "v5.onnx")  # a FIFO would block a reader: not opened
    (drop / "lost.onnx").write_bytes(v2)  # fits no {model}/{version}.onnx
    (drop / "nobody").mkdir()
    (drop / "nobody" / "v1.onnx").write_bytes(v2)  # no such model

    data = json.loads(ok(cli, "-C", str(r.root), "check-upgrades", "--propose", "--json"))
    (found,) = data["sources"]["found"]
    digest = hashlib.sha256(v2).hexdigest()
    assert (found["source"], found["kind"], found["model"], found["version"], found["origin"]) == (
        "drop", "artifact-folder", "score", "v2", "score/v2.onnx")
    assert found["artifact"]["sha256"] == digest and found["artifact"]["path"] == "registry/artifacts/score/v2.onnx"
    assert found["artifact"]["signature"]["inputs"][0]["name"] == "X"
    skipped = {s["item"]: (s["model"], s["reason"]) for s in data["sources"]["skipped"]}
    assert skipped == {
        "score/v1-again.onnx": ("score", "already registered as score:v1"),
        "score/v3.onnx": (None, "a symlink to outside the folder: not followed"),
        "score/v4.onnx": (None, "a symlink: not followed (its target in the folder is read under its own name)"),
        "elsewhere": (None, "a symlink to outside the folder: not followed"),
        "score/v5.onnx": (None, "not a regular file (a FIFO, socket or device): not read"),
        "lost.onnx": (None, "does not fit the template {model}/{version}.onnx"),
        "nobody/v1.onnx": ("nobody", "unknown model 'nobody': register its first version by hand "
                                     "(modelgit register nobody VERSION --artifact FILE --task TASK)"),
    }
    (proposal,) = data["proposals"]
    assert proposal["branch"] == "modelgit/score/register-v2" and proposal["source"] == "drop"
    committed = subprocess.run(["git", "cat-file", "blob", f"{proposal['branch']}:registry/artifacts/score/v2.onnx"],
                               cwd=r.root, capture_output=True, check=True).stdout
    assert hashlib.sha256(committed).hexdigest() == digest
    added = Loader(GitRepo.discover(r.root)).load(proposal["branch"]).model("score").require_version("v2")
    assert (added.status, added.artifact.sha256) == ("staging", digest)  # type: ignore[union-attr]
    assert added.artifact.signature.model_dump() == found["artifact"]["signature"]  # type: ignore[union-attr]
    ok(cli, "-C", str(r.root), "validate", "--ref", proposal["branch"], "--base", "main")


def test_a_folder_swapped_for_a_symlink_after_the_listing_is_not_followed(tmp_path: Path) -> None:
    from modelgit.sources.folder import _open_dir

    top = tmp_path / "drop"
    (top / "score").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    top_fd = os.open(top, os.O_RDONLY)
    try:
        os.close(_open_dir(top_fd, ["score"]))  # a real folder opens
        (top / "score").rmdir()
        (top / "score").symlink_to(tmp_path / "secret", target_is_directory=True)
        with pytest.raises(OSError):
            _open_dir(top_fd, ["score"])
    finally:
        os.close(top_fd)


def test_a_folder_source_with_a_fixed_model_and_a_pattern(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    r, _ = _folder_registry(tmp_path, drop, ", pattern: 'score-*.onnx', model: score")
    blob = affine_onnx(np.array([2.0, 2.0, 2.0]), 0.0)
    (drop / "score-v7.onnx").write_bytes(blob)
    (drop / "other.onnx").write_bytes(blob)  # does not fit the pattern
    (drop / "score-big.onnx").write_bytes(b"x" * 2048)
    snapshot = Loader(GitRepo.discover(r.root)).load("HEAD")
    assert len(blob) < 1024
    report = check_sources(snapshot, r.root, limits=Limits(max_file_bytes=1024))
    assert [(f.model, f.version, f.artifact["sha256"]) for f in report.found] == [
        ("score", "score-v7", hashlib.sha256(blob).hexdigest())]
    assert [(s.item, s.reason) for s in report.skipped] == [("score-big.onnx", "2,048 bytes, over the limit of 1,024")]


def test_an_fsspec_url_without_fsspec_installed_says_so(tmp_path: Path) -> None:
    if _importable("fsspec"):
        pytest.skip("fsspec is installed here")
    r, _ = _folder_registry(tmp_path, Path("unused"))
    r.write("registry/modelgit.yaml", "schema_version: 1\nsources:\n"
            "  - {name: bucket, kind: artifact-folder, location: 's3://models/drop'}\n"
            "  - {name: old, kind: folder, location: 'drop'}\n")
    (r.root / "drop").mkdir()
    r.commit("sources")
    report = check_sources(Loader(GitRepo.discover(r.root)).load("HEAD"), r.root)
    assert [(s.source, s.reason) for s in report.skipped] == [
        ("bucket", "s3://models/drop is read through fsspec, which is not installed (hint: pip install fsspec "
                   "(and its filesystem, e.g. s3fs for s3://), or use a local folder or a file:// URL)")]
    assert [(w.source, w.message) for w in report.warnings] == [
        ("old", "kind 'folder' is an older name of artifact-folder; write kind: artifact-folder")]


class _MemoryFS:
    """The part of an fsspec filesystem the folder source uses, over a dict (fsspec is not a
    dependency; this checks modelgit's side of it)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def find(self, path: str, detail: bool = False) -> dict[str, dict[str, Any]]:
        return {p: {"name": p, "type": "file", "size": len(d)} for p, d in self.files.items()
                if p.startswith(path + "/")}

    def open(self, path: str, mode: str = "rb") -> Any:
        import io

        return io.BytesIO(self.files[path])


def test_an_fsspec_url_is_listed_through_fsspec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    r, v1 = _folder_registry(tmp_path, Path("unused"))
    r.write("registry/modelgit.yaml", "schema_version: 1\nsources:\n"
            "  - {name: bucket, kind: artifact-folder, location: 'memory://drop'}\n")
    r.commit("an fsspec source")
    v2 = affine_onnx(np.array([3.0, 2.0, 1.0]), 0.0)
    fs = _MemoryFS({"/drop/score/v2.onnx": v2, "/drop/score/v1.onnx": v1, "/drop/score/big.onnx": b"x" * 4096,
                    "/drop/readme.md": b"-"})
    fake = types.ModuleType("fsspec")
    fake.core = types.SimpleNamespace(url_to_fs=lambda url: (fs, "/" + url.split("://", 1)[1]))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fsspec", fake)
    report = check_sources(Loader(GitRepo.discover(r.root)).load("HEAD"), r.root, limits=Limits(max_file_bytes=2048))
    assert [(f.model, f.version, f.origin, f.artifact["sha256"]) for f in report.found] == [
        ("score", "v2", "score/v2.onnx", hashlib.sha256(v2).hexdigest())]
    assert sorted((s.item, s.reason) for s in report.skipped) == [
        ("score/big.onnx", "4,096 bytes, over the limit of 2,048"),
        ("score/v1.onnx", "already registered as score:v1")]


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# -- settings and start-up -------------------------------------------------------------------------------
def test_a_catalog_without_provider_is_a_clear_finding() -> None:
    line = "  - {name: c, kind: provider-catalog, location: 'https://x/api/v1/models', pattern: '*.onnx'}"
    col = line.index("'*.onnx'") + 1
    findings = parse_settings(f"schema_version: 1\nsources:\n{line}\n".encode(), "registry/modelgit.yaml").findings
    assert [f.render() for f in findings] == [
        "registry/modelgit.yaml:3:5: SCHEMA004 sources.0: required key 'provider' is missing (hint: add 'provider')",
        f"registry/modelgit.yaml:3:{col}: SCHEMA011 sources.0.pattern: this key does not "
        "fit here "
        "(hint: pattern is for artifact-folder sources; a catalog lists model ids)",
    ]


@pytest.mark.parametrize("args", [["--help"], ["check-upgrades", "--help"]])
def test_help_does_not_import_httpx(args: list[str]) -> None:
    code = ("import sys, modelgit.cli\n"
            f"status = modelgit.cli.run({args!r})\n"
            "print('RESULT', status, 'httpx' in sys.modules, 'modelgit.sources' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines()[-1] == "RESULT 0 False False"


def test_the_example_registry_has_no_sources_and_check_upgrades_says_nothing_about_them(
        example_repo: Repo, cli: Any) -> None:
    snapshot = Loader(GitRepo.discover(example_repo.root)).load("HEAD")
    assert check_sources(snapshot, example_repo.root).as_dict() == {"found": [], "warnings": [], "skipped": []}
