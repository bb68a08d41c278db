"""modelgit: a git-native model registry.

>>> from modelgit import validate_registry
>>> report = validate_registry(".", ref="HEAD")      # doctest: +SKIP
>>> report.valid                                     # doctest: +SKIP
True

Every command of the ``modelgit`` CLI is one function of :mod:`modelgit.api` (``show``,
``history``, ``diff``, ``validate``, ``propose``, ``evaluate``, ``compare``, ``ci``,
``check_upgrades``, ``recommend``, ``auto_upgrade``, ``auto_rollback``, ``usage``) returning a typed
result with ``as_dict()``; import it as ``from modelgit import api``.

Public API
----------
The names below are ``modelgit.__all__`` (a test keeps the two equal):

- ``Registry``: the runtime; serves the registry at a ref (``Registry.open(path, ref=...)``).
- ``HostedModel``: what the runtime returns for a version hosted by a provider.
- ``Tracker``: records usage and feedback for continuous learning.
- ``load_snapshot``: the parsed registry at a ref.
- ``validate_registry``: validate the registry at a ref (and against a base).
- ``ModelgitError``: the base of every error modelgit raises (message, hint, exit code).
- ``UsageError``: a wrong argument or unknown name (exit 2).
- ``NotFoundError``: a UsageError for an unknown model, version or git ref (HTTP 404).
- ``ConflictError``: a UsageError for what exists already, e.g. a proposal branch (HTTP 409).
- ``InvalidError``: the registry, or a change to it, is invalid (exit 1).
- ``InputError``: an input array that does not fit the model (a UsageError and a ValueError).
- ``Finding``: one problem found in a file (path, line, column, code, message, hint).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "ConflictError",
    "Finding",
    "HostedModel",
    "InputError",
    "InvalidError",
    "ModelgitError",
    "NotFoundError",
    "Registry",
    "Tracker",
    "UsageError",
    "load_snapshot",
    "validate_registry",
]

__version__ = "0.1.0"

if TYPE_CHECKING:
    from modelgit.errors import (
        ConflictError,
        Finding,
        InputError,
        InvalidError,
        ModelgitError,
        NotFoundError,
        UsageError,
    )
    from modelgit.runtime.registry import HostedModel, Registry
    from modelgit.snapshot import Snapshot
    from modelgit.tracking import Tracker
    from modelgit.validate import Report


_ERRORS = ("ConflictError", "Finding", "InputError", "InvalidError", "ModelgitError", "NotFoundError", "UsageError")


def __getattr__(name: str) -> Any:
    # Every name is imported when first asked for: `import modelgit` (which `modelgit --help` does)
    # then costs nothing but this file; the errors alone pull in dataclasses and inspect (~20 ms).
    if name in _ERRORS:
        from modelgit import errors

        return getattr(errors, name)
    # The runtime pulls in numpy and onnxruntime: import it only when asked for.
    if name in ("Registry", "HostedModel"):
        from modelgit.runtime import registry

        return getattr(registry, name)
    if name == "Tracker":  # SQLAlchemy: only for processes that record usage
        from modelgit.tracking.tracker import Tracker

        return Tracker
    raise AttributeError(f"module 'modelgit' has no attribute {name!r}")


def load_snapshot(repo: str = ".", ref: str = "HEAD") -> Snapshot:
    """The parsed registry at ``ref`` of the repository at ``repo``."""
    from modelgit.gitstore import GitRepo
    from modelgit.snapshot import Loader

    return Loader(GitRepo.discover(repo)).load(ref)


def validate_registry(repo: str = ".", ref: str = "HEAD", base: str | None = None,
                      **options: Any) -> Report:
    """Validate the registry at ``ref`` (and against ``base``); see :class:`modelgit.validate.Report`."""
    from modelgit.gitstore import GitRepo
    from modelgit.validate import Validator

    return Validator(GitRepo.discover(repo)).validate(ref, base=base, **options)
