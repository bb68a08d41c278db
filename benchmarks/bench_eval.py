"""Benchmark evaluation: modelgit's batch loop against bare onnxruntime, and `modelgit ci` as a process.

    python benchmarks/bench_eval.py [--rows 200000] [--batch-size 256] [--repeats 7] [--ci-repeats 5]

1. Throughput. A temporary git repository holds the example registry with calling_score's
   evaluation set replaced by a synthetic one (ROWS x 10 float32, seeded), recorded by sha256 and
   committed. For each calling_score version one onnxruntime session is made (as ``evaluate`` makes
   it) and then, alternating within each repeat, the same batches of BATCH_SIZE rows are run

   * raw: ``for each batch: outputs.append(session.run(None, {name: batch}))``;
   * eval: ``modelgit.evaluate.run_batches(session, x, batch_size)`` — the loop ``evaluate`` runs
     (per-batch timing for the latency percentiles, output concatenation).

   The table shows medians over the repeats and eval/raw throughput (target: within 5 %). The whole
   ``evaluate()`` call (read and hash artifact and dataset from git, load, run, metrics, per-row
   predictions for the result) is shown for context, as is the rows/s that eval itself reports.
2. ``modelgit ci --base main`` as a whole process on the example registry with the branch
   ``modelgit promote calling_score v2.0-real`` makes checked out (median of CI_REPEATS, after one
   untimed run), next to ``python -c pass``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
try:
    import modelgit  # noqa: F401  (installed, e.g. editable)
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

from modelgit import evaluate as E  # noqa: E402
from modelgit.gitstore import GitRepo  # noqa: E402
from modelgit.snapshot import Loader  # noqa: E402

GIT_IDENTITY = ("-c", "user.name=bench", "-c", "user.email=bench@example.com", "-c", "commit.gpgsign=false")
MODEL = "calling_score"
VERSIONS = ("v1.0-hybrid", "v2.0-real")
TARGET = 0.05


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *GIT_IDENTITY, *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout.strip()


def example_repo(where: Path) -> Path:
    where.mkdir(parents=True)
    git(where, "init", "-q", "--initial-branch=main")
    shutil.copytree(ROOT / "registry", where / "registry")
    git(where, "add", "-A")
    git(where, "commit", "-q", "-m", "example registry")
    return where


def big_dataset_repo(where: Path, rows: int) -> Path:
    """The example registry with calling_score's evaluation set replaced by ROWS synthetic rows."""
    root = example_repo(where)
    rng = np.random.default_rng(20260101)
    x = rng.normal(0, 0.05, (rows, 10)).astype(np.float32)  # the scale of the diabetes features
    y = (150 + 900 * x[:, 2] + 500 * x[:, 8] + rng.normal(0, 50, rows)).astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, X=x, y=y)
    data = buffer.getvalue()
    path = root / "registry" / "datasets" / "calling_score_eval.npz"
    old = hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(data)
    model = root / "registry" / "models" / "calling_score.yaml"
    model.write_text(model.read_text().replace(old, hashlib.sha256(data).hexdigest()))
    git(root, "commit", "-q", "-am", f"{rows:,}-row evaluation set")
    return root


def timed(func: Callable[[], Any]) -> float:
    began = time.perf_counter()
    func()
    return time.perf_counter() - began


def throughput(root: Path, version: str, batch_size: int, repeats: int) -> dict[str, Any]:
    snapshot = Loader(GitRepo.discover(str(root))).load("HEAD")
    model = snapshot.model(MODEL)
    entry = model.version(version)
    assert entry is not None and model.evaluation is not None
    artifact = E.read_checked(snapshot, entry.artifact.path, entry.artifact.sha256, "artifact")  # type: ignore[union-attr]
    dataset = model.evaluation.dataset
    x, _ = E.load_dataset(E.read_checked(snapshot, dataset.path, dataset.sha256, "dataset"), dataset.path,
                          model.task)
    session = E._session(artifact, entry.artifact.path)  # type: ignore[union-attr]
    x = x.astype(np.float32, copy=False)
    name = session.get_inputs()[0].name

    def raw() -> list[list[np.ndarray]]:
        outputs = []
        for start in range(0, len(x), batch_size):
            outputs.append(session.run(None, {name: x[start:start + batch_size]}))
        return outputs

    def loop() -> Any:
        return E.run_batches(session, x, batch_size)

    raw(), loop()  # warm-up: allocator, thread pool
    raw_times, eval_times = [], []
    gc.collect()
    for repeat in range(repeats):
        order = (("raw", raw), ("eval", loop)) if repeat % 2 == 0 else (("eval", loop), ("raw", raw))
        for label, func in order:
            (raw_times if label == "raw" else eval_times).append(timed(func))
    full = []
    for _ in range(3):
        began = time.perf_counter()
        result = E.evaluate(snapshot, MODEL, version, batch_size=batch_size, reuse=False)
        full.append(time.perf_counter() - began)
    rows = len(x)
    return {"version": version, "rows": rows, "raw": statistics.median(raw_times),
            "eval": statistics.median(eval_times), "evaluate": statistics.median(full),
            "reported_rows_per_second": result["latency"]["rows_per_second"],
            "raw_spread": (min(raw_times), max(raw_times)), "eval_spread": (min(eval_times), max(eval_times))}


