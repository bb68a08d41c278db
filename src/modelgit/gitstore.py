"""The only module that talks to git.

It drives git's plumbing (``ls-tree``, ``cat-file --batch``, ``commit-tree``, ``update-ref``) as
subprocesses instead of going through GitPython: that reads 1,000 blobs in one round-trip, keeps
``modelgit --help`` free of GitPython's 60 ms import and its ``git version`` call on import, and
lets proposals build commits from a temporary index without touching the user's index, working
tree or HEAD.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from modelgit.errors import GitError, UsageError

SYMLINK_MODE = "120000"
FILE_MODES = ("100644", "100755")
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of a tree: its mode (``100644``, ``120000`` for a symlink) and blob id."""

    mode: str
    blob: str


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    author: str
    email: str
    date: str
    subject: str
    body: str


def blob_id(data: bytes) -> str:
    """Git's object id of a blob with this content (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class GitRepo:
    """A git repository on disk, read through plumbing commands."""

    def __init__(self, root: Path, git_dir: Path) -> None:
        self.root = root
        self.git_dir = git_dir

    @classmethod
    def discover(cls, path: str | os.PathLike[str] = ".") -> GitRepo:
        """The repository that contains ``path``; a UsageError when there is none."""
        start = Path(path)
        if not start.exists():
            raise UsageError(f"{start}: no such directory", hint="pass the path of a git repository")
        cwd = start if start.is_dir() else start.parent
        # --show-toplevel fails in a bare repository (a server's copy, `git clone --bare`), which
        # has objects and refs but no working tree: ask which kind it is first.
        proc = subprocess.run(["git", "rev-parse", "--is-bare-repository", "--git-common-dir"],
                              cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UsageError(
                f"{start.resolve()}: not a git repository",
                hint="run modelgit inside a git repository, or create one with 'modelgit init DIR'",
            )
        bare, git_dir = proc.stdout.splitlines()[:2]
        common = (cwd / git_dir).resolve() if not os.path.isabs(git_dir) else Path(git_dir)
        if bare == "true":
            return cls(common, common)
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True,
                             text=True)
        if top.returncode != 0:  # inside .git of a repository with a working tree
            raise UsageError(f"{start.resolve()}: inside a git directory, not a working tree",
                             hint="run modelgit in the repository's top-level directory")
        return cls(Path(top.stdout.strip()), common)

    # -- low level -------------------------------------------------------------------------
    def git(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        full_env = None
        if env:
            full_env = dict(os.environ)
            full_env.update(env)
        proc = subprocess.run(
            ["git", *args], cwd=self.root, input=input, capture_output=True, env=full_env
        )
        if check and proc.returncode != 0:
            message = proc.stderr.decode("utf-8", "replace").strip() or "git failed"
            raise GitError(f"git {args[0]}: {message}")
        return proc

    def git_text(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        return self.git(*args, env=env).stdout.decode("utf-8", "replace")

    # -- refs ------------------------------------------------------------------------------
    def resolve(self, ref: str) -> str:
        """The commit sha a ref names; a UsageError naming the ref when it does not exist."""
        proc = self.git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}",
                        check=False)
        if proc.returncode != 0:
            if not self.git_text("for-each-ref", "--count=1").strip():
                raise UsageError(f"{self.root}: the repository has no commits yet",
                                 hint="commit the registry first: git add registry && git commit -m "
                                      "'Add the model registry'")
            raise UsageError(
                f"unknown git ref '{ref}'",
                hint="name a branch, tag or commit that exists (see 'git branch -a')",
            )
        return proc.stdout.decode().strip()

    def try_resolve(self, ref: str) -> str | None:
        try:
            return self.resolve(ref)
        except UsageError:
            return None

    def current_branch(self) -> str | None:
        proc = self.git("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    @property
    def bare(self) -> bool:
        """A repository without a working tree (``discover`` roots it at its git directory)."""
        return self.root == self.git_dir

    def git_path(self, name: str) -> Path:
        """Where git keeps ``name`` (``index``, ``HEAD``…) for this checkout: a linked worktree has
        its own index, and ``GIT_INDEX_FILE`` moves it (``git rev-parse --git-path``)."""
        out = self.git_text("rev-parse", "--git-path", name).strip()
        return Path(out) if os.path.isabs(out) else self.root / out

    def uncommitted(self, paths: Iterable[str], committing: Mapping[str, str] | None = None) -> str:
        """``git status --porcelain`` lines of ``paths`` that differ from HEAD (staged, unstaged or
        untracked); empty when they are all clean. An untracked regular file that already holds
        exactly the blob ``committing`` maps its path to (a dataset saved under registry/ and then
        attached) is not counted: committing it loses nothing of the user's."""
        status = self.git_text("status", "--porcelain", "--untracked-files=all", "--", *paths)
        committing = committing or {}

        def same_as_committed(line: str) -> bool:
            path = line[3:]
            if not line.startswith("?? ") or path not in committing:
                return False  # a quoted (unusual) name is not in committing either
            target = self.root / path
            return not target.is_symlink() and target.is_file() and \
                blob_id(target.read_bytes()) == committing[path]

        return "\n".join(line for line in status.splitlines() if not same_as_committed(line)).strip()

    def is_ancestor(self, older: str, newer: str) -> bool:
        return self.git("merge-base", "--is-ancestor", older, newer, check=False).returncode == 0

    # -- reading trees and blobs -------------------------------------------------------------
    def tree(self, commit: str, prefix: str) -> dict[str, Entry]:
        """Every file under ``prefix`` at ``commit`` (recursively): path → Entry."""
        out = self.git("ls-tree", "-r", "-z", "--full-tree", commit, "--", prefix).stdout
        entries: dict[str, Entry] = {}
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, kind, blob = meta.split(b" ")
            if kind != b"blob":
                continue  # submodules ("commit") are not registry content
            entries[name.decode("utf-8", "surrogateescape")] = Entry(mode.decode(), blob.decode())
        return entries

    def read_blobs(self, blobs: Iterable[str]) -> dict[str, bytes]:
        """Contents of many blobs in one ``git cat-file --batch`` round-trip."""
        wanted = list(dict.fromkeys(blobs))
        if not wanted:
            return {}
        out = self.git("cat-file", "--batch", input=("\n".join(wanted) + "\n").encode()).stdout
        result: dict[str, bytes] = {}
        pos = 0
        for blob in wanted:
            header_end = out.index(b"\n", pos)
            header = out[pos:header_end].split(b" ")
            if header[-1] == b"missing":
                raise GitError(f"git object {blob} is missing from the repository")
            size = int(header[2])
            start = header_end + 1
            result[blob] = out[start : start + size]
            pos = start + size + 1
        return result

    def read_blob(self, blob: str) -> bytes:
        return self.read_blobs([blob])[blob]

    def changed_paths(self, old: str, new: str, prefix: str) -> list[str]:
        out = self.git("diff", "--name-only", "-z", "--no-renames", old, new, "--", prefix).stdout
        return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]

    # -- history ---------------------------------------------------------------------------
    def log(self, ref: str, paths: Iterable[str], limit: int | None = None) -> list[Commit]:
        """Commits reachable from ``ref`` that touched any of ``paths``, newest first."""
        sep, end = "\x1f", "\x1e"
        fmt = sep.join(["%H", "%an", "%ae", "%aI", "%s", "%b"]) + end
        args = ["log", f"--format={fmt}", "--no-renames"]
        if limit:
            args.append(f"-n{limit}")
        out = self.git_text(*args, ref, "--", *paths)
        commits = []
        for record in out.split(end):
            record = record.strip("\n")
            if not record:
                continue
            sha, author, email, date, subject, body = record.split(sep)
            commits.append(Commit(sha, author, email, date, subject, body.strip()))
        return commits

    def parents(self, commit: str) -> list[str]:
        return self.git_text("rev-list", "--parents", "-n1", commit).split()[1:]


