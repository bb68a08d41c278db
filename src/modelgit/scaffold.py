"""`modelgit init`: scaffold a registry repository that validates clean."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from modelgit import gitstore
from modelgit.errors import GitError, UsageError
from modelgit.spec import schema_text

TEMPLATE_FILES = (
    "registry/modelgit.yaml",
    "registry/models/example_scorer.yaml",
    "registry/artifacts/example_scorer_v1.onnx",
    ".github/workflows/registry-ci.yml",
    ".github/workflows/upgrade-check.yml",
)
WORKFLOWS = (".github/workflows/registry-ci.yml", ".github/workflows/upgrade-check.yml")
VERSION_MARK = b"@MODELGIT_VERSION@"
GITIGNORE = ".gitignore"
# A final release (what a package index serves to `pip install modelgit==X.Y.Z`), and the wider
# set of PEP 440 versions allowed into a workflow file at all.
RELEASE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
PEP440ISH = re.compile(r"^[0-9]+(\.[0-9]+)*[0-9A-Za-z.+!-]*$")


@dataclass
class InitResult:
    root: Path
    written: list[str] = field(default_factory=list)
    committed: str | None = None
    commit_error: str | None = None  # git's words when the commit was wanted but failed
    warnings: list[str] = field(default_factory=list)


def _needs_new_repo(root: Path) -> bool:
    """True when ``root`` must become a repository of its own: it is new, or it is in no
    repository, or it is an empty directory inside another one. modelgit reads ``registry/`` at a
    repository's top level, so files written into a subdirectory of another repository would never
    be seen: that is refused."""
    if not root.exists():
        return True
    top = gitstore.toplevel(root)
    if top is None:
        return True
    top = top.resolve()
    if top == root.resolve():
        return False
    if not any(root.iterdir()):
        return True
    raise UsageError(
        f"{root}: inside the git repository {top}, not at its top level; modelgit reads registry/ "
        "at the top of a repository, so nothing was written",
        hint=f"run 'modelgit init {top}', or init a new or empty directory",
    )


def installed_version() -> str:
    """The version of the modelgit distribution that is running (what the workflows pin)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelgit")
    except PackageNotFoundError:
        raise UsageError("modelgit's own package metadata is missing, so init cannot pin the "
                         "version the workflows install", hint="install modelgit with pip") from None


def render_template(name: str, modelgit_version: str) -> bytes:
    """A template file's bytes, with the pinned modelgit version filled into the workflows."""
    data = resources.files("modelgit").joinpath("templates", name).read_bytes()
    return data.replace(VERSION_MARK, modelgit_version.encode()) if name in WORKFLOWS else data


def _gitignore_update(root: Path, wanted: bytes) -> bytes | None:
    """The new bytes of ``root/.gitignore``: ``wanted`` for a new file, the existing file with the
    lines it lacks appended, or None when it already has them all."""
    target = root / GITIGNORE
    if not target.exists():
        return wanted
    if target.is_symlink() or not target.is_file():
        raise UsageError(f"{target}: is not a regular file; nothing was written",
                         hint="make .gitignore a plain file, or remove it")
    current = target.read_bytes()
    have = {line.strip() for line in current.splitlines()}
    rules = [line for line in wanted.splitlines() if line.strip() and not line.startswith(b"#")]
    if all(rule in have for rule in rules):
        return None
    missing = [line for line in wanted.splitlines() if line.startswith(b"#") or line not in have]
    separator = b"" if current.endswith(b"\n") or not current else b"\n"
    return current + separator + b"\n" + b"\n".join(missing) + b"\n"


def init_registry(directory: str | Path, modelgit_version: str | None = None) -> InitResult:
    """Write settings, schemas, an example model, workflows and a .gitignore into ``directory``.

    The workflows install ``modelgit==<modelgit_version>`` (default: the running version). The
    .gitignore lists what modelgit writes that is not meant to be committed; an existing one gets
    the missing lines appended. A new or empty directory becomes a git repository with one commit.
    In an existing repository the files are written and committed only when it has no commits yet
    (and then only these files and a .gitignore init created, never what the user has staged);
    otherwise they are left for the user to commit. Nothing is written at all if any of the other
    files exists already.
    """
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root}: exists and is not a directory")
    version = modelgit_version or installed_version()
    if not PEP440ISH.match(version):
        raise UsageError(f"modelgit version '{version}' cannot be pinned in a workflow; nothing was written")
    files: dict[str, bytes] = {name: render_template(name, version) for name in TEMPLATE_FILES}
    for name in ("model", "settings"):
        files[f"schemas/{name}.schema.json"] = schema_text(name).encode()
    existing = [name for name in files if (root / name).exists()]
    if existing:
        raise UsageError(
            f"{root}: already has {', '.join(existing)}; nothing was written",
            hint="init writes a new registry; edit the existing one instead",
        )
    ignore = _gitignore_update(root, render_template("gitignore", version))
    fresh = _needs_new_repo(root)
    root.mkdir(parents=True, exist_ok=True)
    if fresh:
        gitstore.init_repository(root)
    repo = gitstore.GitRepo.discover(root)
    has_commits = repo.has_commits()
    result = InitResult(root)
    if not RELEASE.match(version):
        result.warnings.append(
            f"modelgit {version} is not a release: the workflows pin modelgit=={version}, which a "
            "package index will not have; edit their 'Install modelgit' step, or init with a released "
            "modelgit")
    commit = list(files)
    if ignore is not None and not (root / GITIGNORE).exists():
        commit.append(GITIGNORE)
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        result.written.append(name)
    if ignore is not None:
        (root / GITIGNORE).write_bytes(ignore)
        result.written.append(GITIGNORE)
    if not has_commits:
        # --only with paths: commit these files and nothing else the user may have staged.
        try:
            result.committed = repo.commit_paths(commit, "Add modelgit registry")
        except GitError as exc:
            result.commit_error = exc.message
    return result
