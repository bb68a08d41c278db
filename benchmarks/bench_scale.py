"""How modelgit scales: whole processes and one-change updates at 100 / 1,000 / 10,000 models, next
to the floors they are judged against, all measured in one run.

    python benchmarks/bench_scale.py [--sizes 100,1000,10000 | --quick] [--repeats 3] [--workdir DIR]
                                     [--timeout 600] [--skip-floors]

Registries are the ones ``bench_registry.py`` generates (20 versions a model, URI artifacts, one
active and one staging version sharing the traffic); with ``--workdir`` they are built once and
reused by later runs (building 10,000 models takes a minute or so).

Per size, each measure ``--repeats`` times:

* ``show`` and ``validate`` as whole ``modelgit`` processes (stdout to /dev/null, so ``show`` prints
  its plain table), and a process doing ``Registry.open(root)``; **cold** = ``.git/modelgit`` removed
  before each run (no parse cache, no fact cache), **warm** = after one untimed run, nothing changed;
* in a child process, after a commit that changes one model file: re-validate with a ``Validator``
  that has seen HEAD, and ``reload()`` of a ``Registry`` opened at HEAD (only that step is timed).

Floors, measured in the same run:

* cold ``validate`` vs libyaml's bare event stream over the same bytes (a process reading every
  model file and consuming ``yaml.parse(data, Loader=yaml.CSafeLoader)``), target ≤ 1.3x;
* ``modelgit --help`` vs ``python -c pass``, target ≤ 4x (``.pyc`` files written to the workdir
  first, as an installed package has them);
* a cold process that opens a 200-model registry whose active and staging versions are real small
  ONNX files, routes a key and runs once, vs bare onnxruntime's own cold process (import, one
  ``InferenceSession``, one run), target ≤ 2x.

Peak RSS is the child's ``ru_maxrss`` (``os.wait4``). Times are wall clock; the table shows median,
min and max. Features that other work adds are detected, not assumed: a persisted parse cache shows
up as files in ``.git/modelgit`` after a warm-up (reported), ``Registry.open(..., preload=)`` is
passed ``False`` when the signature has it (and reported).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This checkout's modelgit, even when another one is installed (editable) in the environment: the
# figures are about the code next to this file.
sys.path[:0] = [str(ROOT / "src"), str(HERE)]
import modelgit  # noqa: E402
from bench_registry import (  # noqa: E402  (the generator of the synthetic registries)
    VERSIONS_PER_MODEL,
    build_repo,
    git,
    model_name,
    model_text,
)
from bench_runtime import linear_onnx  # noqa: E402  (the small ONNX models of the runtime benchmarks)

MiB = 1024 * 1024


# -- running children --------------------------------------------------------------------------------
def child_env(workdir: Path) -> dict[str, str]:
    """The environment of every measured process: this checkout's modelgit first on the path, and
    ``.pyc`` files kept (in the workdir), as an installed package has them."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    src = str(Path(modelgit.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("ORT_LOGGING_LEVEL", "3")
    return env


@dataclass
class Run:
    seconds: float
    maxrss: int  # bytes
    stdout: str


class TimedOut(Exception):
    pass