ZERO_SHA = "0" * 40


class CommitWriter:
    """Builds commits from git objects alone: a temporary index file, ``write-tree`` and
    ``commit-tree``. The user's index, working tree and HEAD are never read or written, so two
    proposals can run side by side in one repository."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo

    def write_blob(self, data: bytes) -> str:
        return self.repo.git("hash-object", "-w", "--stdin", input=data).stdout.decode().strip()

    def write_tree(self, base_commit: str | None, changes: Mapping[str, tuple[str, str] | None]) -> str:
        """The tree of ``base_commit`` with ``changes`` (path → (mode, blob), or None to delete)."""
        import tempfile

        fd, index_path = tempfile.mkstemp(prefix="modelgit-index-", dir=self.repo.git_dir)
        os.close(fd)
        os.unlink(index_path)  # git wants to create the index file itself
        env = {"GIT_INDEX_FILE": index_path}
        try:
            if base_commit:
                self.repo.git("read-tree", base_commit, env=env)
            lines = []
            for path, change in changes.items():
                if change is None:
                    lines.append(f"0 {ZERO_SHA}\t{path}")
                else:
                    lines.append(f"{change[0]} {change[1]}\t{path}")
            if lines:
                payload = ("\n".join(lines) + "\n").encode()
                self.repo.git("update-index", "--index-info", input=payload, env=env)
            return self.repo.git("write-tree", env=env).stdout.decode().strip()
        finally:
            for leftover in (index_path, index_path + ".lock"):
                if os.path.exists(leftover):
                    os.unlink(leftover)

    def commit(self, tree: str, parents: Iterable[str], message: str) -> str:
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self.repo.git(*args, input=message.encode()).stdout.decode().strip()

    def create_branch(self, branch: str, commit: str) -> None:
        """Create ``refs/heads/<branch>`` atomically; a UsageError if it already exists."""
        proc = self.repo.git("update-ref", "-m", "modelgit proposal", f"refs/heads/{branch}",
                             commit, ZERO_SHA, check=False)
        if proc.returncode != 0:
            if self.repo.try_resolve(f"refs/heads/{branch}"):
                # It did not exist when the proposal started: a concurrent one won the race.
                raise UsageError(f"branch '{branch}' already exists: another process created it "
                                 "while modelgit was working; nothing was committed",
                                 hint="pass --branch NAME, or delete it: git branch -D " + branch)
            raise GitError(f"could not create branch '{branch}': "
                           f"{proc.stderr.decode('utf-8', 'replace').strip()}")

    def commit_on_current_branch(self, branch: str, new: str, old: str,
                                 changes: Mapping[str, tuple[str, str] | None], reason: str) -> None:
        """Move the checked-out ``branch`` from ``old`` to ``new`` and bring the index and working
        tree of the changed paths along, in git's own safe order, so that the branch and the index
        never disagree about the paths changed:

        1. take ``index.lock`` (as every git command that writes the index does); if another git
           process holds it, nothing is changed;
        2. under the lock, check again that the branch is at ``old`` and the paths are clean, and
           build the next index in a temporary file: the current index with ``changes``;
        3. move the branch from ``old`` to ``new`` atomically (``update-ref`` with the old value):
           if another process moved it meanwhile, nothing is changed;
        4. write the changed files into the working tree from that temporary index
           (``checkout-index``: git's filters, line endings and symlink checks apply);
        5. install the temporary index by writing it into ``index.lock`` and renaming the lock over
           the index, which also releases the lock.

        A failure after step 3 still installs the new index (so it never stages the reverse of
        the commit) and raises a GitError that starts with "committed …"."""
        index = self.repo.git_path("index")
        lock = Path(str(index) + ".lock")
        temp = Path(str(index) + f".modelgit-{os.getpid()}")
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            raise GitError(
                f"another git process is changing this repository ({lock} exists); "
                "nothing was changed",
                hint="run the command again when it has finished; if no git process is running, "
                     f"one crashed and left the lock behind: remove {lock}",
            ) from None
        env = {"GIT_INDEX_FILE": str(temp)}
        moved = "branch '{branch}' moved while modelgit was working (another commit landed on it " \
                "first); nothing was changed"
        try:  # until the branch moves, any failure leaves everything as it was
            if self.repo.current_branch() != branch or self.repo.resolve("HEAD") != old:
                raise GitError(moved.format(branch=branch), hint="run the command again")
            dirty = self.repo.uncommitted(changes, {path: change[1] for path, change in changes.items() if change})
            if dirty:
                raise UsageError("the files this change touches have uncommitted edits; nothing was "
                                 "changed", hint="commit or stash them first:\n" + dirty)
            if index.exists():
                temp.write_bytes(index.read_bytes())
            else:
                self.repo.git("read-tree", old, env=env)
            lines = [f"0 {ZERO_SHA}\t{path}" if change is None else f"{change[0]} {change[1]}\t{path}"
                     for path, change in changes.items()]
            self.repo.git("update-index", "--index-info", input=("\n".join(lines) + "\n").encode(),
                          env=env)
            proc = self.repo.git("update-ref", "-m", reason, f"refs/heads/{branch}", new, old, check=False)
            if proc.returncode != 0:
                raise GitError(moved.format(branch=branch), hint="run the command again")
        except BaseException:
            os.close(fd)
            lock.unlink(missing_ok=True)
            self._remove_temp_index(temp)
            raise
        # The commit has landed: from here on, report what happened, never "failed".
        problem = self._checkout_paths(changes, env)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(temp.read_bytes())
                out.flush()
                os.fsync(out.fileno())
            os.replace(lock, index)
        except OSError as exc:
            lock.unlink(missing_ok=True)
            problem = f"the index could not be written: {exc.strerror}"
        finally:
            self._remove_temp_index(temp)
        if problem:
            raise GitError(f"committed {new[:12]} on {branch}, but the working tree could not be "
                           f"updated: {problem}",
                           hint="the commit is there; bring the files along with: "
                                f"git checkout HEAD -- {' '.join(changes)}")

    @staticmethod
    def _remove_temp_index(temp: Path) -> None:
        temp.unlink(missing_ok=True)
        Path(str(temp) + ".lock").unlink(missing_ok=True)

    def _checkout_paths(self, changes: Mapping[str, tuple[str, str] | None], env: Mapping[str, str]) -> str:
        """Write the changed paths from the index ``env`` names into the working tree; the reason
        it failed, or an empty string."""
        present = [path for path, change in changes.items() if change is not None]
        if present:
            proc = self.repo.git("checkout-index", "-u", "-f", "--", *present, env=env, check=False)
            if proc.returncode != 0:
                return proc.stderr.decode("utf-8", "replace").strip() or "git checkout-index failed"
        for path in (p for p, change in changes.items() if change is None):
            target = self.repo.root / path
            if any((self.repo.root / parent).is_symlink() for parent in Path(path).parents
                   if str(parent) != "."):
                continue  # never delete through a symlinked directory
            try:
                if target.is_symlink() or target.is_file():
                    target.unlink()
            except OSError as exc:
                return f"{path}: {exc.strerror}"
        return ""
