"""``modelgit show`` on a large registry: the plain table and the streamed ``--json`` carry the same
data as the YAML files.

The registry (1,000 models of 1-5 versions, every artifact kind, with and without traffic, with
invalid files) is generated here; each expected value is computed from the files with PyYAML, not
through modelgit's loader.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelgit import api, load_snapshot, render, views
from modelgit.cli._render import emit_json_listing

MODELS = 1000
STATUSES = ("archived", "deprecated", "active", "staging")
INVALID = {"broken/one": "name: broken/one\ntask: regression\nversions: []\n",
           "broken/two": "name: broken/two\ntask: [unclosed\n"}
GIT_ENV = {"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "T",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
           "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00", "GIT_CONFIG_NOSYSTEM": "1"}


def model_id(i: int) -> str:
    return f"team{i % 7}/model-{i:04d}" if i % 5 == 0 else f"model_{i:04d}"


TASKS = ("regression", "generation", "binary-classification")


def artifact(i: int, n: int) -> str:
    if TASKS[i % 3] == "generation":  # hosted by a provider
        return f"{{provider: openrouter, model_id: vendor/llm-{i}-{n}}}"
    if (i + n) % 2:
        return f"{{path: registry/artifacts/m{i}_{n}.onnx, sha256: {'ab' * 32}}}"
    return f"{{uri: 's3://bucket/m{i}/v{n}.onnx', sha256: {'cd' * 32}}}"


def model_yaml(i: int) -> str:
    """Model i: 1-5 versions, the last-but-one active when there are several, traffic on some."""
    count = 1 + i % 5
    lines = [f"name: {model_id(i)}", f"task: {TASKS[i % 3]}"]
    if i % 4:
        lines.append(f"owner: team-{i % 9}")
    if i % 6 == 1:
        lines.append('description: "Scores \\e[31mred\\e[0m [b]leads[/b] 日本"')  # escapes, markup
    elif i % 2:
        lines.append(f"description: Model number {i}.")
    lines.append("versions:")
    active = count - 2 if count > 1 else 0
    for n in range(count):
        status = "active" if n == active else "staging" if n == count - 1 else STATUSES[n % 2]
        lines += [f"  - version: v{n}.{i}", f"    status: {status}", f"    artifact: {artifact(i, n)}"]
        if (i + n) % 3 != 2:
            lines.append(f"    weight: {((i + n) % 4) / 4}")
        if n % 2 == 0:
            lines.append(f"    trained: 2025-{1 + n:02d}-{1 + i % 28:02d}")
        if (i + n) % 3 == 0:
            lines.append(f"    metrics: {{rmse: {n + i / 10000}, r2: 0.5}}")
    if count > 1 and i % 2 == 0:
        lines += ["traffic:", f"  v{active}.{i}: 75", f"  v{count - 1}.{i}: 25"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def large_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("large") / "repo"
    models = root / "registry" / "models"
    for i in range(MODELS):
        path = models / f"{model_id(i)}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(model_yaml(i))
    for mid, text in INVALID.items():
        (models / f"{mid}.yaml").parent.mkdir(parents=True, exist_ok=True)
        (models / f"{mid}.yaml").write_text(text)
    (root / "registry" / "modelgit.yaml").write_text("schema_version: 1\nname: large\n")
    env = {**os.environ, **GIT_ENV, "HOME": str(root.parent)}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "Add models"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)
    return root


def expected_models(root: Path) -> list[dict[str, Any]]:
    """What show must list, from the YAML files alone, in model id order."""
    found = []
    for path in sorted((root / "registry" / "models").rglob("*.yaml")):
        mid = path.relative_to(root / "registry" / "models").as_posix()[: -len(".yaml")]
        if mid in INVALID:
            continue
        data = yaml.safe_load(path.read_text())
        versions = data["versions"]
        active = next((v["version"] for v in versions if v["status"] == "active"), None)
        traffic = data.get("traffic") or ({active: 100} if active else {})
        found.append({
            "model": mid, "task": data["task"], "owner": data.get("owner"),
            "description": data.get("description"), "active": active, "traffic": traffic,
            "versions": [{
                "version": v["version"], "status": v["status"], "weight": v.get("weight"),
                "artifact": v["artifact"].get("path") or v["artifact"].get("uri")
                or f"{v['artifact']['provider']}:{v['artifact']['model_id']}",
                "trained": str(v["trained"]) if "trained" in v else None,
                "metrics": v.get("metrics", {}),
            } for v in versions],
        })
    assert [m["model"] for m in found] == sorted(m["model"] for m in found)
    return found


def test_streamed_json_is_valid_and_carries_the_registry(large_repo: Path, cli) -> None:
    code, out, err = cli("-C", str(large_repo), "show", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    expected = expected_models(large_repo)
    assert len(expected) == MODELS
    assert data == {"commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=large_repo, capture_output=True,
                                             text=True, check=True).stdout.strip(),
                    "models": expected, "invalid": sorted(INVALID)}
    # One model a line: the listing can be read (or grepped) as it is written.
    lines = out.splitlines()
    model_lines = lines[lines.index('  "models": [') + 1: lines.index("  ],")]
    assert [json.loads(line.rstrip(","))["model"] for line in model_lines] == [m["model"] for m in expected]
    # The same data as the non-streamed facade call.
    assert api.show(large_repo).as_dict() == data


def cells(line: str) -> list[str]:
    return [part.strip() for part in line.replace("┃", "│").split("│")[1:-1]]


def test_plain_table_carries_the_registry(large_repo: Path, cli) -> None:
    code, out, err = cli("-C", str(large_repo), "show")  # stdout is not a terminal: the plain table
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("models at ")
    assert cells(lines[2]) == ["model", "task", "active", "traffic", "versions"]
    table = lines[1: -1]  # the title above, the invalid line below
    assert len({len(line) for line in table}) == 1, "columns are not aligned"
    rows = [cells(line) for line in table if line.startswith("│")]
    expected = []
    for m in expected_models(large_repo):
        counts: dict[str, int] = {}
        for v in m["versions"]:
            counts[v["status"]] = counts.get(v["status"], 0) + 1
        traffic = " / ".join(f"{v} {p}%" for v, p in m["traffic"].items())
        expected.append([m["model"], m["task"], m["active"] or "-", traffic or "-",
                         ", ".join(f"{n} {s}" for s, n in counts.items())])
    assert rows == expected
    assert lines[-1] == "invalid (see 'modelgit validate'): broken/one, broken/two"


def test_plain_detail_shows_control_characters_as_escapes(large_repo: Path, cli) -> None:
    mid = model_id(1)  # i % 6 == 1: a description with ESC sequences, markup and wide characters
    code, out, err = cli("-C", str(large_repo), "show", mid)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"{mid} (generation) at ")
    assert lines[1] == "  Scores \\x1b[31mred\\x1b[0m [b]leads[/b] 日本"
    assert "\x1b" not in out
    data = yaml.safe_load((large_repo / "registry" / "models" / f"{mid}.yaml").read_text())
    rows = [cells(line) for line in lines if line.startswith("│")]
    assert [(r[0], r[1]) for r in rows] == [(v["version"], v["status"]) for v in data["versions"]]


def test_a_terminal_gets_rich_for_few_rows_and_the_plain_table_past_the_threshold(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import rich.table

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("rich was used")

    monkeypatch.setattr(render, "_is_terminal", lambda: True)
    monkeypatch.setattr(rich.table, "Table", refuse)
    model = {"model": "m", "task": "regression", "active": "v1", "traffic": {"v1": 100.0}, "statuses": {"active": 1}}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        render.show("ab" * 20, [model] * (render.PLAIN_ROWS + 1), [], detailed=False)
    assert out.getvalue().count("│ m ") == render.PLAIN_ROWS + 1
    with pytest.raises(AssertionError, match="rich was used"):
        render.show("ab" * 20, [model] * 3, [], detailed=False)


def test_json_listing_writes_before_the_last_item_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    written_at: dict[int, int] = {}

    def items() -> Any:
        for i in range(2000):
            written_at[i] = len(out.getvalue())
            yield {"i": i, "name": f"m{i}"}

    with contextlib.redirect_stdout(out):
        emit_json_listing({"commit": "c"}, "models", items(), {"invalid": ["x"]})
    assert written_at[1999] > 0 and written_at[0] == 0  # streamed, and nothing before the first item
    data = json.loads(out.getvalue())
    assert data == {"commit": "c", "models": [{"i": i, "name": f"m{i}"} for i in range(2000)], "invalid": ["x"]}
    out.truncate(0)
    out.seek(0)
    with contextlib.redirect_stdout(out):
        emit_json_listing({"commit": None}, "models", iter(()), {"invalid": []})
    assert json.loads(out.getvalue()) == {"commit": None, "models": [], "invalid": []}


def test_show_stream_matches_show_on_the_example(example_repo) -> None:
    shown = api.show(example_repo.root).as_dict()
    assert api.show_stream(example_repo.root).as_dict() == shown
    assert [m.as_dict() for m in api.show_stream(example_repo.root)] == shown["models"]
    summaries = list(api.show_stream(example_repo.root, versions=False).dicts())
    assert [s["statuses"] for s in summaries] == [
        {v["status"]: sum(1 for w in m["versions"] if w["status"] == v["status"]) for v in m["versions"]}
        for m in shown["models"]]
    with pytest.raises(TypeError, match="dicts"):
        list(api.show_stream(example_repo.root, versions=False))
    assert views.show(load_snapshot(str(example_repo.root))) == shown


def test_a_reader_that_goes_away_stops_show_quietly(large_repo: Path) -> None:
    # `modelgit show --json | head -3`: the listing (~0.3 MB) outgrows the pipe, the write fails;
    # click turns EPIPE into a quiet exit 1 (not a "bug" exit 3 with a message).
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "modelgit", "-C", str(large_repo), "show", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"{\n"
    proc.stdout.close()
    err = proc.stderr.read()
    assert (proc.wait(), err) == (1, b"")
