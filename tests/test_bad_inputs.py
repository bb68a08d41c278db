"""A corpus of broken registries and the exact text ``modelgit validate`` shows for each.

Every directory under ``tests/bad_inputs/`` is one case, built as a real git repository:

* ``registry/...`` — files laid over a copy of the example registry (``registry/`` at the repo
  root), usually one model file with one mistake in it. Open the file to check a line:col.
* ``expected.txt`` / ``stderr.txt`` — the exact stdout and stderr of ``modelgit validate``;
  ``{head}`` stands for the 12-digit commit validated and ``{root}`` for the repository path.
* ``case.json`` (optional) — ``args`` (extra arguments after ``validate``), ``exit`` (default 1),
  ``base`` (commit the untouched example first, the change on top, as a pull request would),
  ``delete`` (paths removed), ``generate`` (the name of a function below that writes inputs too
  binary or too big to commit) and ``no_git`` (no repository at all).

Overlay text may hold ``{{sha256:PATH}}``, replaced by the sha256 of that file once it is written,
so a generated artifact can be recorded with a matching digest and fail only where it should.

Each case also proves that validate writes nothing a user would see: ``git status``, refs and HEAD
are unchanged (the ``.git/modelgit/`` cache may appear), there is no traceback, and a second run,
served from that cache, prints the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import EXAMPLE, make_repo
from modelgit.yamlio import MAX_BYTES

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
MODEL = "registry/models/calling_score.yaml"
ARTIFACT = "registry/artifacts/calling_score_v2_0_real.onnx"


# -- inputs written by code ----------------------------------------------------------------------
def _nesting_too_deep(root: Path) -> None:
    # libyaml's recursive composer segfaults near 30,000 levels; the reader must stop at 64.
    (root / MODEL).write_text("name: calling_score\nversions: " + "[" * 30_000 + "\n")


def _file_too_big(root: Path) -> None:
    data = (root / MODEL).read_bytes()
    padding = MAX_BYTES + 1 - len(data) - len(b"# \n")
    (root / MODEL).write_bytes(data + b"# " + b"x" * padding + b"\n")  # one byte over the limit


def _non_utf8_bytes(root: Path) -> None:
    data = (root / MODEL).read_bytes().replace(b"owner: ml-platform", "owner: jürgen".encode("latin-1"))
    (root / MODEL).write_bytes(data)


def _control_character(root: Path) -> None:
    # An ANSI colour code pasted from a terminal.
    data = (root / MODEL).read_text().replace("fits a role", "fits a \x1b[1mrole\x1b[0m")
    (root / MODEL).write_text(data)


def _symlink_escape(root: Path) -> None:
    # The artifact is a committed symlink to a file outside the repository (here: next to it).
    artifact = root / ARTIFACT
    (root.parent / "outside.onnx").write_bytes(artifact.read_bytes())
    artifact.unlink()
    os.symlink("../../../outside.onnx", artifact)


def _onnx_truncated(root: Path) -> None:
    data = (root / ARTIFACT).read_bytes()
    (root / ARTIFACT).write_bytes(data[: len(data) // 2])


def _onnx_random_bytes(root: Path) -> None:
    (root / ARTIFACT).write_bytes(random.Random(20260101).randbytes(2048))


def _integer_too_long(root: Path) -> None:
    # Past Python's 4,300-digit limit on int(str): the reader must say so, not crash.
    data = (root / MODEL).read_text().replace("    weight: 0.3\n", "    weight: " + "9" * 5000 + "\n")
    (root / MODEL).write_text(data)


def _duplicate_key_unicode(root: Path) -> None:
    # "café" twice: once precomposed (NFC, U+00E9), once as "e" + combining acute (NFD). Written
    # by code because an editor saving the case file might normalise one into the other.
    data = (root / MODEL).read_text().replace(
        "metrics: {test_loss: 0.0198}", "metrics: {caf\u00e9: 0.0198, cafe\u0301: 0.0201}")
    (root / MODEL).write_text(data)


GENERATORS: dict[str, Callable[[Path], None]] = {
    "nesting_too_deep": _nesting_too_deep,
    "file_too_big": _file_too_big,
    "non_utf8_bytes": _non_utf8_bytes,
    "control_character": _control_character,
    "symlink_escape": _symlink_escape,
    "onnx_truncated": _onnx_truncated,
    "onnx_random_bytes": _onnx_random_bytes,
    "integer_too_long": _integer_too_long,
    "duplicate_key_unicode": _duplicate_key_unicode,
}


# -- building a case -----------------------------------------------------------------------------
def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return proc.stdout


def _commit(root: Path, message: str) -> None:
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "--allow-empty", "-m", message)


def _apply(case_dir: Path, meta: dict[str, object], root: Path) -> None:
    overlay = case_dir / "registry"
    written = []
    if overlay.is_dir():
        for source in sorted(p for p in overlay.rglob("*") if p.is_file()):
            relative = source.relative_to(case_dir)
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            written.append(target)
    for path in meta.get("delete", []):  # type: ignore[attr-defined]
        (root / path).unlink()
    generate = meta.get("generate")
    if generate:
        GENERATORS[str(generate)](root)

    def digest(match: re.Match[str]) -> str:
        return hashlib.sha256((root / match.group(1)).read_bytes()).hexdigest()

    for target in written:
        text = target.read_text()
        if "{{sha256:" in text:
            target.write_text(re.sub(r"\{\{sha256:([^}]+)\}\}", digest, text))


def _build(case: str, tmp_path: Path) -> tuple[Path, dict[str, object]]:
    case_dir = CORPUS / case
    meta_file = case_dir / "case.json"
    meta: dict[str, object] = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    root = tmp_path / "repo"
    if meta.get("no_git"):
        root.mkdir()
        shutil.copytree(EXAMPLE, root / "registry")
        _apply(case_dir, meta, root)
        return root, meta
    make_repo(root)
    shutil.copytree(EXAMPLE, root / "registry")
    if meta.get("base"):
        _commit(root, "Add example registry")
    _apply(case_dir, meta, root)
    _commit(root, f"Break the registry: {case}")
    return root, meta


def _visible_state(root: Path) -> dict[str, str]:
    """What a user could notice changing: the working tree, HEAD, the index's view, every ref."""
    git_dir = root / ".git"
    if not git_dir.exists():
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()
        }
    state = {
        "status": _git(root, "status", "--porcelain", "--untracked-files=all", "--ignored"),
        "HEAD": (git_dir / "HEAD").read_text(),
        "packed-refs": (git_dir / "packed-refs").read_text() if (git_dir / "packed-refs").exists() else "",
    }
    for ref in sorted((git_dir / "refs").rglob("*")):
        if ref.is_file():
            state[ref.relative_to(git_dir).as_posix()] = ref.read_text()
    return state


