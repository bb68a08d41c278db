"""The parse cache (.git/modelgit/parsed/): a file unchanged since any earlier run is not parsed
again, what comes back is what a fresh parse says, and the cache is never trusted when it should
not be (another blob, another modelgit version or parsing code, a damaged or foreign file, a
symlink) and never read half-written by concurrent processes.

Expected values come from parsing each file afresh with ``parse_model``/``parse_settings`` (no
cache involved); parses are counted by wrapping the loader's parse functions."""

from __future__ import annotations

import marshal
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import modelgit
from conftest import Repo
from modelgit import parsecache, snapshot
from modelgit.gitstore import GitRepo
from modelgit.snapshot import Loader, Snapshot
from modelgit.validate import Validator

SRC = Path(__file__).resolve().parent.parent / "src"

# Files that stop at each step of the pipeline, next to the valid example models.
A64, B64 = "a" * 64, "b" * 64
BROKEN = {
    "registry/models/yaml_error.yaml": "name: yaml_error\ntask: [regression\n",
    "registry/models/duplicate_key.yaml": "name: duplicate_key\nname: again\ntask: regression\n",
    "registry/models/float_version.yaml": (
        "name: float_version\ntask: regression\nversions:\n"
        f"  - version: 1.10\n    status: active\n    artifact: {{uri: 's3://b/m.onnx', sha256: '{A64}'}}\n"),
    "registry/models/schema_error.yaml": (
        "name: schema_error\ntask: regression\nversions:\n"
        f"  - version: v1\n    stauts: active\n    artifact: {{uri: 's3://b/m.onnx', sha256: '{A64}'}}\n"),
    "registry/models/rule_error.yaml": (
        "name: not_the_file_name\ntask: regression\nversions:\n"
        f"  - version: v1\n    status: active\n    artifact: {{uri: 's3://b/m.onnx', sha256: '{A64}'}}\n"
        f"  - version: v1\n    status: staging\n    artifact: {{uri: 's3://b/n.onnx', sha256: '{B64}'}}\n"),
}


@pytest.fixture
def mixed_repo(example_repo: Repo) -> Repo:
    for path, text in BROKEN.items():
        example_repo.write(path, text)
    example_repo.commit("Add broken models")
    return example_repo


