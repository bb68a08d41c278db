"""The only module that talks to git (a test checks that ``subprocess`` appears nowhere else).

It drives git's plumbing (``ls-tree``, ``cat-file --batch``, ``commit-tree``, ``update-ref``) as
subprocesses instead of going through GitPython: that reads 1,000 blobs in one round-trip, keeps
``modelgit --help`` free of GitPython's 60 ms import and its ``git version`` call on import, and
lets proposals build commits from a temporary index without touching the user's index, working
tree or HEAD.

Safe by construction: refs, URLs, remotes, branches and paths come from users and from commits, so
every call puts them after ``--end-of-options`` (refs) or ``--`` (paths), and a remote or URL that
looks like an option is refused before git runs. Git calls that talk to a remote may only use the
transports in ``GIT_ALLOW_PROTOCOL``, which modelgit sets itself (``file:https:ssh``, or
``$MODELGIT_GIT_PROTOCOLS``): a user's or a repository's gitconfig cannot widen it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from modelgit.errors import ConflictError, GitError, NotFoundError, UsageError

SYMLINK_MODE = "120000"
_LS_TREE_RECORD = re.compile(rb"(?:^|(?<=\0))([0-7]{6}) ([a-z]+) ([0-9a-f]{40,64})\t([^\0]*)\0")
_NOT_A_FILE = frozenset({"000000", "160000", "040000"})  # absent, a submodule, a directory


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of a tree: its mode (``100644``, ``120000`` for a symlink) and blob id."""

    mode: str
    blob: str


@dataclass(frozen=True, slots=True)
class FileChange:
    """One commit that changed a file, as :meth:`GitRepo.file_history` reports it: the commit, its
    author, message and trailers, and the file's blob before and after (``ZERO_SHA`` when the file
    did not exist on that side)."""

    commit: str
    parents: tuple[str, ...]
    author: str
    email: str
    date: str
    subject: str
    message: str
    trailers: Mapping[str, str]
    old_blob: str
    new_blob: str


@dataclass(frozen=True, slots=True)
class CommitMessage:
    commit: str
    message: str


DEFAULT_PROTOCOLS = "file:https:ssh"
PROTOCOLS_VARIABLE = "MODELGIT_GIT_PROTOCOLS"
_PROTOCOL_LIST = re.compile(r"^[a-z][a-z0-9+.-]*(:[a-z][a-z0-9+.-]*)*$")


def allowed_protocols() -> str:
    """The transports git may use to reach a remote: ``$MODELGIT_GIT_PROTOCOLS`` (colon-separated,
    e.g. ``file:https``) or ``file:https:ssh``. Read on every call, not at import."""
    value = os.environ.get(PROTOCOLS_VARIABLE, "").strip() or DEFAULT_PROTOCOLS
    if not _PROTOCOL_LIST.match(value):
        raise UsageError(f"{PROTOCOLS_VARIABLE}='{value}' is not a list of git transports",
                         hint="separate transport names with colons, e.g. file:https:ssh")
    return value


def _remote_env(prompt: bool = False) -> dict[str, str]:
    """The environment of a git call that talks to a remote. ``GIT_ALLOW_PROTOCOL`` overrides every
    ``protocol.*.allow`` setting, so ``ext::`` (which runs a command) and others stay closed."""
    env = {"GIT_ALLOW_PROTOCOL": allowed_protocols()}
    if not prompt:
        env["GIT_TERMINAL_PROMPT"] = "0"  # a server must fail, never wait for a password
    return env


def _refuse_option_like(what: str, value: str) -> None:
    """Refuse a remote, URL or branch name that git could read as an option (``--upload-pack=…``,
    ``-oProxyCommand=…``) before any git command sees it."""
    if value.startswith("-"):
        raise UsageError(f"{what} '{value}' starts with '-'; nothing was run",
                         hint=f"name a {what} that does not start with '-'")


