"""Validation of a registry at a ref: per-file findings, artifacts and datasets at that ref, and the
rules between a base ref and the head (what a pull request may change)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from modelgit import rules
from modelgit.artifacts import ArtifactFacts
from modelgit.errors import Finding, InvalidError, LimitError, TransientError
from modelgit.gitstore import SYMLINK_MODE, Entry, GitRepo
from modelgit.sessions import Limits
from modelgit.snapshot import MODELS_DIR, Loader, Snapshot, file_refs, model_id_of, model_path

if TYPE_CHECKING:
    from modelgit.spec import Model

MAX_LINK_HOPS = 8
TRANSIENT_CODE = "ART004"  # an artifact could not be checked this time (memory, threads, I/O)


@dataclass
class Report:
    commit: str | None
    base: str | None
    findings: list[Finding]
    models: int = 0
    versions: int = 0
    artifacts_checked: int = 0
    notes: list[str] = field(default_factory=list)
    snapshot: Snapshot | None = field(default=None, repr=False, compare=False)
    # Some finding may not repeat (an artifact could not be checked for want of memory, a
    # thread, I/O): the runtime retries such a commit instead of refusing it for good.
    transient: bool = False
    # With a base: the landed commits that head..base says it reverts (validate.reverted_commits).
    reverted: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "commit": self.commit,
            "base": self.base,
            "models": self.models,
            "versions": self.versions,
            "artifacts_checked": self.artifacts_checked,
            "findings": [f.as_dict() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class _Checked:
    """The outcome of checking one model file's artifacts and datasets, with every path its
    lookups read: it holds at a later commit as long as the file is the same and none of those
    paths (nor anything under them) changed in between."""

    touched: frozenset[str]
    findings: tuple[Finding, ...]
    count: int


class _CheckState:
    """The outcomes of the last complete commit checked, indexed so that the next commit's check
    costs what changed: by model, by path read (to find the models a changed path concerns), the
    models with findings and the number of files checked."""

    def __init__(self, commit: str) -> None:
        self.commit = commit
        self.kept: dict[str, _Checked] = {}
        self.by_path: dict[str, set[str]] = {}
        self.flagged: set[str] = set()  # kept models whose outcome has findings
        self.unkept: set[str] = set()  # checked, but not carried over (see _carried)
        self.count = 0

    def add(self, model_id: str, checked: _Checked) -> None:
        self.kept[model_id] = checked
        self.count += checked.count
        if checked.findings:
            self.flagged.add(model_id)
        for path in checked.touched:
            self.by_path.setdefault(path, set()).add(model_id)

    def drop(self, model_id: str) -> None:
        self.unkept.discard(model_id)
        checked = self.kept.pop(model_id, None)
        if checked is None:
            return
        self.count -= checked.count
        self.flagged.discard(model_id)
        for path in checked.touched:
            models = self.by_path.get(path)
            if models is not None:
                models.discard(model_id)
                if not models:
                    del self.by_path[path]

    def affected(self, changed: frozenset[str]) -> set[str]:
        """The models whose outcome a change of ``changed`` paths may alter: their own file
        changed, a path they read or a directory above it changed, or they are not carried."""
        found = set(self.unkept)
        for path in changed:
            model_id = model_id_of(path)
            if model_id is not None:
                found.add(model_id)
            while path:
                found.update(self.by_path.get(path, ()))
                path = path.rpartition("/")[0]
        return found


class Validator:
    """Validates snapshots of one repository; keeps parsed files and artifact facts between runs.

    Validating a newer commit after an older one costs what changed: the snapshot is the older
    one plus the files ``git diff`` names (:meth:`Loader.load`), and only the models whose file or
    referenced files changed have their artifacts and datasets checked again."""

    def __init__(self, repo: GitRepo, loader: Loader | None = None) -> None:
        self.repo = repo
        self.loader = loader or Loader(repo)
        self.facts = ArtifactFacts(repo.git_dir)
        self._refs: dict[tuple[str, str], list[Any]] = {}
        self._outcomes: dict[tuple[Any, ...], tuple[Finding, ...]] = {}
        self._checked: _CheckState | None = None
        self._clean: dict[str, bool] = {}  # path → rules.path_is_clean(path)

    def validate(
        self,
        ref: str | None = "HEAD",
        *,
        base: str | None = None,
        worktree: bool = False,
        check_artifacts: bool = True,
    ) -> Report:
        near = self._checked.commit if self._checked is not None else None
        snapshot = self.loader.load(ref, worktree=worktree, near=near)
        findings = snapshot.findings()
        files = snapshot.files
        report = Report(snapshot.commit, None, findings, len(files), snapshot.summary().versions,
                        snapshot=snapshot)
        if check_artifacts:
            report.artifacts_checked, report.transient = self._check_snapshot(snapshot, findings)
        if base is not None:
            base_snapshot = self.loader.load(base, near=snapshot.commit)
            report.base = base_snapshot.commit
            undo = {}
            if snapshot.commit is not None:
                report.reverted = reverted_commits(self.repo, base_snapshot.commit, snapshot.commit)
                undo = reverted_moves(self.loader, report.reverted)
            findings.extend(base_findings(base_snapshot, snapshot, undo))
        findings.sort(key=lambda f: (f.path, f.line or 0, f.col or 0, f.code))
        return report

    def validate_change(self, base: Snapshot, changes: Mapping[str, bytes | None], models: Sequence[str],
                        reverts: Sequence[str] = ()) -> Snapshot:
        """Validate the registry ``base`` would become with ``changes`` (path → new content, None
        deletes), with the same pipeline as :meth:`validate` and the base-ref rules, for the files
        of ``models`` and the changed model files; ``reverts``: the commits the change says it
        reverts. Returns the snapshot after the change; InvalidError with every finding if anything
        is wrong. Nothing is written.

        >>> after = Validator(repo).validate_change(base, proposal.changes, ["calling_score"])  # doctest: +SKIP
        """
        after = self.loader.overlay(base, changes)
        touched = {model_path(m) for m in models} | {p for p in changes if p.startswith(MODELS_DIR)}
        findings = [f for f in after.findings() if f.path in touched]
        if not findings:
            self._check_files(after, [m for m in models if m in after.files and after.files[m].valid], findings)
            undo = reverted_moves(self.loader, list(reverts)) if reverts else {}
            findings.extend(f for f in base_findings(base, after, undo) if f.path in touched)
        if findings:
            raise InvalidError("the change would make the registry invalid; nothing was committed",
                               findings=findings)
        return after

    def forget_except(self, snapshot: Snapshot) -> None:
        """Keep only what the files of ``snapshot`` need: a long-lived validator (the runtime's)
        then holds one entry per live model file, however many commits it has seen."""
        live = {(model_path(model_id), parsed.blob) for model_id, parsed in snapshot.files.items()}
        self._refs = {key: refs for key, refs in self._refs.items() if key in live}
        self._outcomes = {key: found for key, found in self._outcomes.items() if key[:2] in live}
        self._clean = {}
        if self._checked is not None and self._checked.commit != snapshot.commit:
            self._checked = None

    def _check_snapshot(self, snapshot: Snapshot, findings: list[Finding]) -> tuple[int, bool]:
        """Check the artifacts and datasets of every typed model of ``snapshot`` (models refused
        only by a semantic rule too: a recorded signature that differs from the file is then
        reported as that, ART003, not only as the breaking change it seems to be, RULE020).

        When ``snapshot`` was made from the last complete commit checked (Loader.load), only the
        models that a changed path concerns are checked again; the others keep their outcome.
        Returns (files checked, whether any finding is transient)."""
        state, self._checked = self._checked, None  # an exception below leaves no half-updated state
        files = snapshot.files
        if snapshot.commit is None or not snapshot.complete:
            self._checked = state  # nothing to record: the last commit's outcomes still hold
            state = None
            ids = [model_id for model_id, parsed in files.items() if parsed.schema_ok]
        elif state is not None and snapshot.commit == state.commit:
            ids = sorted(state.unkept)
            for model_id in ids:
                state.drop(model_id)
        elif state is not None and snapshot.since is not None and snapshot.since[0] == state.commit:
            affected = state.affected(snapshot.since[1])
            for model_id in affected:
                state.drop(model_id)
            ids = sorted(m for m in affected if m in files and files[m].schema_ok)
        else:
            state = _CheckState(snapshot.commit)
            ids = [model_id for model_id, parsed in files.items() if parsed.schema_ok]
        outcomes, transient = self._check_models(snapshot, ids)
        if state is None:
            for _, found, _ in outcomes.values():
                findings.extend(found)
            return sum(count for _, _, count in outcomes.values()), transient
        assert snapshot.commit is not None
        state.commit = snapshot.commit
        count = 0
        for model_id, (checked, found, counted) in outcomes.items():
            if checked is not None:
                state.add(model_id, checked)
            else:
                state.unkept.add(model_id)
                findings.extend(found)
                count += counted
        for model_id in sorted(state.flagged):
            findings.extend(state.kept[model_id].findings)
        self._checked = state
        return state.count + count, transient

    def _check_files(self, snapshot: Snapshot, model_ids: Sequence[str], findings: list[Finding]) -> tuple[int, bool]:
        """Check the artifacts and datasets of ``model_ids`` (typed models of ``snapshot``).
        Returns (files checked, whether any finding is transient)."""
        outcomes, transient = self._check_models(snapshot, model_ids)
        for _, found, _ in outcomes.values():
            findings.extend(found)
        return sum(count for _, _, count in outcomes.values()), transient

    def _check_models(self, snapshot: Snapshot, model_ids: Sequence[str]
                      ) -> tuple[dict[str, tuple[_Checked | None, tuple[Finding, ...], int]], bool]:
        """Artifacts and datasets must exist at the ref, inside the repo, with the recorded sha256
        and (for ONNX files) the recorded signature.

        The outcome for one model file depends only on its blob and the blobs its paths resolve
        to, so it is remembered under those ids: re-validating after one file changed re-checks
        only that file. An outcome with a transient finding is not remembered. Returns, per model,
        its outcome to carry to later commits (None when it may not be carried: see _carried), its
        findings and the number of files checked; and whether any finding is transient."""
        outcomes: dict[str, tuple[_Checked | None, tuple[Finding, ...], int]] = {}
        pending: list[tuple[tuple[Any, ...], str, str, list[Any], set[str], int]] = []
        clean = self._clean
        for model_id in model_ids:
            parsed = snapshot.files[model_id]
            path = model_path(model_id)
            refs = self._refs.get((path, parsed.blob))
            if refs is None:
                # A model refused by a rule is checked too; its unsafe paths (already reported by
                # the path rules) are not looked up.
                refs = []
                for ref in parsed.refs:
                    ok = clean.get(ref[0])
                    if ok is None:
                        ok = clean[ref[0]] = rules.path_is_clean(ref[0])
                    if ok:
                        refs.append(ref)
                self._refs[(path, parsed.blob)] = refs
            touched: set[str] = set()
            resolved = [(ref, *_resolve(snapshot, ref[0], touched)) for ref in refs]
            key = (path, parsed.blob, tuple(e.blob if e else p for _, e, p in resolved))
            count = sum(1 for _, e, _ in resolved if e is not None)
            done = self._outcomes.get(key)
            if done is not None:
                outcomes[model_id] = (_carried(touched, done, count, resolved), done, count)
            else:
                pending.append((key, model_id, path, resolved, touched, count))
        limits = Limits.from_env()
        needed = [
            entry for _, _, _, resolved, _, _ in pending for (_, _, _, kind, _), entry, _ in resolved
            if entry is not None and (self.facts.digests.get(entry.blob) is None
                                      or (kind == "artifact" and not self.facts.knows_signature(entry.blob, limits)))
        ]
        contents = snapshot.source.read_many(("", e) for e in needed) if needed else {}
        # One model-check child for every artifact not known yet; only bytes that match their
        # recorded sha256 go to onnxruntime, even in the child.
        self.facts.prefetch_signatures([
            (entry.blob, contents[entry.blob]) for _, _, _, resolved, _, _ in pending
            for (_, _, sha256, kind, _), entry, _ in resolved
            if kind == "artifact" and entry is not None and entry.blob in contents
            and self.facts.sha256(entry.blob, contents[entry.blob]) == sha256])
        transient = False
        for key, model_id, path, resolved, touched, count in pending:
            found: list[Finding] = []
            for ref, entry, problem in resolved:
                self._check_ref(snapshot, path, ref, entry, problem, contents, found)
            if any(f.code == TRANSIENT_CODE for f in found):
                transient = True
                outcomes[model_id] = (None, tuple(found), count)
            else:
                self._outcomes[key] = tuple(found)
                outcomes[model_id] = (_carried(touched, tuple(found), count, resolved), tuple(found), count)
        if pending:
            self.facts.flush()
        return outcomes, transient

    def _check_ref(self, snapshot: Snapshot, path: str, ref: tuple[Any, ...], entry: Entry | None,
                   problem: tuple[str, str, str] | None, contents: dict[str, bytes],
                   findings: list[Finding]) -> None:
        target, jpath, sha256, kind, signature = ref
        if problem:
            findings.append(_at(snapshot, path, (*jpath, "path"), problem[0], problem[1], problem[2]))
            return
        assert entry is not None
        data = contents.get(entry.blob, b"")
        digest = self.facts.sha256(entry.blob, data)
        if digest != sha256:
            findings.append(_at(snapshot, path, (*jpath, "sha256"), "ART001",
                                f"{kind} sha256 mismatch: '{target}' has sha256 {digest}, "
                                "not the value recorded here",
                                "the file changed: register it as a new version; if the "
                                "recorded sha256 is a typo, correct it"))
            return
        if kind != "artifact":
            return
        try:
            actual = self.facts.signature(entry.blob, data)
        except TransientError as exc:
            findings.append(_at(snapshot, path, (*jpath, "path"), TRANSIENT_CODE,
                                f"artifact '{target}' could not be checked: {exc.message}",
                                "out of memory, threads or I/O, not the file: run again"))
            return
        except LimitError as exc:
            findings.append(_at(snapshot, path, (*jpath, "path"), "ART005",
                                f"artifact '{target}' {exc.message}", exc.hint))
            return
        except InvalidError as exc:
            findings.append(_at(snapshot, path, (*jpath, "path"), "ART002",
                                _onnx_problem(target, exc.message),
                                "a truncated copy or a Git LFS pointer fails like this; export "
                                "the model again and register it as a new version"))
            return
        if signature is not None and signature != actual:
            findings.append(_at(snapshot, path, (*jpath, "signature"), "ART003",
                                f"recorded signature does not match the ONNX file '{target}': "
                                f"recorded {_short_signature(signature)}, "
                                f"the file has {_short_signature(actual)}",
                                "re-register the artifact so the signature is read from it"))


def _carried(touched: set[str], found: tuple[Finding, ...], count: int, resolved: list[Any]) -> _Checked | None:
    """The outcome to carry to later commits, or None: a path that did not resolve is reported
    with the commit in its words ("does not exist at commit …"), so that outcome is never
    carried to another commit."""
    if all(entry is not None for _, entry, _ in resolved):
        return _Checked(frozenset(touched), found, count)
    return None


def referenced_files(model: Model) -> list[tuple[str, str, str]]:
    """(path, sha256, kind) of every repository file the validator checks for ``model``: the
    artifacts of its versions that are not archived (kind ``artifact``) and its evaluation dataset
    (``dataset``). What a replica needs besides the registry's YAML files."""
    return [(path, sha256, kind) for path, _, sha256, kind, _ in file_refs(model)]


_ORT_ERROR = re.compile(r"^\[ONNXRuntimeError\] : \d+ : (\w+) : (.*?)\.?$")


def _onnx_problem(target: str, message: str) -> str:
    """onnxruntime's words, with the file named and its ``[ONNXRuntimeError] : 7 :`` framing cut."""
    prefix = "not a loadable ONNX model: "
    if message.startswith(prefix):
        reason = message[len(prefix):]
        match = _ORT_ERROR.match(reason)
        if match:
            reason = f"{match.group(2)} ({match.group(1)})"
        return f"artifact '{target}' is not a loadable ONNX model: {reason}"
    if message == "the artifact is empty, not an ONNX model":
        return f"artifact '{target}' is empty, not an ONNX model"
    return f"artifact '{target}': {message}"


def _short_signature(signature: dict[str, Any]) -> str:
    def part(tensors: list[dict[str, Any]]) -> str:
        return ", ".join(f"{t['name']}:{t['type']}{t['shape']}" for t in tensors)

    return f"inputs [{part(signature['inputs'])}] outputs [{part(signature['outputs'])}]"


def resolve_path(snapshot: Snapshot, path: str) -> tuple[Entry | None, tuple[str, str, str] | None]:
    """The file a repo-relative path names at the snapshot, following symlinks that stay inside
    the repository. Returns (entry, None) or (None, (code, message, hint))."""
    return _resolve(snapshot, path, set())


def _resolve(snapshot: Snapshot, path: str,
             touched: set[str]) -> tuple[Entry | None, tuple[str, str, str] | None]:
    """:func:`resolve_path`, adding every path it looks up to ``touched``: the outcome depends on
    nothing else than the entries at those paths and whether anything lies under them."""
    current = path
    for _ in range(MAX_LINK_HOPS):
        touched.add(current)
        entry = snapshot.entries.get(current)
        if entry is None:
            entry = _lookup_outside_registry(snapshot, current)
        if entry is None:
            where = f"commit {snapshot.commit[:12]}" if snapshot.commit else "the working tree"
            special = _special_in_worktree(snapshot, current)
            if special is not None:
                return None, ("ART012", f"'{current}' is {special} in the working tree, not a file",
                              "put the file itself there; modelgit never opens special files")
            if _is_directory(snapshot, current):
                return None, ("ART011", f"'{current}' is a directory at {where}, not a file",
                              "point the path at the file inside it")
            return None, ("ART010", f"file '{current}' does not exist at {where}",
                          f"fix the path, or add and commit the file: git add {current}")
        if entry.mode != SYMLINK_MODE:
            return entry, None
        target = snapshot.source.read(current, entry).decode("utf-8", "replace")
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(current), target))
        if target.startswith("/") or joined == ".." or joined.startswith("../"):
            return None, ("PATH010", f"'{current}' is a symlink to '{target}', outside the repository",
                          "commit the file itself inside the repository instead of a link")
        current = joined
    return None, ("PATH011", f"'{path}' is a chain of more than {MAX_LINK_HOPS} symlinks",
                  "point the path at the file itself")