class Parses:
    """Counts the files the loader parses from their bytes, by path."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        for name in ("_parse_model", "_parse_settings"):
            real = getattr(snapshot, name)
            monkeypatch.setattr(snapshot, name, self._counting(real))

    def _counting(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def parse(data: bytes, path: str, blob: str) -> Any:
            self.paths.append(path)
            return real(data, path, blob)

        return parse

    def take(self) -> list[str]:
        found, self.paths = sorted(self.paths), []
        return found


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Parses:
    return Parses(monkeypatch)


def registry_files(repo: Repo) -> list[str]:
    return sorted(p for p in repo.git("ls-files", "registry").splitlines()
                  if p.endswith(".yaml"))


def fresh(repo: Repo, ref: str = "HEAD") -> dict[str, Any]:
    """Every registry file parsed on its own from its bytes at ``ref``: path → (valid, findings,
    typed model)."""
    found = {}
    for path in registry_files(repo):
        data = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=repo.root, capture_output=True,
                              check=True).stdout
        parsed = _fresh_parse(data, path)
        found[path] = (parsed.valid, parsed.findings, parsed.typed)
    return found


def _fresh_parse(data: bytes, path: str) -> Any:
    # The private functions the public ones call, unwrapped: fresh() is not a counted parse.
    real = UNCOUNTED["settings" if path.endswith("modelgit.yaml") else "model"]
    return real(data, path, "")[0]


UNCOUNTED = {"model": snapshot._parse_model, "settings": snapshot._parse_settings}


def loaded(snap: Snapshot) -> dict[str, Any]:
    files = [*snap.files.values(), *([snap.settings] if snap.settings else [])]
    return {f.path: (f.valid, f.findings, f.typed) for f in files}


def pack_dir(repo: Repo) -> Path:
    return repo.root / ".git" / "modelgit" / "parsed" / parsecache.cache_key()


def pack_files(repo: Repo) -> list[Path]:
    return sorted(pack_dir(repo).glob("*.pack"))


def load(repo: Repo, ref: str = "HEAD") -> Snapshot:
    return Loader(GitRepo.discover(repo.root)).load(ref)


# -- what comes back is what a fresh parse says -----------------------------------------------------
def test_a_second_process_parses_nothing_and_gets_what_a_fresh_parse_says(mixed_repo: Repo,
                                                                        parses: Parses) -> None:
    everything = registry_files(mixed_repo)
    first = load(mixed_repo)
    assert parses.take() == everything
    assert pack_files(mixed_repo)
    second = load(mixed_repo)  # a new Loader: nothing in memory, only the cache on disk
    assert parses.take() == []
    expected = fresh(mixed_repo)
    assert loaded(second) == expected == loaded(first)
    # Every step of the pipeline is represented, so the comparison means something.
    assert {p for p, (valid, _, _) in expected.items() if not valid} == set(BROKEN)
    assert expected["registry/models/rule_error.yaml"][2] is not None  # typed, refused by a rule
    assert expected["registry/models/schema_error.yaml"][2] is None


def test_validating_from_the_cache_builds_no_typed_model_and_reports_the_same(
        mixed_repo: Repo, parses: Parses, monkeypatch: pytest.MonkeyPatch) -> None:
    before = Validator(GitRepo.discover(mixed_repo.root)).validate("HEAD")
    assert parses.take()
    built: list[str] = []
    real = snapshot._materialize
    monkeypatch.setattr(snapshot, "_materialize", lambda parsed: built.append(parsed.path) or real(parsed))
    after = Validator(GitRepo.discover(mixed_repo.root)).validate("HEAD")
    assert parses.take() == []
    assert built == []  # counts, findings and artifact checks come from the plain records
    assert after == before and after.findings == before.findings
    assert after.artifacts_checked == 6 and not after.valid
    # The typed models are there when asked for, and equal to a fresh parse's.
    models = after.snapshot.models
    assert sorted(built) == sorted(f"registry/models/{m}.yaml" for m in models)
    assert models == before.snapshot.models


def test_a_changed_blob_is_parsed_again_and_nothing_else(example_repo: Repo, parses: Parses) -> None:
    load(example_repo)
    parses.take()
    path = "registry/models/calling_score.yaml"
    example_repo.write(path, example_repo.read(path).replace("weight: 0.1", "weight: 0.2"))
    example_repo.commit("weight")
    snap = load(example_repo)
    assert parses.take() == [path]
    assert snap.model("calling_score").versions[0].weight == 0.2
    assert loaded(snap) == fresh(example_repo)
    load(example_repo, "HEAD~1")  # the old blob is still known
    assert parses.take() == []


def test_the_cache_is_keyed_by_path_as_well_as_blob(example_repo: Repo, parses: Parses) -> None:
    load(example_repo)
    parses.take()
    # The same bytes under another model id mean another model (its name no longer matches).
    example_repo.git("mv", "registry/models/calling_score.yaml", "registry/models/renamed.yaml")
    example_repo.commit("rename")
    snap = load(example_repo)
    assert parses.take() == ["registry/models/renamed.yaml"]
    assert [f.code for f in snap.files["renamed"].findings] == ["RULE001"]
    assert loaded(snap) == fresh(example_repo)


# -- never trusted across versions -------------------------------------------------------------------
def test_another_modelgit_version_parses_everything_again(example_repo: Repo, parses: Parses,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    load(example_repo)
    parses.take()
    old_dir = pack_dir(example_repo)
    monkeypatch.setattr(modelgit, "__version__", modelgit.__version__ + ".post1")
    assert pack_dir(example_repo) != old_dir
    snap = load(example_repo)
    assert parses.take() == registry_files(example_repo)
    assert loaded(snap) == fresh(example_repo)
    assert pack_files(example_repo) and not old_dir.exists()  # the other version's cache is gone
    load(example_repo)
    assert parses.take() == []


def test_other_parsing_code_parses_everything_again(example_repo: Repo, parses: Parses,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    load(example_repo)
    parses.take()
    monkeypatch.setattr(parsecache, "_code_digest", lambda: "another schema or parser")
    load(example_repo)
    assert parses.take() == registry_files(example_repo)


def test_the_key_digests_the_schemas_and_the_parsing_source(monkeypatch: pytest.MonkeyPatch) -> None:
    parsecache._code_digest.cache_clear()
    try:
        key = parsecache.cache_key()
        assert len(key) == parsecache.KEY_LENGTH
        assert set(parsecache._PARSE_MODULES) >= {"snapshot.py", "yamlio.py", "rules.py", "spec.py"}
    finally:
        parsecache._code_digest.cache_clear()
    # What the key digests is the schema the validators use.
    for name in ("model", "settings"):
        assert parsecache._schema_text(name) == modelgit.spec.schema_text(name)
    real = parsecache._schema_text
    try:
        monkeypatch.setattr(parsecache, "_schema_text", lambda name: real(name) + " ")
        assert parsecache.cache_key() != key
    finally:
        monkeypatch.undo()
        parsecache._code_digest.cache_clear()
    assert parsecache.cache_key() == key


@pytest.mark.parametrize("library", ["pydantic", "pydantic_core", "yaml", "jsonschema"])
def test_the_key_changes_with_an_installed_library(library: str, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    """Another install of pydantic, pydantic-core, PyYAML or jsonschema (another version, PyYAML
    with or without libyaml) is another key; read from the library's files, without importing it."""
    parsecache._code_digest.cache_clear()
    key = parsecache.cache_key()
    real = parsecache._installed
    assert library in real(library) and "__init__.py" in real(library)
    assert real("modelgit_no_such_library") == "modelgit_no_such_library: not installed"
    try:
        monkeypatch.setattr(parsecache, "_installed", lambda name: real(name) + ("x" if name == library else ""))
        parsecache._code_digest.cache_clear()
        assert parsecache.cache_key() != key
    finally:
        monkeypatch.undo()
        parsecache._code_digest.cache_clear()
    assert parsecache.cache_key() == key
    # A file added to (or changed in) the library's directory changes what identifies it.
    fake = tmp_path / library
    fake.mkdir()
    (fake / "__init__.py").write_text("__version__ = '1'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.invalidate_caches()
    saved = sys.modules.pop(library, None)
    try:
        before = parsecache._installed(library)
        (fake / "_ext.so").write_bytes(b"\0")
        assert parsecache._installed(library) != before
    finally:
        if saved is not None:
            sys.modules[library] = saved


# -- damaged, foreign or linked cache files ------------------------------------------------------------
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-40])


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(3).randbytes(path.stat().st_size))


