"""The one door to git: nothing else starts a process, no ref, branch, remote or URL given by a user
or a commit becomes an option, and modelgit — not the user's gitconfig — picks the transports.

Real repositories in tmp_path; "nothing ran" is shown by a MARKER file that an injected command
would have created."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from conftest import EXAMPLE, Repo, make_repo, ok
from modelgit import gitstore
from modelgit.errors import GitError, UsageError
from modelgit.gitstore import GitRepo
from modelgit.runtime.registry import Registry

SRC = Path(__file__).resolve().parent.parent / "src" / "modelgit"
MODEL = "registry/models/calling_score.yaml"


# Modules allowed to start a process that is not git, and why. sessions.py (the onnxruntime door,
# on main) runs the Python interpreter to probe a new model under memory and time limits;
# _parsework.py runs it (or forks) for helpers that parse uncached registry files.
NOT_GIT = {"sessions.py", "_parsework.py"}
PROCESS_WORDS = ("subprocess", "os.system", "os.popen", "os.exec", "os.spawn", "Popen")


def test_only_gitstore_starts_git() -> None:
    modules = sorted(SRC.rglob("*.py"))
    assert SRC / "gitstore.py" in modules and len(modules) > 20
    assert "subprocess" in (SRC / "gitstore.py").read_text()
    users = {str(p.relative_to(SRC)): p.read_text() for p in modules if p.name != "gitstore.py"
             and any(word in p.read_text() for word in PROCESS_WORDS)}
    assert set(users) <= NOT_GIT
    for name, text in users.items():
        assert '"git"' not in text and "'git'" not in text, name


def _refs(repo: Repo) -> str:
    return repo.git("for-each-ref", "--format=%(refname) %(objectname)")


def _with_origin(example_repo: Repo, tmp_path: Path) -> Path:
    remote = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    example_repo.git("remote", "add", "origin", str(remote))
    return remote


@pytest.mark.parametrize("remote", ["--receive-pack=touch {marker}", "-oProxyCommand=touch {marker}",
                                    "--repo=origin", "-v"])
@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_an_option_looking_push_remote_is_refused_before_anything_runs(
        example_repo: Repo, tmp_path: Path, cli, remote: str, dry_run: list[str]) -> None:
    _with_origin(example_repo, tmp_path)
    marker = tmp_path / "MARKER"
    remote = remote.format(marker=marker)
    before = _refs(example_repo)
    code, out, err = cli("-C", str(example_repo.root), "promote", "calling_score", "v2.0-real",
                         "--push", remote, *dry_run)
    assert (code, out) == (2, "")
    assert err == (f"error: remote '{remote}' starts with '-'; nothing was run\n"
                   "hint: name a remote that does not start with '-'\n")
    assert not marker.exists()
    assert _refs(example_repo) == before  # nothing was committed either


def test_push_goes_to_a_remote_named_like_a_path(example_repo: Repo, tmp_path: Path, cli) -> None:
    remote = _with_origin(example_repo, tmp_path)
    out = json.loads(ok(cli, "-C", str(example_repo.root), "promote", "calling_score", "v2.0-real",
                        "--push", "origin", "--json"))
    listed = subprocess.run(["git", "ls-remote", str(remote)], capture_output=True, text=True,
                            check=True).stdout
    assert f"{out['commit']}\trefs/heads/{out['branch']}" in listed.splitlines()


def test_push_uses_only_modelgits_transports_whatever_gitconfig_allows(
        example_repo: Repo, tmp_path: Path, cli) -> None:
    marker = tmp_path / "MARKER"
    # The user's (or an attacker's) gitconfig opens the ext transport, which runs a command.
    example_repo.git("config", "protocol.ext.allow", "always")
    code, _, err = cli("-C", str(example_repo.root), "promote", "calling_score", "v2.0-real",
                       "--push", f"ext::sh -c touch% {marker}")
    assert code == 1
    assert err.startswith("error: committed ") and "but pushing it to 'ext::sh" in err
    assert "Traceback" not in err
    assert not marker.exists()


@pytest.mark.parametrize("branch", ["--upload-pack=touch MARKER", "-b", "--end-of-options"])
def test_an_option_looking_branch_name_is_refused(example_repo: Repo, cli, branch: str) -> None:
    before = _refs(example_repo)
    code, out, err = cli("-C", str(example_repo.root), "promote", "calling_score", "v2.0-real",
                         f"--branch={branch}")
    assert (code, out, err) == (2, "", f"error: '{branch}' is not a valid branch name\n")
    assert _refs(example_repo) == before
    assert not (example_repo.root / "MARKER").exists()


@pytest.mark.parametrize("command", [["history", "calling_score"], ["validate"], ["show"]])
def test_an_option_looking_ref_is_an_unknown_ref(example_repo: Repo, tmp_path: Path, cli,
                                                 command: list[str]) -> None:
    written = tmp_path / "OUT"
    ref = f"--output={written}"  # to git log this would mean: write to that file
    code, out, err = cli("-C", str(example_repo.root), *command, f"--ref={ref}")
    assert (code, out) == (2, "")
    assert err.startswith(f"error: unknown git ref '{ref}'\n")
    assert not written.exists()


def test_history_reads_a_commit_whose_message_holds_the_separators(example_repo: Repo, cli) -> None:
    data = (example_repo.root / MODEL).read_text().replace("weight: 0.3", "weight: 0.2")
    assert data != (example_repo.root / MODEL).read_text()
    example_repo.write(MODEL, data)
    subject = "tweak \x1f%x1f \x1e weights"
    sha = example_repo.commit(subject + "\n\nbody \x1e\x1f with\x1f\x1e control characters\n")
    history = json.loads(ok(cli, "-C", str(example_repo.root), "history", "calling_score", "--json"))
    newest = history["commits"][0]
    assert (newest["commit"], newest["subject"]) == (sha, subject)
    assert len(history["commits"]) == 2  # the seeding commit is still its own record
    assert newest["changes"]


def test_file_history_first_parent_and_full(tmp_path: Path) -> None:
    r = make_repo(tmp_path / "r")
    r.write("f.txt", "one\n")
    first = r.commit("first")
    r.git("checkout", "-q", "-b", "side")
    r.write("f.txt", "two\n")
    side = r.commit("side change\n\nModelgit-Model: m\n")
    r.git("checkout", "-q", "main")
    r.write("other.txt", "x\n")
    r.commit("unrelated")
    r.git("merge", "-q", "--no-ff", "-m", "merge side", "side")
    merge = r.head()
    repo = GitRepo.discover(r.root)
    blob_one = gitstore.blob_id(b"one\n")
    blob_two = gitstore.blob_id(b"two\n")

    line = repo.file_history(merge, "f.txt")
    assert [(c.commit, c.subject, c.old_blob, c.new_blob) for c in line] == [
        (merge, "merge side", blob_one, blob_two), (first, "first", gitstore.ZERO_SHA, blob_one)]
    assert len(line[0].parents) == 2 and line[0].parents[1] == side

    full = repo.file_history(merge, "f.txt", first_parent=False)
    assert [(c.commit, c.trailers) for c in full] == [(side, {"Modelgit-Model": "m"}), (first, {})]
    assert [c.commit for c in repo.file_history(merge, "f.txt", first_parent=False, limit=1)] == [side]
    assert [m.commit for m in repo.commit_messages([merge], exclude=[first])][-1] == side
    assert repo.commit_messages([], exclude=[first]) == []


def test_merge_file_merges_and_reports_conflicts() -> None:
    base = b"a\nb\nc\nd\ne\n"
    merged, conflict = gitstore.merge_file(b"A\nb\nc\nd\ne\n", base, b"a\nb\nc\nd\nE\n")
    assert (merged, conflict) == (b"A\nb\nc\nd\nE\n", False)
    merged, conflict = gitstore.merge_file(b"X\nb\nc\nd\ne\n", base, b"Y\nb\nc\nd\ne\n")
    assert conflict and b"<<<<<<<" in merged and b"X\n" in merged and b"Y\n" in merged


# -- URLs and transports (the runtime's clone and fetch) ----------------------------------------
def _bare_example(tmp_path: Path) -> Path:
    seed = make_repo(tmp_path / "seed")
    import shutil

    shutil.copytree(EXAMPLE, seed.root / "registry")
    seed.commit("seed")
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed.root), str(bare)], check=True)
    return bare


def test_an_option_looking_url_is_refused_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    cache = tmp_path / "cache"
    url = f"--upload-pack=touch {marker};x://host/repo"
    with pytest.raises(UsageError) as caught:
        Registry.open(url, cache_dir=cache)
    assert caught.value.message == f"git URL '{url}' starts with '-'; nothing was run"
    assert caught.value.exit_code == 2
    assert not marker.exists() and not cache.exists()
    with pytest.raises(UsageError):
        gitstore.clone_mirror("-oProxyCommand=touch MARKER", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_the_ext_transport_is_refused_even_when_gitconfig_allows_it(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    subprocess.run(["git", "config", "--global", "protocol.allow", "always"], check=True)
    subprocess.run(["git", "config", "--global", "protocol.ext.allow", "always"], check=True)
    with pytest.raises(GitError):
        gitstore.clone_mirror(f"ext::sh -c touch% {marker}", tmp_path / "dest")
    assert not marker.exists()


def test_the_transports_are_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = _bare_example(tmp_path)
    monkeypatch.setenv("MODELGIT_GIT_PROTOCOLS", "https")
    with pytest.raises(UsageError, match=r"^cannot clone "):
        Registry.open(bare.as_uri(), cache_dir=tmp_path / "c1")
    monkeypatch.setenv("MODELGIT_GIT_PROTOCOLS", "https:file")
    reg = Registry.open(bare.as_uri(), cache_dir=tmp_path / "c2", rng=random.Random(0))
    assert reg.info()["commit"] == subprocess.run(
        ["git", "rev-parse", "main"], cwd=bare, capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.setenv("MODELGIT_GIT_PROTOCOLS", "file;ext")
    with pytest.raises(UsageError) as caught:
        gitstore.clone_mirror(bare.as_uri(), tmp_path / "dest")
    assert caught.value.message == "MODELGIT_GIT_PROTOCOLS='file;ext' is not a list of git transports"
    assert not (tmp_path / "dest").exists()


def test_a_reload_fetch_is_limited_to_the_transports_too(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bare = _bare_example(tmp_path)
    reg = Registry.open(bare.as_uri(), cache_dir=tmp_path / "cache")
    monkeypatch.setenv("MODELGIT_GIT_PROTOCOLS", "https")
    assert reg.reload() is False
    assert reg.info()["refused"][-1]["reason"].startswith("git remote unreachable: ")


def test_resolve_asks_git_once_per_commit_id_and_always_for_a_name(example_repo: Repo,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit id found once is not asked about again (an id names the same object for good);
    a branch or HEAD is asked every time, so a moved ref is seen, and unknown refs still fail."""
    repo = GitRepo.discover(example_repo.root)
    asked: list[tuple[str, ...]] = []
    real = repo._git
    monkeypatch.setattr(repo, "_git", lambda *args, **kwargs: asked.append(args) or real(*args, **kwargs))
    first = repo.resolve("HEAD")
    assert repo.resolve(first) == first and repo.resolve(first) == first
    assert [a[0] for a in asked] == ["rev-parse"]
    example_repo.write("registry/notes.txt", "moved\n")
    second = example_repo.commit("move HEAD")
    assert repo.resolve("HEAD") == second != first and len(asked) == 2
    with pytest.raises(UsageError, match="unknown git ref"):
        repo.resolve("f" * 40)
