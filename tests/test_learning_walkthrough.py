"""The README's "Continuous learning" walk-through runs as written, in order, on a clone of a
repository holding the example registry: record usage → usage → recommend → auto-upgrade
--propose → merge → the runtime serves it → quality drops → auto-rollback proposal (issue 10).

The blocks are read from README.md itself. The simulated outcomes have a known truth (the new
snapshot is good 75 % of the time against 60 %, then 45 %), so what the commands decide is checked
against it, not against their own output."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text()
SECTION = README[README.index("## Continuous learning"):README.index("## Development")]
MODEL = "openrouter/qwen-2.5-7b-instruct"


def blocks() -> list[tuple[str, str]]:
    return re.findall(r"```(sh|python)\n(.*?)```", SECTION, re.S)


@pytest.fixture
def clone(example_clone: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MODELGIT_TRACKING_URL", raising=False)
    return example_clone


def test_the_walkthrough_covers_the_loop() -> None:
    commands = [shlex.split(line) for kind, text in blocks() if kind == "sh" for line in text.splitlines()]
    verbs = [c[1] for c in commands if c]
    assert verbs == ["register", "ab", "usage", "recommend", "auto-upgrade", "merge", "auto-rollback", "log"]


def test_the_walkthrough_runs_and_decides_what_the_truth_says(clone: Path, cli: Any) -> None:
    namespace: dict[str, Any] = {}
    outputs: list[str] = []
    for kind, text in blocks():
        if kind == "python":
            exec(compile(text, "README.md", "exec"), namespace)
            continue
        for line in text.splitlines():
            words = shlex.split(line)
            if words[0] == "git":
                proc = subprocess.run(words, cwd=clone, capture_output=True, text=True)
                assert proc.returncode == 0, (line, proc.stderr)
                outputs.append(proc.stdout)
            else:
                code, out, err = cli(*words[1:])
                assert code == 0, (line, out, err)
                outputs.append(out)
    usage_out, recommend_out, upgrade_out, rollback_out, message = (outputs[2], outputs[3], outputs[4],
                                                                    outputs[6], outputs[7])
    assert "1.2.0" in usage_out and "1.1.0" in usage_out
    assert recommend_out.startswith(f"upgrade  {MODEL}: 1.1.0 → 1.2.0")
    assert upgrade_out.startswith(f"upgrade: {MODEL}: relative gain ")
    assert rollback_out.startswith(f"rollback: {MODEL}: ")
    assert "Modelgit-Decision: rollback" in message and "Modelgit-Model: " + MODEL in message
    # What serves after the merge is the upgrade; the rollback waits on its branch for a person.
    text = (clone / "registry/models/openrouter/qwen-2.5-7b-instruct.yaml").read_text()
    assert re.search(r"version: 1\.2\.0\n    status: active", text)


def test_auto_upgrade_json_carries_the_evidence(clone: Path, cli: Any) -> None:
    for kind, text in blocks()[:2]:
        if kind == "sh":
            for line in text.splitlines():
                assert cli(*shlex.split(line)[1:])[0] == 0
        else:
            exec(compile(text, "README.md", "exec"), {})
    code, out, err = cli("auto-upgrade", MODEL, "--json")
    assert code == 0, err
    found = json.loads(out)
    assert found["decision"] == "upgrade" and found["version"] == "1.2.0" and found["branch"] is None
    evidence = found["evidence"]
    # n per arm adds up to the 4,000 simulated requests, split about 50/50 by the router.
    assert evidence["control"]["n"] + evidence["treatment"]["n"] == 4000
    assert evidence["srm"]["mismatch"] is False
    interval = evidence["interval"]
    assert interval["low"] > 0.05 and interval["low"] < 0.25 < interval["high"]  # truth: 0.75/0.60 - 1
