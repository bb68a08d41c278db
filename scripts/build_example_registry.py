"""Build the example registry under registry/ (and the `modelgit init` template) reproducibly.

Data comes from datasets bundled with scikit-learn (no download):
  calling_score       regression on the diabetes set: v1.0-hybrid (ridge), v2.0-real (boosted trees)
  outcome_prediction  binary classification on the breast-cancer set: v1.0-hybrid (logistic
                      regression), v2.0-real (random forest, staging)
  openrouter/qwen-2.5-7b-instruct  a hosted LLM pinned by provider and model id

Run:  .venv/bin/python scripts/build_example_registry.py [--root DIR]
Needs the `examples` extra (scikit-learn, skl2onnx, onnx). Training is seeded, so the models and
their predictions are the same on every run with the same library versions; tests import
`train_models()` to compare the committed ONNX files with scikit-learn's own predictions.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEED = 20251228
HEADER = "# yaml-language-server: $schema=../../src/modelgit/schemas/model.schema.json\n"


def _split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    return tuple(train_test_split(x, y, test_size=0.25, random_state=SEED))


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Train/test splits: name → (x_train, x_test, y_train, y_test), float32 features."""
    from sklearn.datasets import load_breast_cancer, load_diabetes

    diabetes = load_diabetes()
    cancer = load_breast_cancer()
    out = {}
    for name, bunch in (("calling_score", diabetes), ("outcome_prediction", cancer)):
        x = bunch.data.astype(np.float32)
        y = bunch.target.astype(np.float32 if name == "calling_score" else np.int64)
        out[name] = _split(x, y)
    return out