def _flipped_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _directory(path: Path) -> None:
    path.unlink()
    (path / "inside").mkdir(parents=True)


def _wrong_type(path: Path) -> None:
    # A whole, well-framed pack whose payload is a list, not a dict.
    _rewrite(path, [1, 2, 3])


def _unsound_records(path: Path) -> None:
    # A whole, well-framed pack whose records are not what snapshot.py writes.
    records = marshal.loads(path.read_bytes()[parsecache._HEADER.size:])
    _rewrite(path, {key: ("not", "a", "record") if i % 2 else (True, ((1,),), 1, (), None, None)
                    for i, key in enumerate(records)})


def _valid_model_without_value(path: Path) -> None:
    records = marshal.loads(path.read_bytes()[parsecache._HEADER.size:])
    _rewrite(path, {key: (True, (), 2, (), None, None) for key in records})


def _unsound_rows(path: Path) -> None:
    # Every record whole but its summary row: a valid model's is no longer a row (a number where
    # a status count goes, an int percent, ...), and the settings and invalid files get one
    # where there must be none.
    records = marshal.loads(path.read_bytes()[parsecache._HEADER.size:])
    damaged = [("regression",), ("regression", None, None, None, (("v1", 100),), ()), "not a row",
               ("regression", None, None, "v1", (), (("active", 1.5),))]
    row = ("regression", None, None, "v1", (("v1", 100.0),), (("active", 1),))
    _rewrite(path, {key: (*record[:4], damaged[i % len(damaged)] if record[4] is not None else row, record[5])
                    for i, (key, record) in enumerate(records.items())})


def _rewrite(path: Path, payload: Any) -> None:
    path.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        parsecache._write_pack(fd, path.name, parsecache.cache_key(), {}, marshal.dumps(payload))
    finally:
        os.close(fd)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