# ru_maxrss survives exec: a child forked from this (large) process reports at least this
# process's peak. GNU time forks from a ~2 MB process, so its %M is the measured program's own.
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def run_child(args: list[str], env: dict[str, str], *, capture: bool = False, timeout: float | None = None) -> Run:
    """Run ``args`` to completion: wall time and the program's own peak RSS. Killed (TimedOut)
    after ``timeout`` seconds."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss.name, *args] if GNU_TIME else args
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=out if capture else subprocess.DEVNULL, stderr=err, env=env,
                                start_new_session=True)
        # A blocking wait, the kill on a timer: Popen.wait(timeout=) polls in sleeps of up to 50 ms,
        # which rounded every process figure up to the next step.
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer is not None:
            timer.start()
        try:
            proc.wait()
        finally:
            if timer is not None:
                timer.cancel()
        seconds = time.perf_counter() - start
        if killed.is_set():
            raise TimedOut(f"{' '.join(args[:6])} ... ran over {timeout:.0f} s")
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(args[:6])} ... exited {proc.returncode}: "
                               f"{err.read().decode(errors='replace')[-800:]}")
        maxrss = int(rss.read().split()[-1]) * 1024 if GNU_TIME else 0
        out.seek(0)
        return Run(seconds, maxrss, out.read().decode() if capture else "")


# -- results -----------------------------------------------------------------------------------------
@dataclass
class Measure:
    name: str
    size: str
    times: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    target: float | None = None  # seconds, or a ratio when ratio=True
    rss_target: int | None = None
    ratio: bool = False
    timed_out: float | None = None  # a run was killed after this many seconds

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def met(self) -> str:
        if self.target is None and self.rss_target is None:
            return ""
        if self.timed_out is not None or not self.times:
            return "**missed**"
        ok = (self.target is None or self.median <= self.target) and \
             (self.rss_target is None or (bool(self.rss) and max(self.rss) <= self.rss_target))
        return "met" if ok else "**missed**"

    def repeat(self, args: list[str], env: dict[str, str], repeats: int, timeout: float | None,
               before: Callable[[], None] | None = None) -> Measure:
        """Run ``args`` ``repeats`` times (``before`` each), stopping at the first that times out."""
        for _ in range(repeats):
            if before is not None:
                before()
            try:
                result = run_child(args, env, timeout=timeout)
            except TimedOut:
                self.timed_out = timeout
                break
            self.times.append(result.seconds)
            self.rss.append(result.maxrss)
        return self


def fmt(value: float, ratio: bool = False) -> str:
    if ratio:
        return f"{value:.2f}x"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.1f} ms"


def table(measures: list[Measure]) -> str:
    lines = ["| measure | size | median | min | max | peak RSS | target | met |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for m in measures:
        targets = []
        if m.target is not None:
            targets.append(f"≤ {fmt(m.target, m.ratio)}")
        if m.rss_target is not None:
            targets.append(f"≤ {m.rss_target // MiB} MiB")
        rss = f"{max(m.rss) / MiB:.0f} MiB" if m.rss else ""
        if m.times:
            figures = [fmt(m.median, m.ratio), fmt(min(m.times), m.ratio), fmt(max(m.times), m.ratio)]
        else:
            figures = ["", "", ""]
        if m.timed_out is not None:
            figures[2] = f"> {fmt(m.timed_out, m.ratio)} (killed)"
            figures[0] = figures[0] or f"> {fmt(m.timed_out, m.ratio)}"
        lines.append(f"| {m.name} | {m.size} | {' | '.join(figures)} | {rss} | {', '.join(targets)} | {m.met()} |")
    return "\n".join(lines)


# -- what exists in this checkout ------------------------------------------------------------------------
def preload_argument() -> str:
    """``, preload=False`` when ``Registry.open`` takes it (lazy sessions), else nothing."""
    from modelgit.runtime.registry import Registry

    return ", preload=False" if "preload" in inspect.signature(Registry.open).parameters else ""


def cache_dir(root: Path) -> Path:
    return root / ".git" / "modelgit"


def drop_caches(root: Path) -> None:
    shutil.rmtree(cache_dir(root), ignore_errors=True)


def cache_listing(root: Path) -> str:
    base = cache_dir(root)
    if not base.exists():
        return "none"
    files = [p for p in base.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    names = sorted({p.relative_to(base).parts[0] for p in files})
    return f"{len(files)} file(s), {size / MiB:.1f} MiB ({', '.join(names)})" if files else "empty"


# -- per size --------------------------------------------------------------------------------------------
OPEN_SCRIPT = "from modelgit import Registry\nRegistry.open({root!r}, ref='HEAD'{preload})\n"

LIBYAML_SCRIPT = """
import pathlib, yaml
count = 0
for path in sorted(pathlib.Path({models!r}).rglob('*.yaml')):
    for _event in yaml.parse(path.read_bytes(), Loader=yaml.CSafeLoader):
        count += 1
