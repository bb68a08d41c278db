"""`modelgit usage` and `modelgit recommend` over usage that represents 10 M recorded rows.

A registry of 20 hosted models (4 versions each, an A/B split over all four) is committed in a
temporary git repository; the tracker's rollups for it (20 models x 4 versions x 3 tasks x 90 days,
moments and latency histograms drawn by numpy from 10 M values, see bench_tracking.py) are
bulk-loaded into SQLite with that commit as the serving one. Then, medians of:

* ``usage`` of one model and of all models, in-process (phases from git + rollups + quantiles);
* ``recommend``'s decisions for all models, in-process;
* the ``modelgit usage MODEL --json`` and ``modelgit recommend --json`` processes, against a bare
  ``modelgit --version`` process measured in the same run.

Target (issue 10): usage/recommend ≤ 1 s from rollups. Exit 1 when the in-process figures miss it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_tracking import bulk_load, synthetic_rollups

MODELS, VERSIONS = 20, 4


def make_registry(root: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()

    root.mkdir(parents=True)
    git("init", "-q", "-b", "main")
    git("config", "user.name", "bench")
    git("config", "user.email", "bench@example.invalid")
    (root / "registry/models").mkdir(parents=True)
    (root / "registry/modelgit.yaml").write_text("schema_version: 1\nname: bench\n")
    for m in range(MODELS):
        versions = [{"version": f"v{v}", "status": "active" if v == 0 else "staging",
                     "artifact": {"provider": "openrouter", "model_id": f"vendor/model-{m:02d}-v{v}"}}
                    for v in range(VERSIONS)]
        doc = {"name": f"model-{m:02d}", "task": "generation", "versions": versions,
               "traffic": {f"v{v}": 100 // VERSIONS for v in range(VERSIONS)}}
        (root / f"registry/models/model-{m:02d}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    git("add", "-A")
    git("commit", "-qm", "bench registry")
    return git("rev-parse", "HEAD")


def median_of(fn, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--represented", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from modelgit import Tracker
    from modelgit.decisions import decide_auto_upgrade, model_usage
    from modelgit.gitstore import GitRepo
    from modelgit.snapshot import Loader

    work = Path(tempfile.mkdtemp(prefix="bench-learning-"))
    root = work / "repo"
    commit = make_registry(root)
    start = time.perf_counter()
    rollups, hists = synthetic_rollups(args.represented)
    rollups = [(*row[:4], commit, *row[5:]) for row in rollups]
    hists = [(*row[:4], commit, *row[5:]) for row in hists]
    url = f"sqlite:///{root}/.git/modelgit/usage.sqlite"
    (root / ".git/modelgit").mkdir(parents=True, exist_ok=True)
    bulk_load(url, rollups, hists)
    print(f"loaded {len(rollups):,} rollups representing {args.represented:,} rows in "
          f"{time.perf_counter() - start:.1f} s")
    repo = GitRepo.discover(root)
    snapshot = Loader(repo).load("HEAD")
    ids = sorted(snapshot.models)
    with Tracker(url) as tracker:
        one = median_of(lambda: model_usage(repo, tracker, "model-07"), args.repeats)
        every = median_of(lambda: [model_usage(repo, tracker, m) for m in ids], args.repeats)

        def decide_all() -> None:
            for m in ids:
                decide_auto_upgrade(snapshot, model_usage(repo, tracker, m), m)

        decide = median_of(decide_all, args.repeats)
        n_total = sum(a.n for a in model_usage(repo, tracker, "model-07").by_version(0).values())
    exe = [str(Path(sys.executable).with_name("modelgit"))]
    bare = median_of(lambda: subprocess.run([*exe, "--version"], check=True, capture_output=True), args.repeats)
    usage_p = median_of(lambda: subprocess.run([*exe, "-C", str(root), "usage", "model-07", "--json"], check=True,
                                               capture_output=True), args.repeats)
    recommend_p = median_of(lambda: subprocess.run([*exe, "-C", str(root), "recommend", "--json"], check=True,
                                                   capture_output=True), args.repeats)
    print(f"model-07: n={n_total:,} in its current phase")
    print(f"in-process: usage of one model {one * 1000:.0f} ms; of all {len(ids)} models {every * 1000:.0f} ms; "
          f"recommend's decisions for all {decide * 1000:.0f} ms   (target ≤ 1 s)")
    print(f"processes: `usage model-07 --json` {usage_p * 1000:.0f} ms, `recommend --json` "
          f"{recommend_p * 1000:.0f} ms, bare `modelgit --version` {bare * 1000:.0f} ms "
          f"(x{usage_p / bare:.1f}, x{recommend_p / bare:.1f})")
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0 if max(one, every, decide) <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