def _run(args: list[str], cwd: Path, input: bytes | None = None,
         env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """The one place a git process starts."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    return subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, env=full_env)


def _stderr(proc: subprocess.CompletedProcess[bytes], default: str = "git failed") -> str:
    return proc.stderr.decode("utf-8", "replace").strip() or default


def toplevel(path: Path) -> Path | None:
    """The top-level directory of the working tree containing ``path``, or None outside one."""
    proc = _run(["rev-parse", "--show-toplevel"], path)
    return Path(proc.stdout.decode("utf-8", "surrogateescape").strip()) if proc.returncode == 0 else None


def init_repository(root: Path) -> None:
    """``git init`` with ``main`` as the first branch; a UsageError with git's words on failure."""
    proc = _run(["init", "--quiet", "--initial-branch=main"], root)
    if proc.returncode != 0:
        raise UsageError(f"{root}: git init failed: {_stderr(proc, '')}")


def check_remote(remote: str, what: str = "remote") -> None:
    """Refuse a remote name or URL that git could read as an option."""
    _refuse_option_like(what, remote)


# Where a mirror's fetches land: nothing from a remote reaches refs/heads until the runtime has
# validated it and moved its served branch there (GitRepo.move_served_branch).
INCOMING = "refs/modelgit/incoming/"


def clone_mirror(url: str, dest: Path) -> None:
    """A bare repository at ``dest`` holding ``url``'s branches and tags under :data:`INCOMING`
    (a quarantine: its own ``refs/heads`` stay empty), over the allowed transports only; a GitError
    with git's words when it fails (nothing is cleaned up: ``dest`` is the caller's)."""
    check_remote(url, "git URL")
    _remote_env()  # a bad MODELGIT_GIT_PROTOCOLS is refused before anything is made
    proc = _run(["init", "--quiet", "--bare", "--", str(dest)], dest.parent)
    if proc.returncode != 0:
        raise GitError(_stderr(proc))
    GitRepo(dest, dest).fetch_mirror(url)


def init_bare_repository(dest: Path) -> None:
    """An empty bare repository at ``dest`` (a replica's feed cache); a GitError with git's words."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    proc = _run(["init", "--quiet", "--bare", "--", str(dest)], dest.parent)
    if proc.returncode != 0:
        raise GitError(_stderr(proc))


def merge_file(current: bytes, base: bytes, other: bytes) -> tuple[bytes, bool]:
    """Three-way merge of one file's contents as ``git merge-file -p`` does it: the merged bytes
    and whether a conflict is left in them (marked with ``<<<<<<<``)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="modelgit-merge-") as tmp:
        files = []
        for name, data in (("current", current), ("base", base), ("other", other)):
            file = Path(tmp) / name
            file.write_bytes(data)
            files.append(str(file))
        proc = _run(["merge-file", "-p", "--", *files], Path(tmp))
    # git merge-file exits with the number of conflicts (capped at 127), or negative on an error.
    if proc.returncode < 0 or proc.returncode > 127:
        raise GitError(f"git merge-file: {_stderr(proc)}")
    return proc.stdout, proc.returncode != 0


def _trailers(text: str) -> dict[str, str]:
    found = {}
    for line in text.strip().splitlines():
        key, colon, value = line.partition(":")
        if colon:
            found[key.strip()] = value.strip()
    return found