assert count > 0
"""

# One change, then only the update is timed; prints {"seconds": [...], "maxrss": bytes} .
UPDATE_SCRIPT = """
import gc, json, resource, subprocess, sys, time
sys.path.insert(0, {bench!r})
from bench_registry import git, model_name, model_text
root, size, repeats, what = {root!r}, {size}, {repeats}, {what!r}
import pathlib
root = pathlib.Path(root)
if what == "validate":
    from modelgit.gitstore import GitRepo
    from modelgit.validate import Validator
    updater = Validator(GitRepo.discover(root))
    first = updater.validate("HEAD")
    assert first.valid, [f.render() for f in first.findings[:3]]
    def update():
        report = updater.validate("HEAD")
        assert report.valid and report.models == size, report.models
else:
    from modelgit import Registry
    updater = Registry.open(root, ref="HEAD"{preload})
    def update():
        assert updater.reload(), updater.info().get("refused")
seconds = []
index = size // 2 + 1
changed = root / "registry" / "models" / f"{{model_name(index)}}.yaml"
for attempt in range(repeats):
    changed.write_text(model_text(index, active_weight=round(0.5 + 0.01 * (attempt + 1), 2)))
    git(root, "commit", "-q", "-m", f"bench: weight change {{attempt}}", "--", str(changed))
    gc.collect()
    start = time.perf_counter()
    update()
    seconds.append(time.perf_counter() - start)
