"""The pull-request flow for real: a bare remote on disk, a proposer's clone and a maintainer's clone.

The proposer never checks anything out: proposals are built on ``origin/main`` and pushed; the
maintainer runs what CI runs (``validate --ref BRANCH --base origin/main``), merges with
``--no-ff`` as a pull request does, and pushes. Reads go through ``show --ref origin/main``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from conftest import EXAMPLE, Repo, make_repo
from test_proposals import build_onnx

MODEL = "registry/models/calling_score.yaml"


def clone(remote: Path, where: Path) -> Repo:
    subprocess.run(["git", "clone", "-q", str(remote), str(where)], check=True, capture_output=True)
    return Repo(where)


def run_ok(cli: Any, *args: str) -> str:
    code, out, err = cli(*args)
    assert code == 0, out + err
    return out


def show(cli: Any, r: Repo, ref: str) -> dict[str, Any]:
    data = json.loads(run_ok(cli, "-C", str(r.root), "show", "calling_score", "--ref", ref, "--json"))
    (model,) = data["models"]
    return model


def review_and_merge(cli: Any, maintainer: Repo, branch: str) -> str:
    """What CI and a maintainer do with a pull request; returns the merge commit."""
    maintainer.git("fetch", "-q", "origin")
    maintainer.git("checkout", "-q", "main")
    maintainer.git("merge", "-q", "--ff-only", "origin/main")
    run_ok(cli, "-C", str(maintainer.root), "validate", "--ref", f"origin/{branch}", "--base", "origin/main")
    out = maintainer.root.parent / "ci-reports" / branch.replace("/", "_")
    run_ok(cli, "-C", str(maintainer.root), "ci", "--ref", f"origin/{branch}", "--base", "origin/main",
           "--out", str(out))
    assert json.loads((out / "report.json").read_text())["ok"] is True
    maintainer.git("merge", "-q", "--no-ff", f"origin/{branch}", "-m", f"Merge pull request from {branch}")
    maintainer.git("push", "-q", "origin", "main")
    return maintainer.head()


def test_pull_request_flow_with_a_real_remote(tmp_path: Path, cli) -> None:
    remote = tmp_path / "registry.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", str(remote)], check=True)
    seed = make_repo(tmp_path / "seed")
    shutil.copytree(EXAMPLE, seed.root / "registry")
    seed.commit("Add example registry")
    seed.git("push", "-q", str(remote), "main")
    original = (EXAMPLE / "models" / "calling_score.yaml").read_bytes()

    alice = clone(remote, tmp_path / "alice")
    maintainer = clone(remote, tmp_path / "maintainer")
    alice_head = alice.head()

    # 1. Alice proposes a promotion and pushes the branch.
    out = json.loads(run_ok(cli, "-C", str(alice.root), "promote", "calling_score", "v2.0-real",
                            "--ref", "origin/main", "--push", "origin", "--json"))
    branch = "modelgit/calling_score/promote-v2.0-real"
    assert out["branch"] == branch and out["pushed"] == "origin"
    remote_refs = subprocess.run(["git", "ls-remote", str(remote)], capture_output=True, text=True,
                                 check=True).stdout
    assert f"{out['commit']}\trefs/heads/{branch}" in remote_refs.splitlines()

    # 2. It is reviewed and merged on the remote.
    merged = review_and_merge(cli, maintainer, branch)

    # 3. Alice fetches: origin/main serves v2.0-real; her checkout was never touched.
    alice.git("fetch", "-q", "origin")
    served = show(cli, alice, "origin/main")
    assert served["active"] == "v2.0-real"
    assert {v["version"]: v["status"] for v in served["versions"]} == {"v1.0-hybrid": "deprecated",
                                                                       "v2.0-real": "active"}
    assert alice.head() == alice_head
    assert show(cli, alice, "HEAD")["active"] == "v1.0-hybrid"
    assert alice.git("status", "--porcelain") == ""

    # 4. Something is wrong: roll back, push, merge. The file is byte for byte what it was.
    out = json.loads(run_ok(cli, "-C", str(alice.root), "rollback", "calling_score", "--ref", "origin/main",
                            "--push", "origin", "--json"))
    rollback = f"modelgit/calling_score/rollback-{merged[:10]}"
    assert out["branch"] == rollback
    review_and_merge(cli, maintainer, rollback)
    alice.git("fetch", "-q", "origin")
    assert subprocess.run(["git", "show", f"origin/main:{MODEL}"], cwd=alice.root, capture_output=True,
                          check=True).stdout == original
    served = show(cli, alice, "origin/main")
    assert served["active"] == "v1.0-hybrid"
    assert served["traffic"] == {"v1.0-hybrid": 90, "v2.0-real": 10}

    # 5. A new version with a local ONNX file goes the same way and validates on main.
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(build_onnx(10, seed=7))
    run_ok(cli, "-C", str(alice.root), "register", "calling_score", "v3.0", "--artifact", str(artifact),
           "--ref", "origin/main", "--push", "origin")
    review_and_merge(cli, maintainer, "modelgit/calling_score/register-v3.0")
    alice.git("fetch", "-q", "origin")
    run_ok(cli, "-C", str(alice.root), "validate", "--ref", "origin/main")
    (v3,) = [v for v in show(cli, alice, "origin/main")["versions"] if v["version"] == "v3.0"]
    assert v3["status"] == "staging"
    stored = subprocess.run(["git", "show", "origin/main:registry/artifacts/calling_score/v3.0.onnx"],
                            cwd=alice.root, capture_output=True, check=True).stdout
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert alice.head() == alice_head and alice.git("status", "--porcelain") == ""

    # 6. The register is reverted with plain git (-m 1 of its merge), through the same gate.
    bob = clone(remote, tmp_path / "bob")
    bob.git("checkout", "-q", "-b", "revert-v3")
    bob.git("revert", "--no-edit", "-m", "1", "HEAD")
    bob.git("push", "-q", "origin", "revert-v3")
    review_and_merge(cli, maintainer, "revert-v3")
    alice.git("fetch", "-q", "origin")
    assert subprocess.run(["git", "show", f"origin/main:{MODEL}"], cwd=alice.root, capture_output=True,
                          check=True).stdout == original

    # 7. The one serving change is rolled back already: rollback says so instead of undoing it.
    code, _, err = cli("-C", str(alice.root), "rollback", "calling_score", "--ref", "origin/main")
    assert code == 1 and "rolled back already" in err
