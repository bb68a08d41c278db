"""RSS growth of a long-lived process that reloads the registry many times (issue 9, point 6).

    python benchmarks/bench_reload_memory.py [--models 100] [--reloads 1000] [--warmup 50]

A registry of ``--models`` models in a fresh git repository; one ``Registry`` serves it while each
of ``--reloads`` commits changes one model's weight and ``reload()`` moves to it. Prints the
resident set size (``VmRSS`` from /proc) after the warm-up and at the end, and the growth per 1,000
reloads (target: at most 5 MB). The baseline is the same process after the warm-up.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
       "GIT_COMMITTER_EMAIL": "bench@example.com", "PATH": "/usr/bin:/bin"}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, env=ENV)


def model_text(index: int, weight: float, sha: str) -> str:
    return (f"name: m{index:04d}\ntask: regression\nversions:\n"
            f"  - version: v1\n    status: active\n    weight: {weight}\n"
            f"    artifact: {{path: registry/artifacts/model.onnx, sha256: {sha}}}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--reloads", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args(argv)

    import hashlib

    from modelgit import Registry
    from runtime_support import model_bytes

    root = Path(tempfile.mkdtemp(prefix="modelgit-bench-rss-"))
    git(root, "init", "-q", "-b", "main")
    data = model_bytes(1)
    sha = hashlib.sha256(data).hexdigest()
    (root / "registry" / "artifacts").mkdir(parents=True)
    (root / "registry" / "models").mkdir(parents=True)
    (root / "registry" / "artifacts" / "model.onnx").write_bytes(data)
    (root / "registry" / "modelgit.yaml").write_text("schema_version: 1\n")
    for i in range(args.models):
        (root / "registry" / "models" / f"m{i:04d}.yaml").write_text(model_text(i, 0.5, sha))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    reg = Registry.open(root, ref="main")
    baseline = None
    started = time.perf_counter()
    for step in range(args.warmup + args.reloads):
        if step == args.warmup:
            baseline = rss_mb()
            started = time.perf_counter()
        index = step % args.models
        path = root / "registry" / "models" / f"m{index:04d}.yaml"
        path.write_text(model_text(index, round(0.1 + 0.001 * (step // args.models), 3), sha))  # always new
        git(root, "commit", "-qam", f"step {step}")
        assert reg.reload() is True
    end = rss_mb()
    assert baseline is not None
    seconds = time.perf_counter() - started
    growth = (end - baseline) * 1000 / args.reloads
    print(f"python {sys.version.split()[0]}, {args.models} models, {args.reloads} reloads after {args.warmup} warm-up")
    print("| RSS after warm-up | RSS at the end | growth per 1,000 reloads | target | reload + commit |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {baseline:.1f} MB | {end:.1f} MB | {growth:.1f} MB | ≤ 5 MB | "
          f"{1000 * seconds / args.reloads:.1f} ms each |")
    reg.close()
    return 0 if growth <= 5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
