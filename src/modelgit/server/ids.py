"""How registry model ids map onto the API's paths.

A registry model id is the path of its file under ``registry/models/`` without ``.yaml``:

- ``openrouter/qwen-2.5-7b-instruct`` (two parts) is ``{provider}/{model}`` in
  ``/api/model-versions/openrouter/qwen-2.5-7b-instruct/current``;
- ``calling_score`` (no ``/``, an ONNX model of this repository) takes the provider ``local``:
  ``/api/model-versions/local/calling_score/current``, and is also ``/api/models/calling_score``;
- any id, of any depth, is ``/api/models/{id}`` (``/api/models/openrouter/qwen-2.5-7b-instruct``).

A registry folder named ``local/`` would be shadowed in the model-versions routes; its models stay
reachable through ``/api/models/local/…``. Every part is checked against the registry's id pattern
before any lookup: ``..``, ``%2e%2e``, absolute paths, empty parts or control characters are 404.
"""

from __future__ import annotations

import re

__all__ = ["LOCAL", "from_path", "is_model_id", "split_id"]

LOCAL = "local"
_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9_.-]*\Z")
MAX_ID = 128


def is_model_id(model_id: str) -> bool:
    """True when ``model_id`` is a well-formed registry id (proposals.MODEL_ID, no '..', ≤ 128)."""
    if not model_id or len(model_id) > MAX_ID or ".." in model_id:
        return False
    return all(_SEGMENT.match(part) for part in model_id.split("/"))


def from_path(provider: str, model: str) -> str | None:
    """The registry id for ``/api/model-versions/{provider}/{model}``, None when not well-formed."""
    model_id = model if provider == LOCAL else f"{provider}/{model}"
    if "/" in model or not _SEGMENT.match(provider) or not is_model_id(model_id):
        return None
    return model_id


def split_id(model_id: str) -> tuple[str, str]:
    """(provider, model) of a registry id: ``a/b`` → (a, b), ``a/b/c`` → (a, b/c), ``a`` → (local, a)."""
    provider, slash, rest = model_id.partition("/")
    return (provider, rest) if slash else (LOCAL, model_id)