def ci_process(root: Path, repeats: int) -> tuple[float, float, float, float, int]:
    beside = Path(sys.executable).parent / "modelgit"  # the console script of this environment
    modelgit = [str(beside)] if beside.exists() else [sys.executable, "-c", "from modelgit.cli import main; main()"]
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com", CI="1")
    subprocess.run([*modelgit, "-C", str(root), "promote", MODEL, "v2.0-real"], check=True, capture_output=True,
                   env=env)
    git(root, "checkout", "-q", f"modelgit/{MODEL}/promote-v2.0-real")
    out = Path(tempfile.mkdtemp(prefix="modelgit-ci-report-"))
    command = [*modelgit, "-C", str(root), "ci", "--base", "main", "--out", str(out)]
    code = subprocess.run(command, capture_output=True, env=env).returncode  # untimed first run
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        code = subprocess.run(command, capture_output=True, env=env).returncode
        times.append(time.perf_counter() - began)
    floor = statistics.median(timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
                              for _ in range(repeats))
    shutil.rmtree(out, ignore_errors=True)
    return statistics.median(times), min(times), max(times), floor, code


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--ci-repeats", type=int, default=5)
    args = parser.parse_args(argv)
    import onnxruntime as ort

    print(f"python {sys.version.split()[0]}, onnxruntime {ort.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs")
    work = Path(tempfile.mkdtemp(prefix="modelgit-bench-eval-"))
    try:
        big = big_dataset_repo(work / "big", args.rows)
        results = [throughput(big, version, args.batch_size, args.repeats) for version in VERSIONS]
        ci_median, ci_min, ci_max, floor, ci_code = ci_process(example_repo(work / "ci"), args.ci_repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"Throughput on {args.rows:,} rows x 10 in batches of {args.batch_size} "
          f"({-(-args.rows // args.batch_size):,} session.run calls), median of {args.repeats}:")
    print()
    print("| calling_score version | raw onnxruntime | eval batch loop | eval / raw throughput | target "
          "| whole evaluate() | rows/s eval reports |")
    print("|---|---:|---:|---:|---|---:|---:|")
    worst = 0.0
    for r in results:
        ratio = r["raw"] / r["eval"]
        worst = max(worst, 1 - ratio)
        rows = r["rows"]
        print(f"| {r['version']} | {ms(r['raw'])} ({rows / r['raw']:,.0f} rows/s) | {ms(r['eval'])} "
              f"({rows / r['eval']:,.0f} rows/s) | {ratio:.3f} | {'met' if ratio >= 1 - TARGET else 'MISSED'} "
              f"(≥ {1 - TARGET:.2f}) | {ms(r['evaluate'])} ({rows / r['evaluate']:,.0f} rows/s) "
              f"| {r['reported_rows_per_second']:,.0f} |")
    print()
    print(f"| command (whole process) | median of {args.ci_repeats} | min | max | exit |")
    print("|---|---:|---:|---:|---:|")
    print(f"| `modelgit ci --base main` (example registry, promote branch) | {ms(ci_median)} | {ms(ci_min)} "
          f"| {ms(ci_max)} | {ci_code} |")
    print(f"| `python -c pass` | {ms(floor)} | | | 0 |")
    print()
    print("Spreads (min-max) of the batch loops: " + "; ".join(
        f"{r['version']} raw {ms(r['raw_spread'][0])}-{ms(r['raw_spread'][1])}, "
        f"eval {ms(r['eval_spread'][0])}-{ms(r['eval_spread'][1])}" for r in results))
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
