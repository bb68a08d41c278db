"""What the child-process guard of ``modelgit.sessions`` costs (issue 9, point 3), in one run.

    python benchmarks/bench_guard.py [--repeats 9] [--models 1000] [--reload-repeats 5]

The guard loads and runs every new artifact once in a child process under a memory and a time
limit before onnxruntime sees it in-process. Its baseline, measured in the same run and
interleaved with it, is the same work with the child replaced by an in-process probe:
``sessions.probe_cached`` swapped for a function that does in this process what the child does
(``sessions.create`` with ``options(threads=1)``, ``signature_of``, one run on ``sample_feeds``).
Neither ``sessions`` nor ``artifacts`` offers an in-process mode, so the swap is the benchmark's.
onnxruntime is already imported in this process, so the baseline does not pay its import; the
child does, every time: that is part of what the guard costs.

(1) ``Validator(GitRepo.discover(repo)).validate("HEAD")`` of the example registry (``registry/``
    of this checkout, copied into a temporary git repository): (a) cold, no cached facts
    (``.git/modelgit`` removed, the process's probe memo cleared), with the guard; (b) the same
    with the in-process probe; (c) warm: a new Validator over cached facts, with the guard and
    with the in-process probe, and the number of children started (must be 0).
(2) ``reload()`` of a runtime serving ``--models`` models (``bench_runtime``'s registry: 20
    versions each, the first five with real ONNX files) after a commit that (d) changes one real
    model's split only, (e) gives that model a new staging ONNX file (a new blob: it is probed),
    (f) the same as (e) with the in-process probe. (e) - (d) is what one new artifact costs a
    reload, (e) - (f) the guard's share of it.
(3) Per artifact: ``sessions.probe`` of one model (child start + onnxruntime import + session +
    one run), ``probe_many`` of the example's four artifacts, against the in-process probe of one
    model; and ``python -c pass`` / ``python -c "import onnxruntime"`` processes for the breakdown.

Prints a markdown table (median, min, max, n) and the ratios. Exit 1 when warm validate with the
guard takes more than 1.5x warm validate with the in-process probe (both should start no child),
or when a warm validate started a child.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import inspect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
try:
    import modelgit  # noqa: F401  (installed, e.g. editable)
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

from bench_runtime import REAL_MODELS, VERSIONS, build_registry, git, linear_onnx, model_text  # noqa: E402
from modelgit import Registry, sessions  # noqa: E402
from modelgit.gitstore import GitRepo  # noqa: E402
from modelgit.validate import Validator  # noqa: E402

WARM_LIMIT = 1.5  # warm validate with the guard / warm validate with the in-process probe


# -- the guard and its in-process stand-in --------------------------------------------------------------
def probe_in_process(blobs: list[bytes], limits: sessions.Limits | None = None) -> list[sessions.Probe]:
    """What the child does for each artifact, in this process, without a limit."""
    found = []
    for data in blobs:
        try:
            session = sessions.create(data, sessions.options(threads=1))
            signature = sessions.signature_of(session)
            feeds = sessions.sample_feeds(session)
            if feeds is not None:
                with contextlib.suppress(Exception):  # zeros may be a wrong input: not a refusal, as in the child
                    session.run(None, feeds)
            found.append(sessions.Probe(signature))
        except Exception as exc:
            found.append(sessions.Probe(None, str(exc).strip()[:300]))
    return found


GUARDED = sessions.probe_cached
children = 0  # calls of sessions.probe_many: one child each here (no artifact breaks a limit)


def counting_probe_many(blobs: list[bytes], limits: sessions.Limits | None = None) -> list[sessions.Probe]:
    global children
    children += 1
    return COUNTED(blobs, limits)


COUNTED = sessions.probe_many
sessions.probe_many = counting_probe_many  # type: ignore[assignment]  (probe_cached looks it up by name)


@contextmanager
def in_process() -> Iterator[None]:
    sessions.probe_cached = probe_in_process  # type: ignore[assignment]
    try:
        yield
    finally:
        sessions.probe_cached = GUARDED  # type: ignore[assignment]


@contextmanager
def guarded() -> Iterator[None]:
    yield


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- (1) validate of the example ------------------------------------------------------------------------
def example_repo(workdir: Path) -> Path:
    root = workdir / "example"
    shutil.copytree(ROOT / "registry", root / "registry")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the example registry")
    return root


def bench_validate(root: Path, repeats: int) -> dict[str, list[float]]:
    facts = root / ".git" / "modelgit"
    out: dict[str, list[float]] = {k: [] for k in ("cold guard", "cold in-process", "warm guard",
                                                   "warm in-process", "warm children")}

    def validate() -> None:
        report = Validator(GitRepo.discover(root)).validate("HEAD")
        assert report.valid and report.artifacts_checked, [f.message for f in report.findings]

    def cold() -> None:
        shutil.rmtree(facts, ignore_errors=True)
        sessions._learnt.clear()

    for mode in (guarded, in_process):  # untimed: imports, page cache
        with mode():
            cold()
            validate()
    for r in range(repeats):
        modes = [("guard", guarded), ("in-process", in_process)]
        for name, mode in modes if r % 2 == 0 else modes[::-1]:
            with mode():
                cold()
                out[f"cold {name}"].append(timed(validate))
                sessions._learnt.clear()  # warm means the facts on disk, not this process's memo
                before = children
                out[f"warm {name}"].append(timed(validate))
                out["warm children"].append(children - before)
    return out


# The same validate as a whole process (as `modelgit validate` runs it): there the in-process probe
# pays the onnxruntime import itself, which the guard's parent never does.
VALIDATE_PROCESS = """
import contextlib
import sys
from modelgit import sessions
from modelgit.gitstore import GitRepo
from modelgit.validate import Validator
{probe}
if sys.argv[1] == "in-process":
    sessions.probe_cached = probe_in_process