def _is_directory(snapshot: Snapshot, path: str) -> bool:
    prefix = path.rstrip("/") + "/"
    if any(name.startswith(prefix) for name in snapshot.entries):
        return True
    if snapshot.commit is None:
        return (snapshot.source.root / path).is_dir()
    return bool(snapshot.source.repo.tree(snapshot.commit, prefix))


def _lookup_outside_registry(snapshot: Snapshot, path: str) -> Entry | None:
    source = snapshot.source
    if snapshot.commit is None:
        # As git sees the tree: a path through a symlinked directory names nothing (git would
        # store the link, not the files behind it), so nothing is read outside the repository.
        if _through_linked_dir(source.root, path):
            return None
        return source.entry(source.root / path)
    return source.repo.tree(snapshot.commit, path).get(path)


def _through_linked_dir(root: Path, path: str) -> bool:
    """Whether a repo-relative path goes through a symlinked directory of the working tree."""
    return any((root / parent).is_symlink() for parent in list(reversed(PurePosixPath(path).parents))[1:])


def _special_in_worktree(snapshot: Snapshot, path: str) -> str | None:
    """What a working-tree path is when it is neither a file, a directory nor a symlink."""
    if snapshot.commit is not None or _through_linked_dir(snapshot.source.root, path):
        return None
    import os
    import stat

    try:
        mode = os.lstat(snapshot.source.root / path).st_mode
    except OSError:
        return None
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device")):
        if test(mode):
            return kind
    return None


