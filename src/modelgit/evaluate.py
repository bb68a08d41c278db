"""`modelgit eval`: run a version over its model's evaluation dataset, at a ref.

The artifact and the dataset are read from git objects at the ref and checked against their
recorded sha256 before anything runs. Results go to ``registry/evaluations/<model>/<version>.json``
with the digests they depend on, so a second run with the same artifact and dataset reuses them.
Those files are a local cache and are not committed (they hold this machine's latency and every
prediction; the .gitignore that ``modelgit init`` writes lists them): ``modelgit ci`` never reads
them and recomputes from the committed artifact and dataset.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modelgit import metrics as M
from modelgit.errors import InvalidError, UsageError
from modelgit.snapshot import Snapshot
from modelgit.spec import Evaluation, FileArtifact, HostedArtifact, Model
from modelgit.validate import resolve_path

RESULT_SCHEMA = 1
Progress = Callable[[int, int], None]


def result_path(model_id: str, version: str) -> str:
    return f"registry/evaluations/{model_id}/{version}.json"


def metric_names(model: Model, model_id: str, requested: list[str] | None = None,
                 evaluation: Evaluation | None = None) -> list[str]:
    allowed = M.for_task(model.task)
    evaluation = evaluation or model.evaluation
    names = list(requested or (evaluation.metrics if evaluation and evaluation.metrics else allowed))
    for name in names:
        if name not in M.FUNCTIONS:
            raise UsageError(f"unknown metric '{name}'", hint=f"metrics for {model.task}: {', '.join(allowed)}")
        if name not in allowed:
            raise UsageError(f"metric '{name}' does not apply to a {model.task} model",
                             hint=f"use one of: {', '.join(allowed)}")
    return names


def read_checked(snapshot: Snapshot, path: str, sha256: str, what: str) -> bytes:
    """Bytes of a repo file at the snapshot, refused unless they match the recorded sha256."""
    entry, problem = resolve_path(snapshot, path)
    if problem is not None or entry is None:
        raise InvalidError(problem[1] if problem else f"{path} is missing", hint=problem[2] if problem else "")
    data = snapshot.source.read(path, entry)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise InvalidError(f"{what} {path}: sha256 is {digest}, not the recorded {sha256}",
                           hint="the file changed after it was recorded; record the new digest or restore it")
    return data


# Uncompressed bytes an evaluation dataset may hold in all; MODELGIT_MAX_DATASET_BYTES overrides.
MAX_DATASET_BYTES = 2 * 1024**3


def max_dataset_bytes() -> int:
    from modelgit.sessions import env_number

    return int(env_number("MODELGIT_MAX_DATASET_BYTES", MAX_DATASET_BYTES))


def check_npz_sizes(data: bytes, path: str, limit: int | None = None) -> None:
    """Refuse an .npz before anything is inflated when its members declare more than ``limit``
    uncompressed bytes in all (a zip bomb), or when an array's header declares more data than its
    member holds (numpy would allocate the declared size first). zipfile never inflates a member
    past its declared size, so the declared sizes bound what reading costs."""
    import zipfile

    limit = max_dataset_bytes() if limit is None else limit
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return  # not a zip: np.load says what it is
    with archive:
        total = 0
        for info in archive.infolist():
            total += info.file_size
            if total > limit:
                raise InvalidError(
                    f"dataset {path}: its arrays declare {total:,} bytes uncompressed (member "
                    f"'{info.filename}'), over the limit of {limit:,}",
                    hint="use a smaller evaluation set, or raise MODELGIT_MAX_DATASET_BYTES")
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                try:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(member)
                except Exception:  # a broken header (or a version numpy reads another way): np.load says
                    continue
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared > info.file_size:
                    raise InvalidError(
                        f"dataset {path}: array '{info.filename[:-4]}' declares shape {tuple(shape)} "
                        f"({declared:,} bytes) but its member holds {info.file_size:,} bytes",
                        hint="the file is damaged or crafted; save it again with numpy.savez")


def load_dataset(data: bytes, path: str, task: str) -> tuple[np.ndarray, np.ndarray]:
    """Features X (2-D float) and labels y from an .npz (arrays X and y) or a .csv (header row,
    last column the label). An .npz is checked by :func:`check_npz_sizes` before it is read."""
    if not path.endswith(".csv"):
        check_npz_sizes(data, path)
    try:
        if path.endswith(".csv"):
            table = np.genfromtxt(io.BytesIO(data), delimiter=",", skip_header=1, dtype=np.float64)
            table = np.atleast_2d(table)
            x, y = table[:, :-1], table[:, -1]
        else:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                missing = [k for k in ("X", "y") if k not in npz.files]
                if missing:
                    raise InvalidError(f"dataset {path}: no array {' or '.join(missing)} "
                                       f"(it has {', '.join(npz.files) or 'none'})",
                                       hint="save it with numpy.savez(file, X=features, y=labels)")
                x, y = npz["X"], npz["y"]
    except InvalidError:
        raise
    except Exception as exc:  # numpy's many read errors: name the file, keep numpy's words
        raise InvalidError(f"dataset {path}: cannot read it: {exc}",
                           hint="use .npz with arrays X and y, or .csv with a header row") from None
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise InvalidError(f"dataset {path}: X must be a 2-D numeric array, not {x.dtype} {x.shape}")
    y = np.asarray(y).reshape(-1) if np.asarray(y).ndim else np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise InvalidError(f"dataset {path}: {len(x)} rows of X but {y.size} labels",
                           hint="every row needs a label")
    if len(x) == 0:
        raise InvalidError(f"dataset {path}: no rows")
    if not np.issubdtype(y.dtype, np.number):
        raise InvalidError(f"dataset {path}: labels must be numbers, not {y.dtype}")
    missing_rows = np.flatnonzero(np.isnan(y.astype(np.float64)))
    if missing_rows.size:
        rows = ", ".join(str(r) for r in missing_rows[:5]) + (" …" if missing_rows.size > 5 else "")
        raise InvalidError(f"dataset {path}: {missing_rows.size} missing (NaN) label(s), rows {rows}",
                           hint="drop those rows or fill in their labels")
    if task != "regression":
        if not np.all(np.equal(np.mod(y, 1), 0)) or np.any(y < 0):
            raise InvalidError(f"dataset {path}: class labels must be whole numbers ≥ 0")
        y = y.astype(np.int64)
    else:
        y = y.astype(np.float64)
    return x, y


_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def _session(artifact: bytes, path: str) -> Any:
    from modelgit import sessions

    try:
        return sessions.create(artifact)  # the options the runtime serves with
    except Exception as exc:
        raise InvalidError(f"artifact {path}: onnxruntime cannot load it: {str(exc).strip()[:300]}",
                           hint="export the model again and register it as a new version") from None


def _predictions(task: str, outputs: list[np.ndarray]) -> np.ndarray:
    if task == "regression":
        return np.asarray(outputs[0], dtype=np.float64).reshape(len(outputs[0]), -1)[:, 0]
    for out in outputs:
        if out.ndim == 2 and out.shape[1] >= 2 and np.issubdtype(out.dtype, np.floating):
            return out.astype(np.float64)
    labels = np.asarray(outputs[0]).reshape(-1).astype(np.int64)
    proba = np.zeros((len(labels), int(labels.max()) + 1))
    proba[np.arange(len(labels)), labels] = 1.0
    return proba


def run_batches(session: Any, x: np.ndarray, batch_size: int, progress: Progress | None = None,
                run_options: Any = None) -> tuple[list[np.ndarray], list[float]]:
    """All outputs of the session over x in batches, and each batch's seconds.

    The hot loop of ``eval``, kept as close to bare ``session.run`` calls as it can be (see
    benchmarks/bench_eval.py): output names passed explicitly (``None`` makes onnxruntime rebuild
    the list on every call), one feed dict, attribute lookups hoisted, one clock read per batch."""
    name = session.get_inputs()[0].name
    output_names = [output.name for output in session.get_outputs()]
    run, clock = session.run, time.perf_counter
    feed: dict[str, np.ndarray] = {}
    chunks: list[list[np.ndarray]] = []
    seconds: list[float] = []
    rows = len(x)
    began = clock()
    for start in range(0, rows, batch_size):
        feed[name] = x[start:start + batch_size]
        chunks.append(run(output_names, feed, run_options))
        now = clock()
        seconds.append(now - began)
        if progress is not None:
            progress(min(start + batch_size, rows), rows)
            now = clock()  # the progress bar's time is no model's latency
        began = now
    outputs = [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]
    return outputs, seconds


def evaluate(
    snapshot: Snapshot,
    model_id: str,
    version_id: str,
    *,
    root: Path | None = None,
    requested_metrics: list[str] | None = None,
    batch_size: int = 256,
    progress: Progress | None = None,
    reuse: bool = True,
    evaluation: Evaluation | None = None,
    dataset_snapshot: Snapshot | None = None,
) -> dict[str, Any]:
    """Evaluate a version at a snapshot. Returns the result (as written to the result file).

    ``evaluation`` and ``dataset_snapshot`` evaluate on another evaluation block and read its
    dataset at another commit: the CI gate evaluates a pull request's versions on the base's."""
    model = snapshot.model(model_id)
    version = model.require_version(version_id, model_id)
    artifact = version.artifact
    if not isinstance(artifact, FileArtifact):
        kind = (f"is hosted by {artifact.provider}" if isinstance(artifact, HostedArtifact)
                else "is a remote artifact (uri)")
        raise UsageError(f"'{model_id}' version '{version_id}' {kind}: it has no ONNX file in the repository "
                         "to evaluate", hint="only versions with artifact.path can be evaluated here")
    evaluation = evaluation or model.evaluation
    if evaluation is None:
        raise UsageError(f"model '{model_id}' has no evaluation dataset",
                         hint="add evaluation: {dataset: {path: …, sha256: …}} to its file")
    names = metric_names(model, model_id, requested_metrics, evaluation)
    primary = evaluation.primary
    if requested_metrics is None and primary and primary not in names:
        names += metric_names(model, model_id, [primary])  # compare needs the primary metric
    dataset = evaluation.dataset
    # The files are checked against their recorded digests before a stored result is reused: a
    # result is keyed by the recorded digests, so without this a dataset or artifact changed behind
    # its recorded sha256 would be reported with the old numbers instead of refused.
    artifact_bytes = read_checked(snapshot, artifact.path, artifact.sha256, "artifact")
    dataset_bytes = read_checked(dataset_snapshot or snapshot, dataset.path, dataset.sha256, "dataset")
    stored = _stored(root, model_id, version_id) if reuse and root else None
    if (stored and stored.get("artifact_sha256") == artifact.sha256
            and stored.get("dataset_sha256") == dataset.sha256 and set(names) <= set(stored.get("metrics", {}))):
        stored["reused"] = True
        return stored
    x, y = load_dataset(dataset_bytes, dataset.path, model.task)
    session = _session(artifact_bytes, artifact.path)
    model_input = session.get_inputs()[0]
    width = model_input.shape[1] if len(model_input.shape) == 2 else None
    if isinstance(width, int) and width != x.shape[1]:
        raise InvalidError(f"dataset {dataset.path} has {x.shape[1]} columns but input "
                           f"'{model_input.name}' of {model_id}:{version_id} expects {width}",
                           hint="the dataset does not fit this model; check evaluation.dataset")
    x = x.astype(_ORT_TYPES.get(model_input.type, np.float32), copy=False)
    from modelgit.sessions import Deadline

    deadline = Deadline()
    try:
        with deadline:
            # warm-up, untimed: the first call allocates buffers and would skew the p95 of small sets
            session.run(None, {model_input.name: x[:batch_size]}, deadline.run_options)
            outputs, seconds = run_batches(session, x, batch_size, progress, deadline.run_options)
    except Exception as exc:
        deadline.check(f"{model_id}:{version_id} on dataset {dataset.path}")
        raise InvalidError(f"{model_id}:{version_id} failed on dataset {dataset.path}: "
                           f"{str(exc).strip()[:300]}") from None
    pred = _predictions(model.task, outputs)
    if model.task != "regression" and int(y.max()) >= pred.shape[1]:
        raise InvalidError(f"dataset {dataset.path} has class {int(y.max())} but the model predicts "
                           f"{pred.shape[1]} classes")
    import onnxruntime as ort

    per_row = [len(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    latency_ms = [1000 * s / n for s, n in zip(seconds, per_row, strict=True)]
    result = {
        "schema": RESULT_SCHEMA,
        "model": model_id,
        "version": version_id,
        "task": model.task,
        "commit": snapshot.commit,
        "artifact_sha256": artifact.sha256,
        "dataset": dataset.path,
        "dataset_sha256": dataset.sha256,
        "onnxruntime": ort.__version__,
        "rows": len(x),
        "batch_size": batch_size,
        "metrics": M.compute(names, y, pred),
        "latency": {
            "p50_ms_per_row": float(np.percentile(latency_ms, 50)),
            "p95_ms_per_row": float(np.percentile(latency_ms, 95)),
            "rows_per_second": float(len(x) / sum(seconds)) if sum(seconds) > 0 else None,
        },
        "labels": y.tolist(),
        "predictions": pred.tolist(),
        "reused": False,
    }
    return result


def _stored(root: Path | None, model_id: str, version: str) -> dict[str, Any] | None:
    if root is None:
        return None
    path = root / result_path(model_id, version)
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == RESULT_SCHEMA else None


def write_result(root: Path, result: dict[str, Any]) -> Path:
    """Write the result file atomically (a temp file renamed over it: never half-written), never
    through a committed symlink under ``root`` (see :mod:`modelgit.outputs`)."""
    from modelgit.outputs import write_output

    stored = {k: v for k, v in result.items() if k != "reused"}
    return write_output(root / result_path(result["model"], result["version"]),
                        json.dumps(stored, indent=1) + "\n", within=root)
