"""`modelgit init`: scaffold a registry repository that validates clean."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from modelgit.errors import UsageError
from modelgit.spec import schema_text

TEMPLATE_FILES = (
    "registry/modelgit.yaml",
    "registry/models/example_scorer.yaml",
    "registry/artifacts/example_scorer_v1.onnx",
    ".github/workflows/registry-ci.yml",
    ".github/workflows/upgrade-check.yml",
)


@dataclass
class InitResult:
    root: Path
    written: list[str] = field(default_factory=list)
    committed: str | None = None
    commit_error: str | None = None  # git's words when the commit was wanted but failed


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def _needs_new_repo(root: Path) -> bool:
    """True when ``root`` must become a repository of its own: it is new, or it is in no
    repository, or it is an empty directory inside another one. modelgit reads ``registry/`` at a
    repository's top level, so files written into a subdirectory of another repository would never
    be seen: that is refused."""
    if not root.exists():
        return True
    proc = _git(root, "rev-parse", "--show-toplevel")
    if proc.returncode != 0:
        return True
    top = Path(proc.stdout.strip()).resolve()
    if top == root.resolve():
        return False
    if not any(root.iterdir()):
        return True
    raise UsageError(
        f"{root}: inside the git repository {top}, not at its top level; modelgit reads registry/ "
        "at the top of a repository, so nothing was written",
        hint=f"run 'modelgit init {top}', or init a new or empty directory",
    )


def init_registry(directory: str | Path) -> InitResult:
    """Write settings, schemas, an example model and workflows into ``directory``.

    A new or empty directory becomes a git repository with one commit. In an existing repository
    the files are written and committed only when it has no commits yet (and then only these files,
    never what the user has staged); otherwise they are left for the user to commit. Nothing is
    written at all if any of them exists already.
    """
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root}: exists and is not a directory")
    files: dict[str, bytes] = {
        name: resources.files("modelgit").joinpath("templates", name).read_bytes()
        for name in TEMPLATE_FILES
    }
    for name in ("model", "settings"):
        files[f"schemas/{name}.schema.json"] = schema_text(name).encode()
    existing = [name for name in files if (root / name).exists()]
    if existing:
        raise UsageError(
            f"{root}: already has {', '.join(existing)}; nothing was written",
            hint="init writes a new registry; edit the existing one instead",
        )
    fresh = _needs_new_repo(root)
    root.mkdir(parents=True, exist_ok=True)
    if fresh:
        proc = _git(root, "init", "--quiet", "--initial-branch=main")
        if proc.returncode != 0:
            raise UsageError(f"{root}: git init failed: {proc.stderr.strip()}")
    has_commits = _git(root, "rev-parse", "--verify", "--quiet", "HEAD").returncode == 0
    result = InitResult(root)
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        result.written.append(name)
    if not has_commits:
        # --only with paths: commit these files and nothing else the user may have staged.
        proc = _git(root, "add", "--", *files)
        if proc.returncode == 0:
            proc = _git(root, "commit", "--quiet", "--only", "-m", "Add modelgit registry", "--", *files)
        if proc.returncode == 0:
            result.committed = _git(root, "rev-parse", "HEAD").stdout.strip()
        else:
            result.commit_error = proc.stderr.strip() or "git failed"
    return result