DAMAGE = {
    "truncated": _truncate, "garbage": _garbage, "flipped_byte": _flipped_byte, "directory": _directory,
    "wrong_type": _wrong_type, "unsound_records": _unsound_records,
    "valid_model_without_value": _valid_model_without_value, "fifo": _fifo,
    "unsound_rows": _unsound_rows,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_pack_is_ignored_and_rewritten(mixed_repo: Repo, parses: Parses, damage: str) -> None:
    load(mixed_repo)
    parses.take()
    [pack] = pack_files(mixed_repo)
    DAMAGE[damage](pack)
    snap = load(mixed_repo)
    assert parses.take() == registry_files(mixed_repo)  # nothing was trusted
    assert loaded(snap) == fresh(mixed_repo)
    # Rewritten whole: the next process parses nothing and gets the same.
    assert all(p.is_file() for p in pack_files(mixed_repo))
    again = load(mixed_repo)
    assert parses.take() == []
    assert loaded(again) == fresh(mixed_repo)


@pytest.mark.parametrize("what", ["parsed", "key"])
@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_a_link_or_file_in_place_of_a_cache_directory_is_never_followed(
        mixed_repo: Repo, parses: Parses, tmp_path: Path, what: str, kind: str) -> None:
    # A cache planted outside the repository, complete and well formed: never read, never written.
    elsewhere = make_outside_cache(mixed_repo, tmp_path)
    parses.take()
    before = {p: p.read_bytes() for p in elsewhere.rglob("*") if p.is_file()}
    place = mixed_repo.root / ".git" / "modelgit" / "parsed"
    if what == "key":
        place.mkdir(parents=True)
        place = place / parsecache.cache_key()
        target = elsewhere / parsecache.cache_key()
    else:
        place.parent.mkdir(parents=True)
        target = elsewhere
    if kind == "symlink":
        place.symlink_to(target)
    else:
        place.write_text("not a directory\n")
    snap = load(mixed_repo)
    assert parses.take() == registry_files(mixed_repo)
    assert loaded(snap) == fresh(mixed_repo)
    assert {p: p.read_bytes() for p in elsewhere.rglob("*") if p.is_file()} == before
    # Ours to fix: the link or file was replaced by a real directory with a pack in it.
    assert not place.is_symlink() and place.is_dir() and pack_files(mixed_repo)
    load(mixed_repo)
    assert parses.take() == []


def test_a_linked_modelgit_directory_is_left_alone(mixed_repo: Repo, parses: Parses, tmp_path: Path) -> None:
    elsewhere = make_outside_cache(mixed_repo, tmp_path)
    parses.take()
    outside = tmp_path / "outside-modelgit"
    outside.mkdir()
    os.symlink(elsewhere, outside / "parsed")
    (mixed_repo.root / ".git" / "modelgit").symlink_to(outside)
    load(mixed_repo)
    assert parses.take() == registry_files(mixed_repo)
    load(mixed_repo)
    assert parses.take() == registry_files(mixed_repo)  # no cache at all, rather than through a link
    assert sorted(p.name for p in outside.iterdir()) == ["parsed"]


def make_outside_cache(repo: Repo, tmp_path: Path) -> Path:
    """A sound cache for ``repo``'s files, made in another clone and moved out of the repository;
    its records are altered so that reading them would show (every file valid with no findings)."""
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(repo.root), str(other)], check=True)
    Loader(GitRepo.discover(other)).load("HEAD")
    elsewhere = tmp_path / "elsewhere"
    (other / ".git" / "modelgit" / "parsed").rename(elsewhere)
    [pack] = sorted(elsewhere.glob("*/*.pack"))
    records = marshal.loads(pack.read_bytes()[parsecache._HEADER.size:])
    forged = {key: (valid, (), versions, refs, row, value)
              for key, (valid, _, versions, refs, row, value) in records.items()}
    _rewrite(pack, forged)
    return elsewhere