report = Validator(GitRepo.discover(sys.argv[2])).validate("HEAD")
assert report.valid and report.artifacts_checked, report.findings
"""


def bench_validate_process(root: Path, repeats: int) -> dict[str, list[float]]:
    import modelgit

    script = VALIDATE_PROCESS.format(probe=inspect.getsource(probe_in_process))
    src = str(Path(modelgit.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    facts = root / ".git" / "modelgit"
    out: dict[str, list[float]] = {k: [] for k in ("cold guard", "cold in-process", "warm guard", "warm in-process")}

    def run(mode: str) -> None:
        subprocess.run([sys.executable, "-c", script, mode, str(root)], check=True, env=env)

    run("guard")  # untimed: .pyc files, page cache
    for r in range(repeats):
        modes = ["guard", "in-process"]
        for mode in modes if r % 2 == 0 else modes[::-1]:
            shutil.rmtree(facts, ignore_errors=True)
            out[f"cold {mode}"].append(timed(lambda mode=mode: run(mode)))
            out[f"warm {mode}"].append(timed(lambda mode=mode: run(mode)))
    return out


# -- (2) reload at 1,000 models ---------------------------------------------------------------------------
def bench_reload(root: Path, size: int, repeats: int) -> dict[str, list[float]]:
    # real[index][version] = (path, sha256) of bench_runtime's real models, as committed
    real = {}
    for index in range(1, REAL_MODELS + 1):
        real[index] = {}
        for i, k in ((VERSIONS - 1, 2 * index), (VERSIONS, 2 * index + 1)):
            path = f"registry/artifacts/m{index:05d}_v1_{i}.onnx"
            real[index][i] = (path, hashlib.sha256(linear_onnx(k)).hexdigest())
    split = dict.fromkeys(real, 90)
    start = time.perf_counter()
    reg = Registry.open(root, ref="main")
    print(f"Registry.open of {size} models (cold) in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    out: dict[str, list[float]] = {"split": [], "new guard": [], "new in-process": []}
    fresh = 1000

    def commit_and_reload(index: int, message: str) -> float:
        (root / "registry" / "models" / f"m{index:05d}.yaml").write_text(model_text(index, real[index], split[index]))
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", message)
        took = timed(reg.reload)
        assert reg.info()["commit"] == git(root, "rev-parse", "HEAD"), reg.info()["refused"]
        return took

    for r in range(repeats):
        index = 1 + r % REAL_MODELS
        steps = ["split", "new guard", "new in-process"]
        for step in steps[r % 3:] + steps[:r % 3]:
            if step == "split":
                split[index] = 80 if split[index] == 90 else 90
                out[step].append(commit_and_reload(index, f"m{index:05d}: split {split[index]}"))
                continue
            fresh += 1
            data = linear_onnx(fresh)  # new bytes, a new blob: the validator must probe it
            path = f"registry/artifacts/m{index:05d}_new_{fresh}.onnx"
            (root / path).write_bytes(data)
            real[index][VERSIONS] = (path, hashlib.sha256(data).hexdigest())
            before = children
            with guarded() if step == "new guard" else in_process():
                out[step].append(commit_and_reload(index, f"m{index:05d}: new staging file"))
            assert children - before == (1 if step == "new guard" else 0), (step, children - before)
    reg.close()
    return out


# -- (3) per artifact -------------------------------------------------------------------------------------
def bench_probe(repeats: int) -> dict[str, list[float]]:
    one = (ROOT / "registry" / "artifacts" / "calling_score_v1_0_hybrid.onnx").read_bytes()
    four = [p.read_bytes() for p in sorted((ROOT / "registry" / "artifacts").glob("*.onnx"))]
    out: dict[str, list[float]] = {k: [] for k in ("probe one", "probe four", "in-process one", "in-process four",
                                                   "python", "python + onnxruntime")}
    probe_in_process([one])  # untimed warm-up
    sessions.probe_many([one])
    for _ in range(repeats):
        out["probe one"].append(timed(lambda: sessions.probe_many([one])))
        out["probe four"].append(timed(lambda: sessions.probe_many(four)))
        out["in-process one"].append(timed(lambda: probe_in_process([one])))
        out["in-process four"].append(timed(lambda: probe_in_process(four)))
        for name, code in (("python", "pass"), ("python + onnxruntime", "import onnxruntime")):
            out[name].append(timed(lambda code=code: subprocess.run([sys.executable, "-c", code], check=True)))
    return out


# -- report -------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="repeats of (1) and (3)")
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--reload-repeats", type=int, default=7, help="repeats of each reload in (2)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="modelgit-bench-guard-"))
    try:
        example = example_repo(workdir)
        checked = bench_validate(example, args.repeats)
        processes = bench_validate_process(example, args.repeats)
        probes = bench_probe(args.repeats)
        big = workdir / f"runtime-{args.models}"
        big.mkdir()
        build_registry(big, args.models)
        reloads = bench_reload(big, args.models, args.reload_repeats)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    p50 = statistics.median
    rows = [
        ("(1a) validate the example, cold, guard (child)", checked["cold guard"]),
        ("(1b) validate the example, cold, in-process probe", checked["cold in-process"]),
        ("(1c) validate the example, warm (facts cached), guard", checked["warm guard"]),
        ("(1c) validate the example, warm (facts cached), in-process probe", checked["warm in-process"]),
        ("(1a) validate the example in a new process, cold, guard", processes["cold guard"]),
        ("(1b) validate the example in a new process, cold, in-process probe", processes["cold in-process"]),
        ("(1c) validate the example in a new process, warm, guard", processes["warm guard"]),
        ("(1c) validate the example in a new process, warm, in-process probe", processes["warm in-process"]),
        (f"(2d) reload, {args.models} models, split of one real model changed", reloads["split"]),
        (f"(2e) reload, {args.models} models, one new ONNX artifact, guard", reloads["new guard"]),
        (f"(2f) reload, {args.models} models, one new ONNX artifact, in-process probe", reloads["new in-process"]),
        ("(3) `sessions.probe_many` of one artifact (child)", probes["probe one"]),
        ("(3) `sessions.probe_many` of the example's four (one child)", probes["probe four"]),
        ("(3) in-process probe of one artifact (create, signature, run)", probes["in-process one"]),
        ("(3) in-process probe of the example's four", probes["in-process four"]),
        ("(3) `python -c pass` process", probes["python"]),
        ("(3) `python -c 'import onnxruntime'` process", probes["python + onnxruntime"]),
    ]
    print(f"python {sys.version.split()[0]}, onnxruntime {__import__('onnxruntime').__version__}, "
          f"limits {sessions.Limits.from_env().key()} (bytes:seconds)")
    print("| measurement | median | min | max | n |")
    print("|---|---:|---:|---:|---:|")
    for name, values in rows:
        print(f"| {name} | {p50(values) * 1e3:.1f} ms | {min(values) * 1e3:.1f} | {max(values) * 1e3:.1f} "
              f"| {len(values)} |")
    print()
    cold_g, cold_i = p50(checked["cold guard"]), p50(checked["cold in-process"])
    warm_g, warm_i = p50(checked["warm guard"]), p50(checked["warm in-process"])
    split, new_g, new_i = (p50(reloads[k]) for k in ("split", "new guard", "new in-process"))
    one, local = p50(probes["probe one"]), p50(probes["in-process one"])
    further = p50([(f - o) / 3 for f, o in zip(probes["probe four"], probes["probe one"], strict=True)])
    bare, ort = p50(probes["python"]), p50(probes["python + onnxruntime"])
    warm_children = int(sum(checked["warm children"]))
    print(f"* (1) cold validate: guard {cold_g * 1e3:.0f} ms = {cold_g / cold_i:.2f}x the in-process probe "
          f"(+{(cold_g - cold_i) * 1e3:.0f} ms for the example's four artifacts, one child)")
    pcold_g, pcold_i = p50(processes["cold guard"]), p50(processes["cold in-process"])
    pwarm_g, pwarm_i = p50(processes["warm guard"]), p50(processes["warm in-process"])
    print(f"* (1) cold validate in a new process: guard {pcold_g * 1e3:.0f} ms = {pcold_g / pcold_i:.2f}x the "
          f"in-process probe (+{(pcold_g - pcold_i) * 1e3:.0f} ms: the child's interpreter start and imports, "
          "less the onnxruntime import the parent no longer makes)")
    print(f"* (1) warm validate in a new process: guard / in-process = {pwarm_g / pwarm_i:.2f}x")
    print(f"* (1) warm validate: guard / in-process = {warm_g / warm_i:.2f}x (limit {WARM_LIMIT}x), "
          f"{warm_children} children started in {len(checked['warm guard'])} warm runs; "
          f"warm / cold with the guard = {warm_g / cold_g:.2f}")
    print(f"* (2) one new artifact adds {(new_g - split) * 1e3:.0f} ms to a {args.models}-model reload "
          f"({new_g / split:.1f}x a split-only reload); the guard's share of it {(new_g - new_i) * 1e3:.0f} ms "
          f"(guard / in-process = {new_g / new_i:.2f}x); n = {args.reload_repeats} each, interleaved")
    print(f"* (3) a probe of one artifact costs {one * 1e3:.0f} ms, {one / local:.0f}x the in-process "
          f"{local * 1e3:.1f} ms: interpreter start {bare * 1e3:.0f} ms, onnxruntime import "
          f"{(ort - bare) * 1e3:.0f} ms, the rest {(one - ort) * 1e3:.0f} ms; each further artifact in the "
          f"same child {further * 1e3:.1f} ms (median of paired differences)")
    print(f"* total {time.perf_counter() - began:.0f} s", file=sys.stderr)
    ok = warm_children == 0 and warm_g <= WARM_LIMIT * warm_i
    if not ok:
        print("warm validate: the guard is not free once facts are cached", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