def _at(snapshot: Snapshot, path: str, jpath: tuple[Any, ...], code: str, message: str,
        hint: str) -> Finding:
    from modelgit import yamlio  # PyYAML: only when a finding needs its line (10-20 ms to import)

    data = snapshot.read(path)
    line, col, _ = yamlio.locate(data, jpath)
    return Finding(path, line, col, code, message, hint)


def reverted_moves(loader: Loader, reverted: list[str]) -> dict[str, frozenset[tuple[str, str, str | None]]]:
    """Status moves that undo the moves of the ``reverted`` commits, per model id: reverting a
    promote puts the version back to staging, which is otherwise not a legal move, and reverting a
    register deletes the version it added (``(version, status, None)``). A merge commit is undone
    against its first parent, as ``git revert -m 1`` does."""
    moves: dict[str, set[tuple[str, str, str | None]]] = {}
    repo = loader.repo
    for sha in reverted:
        commit = repo.try_resolve(sha)
        parents = repo.parents(commit) if commit else []
        if not commit or not parents:
            continue
        before, after = loader.load(parents[0]), loader.load(commit)
        for model_id, new in after.models.items():
            old = before.models.get(model_id)
            if old is None:
                continue
            for version in new.versions:
                previous = old.version(version.version)
                if previous is None:
                    moves.setdefault(model_id, set()).add((version.version, version.status, None))
                elif previous.status != version.status:
                    moves.setdefault(model_id, set()).add(
                        (version.version, version.status, previous.status))
    return {model_id: frozenset(found) for model_id, found in moves.items()}