def blob_id(data: bytes) -> str:
    """Git's object id of a blob with this content (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class GitRepo:
    """A git repository on disk, read through plumbing commands."""

    def __init__(self, root: Path, git_dir: Path) -> None:
        self.root = root
        self.git_dir = git_dir
        # Object ids already found to name a commit: an id names the same object for good, so
        # asking git again (a process, 2-3 ms; a runtime's open asked three times) repeats it.
        self._commits: set[str] = set()

    @classmethod
    def discover(cls, path: str | os.PathLike[str] = ".") -> GitRepo:
        """The repository that contains ``path``; a UsageError when there is none."""
        start = Path(path)
        if not start.exists():
            raise UsageError(f"{start}: no such directory", hint="pass the path of a git repository")
        cwd = start if start.is_dir() else start.parent
        # The common case in one call: a checkout's top level and git directory.
        proc = _run(["rev-parse", "--git-common-dir", "--show-toplevel"], cwd)
        if proc.returncode == 0:
            git_dir, top = proc.stdout.decode("utf-8", "surrogateescape").splitlines()[:2]
            return cls(Path(top), (cwd / git_dir).resolve() if not os.path.isabs(git_dir) else Path(git_dir))
        # --show-toplevel fails in a bare repository (a server's copy, `git clone --bare`), which
        # has objects and refs but no working tree, and inside a .git directory: ask which it is.
        proc = _run(["rev-parse", "--is-bare-repository", "--git-common-dir"], cwd)
        if proc.returncode != 0:
            raise UsageError(
                f"{start.resolve()}: not a git repository",
                hint="run modelgit inside a git repository, or create one with 'modelgit init DIR'",
            )
        bare, git_dir = proc.stdout.decode("utf-8", "surrogateescape").splitlines()[:2]
        common = (cwd / git_dir).resolve() if not os.path.isabs(git_dir) else Path(git_dir)
        if bare == "true":
            return cls(common, common)
        top = toplevel(cwd)
        if top is None:  # inside .git of a repository with a working tree
            raise UsageError(f"{start.resolve()}: inside a git directory, not a working tree",
                             hint="run modelgit in the repository's top-level directory")
        return cls(top, common)

    # -- low level -------------------------------------------------------------------------
    # Private: callers use the typed methods below, each of which keeps operands (refs after
    # --end-of-options, paths after --) apart from options.
    def _git(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        proc = _run(list(args), self.root, input=input, env=env)
        if check and proc.returncode != 0:
            raise GitError(f"git {args[0]}: {_stderr(proc)}")
        return proc

    def _git_text(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        return self._git(*args, env=env).stdout.decode("utf-8", "replace")

    # -- refs ------------------------------------------------------------------------------
    def resolve(self, ref: str) -> str:
        """The commit sha a ref names; a UsageError naming the ref when it does not exist."""
        if ref in self._commits:
            return ref
        proc = self._git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}",
                        check=False)
        if proc.returncode != 0:
            if not self._git_text("for-each-ref", "--count=1").strip():
                raise UsageError(f"{self.root}: the repository has no commits yet",
                                 hint="commit the registry first: git add registry && git commit -m "
                                      "'Add the model registry'")
            raise NotFoundError(
                f"unknown git ref '{ref}'",
                hint="name a branch, tag or commit that exists (see 'git branch -a')",
            )
        commit = proc.stdout.decode().strip()
        self._commits.add(commit)
        return commit

    def try_resolve(self, ref: str) -> str | None:
        try:
            return self.resolve(ref)
        except UsageError:
            return None

    def current_branch(self) -> str | None:
        proc = self._git("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    @property
    def bare(self) -> bool:
        """A repository without a working tree (``discover`` roots it at its git directory)."""
        return self.root == self.git_dir

    def git_path(self, name: str) -> Path:
        """Where git keeps ``name`` (``index``, ``HEAD``…) for this checkout: a linked worktree has
        its own index, and ``GIT_INDEX_FILE`` moves it (``git rev-parse --git-path``)."""
        out = self._git_text("rev-parse", "--git-path", name).strip()
        return Path(out) if os.path.isabs(out) else self.root / out

    def uncommitted(self, paths: Iterable[str], committing: Mapping[str, str] | None = None) -> str:
        """``git status --porcelain`` lines of ``paths`` that differ from HEAD (staged, unstaged or
        untracked); empty when they are all clean. An untracked regular file that already holds
        exactly the blob ``committing`` maps its path to (a dataset saved under registry/ and then
        attached) is not counted: committing it loses nothing of the user's."""
        status = self._git_text("status", "--porcelain", "--untracked-files=all", "--", *paths)
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
        return self._git("merge-base", "--is-ancestor", "--end-of-options", older, newer,
                         check=False).returncode == 0

    # -- reading trees and blobs -------------------------------------------------------------
    def tree(self, commit: str, prefix: str) -> dict[str, Entry]:
        """Every file under ``prefix`` at ``commit`` (recursively): path → Entry."""
        out = self._git("ls-tree", "-r", "-z", "--full-tree", "--end-of-options", commit, "--",
                        prefix).stdout
        # One regex pass instead of splitting 10,000 records in Python (a third of the time). A
        # record starts at the output's start or after a NUL, which no path contains, so text in
        # a path can never be read as a record of its own.
        return {name.decode("utf-8", "surrogateescape"): Entry(mode.decode(), blob.decode())
                for mode, kind, blob, name in _LS_TREE_RECORD.findall(out)
                if kind == b"blob"}  # submodules ("commit") are not registry content

    def read_blobs(self, blobs: Iterable[str]) -> dict[str, bytes]:
        """Contents of many blobs in one ``git cat-file --batch`` round-trip."""
        wanted = list(dict.fromkeys(blobs))
        if not wanted:
            return {}
        out = self._git("cat-file", "--batch", input=("\n".join(wanted) + "\n").encode()).stdout
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
        out = self._git("diff", "--name-only", "-z", "--no-renames", "--end-of-options", old, new,
                        "--", prefix).stdout
        return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]

    def changed_entries(self, old: str, new: str) -> dict[str, Entry | None]:
        """Every file of the whole tree that differs between commits ``old`` and ``new``: path →
        its Entry at ``new``, or None when it is not a file there (deleted, or a submodule). One
        ``git diff --raw``, whose cost follows the change: git skips the subtrees the two commits
        share (10,000 files, one changed: 3 ms, against 30 ms to list the tree).

        >>> repo.changed_entries("HEAD~1", "HEAD")                        # doctest: +SKIP
        {'registry/models/calling_score.yaml': Entry(mode='100644', blob='5d1c…')}
        """
        out = self._git("diff", "--raw", "-z", "--no-renames", "--no-abbrev", "--no-color",
                        "--ignore-submodules=none", "--end-of-options", old, new, "--").stdout
        fields = out.split(b"\0")
        changed: dict[str, Entry | None] = {}
        # Records are ":old-mode new-mode old-blob new-blob status" NUL path NUL.
        for meta, name in zip(fields[0::2], fields[1::2], strict=False):
            if not meta.startswith(b":"):
                continue
            _, new_mode, _, new_blob, _ = meta[1:].split(b" ")
            path = name.decode("utf-8", "surrogateescape")
            mode = new_mode.decode()
            changed[path] = None if mode in _NOT_A_FILE else Entry(mode, new_blob.decode())
        return changed

    # -- history ---------------------------------------------------------------------------
    def file_history(self, commit: str, path: str, *, first_parent: bool = True,
                     limit: int | None = None) -> list[FileChange]:
        """Commits reachable from ``commit`` that changed ``path``, newest first, with the file's
        blob before and after each.

        ``first_parent=True`` walks the first-parent line (a merged pull request counts as its
        merge commit, diffed against the branch it was merged into); ``False`` lists every
        non-merge commit of the full history (without -m git prints no diff for a merge, and
        counting merges in ``limit`` would show fewer commits than asked for)."""
        # Separators carry a fresh random token: a commit message cannot contain it, so no
        # author can shift the fields of a record or split one in two.
        token = os.urandom(8).hex()
        sep, end = f"%x1f{token}%x1f", f"%x1e{token}%x1e"
        fields = ["%H", "%P", "%an", "%ae", "%aI", "%s", "%(trailers:only,unfold)", "%B"]
        args = ["log", f"--format={end}{sep.join(fields)}{sep}", "--raw", "--no-abbrev", "--no-renames"]
        if first_parent:
            args += ["--first-parent", "--diff-merges=first-parent"]
        else:
            args += ["--full-history", "--no-merges"]
        if limit:
            args.append(f"-n{limit}")
        out = self._git_text(*args, "--end-of-options", commit, "--", path)
        changes = []
        for record in out.split(f"\x1e{token}\x1e"):
            if not record.strip():
                continue
            sha, parents, author, email, date, subject, trailers, message, raw = \
                record.split(f"\x1f{token}\x1f")
            blobs = [line.split("\t")[0].split()[2:4] for line in raw.strip().splitlines()
                     if line.startswith(":") and line.endswith("\t" + path)]
            if blobs:
                changes.append(FileChange(sha, tuple(parents.split()), author, email, date, subject,
                                          message, _trailers(trailers), *blobs[-1]))
        return changes

    def commit_messages(self, tips: Iterable[str], exclude: Iterable[str] = ()) -> list[CommitMessage]:
        """The messages of the commits reachable from ``tips`` but not from ``exclude`` (``git log
        tips --not exclude``), newest first."""
        tips = list(tips)
        if not tips:
            return []  # git log with no revision would list HEAD's history
        token = os.urandom(8).hex()
        revisions = [*tips, *(f"^{commit}" for commit in exclude)]
        out = self._git_text("log", f"--format=%H%x1f{token}%x1f%B%x1e{token}%x1e",
                             "--end-of-options", *revisions, "--")
        found = []
        for record in out.split(f"\x1e{token}\x1e"):
            sha, _, message = record.strip().partition(f"\x1f{token}\x1f")
            if sha:
                found.append(CommitMessage(sha, message))
        return found

    def parents(self, commit: str) -> list[str]:
        return self._git_text("rev-list", "--parents", "-n1", "--end-of-options", commit, "--").split()[1:]

    # -- branches and remotes ---------------------------------------------------------------
    def check_branch_name(self, name: str) -> None:
        """A UsageError unless ``name`` is a valid new branch name (``git check-ref-format
        --branch``, which also refuses a name that starts with '-')."""
        if name.startswith("-") or self._git("check-ref-format", "--branch", name,
                                             check=False).returncode != 0:
            raise UsageError(f"'{name}' is not a valid branch name")

    def push(self, remote: str, refspec: str) -> None:
        """``git push remote refspec`` over the allowed transports; a GitError with git's words
        when it fails."""
        check_remote(remote)
        proc = self._git("push", "--quiet", "--end-of-options", remote, refspec, check=False,
                         env=_remote_env(prompt=True))
        if proc.returncode != 0:
            raise GitError(_stderr(proc, "git push failed"))

    def fetch_mirror(self, url: str) -> None:
        """Fetch every branch and tag of ``url`` into :data:`INCOMING` (force, prune), over the
        allowed transports; a GitError with git's words when the remote cannot be reached."""
        check_remote(url, "git URL")
        proc = self._git("fetch", "--quiet", "--prune", "--no-tags", "--end-of-options", url,
                         f"+refs/heads/*:{INCOMING}heads/*", f"+refs/tags/*:{INCOMING}tags/*",
                         check=False, env=_remote_env())
        if proc.returncode != 0:
            raise GitError(_stderr(proc))

    def set_modelgit_ref(self, name: str, commit: str) -> None:
        """Point ``name``, a ref under ``refs/modelgit/`` (a feed's quarantine), at ``commit``."""
        if not name.startswith("refs/modelgit/") or ".." in name:
            raise UsageError(f"'{name}' is not a modelgit ref")
        proc = self._git("update-ref", "-m", "modelgit feed", "--end-of-options", name, commit, check=False)
        if proc.returncode != 0:
            raise GitError(_stderr(proc))

    def commit_message(self, commit: str) -> str:
        """The message of one commit, read with ``cat-file`` (no history walk)."""
        proc = self._git("cat-file", "commit", "--end-of-options", commit, check=False)
        if proc.returncode != 0:
            raise GitError(f"{commit[:12]} is not a commit of this repository")
        return proc.stdout.decode("utf-8", "replace").partition("\n\n")[2]

    def move_served_branch(self, branch: str, commit: str) -> None:
        """Point ``refs/heads/<branch>`` at ``commit``: a mirror's served branch, moved only after
        the commit was validated. A GitError when git refuses."""
        self.check_branch_name(branch)
        proc = self._git("update-ref", "-m", "modelgit: validated and served", "--end-of-options",
                         f"refs/heads/{branch}", commit, check=False)
        if proc.returncode != 0:
            raise GitError(_stderr(proc))

    # -- a first commit ----------------------------------------------------------------------
    def has_commits(self) -> bool:
        return self._git("rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode == 0

    def commit_paths(self, paths: Iterable[str], message: str) -> str:
        """Stage and commit ``paths`` and nothing else the user may have staged (``commit --only``);
        the new commit's id, or a GitError with git's words."""
        paths = list(paths)
        proc = self._git("add", "--", *paths, check=False)
        if proc.returncode == 0:
            proc = self._git("commit", "--quiet", "--only", "-m", message, "--", *paths, check=False)
        if proc.returncode != 0:
            raise GitError(_stderr(proc))
        return self._git_text("rev-parse", "HEAD").strip()


ZERO_SHA = "0" * 40


class CommitWriter:
    """Builds commits from git objects alone: a temporary index file, ``write-tree`` and
    ``commit-tree``. The user's index, working tree and HEAD are never read or written, so two
    proposals can run side by side in one repository."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo

    def write_blob(self, data: bytes) -> str:
        return self.repo._git("hash-object", "-w", "--stdin", input=data).stdout.decode().strip()

    def write_blobs(self, contents: Iterable[bytes]) -> list[str]:
        """Write many blobs in one ``hash-object --stdin-paths`` round-trip (through temporary
        files: git reads paths, not a stream of contents); their ids in order."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="modelgit-blobs-", dir=self.repo.git_dir) as tmp:
            paths = []
            for index, data in enumerate(contents):
                path = Path(tmp) / str(index)
                path.write_bytes(data)
                paths.append(path)
            return self.write_blob_files(paths)

    def write_blob_files(self, paths: Iterable[Path]) -> list[str]:
        """Write the files at ``paths`` (absolute, read as they are: no filters) as blobs in one
        round-trip; their ids in order."""
        names = [str(Path(p).resolve()) for p in paths]
        if not names:
            return []
        if any("\n" in name for name in names):
            raise UsageError("a file name with a newline cannot be written as a blob")
        out = self.repo._git("hash-object", "-w", "--no-filters", "--stdin-paths",
                             input=("\n".join(names) + "\n").encode("utf-8", "surrogateescape")).stdout
        ids = out.decode().split()
        if len(ids) != len(names):
            raise GitError(f"git hash-object wrote {len(ids)} of {len(names)} blobs")
        return ids

    def write_tree(self, base_commit: str | None, changes: Mapping[str, tuple[str, str] | None]) -> str:
        """The tree of ``base_commit`` with ``changes`` (path → (mode, blob), or None to delete)."""
        import tempfile

        fd, index_path = tempfile.mkstemp(prefix="modelgit-index-", dir=self.repo.git_dir)
        os.close(fd)
        os.unlink(index_path)  # git wants to create the index file itself
        env = {"GIT_INDEX_FILE": index_path}
        try:
            if base_commit:
                self.repo._git("read-tree", "--end-of-options", base_commit, env=env)
            lines = []
            for path, change in changes.items():
                if change is None:
                    lines.append(f"0 {ZERO_SHA}\t{path}")
                else:
                    lines.append(f"{change[0]} {change[1]}\t{path}")
            if lines:
                payload = ("\n".join(lines) + "\n").encode()
                self.repo._git("update-index", "--index-info", input=payload, env=env)
            return self.repo._git("write-tree", env=env).stdout.decode().strip()
        finally:
            for leftover in (index_path, index_path + ".lock"):
                if os.path.exists(leftover):
                    os.unlink(leftover)

    def commit(self, tree: str, parents: Iterable[str], message: str,
               env: Mapping[str, str] | None = None) -> str:
        """A commit of ``tree`` (``env`` may set its ``GIT_AUTHOR_*``/``GIT_COMMITTER_*``)."""
        # commit-tree knows no --end-of-options; its operands are object ids made or resolved here.
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self.repo._git(*args, input=message.encode(), env=env).stdout.decode().strip()

    def create_branch(self, branch: str, commit: str) -> None:
        """Create ``refs/heads/<branch>`` atomically; a UsageError if it already exists."""
        proc = self.repo._git("update-ref", "-m", "modelgit proposal", "--end-of-options",
                             f"refs/heads/{branch}",
                             commit, ZERO_SHA, check=False)
        if proc.returncode != 0:
            if self.repo.try_resolve(f"refs/heads/{branch}"):
                # It did not exist when the proposal started: a concurrent one won the race.
                raise ConflictError(f"branch '{branch}' already exists: another process created it "
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
                self.repo._git("read-tree", "--end-of-options", old, env=env)
            lines = [f"0 {ZERO_SHA}\t{path}" if change is None else f"{change[0]} {change[1]}\t{path}"
                     for path, change in changes.items()]
            self.repo._git("update-index", "--index-info", input=("\n".join(lines) + "\n").encode(),
                          env=env)
            proc = self.repo._git("update-ref", "-m", reason, "--end-of-options", f"refs/heads/{branch}",
                                  new, old, check=False)
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
            proc = self.repo._git("checkout-index", "-u", "-f", "--", *present, env=env, check=False)
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
