"""Benchmark opening the runtime: ``Registry.open`` processes at 100 / 1,000 / 10,000 models and a
cold process that opens 200 models, routes a key and runs once, next to bare onnxruntime.

    python benchmarks/bench_runtime_open.py [--sizes 100,1000,10000] [--repeats 3] [--workdir DIR]
                                            [--src DIR] [--preload] [--cold-models 200]

(a) ``Registry.open`` in a new process on the registries of ``benchmarks/bench_registry.py`` (20
    versions per model, URI artifacts, reused from ``--workdir``): the process's wall time, the time
    of the ``open`` call itself, and its peak RSS (``ru_maxrss``). One untimed process first fills
    the ``.git/modelgit`` fact cache (sha256 and ONNX signatures by blob id), as a restarted server
    would find it; YAML files are parsed in every process.
(b) a cold process that imports modelgit, opens a registry of ``--cold-models`` models (20 versions,
    the active and staging ones real ONNX files, y = x·W + b), routes one key and runs once; next to
    bare onnxruntime's own cold process (import onnxruntime and numpy, ``InferenceSession`` on one
    of those files, run once) and ``python -c pass``, interleaved run by run; the ratio is of medians.

``--src`` runs the children on another tree's ``src`` (e.g. ``/work/main/src``) to compare before
and after in one run; ``--preload`` opens with ``preload=True`` (every table and session at open).
Prints a markdown table of medians (min-max).

Measured on 2026-12-02 (2-core machine shared with other jobs; load varied, so compare figures of
one line, taken minutes apart, not across lines). "main" is the tree before the lazy runtime:

| measurement | main | lazy |
|---|---:|---:|
| open process, 100 models: wall / peak RSS | 0.84 s / 61 MiB | 0.89 s / 38 MiB |
| open process, 1,000 models: wall / peak RSS | 4.50 s / 169 MiB | 4.12 s / 77 MiB |
| open process, 10,000 models: wall / `open` / peak RSS | 25.1 s / 21.1 s / 1,298 MiB | 18.2 s / 15.6 s / 459 MiB |
| cold open 200 models + route + run once | 23.8 s (loaded machine) | 0.88 s (quiet) |
| same, this tree with ``--preload`` (quiet) | | 17.2 s |
| bare onnxruntime cold process, same runs | 0.37 s (loaded) | 0.21 s (quiet): ratio 4.1 |

The rest of the lazy cold process is validation (parsing 200 files of 20 versions, ~0.3 s) and
importing pydantic and the models (~0.12 s), the parse cache's part of issue 12. The eager figure is
mostly exit: 400 sessions, each with its own spinning intra-op thread pool (403 threads), take ~17 s
of CPU to tear down (0.45 s with ``intra_op_num_threads=1``; 0.73 s without spinning).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_registry  # noqa: E402  (the registry generator, --workdir reuse)
from bench_runtime import linear_onnx, model_text  # noqa: E402  (the runtime benchmarks' ONNX models and files)

VERSIONS = 20

OPEN_CHILD = """
import json, resource, sys, time
began = time.perf_counter()
from modelgit import Registry
imported = time.perf_counter()
reg = Registry.open(sys.argv[1], ref="main", allow_reset=True{preload})
opened = time.perf_counter()
print(json.dumps({{"import": imported - began, "open": opened - imported, "models": len(reg.models()),
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""

COLD_CHILD = """
import numpy as np
from modelgit import Registry
reg = Registry.open({root!r}, ref="main"{preload})
version = reg.route({model!r}, key="user-42")
out = reg.run({model!r}, np.zeros((1, 3), dtype=np.float32), key="user-42")
assert out[0].shape == (1, 2) and version, out
"""

BARE_CHILD = """
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession({path!r}, providers=["CPUExecutionProvider"])
out = session.run(None, {{"x": np.zeros((1, 3), dtype=np.float32)}})
assert out[0].shape == (1, 2), out
"""


def build_onnx_registry(workdir: Path, size: int) -> Path:
    """``size`` models whose active and staging versions are distinct small ONNX files (reused)."""
    root = workdir / f"onnx-registry-{size}"
    stamp = root / ".git" / "bench-stamp"
    generator = hashlib.sha1(model_text(1, {19: ("p", "s")}).encode()).hexdigest()[:12]
    if stamp.exists() and stamp.read_text().strip() == generator:
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "registry" / "models").mkdir(parents=True)
    (root / "registry" / "artifacts").mkdir()
    (root / "registry" / "modelgit.yaml").write_text("schema_version: 1\nname: bench\nrouting:\n  salt: bench\n")
    for index in range(1, size + 1):
        files = {}
        for i, k in ((VERSIONS - 1, 2 * index), (VERSIONS, 2 * index + 1)):
            data = linear_onnx(k)
            path = f"registry/artifacts/m{index:05d}_v1_{i}.onnx"
            (root / path).write_bytes(data)
            files[i] = (path, hashlib.sha256(data).hexdigest())
        (root / "registry" / "models" / f"m{index:05d}.yaml").write_text(model_text(index, files))
    bench_registry.git(root, "init", "-q", "-b", "main")
    bench_registry.git(root, "add", "-A")
    bench_registry.git(root, "commit", "-q", "-m", f"{size} models with ONNX files")
    stamp.write_text(generator + "\n")
    return root


def child_env(src: Path, workdir: Path) -> dict[str, str]:
    """Children run ``src`` with compiled bytecode kept (under ``workdir``), as an installed package
    would: compiling every module in every process is not what a cold start costs."""
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONPYCACHEPREFIX=str(workdir / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed_child(script: str, env: dict[str, str], *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"child failed: {proc.stderr.strip()[-2000:]}")
    return elapsed, proc.stdout


def med(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    return (f"{statistics.median(values) * scale:.{digits}f} "
            f"({min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f})")


def bench_open(workdir: Path, sizes: list[int], repeats: int, env: dict[str, str], preload: bool) -> list[str]:
    script = OPEN_CHILD.format(preload=", preload=True" if preload else "")
    rows = []
    for size in sizes:
        root, _, built = bench_registry.build_repo(workdir, size)
        if built:
            print(f"built {size} models in {built:.1f} s at {root}", file=sys.stderr)
        timed_child(script, env, str(root))  # untimed: fills .git/modelgit (facts), .pyc, page cache
        runs: list[dict[str, Any]] = []
        for _ in range(repeats if size < 10_000 else max(1, min(repeats, 3))):
            wall, out = timed_child(script, env, str(root))
            found = json.loads(out)
            assert found["models"] == size, found
            runs.append(found | {"wall": wall})
            print(f"  {size}: {runs[-1]}", file=sys.stderr)
        rows.append(f"| `Registry.open` process, {size:,} models | {med([r['wall'] for r in runs])} s | "
                    f"{med([r['open'] for r in runs])} s | {med([r['rss'] for r in runs], 2**-20, 0)} MiB |")
    return rows


def bench_cold(workdir: Path, models: int, repeats: int, env: dict[str, str], preload: bool) -> list[str]:
    root = build_onnx_registry(workdir, models)
    model = f"m{models // 2:05d}"
    path = str(root / "registry" / "artifacts" / f"m{models // 2:05d}_v1_{VERSIONS - 1}.onnx")
    scripts = {
        "modelgit": COLD_CHILD.format(root=str(root), model=model, preload=", preload=True" if preload else ""),
        "onnxruntime": BARE_CHILD.format(path=path),
        "python": "pass",
    }
    for script in scripts.values():  # untimed: fact cache (one model check of every file), .pyc
        timed_child(script, env)
    times: dict[str, list[float]] = {name: [] for name in scripts}
    for _ in range(repeats):
        for name, script in scripts.items():
            times[name].append(timed_child(script, env)[0])
    ratio = statistics.median(times["modelgit"]) / statistics.median(times["onnxruntime"])
    return [
        f"| cold process: open {models} models, route, run once | {med(times['modelgit'])} s | | |",
        f"| cold process: bare onnxruntime (import, InferenceSession, run once) | {med(times['onnxruntime'])} s | | |",
        f"| cold process: `python -c pass` | {med(times['python'], digits=3)} s | | |",
        f"| ratio modelgit / bare onnxruntime (medians; target ≤ 2) | {ratio:.2f} | | |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="registry sizes for (a), comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="timed processes per size (at most 3 at 10,000)")
    parser.add_argument("--cold-models", type=int, default=200, help="models in the registry of (b)")
    parser.add_argument("--cold-repeats", type=int, default=9, help="interleaved runs of each process in (b)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build (and reuse) the registries")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the modelgit source tree the children run")
    parser.add_argument("--preload", action="store_true", help="open with preload=True")
    parser.add_argument("--skip-open", action="store_true", help="only (b)")
    parser.add_argument("--skip-cold", action="store_true", help="only (a)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="modelgit-bench-open-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = child_env(args.src, workdir)
    rows = []
    if not args.skip_open:
        rows += bench_open(workdir, [int(s) for s in args.sizes.split(",") if s], args.repeats, env, args.preload)
    if not args.skip_cold:
        rows += bench_cold(workdir, args.cold_models, args.cold_repeats, env, args.preload)
    print(f"src: {args.src}; preload: {args.preload}; medians (min-max)")
    print("| measurement | process / figure | `open` call | peak RSS |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