# -- the tests -----------------------------------------------------------------------------------
def test_corpus_has_every_required_case() -> None:
    required = {
        "duplicate_key", "anchor_alias", "merge_key", "explicit_tag", "multiple_documents",
        "nesting_too_deep", "file_too_big", "non_utf8_bytes", "non_string_key", "billion_laughs",
        "version_unquoted", "sha256_octal", "path_traversal", "absolute_path", "symlink_escape",
        "sha256_mismatch", "onnx_truncated", "onnx_random_bytes", "traffic_sums_to_99",
        "traffic_archived_version", "traffic_unknown_version", "two_active_versions", "typo_key",
        "base_active_to_staging", "base_artifact_edited_in_place", "base_version_deleted",
        "missing_artifact", "name_mismatch", "empty_file", "yaml_syntax_error",
        "control_character", "invalid_status", "weight_out_of_range", "unknown_ref",
        "not_a_git_repo",
    }
    assert required <= set(CASES), sorted(required - set(CASES))
    assert len(CASES) >= 32
    for case in CASES:
        assert (CORPUS / case / "expected.txt").is_file(), case
        assert (CORPUS / case / "stderr.txt").is_file(), case
    generated = {json.loads(p.read_text()).get("generate") for p in CORPUS.glob("*/case.json")}
    assert set(GENERATORS) == generated - {None}


def _matches(text: str, expected: str) -> bool:
    """``text == expected``, where ``{library}`` in expected stands for a third-party library's own
    wording (libyaml, onnxruntime): ours — code, position, hint — is asserted, theirs may change."""
    pattern = ".+?".join(re.escape(part) for part in expected.split("{library}"))
    return re.fullmatch(pattern, text) is not None


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case: str, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # "not a repo" must stay so
    root, meta = _build(case, tmp_path)
    head = "" if meta.get("no_git") else _git(root, "rev-parse", "HEAD").strip()[:12]

    def expected(name: str) -> str:
        text = (CORPUS / case / name).read_text()
        return text.replace("{head}", head).replace("{root}", str(root.resolve()))

    args = [str(a) for a in meta.get("args", [])]  # type: ignore[attr-defined]
    before = _visible_state(root)
    for attempt in ("cold", "cached"):
        code, out, err = cli("-C", str(root), "validate", *args)
        assert "Traceback" not in out + err, err
        assert _matches(out, expected("expected.txt")), f"{attempt} run: stdout differs:\n{out}"
        assert err == expected("stderr.txt"), f"{attempt} run: stderr differs"
        assert code == meta.get("exit", 1), f"{attempt} run: exit code {code}"
        assert _visible_state(root) == before, f"{attempt} run wrote to the repository"
