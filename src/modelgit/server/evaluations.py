"""The evaluation side of recommendations, kept per commit and model for the server's pages and
routes: check-upgrades runs onnxruntime over each evaluation set and a paired bootstrap per
comparison (about a second for the example registry), and a commit's artifacts and datasets never
change, so neither does the outcome. Bounded, so a long-lived server does not grow; the working
tree (commit None) is never cached."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from modelgit.snapshot import Snapshot

__all__ = ["upgrades"]

_lock = threading.Lock()
_cache: OrderedDict[tuple[str, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = OrderedDict()
CACHE_SIZE = 1024


def upgrades(snapshot: Snapshot, root: Path | None, model_ids: list[str] | None = None
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """check-upgrades' (recommendations, skipped) for ``model_ids`` (default: every model) at the
    snapshot, each model's outcome computed once per commit. Items are copies: a caller may change
    them. A ModelgitError (an artifact that cannot be read) is raised and not cached."""
    from modelgit.upgrades import check_upgrades

    evaluated: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for model_id in model_ids if model_ids is not None else list(snapshot.files):
        key = (snapshot.commit, model_id)
        with _lock:
            found = _cache.get(key) if snapshot.commit else None
        if found is None:
            one = dataclasses.replace(snapshot, files={model_id: snapshot.files[model_id]})
            found = check_upgrades(one, root)
            if snapshot.commit:
                with _lock:
                    _cache[key] = found  # type: ignore[index]
                    while len(_cache) > CACHE_SIZE:
                        _cache.popitem(last=False)
        evaluated.extend(dict(item) for item in found[0])
        skipped.extend(dict(item) for item in found[1])
    return evaluated, skipped