_REVERTS = re.compile(r"^(?:Modelgit-Reverts: |This reverts commit )([0-9a-f]{7,40})", re.MULTILINE)


def says_reverts(message: str) -> list[str]:
    """Commit ids (as written, maybe abbreviated) that a commit message says it reverts: git's own
    "This reverts commit X." or our ``Modelgit-Reverts:`` trailer."""
    return list(dict.fromkeys(_REVERTS.findall(message)))


def reverted_commits(repo: GitRepo, base: str, head: str) -> list[str]:
    """Commits that the commits in base..head say they revert (git's own message or our trailer),
    as full ids. Only commits that landed on the base count: a pull request cannot earn the
    revert allowances by "reverting" a commit of its own making."""
    text = "\n".join(found.message for found in repo.commit_messages([head], exclude=[base]))
    found = []
    for sha in says_reverts(text):
        commit = repo.try_resolve(sha)
        if commit is not None and repo.is_ancestor(commit, base) and commit not in found:
            found.append(commit)
    return found


def base_findings(base: Snapshot, head: Snapshot,
                  undo: dict[str, frozenset[tuple[str, str, str | None]]] | None = None) -> list[Finding]:
    """What a change from ``base`` to ``head`` may not do, per model."""
    findings: list[Finding] = []
    undo = undo or {}
    for model_id, base_parsed in base.files.items():
        parsed = head.files.get(model_id)
        if not base_parsed.valid or (parsed is not None and parsed.blob == base_parsed.blob):
            # The rules compare two models: the same file on both sides changes nothing (and
            # typing 10,000 unchanged models to learn that would cost seconds).
            continue
        base_model = base_parsed.spec
        path = model_path(model_id)
        # A model refused only by a per-file rule is still typed: the base-ref rules apply to it
        # too, so one run reports both (an active → staging move *and* the traffic it broke).
        head_model = parsed.typed if parsed is not None else None
        if head_model is None and parsed is not None:
            continue  # unreadable at head (YAML or schema): its own findings already say why
        data = head.read(path) if head_model is not None else b""
        for jpath, code, message, hint in rules.base_rules(base_model, head_model,
                                                               undo.get(model_id, frozenset())):
            if head_model is None or not jpath:
                findings.append(Finding(path, None, None, code, message, hint))
            else:
                from modelgit import yamlio

                line, col, _ = yamlio.locate(data, jpath)
                findings.append(Finding(path, line, col, code, message, hint))
    return findings