print(json.dumps({{"seconds": seconds, "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""


def modelgit_args() -> list[str]:
    return [sys.executable, "-m", "modelgit"]


def bench_size(root: Path, base: str, size: int, repeats: int, env: dict[str, str], preload: str,
               timeout: float | None) -> tuple[list[Measure], dict[str, str]]:
    label = f"{size:,}"
    big = size >= 10000
    notes: dict[str, str] = {}
    processes = {
        "`modelgit show`, process": ([*modelgit_args(), "-C", str(root), "show"], None),
        "`modelgit validate`, process": ([*modelgit_args(), "-C", str(root), "validate"], None),
        "`Registry.open`, process": ([sys.executable, "-c", OPEN_SCRIPT.format(root=str(root), preload=preload)],
                                      None),
    }
    warm_targets = {"`modelgit show`, process": 1.0 if big else None,
                    "`modelgit validate`, process": 1.0 if big else None,
                    "`Registry.open`, process": 2.0 if big else None}
    measures: list[Measure] = []
    cold_validate: Measure | None = None
    for name, (args, _) in processes.items():
        cold = Measure(f"{name}, cold", label).repeat(args, env, repeats, timeout, lambda: drop_caches(root))
        # The last cold run left whatever caches modelgit writes: that is the warm state.
        notes[name] = cache_listing(root)
        warm = Measure(f"{name}, warm", label, target=warm_targets[name],
                       rss_target=300 * MiB if big and "open" in name else None)
        if cold.timed_out is None:
            warm.repeat(args, env, repeats, timeout)
        else:
            warm.timed_out = timeout  # never got a warm state: the cold run did not finish
        measures += [cold, warm]
        if "validate" in name:
            cold_validate = cold

    # libyaml's event stream over the same bytes, in a process: the floor of a cold validate.
    script = LIBYAML_SCRIPT.format(models=str(root / "registry" / "models"))
    libyaml = Measure("libyaml event stream over the model files, process", label).repeat(
        [sys.executable, "-c", script], env, repeats, timeout)
    measures.append(libyaml)
    assert cold_validate is not None
    ratio = Measure("cold `validate` / libyaml event stream", label, target=1.3, ratio=True)
    if libyaml.times and cold_validate.times:
        ratio.times = [c / statistics.median(libyaml.times) for c in cold_validate.times]
    ratio.timed_out = cold_validate.timed_out and cold_validate.timed_out / statistics.median(libyaml.times)
    measures.append(ratio)

    for what, name, target in (("validate", "re-validate after one changed file (in-process)", 0.030),
                               ("reload", "`Registry.reload()` after one changed file (in-process)", None)):
        script = UPDATE_SCRIPT.format(bench=str(HERE), root=str(root), size=size, repeats=repeats, what=what,
                                      preload=preload)
        update = Measure(name, label, target=target if big else None)
        try:
            result = run_child([sys.executable, "-c", script], env, capture=True, timeout=timeout)
        except TimedOut:
            update.timed_out = timeout  # the setup (first validate / open) did not finish
        else:
            data = json.loads(result.stdout.strip().splitlines()[-1])
            update.times, update.rss = data["seconds"], [data["maxrss"]]
        measures.append(update)
        git(root, "reset", "-q", "--hard", base)
    return measures, notes


# -- floors measured once -----------------------------------------------------------------------------------
def bench_help(env: dict[str, str], runs: int) -> list[Measure]:
    script = console_script(env)
    program, how = ([script], "console script") if script else (modelgit_args(), "`python -m modelgit`")
    return interleaved_pair({"`python -c pass`, process": [sys.executable, "-c", "pass"],
                             f"`modelgit --help` ({how}), process": [*program, "--help"]},
                            "-", runs, env, "`modelgit --help` / `python -c pass`", 4.0)


def console_script(env: dict[str, str]) -> str | None:
    """The ``modelgit`` a user types: the console script installed next to this interpreter, if
    running it with ``env`` imports this checkout's modelgit (PYTHONVERBOSE names each module's
    file); else None. `python -m modelgit` pays runpy on top, which the script does not."""
    script = Path(sys.executable).with_name("modelgit")
    if not (script.is_file() and os.access(script, os.X_OK)):
        return None
    ours = str(Path(modelgit.__file__).resolve())
    probe = subprocess.run([str(script), "--version"], env={**env, "PYTHONVERBOSE": "1"}, capture_output=True,
                           text=True)
    return str(script) if probe.returncode == 0 and ours in probe.stderr else None


def interleaved_pair(commands: dict[str, list[str]], size: str, runs: int, env: dict[str, str],
                     ratio_name: str, target: float) -> list[Measure]:
    """A floor and the program judged against it (``commands``, in that order), run one after
    the other ``runs`` times after one untimed run each (.pyc files, page cache, modelgit's
    caches), so that load on the machine hits both alike; and the ratio of their times."""
    for args in commands.values():
        run_child(args, env)
    measures = {name: Measure(name, size) for name in commands}
    for _ in range(runs):
        for name, args in commands.items():
            result = run_child(args, env)
            measures[name].times.append(result.seconds)
            measures[name].rss.append(result.maxrss)
    floor, ours = measures.values()
    ratio = Measure(ratio_name, size, [o / f for o, f in zip(ours.times, floor.times, strict=True)],
                    target=target, ratio=True)
    return [floor, ours, ratio]


def onnx_model_text(index: int, files: dict[int, tuple[str, str]]) -> str:
    """bench_registry's model, its active and staging versions pointing at real ONNX files."""
    text = model_text(index)
    for version, (path, sha) in files.items():
        name = model_name(index)
        uri = f"{{uri: https://models.example/{name}/v{version}.onnx, sha256: "
        start = text.index(uri)
        end = text.index("}", start) + 1
        text = text[:start] + f"{{path: {path}, sha256: {sha}}}" + text[end:]
    return text


def build_onnx_repo(workdir: Path, size: int) -> Path:
    import hashlib

    root = workdir / f"onnx-registry-{size}"
    stamp = root / ".git" / "bench-stamp"
    if stamp.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "registry" / "models").mkdir(parents=True)
    (root / "registry" / "artifacts").mkdir()
    (root / "registry" / "datasets").mkdir()
    # bench_registry's settings and dataset, so that its model files validate unchanged
    from bench_registry import DATASET_BYTES, SETTINGS

    (root / "registry" / "modelgit.yaml").write_text(SETTINGS)
    (root / "registry" / "datasets" / "eval.npz").write_bytes(DATASET_BYTES)
    active, staging = VERSIONS_PER_MODEL - 1, VERSIONS_PER_MODEL
    for index in range(1, size + 1):
        files = {}
        for version, k in ((active, 2 * index), (staging, 2 * index + 1)):
            data = linear_onnx(k % 50)
            path = f"registry/artifacts/{model_name(index)}_v{version}.onnx"
            (root / path).write_bytes(data)
            files[version] = (path, hashlib.sha256(data).hexdigest())
        (root / "registry" / "models" / f"{model_name(index)}.yaml").write_text(onnx_model_text(index, files))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"{size} models with ONNX files")
    stamp.write_text("built\n")
    return root


RUN_SCRIPT = """
import numpy as np
from modelgit import Registry
reg = Registry.open({root!r}, ref="HEAD"{preload})
version = reg.route("m00001", key="user-42")
out = reg.run("m00001", np.zeros((1, 3), dtype=np.float32), key="user-42")
assert out[0].shape == (1, 2), out
"""
BARE_ORT_SCRIPT = """
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession({path!r}, providers=["CPUExecutionProvider"])
out = session.run(None, {{"x": np.zeros((1, 3), dtype=np.float32)}})
assert out[0].shape == (1, 2), out
"""


def bench_onnx_process(workdir: Path, env: dict[str, str], repeats: int, preload: str) -> list[Measure]:
    size = 200
    root = build_onnx_repo(workdir, size)
    check = run_child([*modelgit_args(), "-C", str(root), "validate"], env)  # valid, and the fact cache
    del check
    path = str(root / "registry" / "artifacts" / f"{model_name(1)}_v{VERSIONS_PER_MODEL - 1}.onnx")
    commands = {
        "bare onnxruntime: import, InferenceSession, run once, process": [
            sys.executable, "-c", BARE_ORT_SCRIPT.format(path=path)],
        "`Registry.open` → route → run once, 200 models with ONNX files, process": [
            sys.executable, "-c", RUN_SCRIPT.format(root=str(root), preload=preload)],
    }
    return interleaved_pair(commands, "200", repeats, env, "open → route → run / bare onnxruntime, process", 2.0)


# -- main ----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000",
                        help="comma-separated numbers of models (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="sizes 100 and 1,000 only")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measure (default: %(default)s)")
    parser.add_argument("--startup-runs", type=int, default=10,
                        help="runs of `--help` and `python -c pass` (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the generated repositories here and reuse them on later runs "
                             "(default: a temporary directory, removed at the end)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="kill a measured process after this many seconds and report it as missed "
                             "(default: %(default)s)")
    parser.add_argument("--skip-floors", action="store_true",
                        help="skip the start-up and ONNX process floors (only the per-size measures)")
    args = parser.parse_args(argv)
    sizes = [100, 1000] if args.quick else [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="modelgit-bench-scale-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = child_env(workdir)
    preload = preload_argument()
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    print(f"python {sys.version.split()[0]}, {git_version}, {os.cpu_count()} CPUs, load average "
          f"{load[0]:.2f} / {load[1]:.2f}; modelgit from {Path(modelgit.__file__).parent}; repositories in "
          f"{workdir}; Registry.open{'(..., preload=False)' if preload else ' (no preload= argument)'}",
          flush=True)
    measures: list[Measure] = []
    notes: list[str] = []
    try:
        if not args.skip_floors:
            measures += bench_help(env, args.startup_runs)
            measures += bench_onnx_process(workdir, env, args.repeats, preload)
            print("floors measured", flush=True)
        for size in sizes:
            root, base, built = build_repo(workdir, size)
            how = f"built in {built:.1f} s" if built else "reused"
            print(f"{size:,} models ({how}): measuring, {args.repeats} repeats ...", flush=True)
            found, cache_notes = bench_size(root, base, size, args.repeats, env, preload, args.timeout)
            measures += found
            for name, listing in cache_notes.items():
                notes.append(f"{size:,}: after {name}, `.git/modelgit` holds: {listing}")
            git(root, "reset", "-q", "--hard", base)
            drop_caches(root)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(measures))
    print()
    for note in notes:
        print(f"- {note}")
    missed = [f"{m.name} ({m.size})" for m in measures if m.met() != "met" and m.met()]
    if missed:
        print(f"\nmissed {len(missed)} target(s): {'; '.join(missed)}")
    return 1 if missed else 0  # as every benchmark: `make bench` reports a miss in its exit status


if __name__ == "__main__":
    sys.exit(main())