def test_a_few_misses_in_a_large_cache_are_parsed_rather_than_loading_it(
        example_repo: Repo, parses: Parses, monkeypatch: pytest.MonkeyPatch) -> None:
    load(example_repo)  # the four registry files
    parses.take()
    size = sum(p.stat().st_size for p in pack_files(example_repo))
    monkeypatch.setattr(parsecache, "PARSE_EQUIVALENT_BYTES", size // 4 + 1)  # worth it for 4, not 3
    loader = Loader(GitRepo.discover(example_repo.root))
    files = [(path, entry) for path, entry in loader.repo.tree(example_repo.head(), "registry").items()
             if path.endswith(".yaml")]
    loader._parse(files[:3], snapshot._GitSource(loader.repo))
    assert parses.take() == sorted(path for path, _ in files[:3])
    assert loader.cache._records is None  # never read
    monkeypatch.setattr(parsecache, "PARSE_EQUIVALENT_BYTES", size)  # the cache grew by a delta: any miss loads it
    assert loaded(load(example_repo)) == fresh(example_repo)
    assert parses.take() == []


# -- never a transient outcome -------------------------------------------------------------------------
def test_a_parse_that_fails_is_not_cached(example_repo: Repo, parses: Parses,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = snapshot.yamlio.load

    def failing(data: bytes, path: str) -> Any:
        if path.endswith("outcome_prediction.yaml"):
            raise MemoryError
        return real(data, path)

    monkeypatch.setattr(snapshot.yamlio, "load", failing)
    with pytest.raises(MemoryError):
        load(example_repo)
    monkeypatch.setattr(snapshot.yamlio, "load", real)
    parses.take()
    snap = load(example_repo)
    assert "registry/models/outcome_prediction.yaml" in parses.take()
    assert loaded(snap) == fresh(example_repo)


# -- bounded ----------------------------------------------------------------------------------------------
def _commit_weights(repo: Repo, count: int) -> Iterator[str]:
    path = "registry/models/calling_score.yaml"
    text = repo.read(path)
    for index in range(count):
        repo.write(path, text.replace("weight: 0.1", f"weight: 0.{index + 1:02d}"))
        yield repo.commit(f"weight {index}")


def test_deltas_are_merged_into_one_base(example_repo: Repo, monkeypatch: pytest.MonkeyPatch,
                                         parses: Parses) -> None:
    monkeypatch.setattr(parsecache, "MAX_DELTAS", 3)
    load(example_repo)
    counts = []
    for _ in _commit_weights(example_repo, 8):
        load(example_repo)  # a new process each time: one delta each
        counts.append(len(pack_files(example_repo)))
    assert max(counts) <= 4 and "base.pack" in [p.name for p in pack_files(example_repo)]
    parses.take()
    history = example_repo.git("rev-list", "HEAD").splitlines()
    for commit in history:  # every blob ever parsed is still there
        load(example_repo, commit)
    assert parses.take() == []


def test_over_the_bound_only_the_records_in_use_are_kept(example_repo: Repo, monkeypatch: pytest.MonkeyPatch,
                                                        parses: Parses) -> None:
    commits = [example_repo.head(), *_commit_weights(example_repo, 6)]
    for commit in commits:
        load(example_repo, commit)
    monkeypatch.setattr(parsecache, "MAX_RECORDS", 5)
    monkeypatch.setattr(parsecache, "MAX_DELTAS", 1)
    # 10 records (settings, 3 models, 6 more blobs of one model); the next process uses the 4 of
    # HEAD and adds one, and its compaction keeps only those 5.
    example_repo.write("registry/models/new_one.yaml", BROKEN["registry/models/yaml_error.yaml"])
    example_repo.commit("one more")
    load(example_repo)
    [pack] = pack_files(example_repo)
    assert len(marshal.loads(pack.read_bytes()[parsecache._HEADER.size:])) == 5
    parses.take()
    load(example_repo)
    assert parses.take() == []
    load(example_repo, commits[0])
    assert parses.take() == ["registry/models/calling_score.yaml"]


def test_a_read_only_cache_directory_costs_parses_not_errors(example_repo: Repo, parses: Parses) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    base = example_repo.root / ".git" / "modelgit"
    base.mkdir()
    base.chmod(0o500)
    try:
        load(example_repo)
        load(example_repo)
    finally:
        base.chmod(0o700)
    assert parses.take() == sorted(registry_files(example_repo) * 2)
    assert loaded(load(example_repo)) == fresh(example_repo)


# -- concurrent processes ----------------------------------------------------------------------------------
WORKER = textwrap.dedent("""
    import hashlib, random, sys
    from pathlib import Path
    from modelgit import parsecache

    git_dir, seed, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    parsecache.MAX_DELTAS = 3  # compact often, so that compactions race with writes and reads

    def expected(key):
        # Large enough that a write takes several system calls.
        digest = hashlib.sha256(key.encode()).digest()
        return (True, (), len(key), ((key, ("evaluation", "dataset"), digest.hex(), "dataset", None),),
                digest * 2000)

    rng = random.Random(seed)
    keys = [(f"registry/models/m{i}.yaml", f"{i:040x}") for i in range(60)]
    hits = misses = 0
    for _ in range(rounds):
        cache = parsecache.ParseCache(git_dir)
        for path, blob in rng.sample(keys, 20):
            found = cache.get(path, blob)
            if found is not None and parsecache.is_stored_value(found[4]):
                found = (*found[:4], parsecache.read_value(found[4]))  # read back from its pack
            if found is None:
                misses += 1
            elif found == expected(parsecache.record_key(path, blob)):
                hits += 1
            else:
                print("BAD", path, repr(found)[:200]); sys.exit(1)
        for path, blob in rng.sample(keys, 3):
            cache.put(path, blob, expected(parsecache.record_key(path, blob)))
        cache.flush()
    print(hits, misses)
""")


def test_concurrent_processes_never_read_a_half_written_record(tmp_path: Path) -> None:
    git_dir = tmp_path / "repo.git"
    git_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(git_dir), str(seed), "40"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for seed in range(4)]
    outcomes = [worker.communicate(timeout=240) for worker in workers]
    for worker, (out, err) in zip(workers, outcomes, strict=True):
        assert worker.returncode == 0, out + err
    hits = sum(int(out.split()[0]) for out, _ in outcomes)
    assert hits > 100  # the processes did read each other's records
    leftovers = [p.name for p in git_dir.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []


LOADER_WORKER = textwrap.dedent("""
    import json, sys
    from modelgit.gitstore import GitRepo
    from modelgit.snapshot import Loader

    root, rounds = sys.argv[1], int(sys.argv[2])
    expected = json.loads(sys.stdin.read())
    for _ in range(rounds):
        snap = Loader(GitRepo.discover(root)).load("HEAD")
        files = [*snap.files.values(), snap.settings]
        got = {f.path: [f.valid, [x.as_dict() for x in f.findings]] for f in files}
        if got != expected:
            print("MISMATCH", json.dumps(got)[:500]); sys.exit(1)
""")


def test_concurrent_loaders_get_what_a_fresh_parse_says(mixed_repo: Repo) -> None:
    expected = {path: [valid, [f.as_dict() for f in findings]]
                for path, (valid, findings, _) in fresh(mixed_repo).items()}
    import json

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    workers = [subprocess.Popen([sys.executable, "-c", LOADER_WORKER, str(mixed_repo.root), "6"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env) for _ in range(3)]
    for worker in workers:
        out, err = worker.communicate(json.dumps(expected), timeout=240)
        assert worker.returncode == 0, out + err


def _row_by_hand(model_id: str, model: Any) -> dict[str, Any]:
    """A summary row of ``show`` read off a typed model attribute by attribute."""
    statuses: dict[str, int] = {}
    for version in model.versions:
        statuses[version.status] = statuses.get(version.status, 0) + 1
    actives = [v.version for v in model.versions if v.status == "active"]
    traffic = {str(k): float(v) for k, v in model.traffic.items()} if model.traffic else \
        {actives[0]: 100.0} if actives else {}
    return {"model": model_id, "task": model.task, "owner": model.owner, "description": model.description,
            "active": actives[0] if actives else None, "traffic": traffic, "statuses": statuses}


def test_the_show_table_from_the_cache_index_equals_the_one_from_typed_models(mixed_repo: Repo) -> None:
    """`show`'s table reads each row from the cache's index instead of building 10,000 typed
    models or decompressing their stored values; each row must be what the typed model gives (ints
    in traffic become floats, a missing traffic is 100 % to the active version, missing owner and
    description are None)."""
    from modelgit import views

    mixed_repo.write("registry/models/plain_shapes.yaml", (
        "name: plain_shapes\ntask: regression\nversions:\n"
        f"  - version: v1\n    status: deprecated\n    artifact: {{uri: 's3://b/m.onnx', sha256: '{A64}'}}\n"
        f"  - version: '2'\n    status: active\n    artifact: {{uri: 's3://b/n.onnx', sha256: '{B64}'}}\n"
        f"  - version: v3\n    status: staging\n    artifact: {{uri: 's3://b/o.onnx', sha256: '{A64}'}}\n"
        "traffic: {'2': 74, v3: 26}\n"))
    mixed_repo.write("registry/models/no_traffic.yaml", (
        "name: no_traffic\ntask: generation\nowner: team-a\ndescription: hosted\nversions:\n"
        "  - version: v1\n    status: active\n    artifact: {provider: openrouter, model_id: a/b}\n"))
    mixed_repo.write("registry/models/no_active.yaml", (
        "name: no_active\ntask: regression\nretired: true\nversions:\n"
        f"  - version: v1\n    status: deprecated\n    artifact: {{uri: 's3://b/m.onnx', sha256: '{A64}'}}\n"))
    mixed_repo.commit("Three more shapes")
    Loader(GitRepo.discover(mixed_repo.root)).load("HEAD")  # parses and fills the cache
    cached = Loader(GitRepo.discover(mixed_repo.root)).load("HEAD")
    stored = {mid: f._stored for mid, f in cached.files.items()}
    models, invalid = views.show_stream(cached, versions=False)
    rows = list(models)
    # The cached path ran: no typed model was built, no stored value read.
    assert all(f._typed is None and f._stored is stored[mid] for mid, f in cached.files.items())
    expected = [_row_by_hand(mid, f.typed) for mid, f in cached.files.items() if f.valid]
    assert rows == expected and len(rows) >= 6
    assert [[type(v) for v in row["traffic"].values()] for row in rows] == \
        [[type(v) for v in row["traffic"].values()] for row in expected]
    assert invalid == sorted(mid for mid, f in cached.files.items() if not f.valid)
    by_id = {row["model"]: row for row in rows}
    assert by_id["plain_shapes"]["traffic"] == {"2": 74.0, "v3": 26.0}
    assert by_id["plain_shapes"]["statuses"] == {"deprecated": 1, "active": 1, "staging": 1}
    assert by_id["no_traffic"]["traffic"] == {"v1": 100.0} and by_id["no_traffic"]["owner"] == "team-a"
    assert by_id["no_active"]["active"] is None and by_id["no_active"]["traffic"] == {}
    # A file this process parsed gives the same rows from its typed model.
    fresh_rows = [views.model_summary(mid, f.typed, versions=False) for mid, f in cached.files.items() if f.valid]
    assert fresh_rows == expected


WARM_SHOW = textwrap.dedent("""
    import sys
    from modelgit.cli import main
    sys.argv = ["modelgit", "-C", sys.argv[1], "show"]
    try:
        main()
    except SystemExit as exit:
        code = exit.code
    print("IMPORTED", sorted({"pydantic", "modelgit.spec", "jsonschema", "rich", "yaml"} & set(sys.modules)), code,
          file=sys.stderr)
""")


def test_a_warm_show_imports_no_typed_model_and_prints_what_a_cold_one_does(mixed_repo: Repo) -> None:
    """Warm (the parse cache filled by an earlier process, nothing changed), `show` reads every row
    from the cache's index: neither the pydantic models nor PyYAML are imported, and it prints the table a
    process without the cache prints."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}

    def show() -> tuple[str, str]:
        done = subprocess.run([sys.executable, "-c", WARM_SHOW, str(mixed_repo.root)], capture_output=True,
                              text=True, env=env, check=True)
        return done.stdout, done.stderr.strip().splitlines()[-1]

    cold_out, cold_imported = show()
    assert "'modelgit.spec'" in cold_imported  # parsed: the typed models were built
    assert pack_files(mixed_repo)
    warm_out, warm_imported = show()
    assert warm_imported == "IMPORTED [] 0"
    assert warm_out == cold_out and "calling_score" in warm_out


def test_history_reads_each_version_of_the_file_once_through_the_parse_cache(example_repo: Repo,
                                                                            parses: Parses) -> None:
    from modelgit.views import history

    path = "registry/models/calling_score.yaml"
    example_repo.write(path, example_repo.read(path).replace("owner:", "# an edit\nowner:", 1))
    example_repo.commit("Edit calling_score")
    # Its versions, from git itself: the blob of the file at each commit that changed it.
    commits = example_repo.git("rev-list", "HEAD", "--", path).split()
    versions = {example_repo.git("rev-parse", f"{c}:{path}").strip() for c in commits}
    assert len(versions) >= 2
    first = history(GitRepo.discover(example_repo.root), "calling_score")
    assert parses.take() == [path] * len(versions)
    again = history(GitRepo.discover(example_repo.root), "calling_score")  # as a new process would
    assert parses.take() == []
    assert again == first and len(first["commits"]) == len(commits)
