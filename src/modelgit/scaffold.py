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
    ".github/workflows/modelgit-validate.yml",
)


@dataclass
class InitResult:
    root: Path
    written: list[str] = field(default_factory=list)
    committed: str | None = None


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def init_registry(directory: str | Path) -> InitResult:
    """Write settings, schemas, an example model and workflows into ``directory``.

    A new or empty directory becomes a git repository with one commit. In an existing repository
    the files are written but not committed (we never commit over a user's work), and nothing is
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
    root.mkdir(parents=True, exist_ok=True)
    fresh = _git(root, "rev-parse", "--git-dir").returncode != 0
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
        add = _git(root, "add", "--", *files)
        commit = _git(root, "commit", "--quiet", "-m", "Add modelgit registry")
        if add.returncode == 0 and commit.returncode == 0:
            result.committed = _git(root, "rev-parse", "HEAD").stdout.strip()
    return result