def train_models() -> dict[tuple[str, str], Any]:
    """The fitted scikit-learn estimators: (model, version) → estimator."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = datasets()
    models: dict[tuple[str, str], Any] = {}
    x_train, _, y_train, _ = data["calling_score"]
    # "hybrid" = trained on a noisier half of the data (a stand-in for synthetic+real data);
    # "real" = trained on all real rows: the newer version should evaluate better.
    rng = np.random.default_rng(SEED)
    half = rng.permutation(len(x_train))[: len(x_train) // 2]
    noisy = y_train[half] + rng.normal(0, 25, size=len(half)).astype(np.float32)
    models[("calling_score", "v1.0-hybrid")] = Ridge(alpha=1.0).fit(x_train[half], noisy)
    models[("calling_score", "v2.0-real")] = GradientBoostingRegressor(
        n_estimators=60, max_depth=2, learning_rate=0.1, random_state=SEED
    ).fit(x_train, y_train)
    x_train, _, y_train, _ = data["outcome_prediction"]
    models[("outcome_prediction", "v1.0-hybrid")] = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=500, C=0.05)
    ).fit(x_train[:120], y_train[:120])
    models[("outcome_prediction", "v2.0-real")] = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=1000, C=1.0)
    ).fit(x_train, y_train)
    return models


def to_onnx(estimator: Any, n_features: int) -> bytes:
    from skl2onnx import to_onnx as skl_to_onnx

    options = None
    if hasattr(estimator, "predict_proba"):
        options = {id(estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator):
                   {"zipmap": False}}
    onx = skl_to_onnx(estimator, np.zeros((1, n_features), dtype=np.float32),
                      target_opset=17, options=options)
    return onx.SerializeToString()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def signature_yaml(data: bytes, indent: str) -> str:
    from modelgit.artifacts import read_signature

    signature = read_signature(data)
    lines = [f"{indent}signature:"]
    for part in ("inputs", "outputs"):
        lines.append(f"{indent}  {part}:")
        for tensor in signature[part]:
            shape = ", ".join("null" if d is None else str(d) for d in tensor["shape"])
            lines.append(f"{indent}    - {{name: {tensor['name']}, type: {tensor['type']}, "
                         f"shape: [{shape}]}}")
    return "\n".join(lines) + "\n"


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def build(root: Path) -> None:
    data = datasets()
    models = train_models()
    reg = root / "registry"
    _write(reg / "modelgit.yaml", (
        "# yaml-language-server: $schema=../src/modelgit/schemas/settings.schema.json\n"
        "# Registry-wide settings. Model files live in models/; the file path is the model id.\n"
        "schema_version: 1\n"
        "name: example\n"
        "defaults:\n"
        "  policy:\n"
        "    auto_upgrade: false\n"
        "    min_quality_improvement: 0.05  # relative gain of the primary metric to upgrade\n"
        "routing:\n"
        "  salt: example-2025\n"
    ))
    artifacts: dict[tuple[str, str], bytes] = {}
    for (model, version), estimator in models.items():
        n_features = data[model][0].shape[1]
        artifacts[(model, version)] = to_onnx(estimator, n_features)
        filename = f"{model}_{version.replace('.', '_').replace('-', '_')}.onnx"
        _write(reg / "artifacts" / filename, artifacts[(model, version)])
    evals = {}
    for model, (_, x_test, _, y_test) in data.items():
        payload = _npz(X=x_test, y=y_test)
        _write(reg / "datasets" / f"{model}_eval.npz", payload)
        evals[model] = sha256(payload)

    def version_block(model: str, version: str, status: str, weight: float, trained: str,
                      metrics: str, notes: str) -> str:
        blob = artifacts[(model, version)]
        filename = f"{model}_{version.replace('.', '_').replace('-', '_')}.onnx"
        return (
            f"  - version: {version}\n"
            f"    status: {status}\n"
            f"    weight: {weight}\n"
            f"    artifact:\n"
            f"      path: registry/artifacts/{filename}\n"
            f"      sha256: {sha256(blob)}\n"
            + signature_yaml(blob, "      ")
            + f"    data_source: {notes}\n"
            f"    trained: {trained}\n"
            f"    metrics: {metrics}\n"
        )

    _write(reg / "models" / "calling_score.yaml", HEADER + (
        "name: calling_score\n"
        "description: Scores how well a caller fits a role (regression).\n"
        "owner: ml-platform\n"
        "task: regression\n"
        "evaluation:\n"
        f"  dataset: {{path: registry/datasets/calling_score_eval.npz, sha256: {evals['calling_score']}}}\n"
        "  metrics: [rmse, mae, r2]\n"
        "  primary: rmse\n"
        "versions:  # release order, newest last\n"
        + version_block("calling_score", "v1.0-hybrid", "active", 0.1, "2025-12-28",
                        "{test_loss: 0.0267}", "hybrid_big_five")
        + version_block("calling_score", "v2.0-real", "staging", 0.3, "2026-02-10",
                        "{test_loss: 0.0198}", "real_outcomes")
        + "    improvements:\n      - trained on real outcomes instead of the hybrid set\n"
        "traffic:  # A/B split in percent\n"
        "  v1.0-hybrid: 90\n"
        "  v2.0-real: 10\n"
        "policy:\n"
        "  auto_upgrade: false\n"
        "  min_quality_improvement: 0.1\n"
    ))
    _write(reg / "models" / "outcome_prediction.yaml", HEADER + (
        "name: outcome_prediction\n"
        "description: Predicts whether an engagement ends well (binary classification).\n"
        "owner: ml-platform\n"
        "task: binary-classification\n"
        "evaluation:\n"
        f"  dataset: {{path: registry/datasets/outcome_prediction_eval.npz, sha256: {evals['outcome_prediction']}}}\n"
        "  metrics: [accuracy, f1, roc_auc, log_loss]\n"
        "  primary: accuracy\n"
        "versions:\n"
        + version_block("outcome_prediction", "v1.0-hybrid", "active", 1.0, "2025-12-28",
                        "{accuracy: 0.93}", "hybrid_big_five")
        + version_block("outcome_prediction", "v2.0-real", "staging", 1.0, "2026-02-10",
                        "{accuracy: 0.96}", "real_outcomes")
    ))
    _write(reg / "models" / "openrouter" / "qwen-2.5-7b-instruct.yaml",
           HEADER.replace("../../", "../../../") + (
               "name: openrouter/qwen-2.5-7b-instruct\n"
               "description: Hosted LLM used to draft summaries, pinned by provider and model id.\n"
               "owner: ml-platform\n"
               "task: generation\n"
               "versions:\n"
               "  - version: 1.0.0\n"
               "    status: deprecated\n"
               "    artifact: {provider: openrouter, model_id: qwen/qwen-2.5-7b-instruct}\n"
               "    migration_notes: replaced by 1.1.0; pin 1.0.0 only to reproduce old outputs\n"
               "  - version: 1.1.0\n"
               "    status: active\n"
               "    artifact: {provider: openrouter, model_id: qwen/qwen-2.5-7b-instruct-2025-06}\n"
               "    improvements:\n"
               "      - newer provider snapshot with longer context\n"
           ))
    build_template(root / "src" / "modelgit" / "templates")


def tiny_linear_onnx() -> bytes:
    """A 4-input linear scorer built with onnx.helper (a few hundred bytes) for `modelgit init`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array([[0.4], [0.3], [0.2], [0.1]], np.float32), "W")
    bias = numpy_helper.from_array(np.array([0.0], np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "B"], ["score"])],
        "example_scorer",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])],
        [weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="modelgit")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build_template(templates: Path) -> None:
    blob = tiny_linear_onnx()
    reg = templates / "registry"
    _write(reg / "artifacts" / "example_scorer_v1.onnx", blob)
    _write(reg / "models" / "example_scorer.yaml", (
        "# yaml-language-server: $schema=../../schemas/model.schema.json\n"
        "# An example model. The file path under registry/models/ is the model id.\n"
        "name: example_scorer\n"
        "description: A tiny linear scorer to show the format; replace it with your models.\n"
        "owner: you\n"
        "task: regression\n"
        "versions:  # release order, newest last\n"
        "  - version: v1\n"
        "    status: active  # staging | active | deprecated | archived\n"
        "    weight: 1.0\n"
        "    artifact:\n"
        "      path: registry/artifacts/example_scorer_v1.onnx\n"
        f"      sha256: {sha256(blob)}\n"
        + signature_yaml(blob, "      ")
        + "    trained: 2026-01-01\n"
    ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root to write into")
    args = parser.parse_args()
    build(args.root)
    print(f"example registry written under {args.root / 'registry'}")


if __name__ == "__main__":
    main()
