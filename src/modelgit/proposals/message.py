"""Proposal (a registry change: new file bytes and a commit message), the one function commit
messages come from, and the checks of model and version ids."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from modelgit.errors import UsageError

MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$")
VERSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
SERVABLE = ("active", "staging")
# Actions whose commits change what serves; `rollback` looks for the newest of these.
SERVING_ACTIONS = frozenset(
    {"promote", "deprecate", "archive", "weight", "split", "ab-start", "ab-stop", "rollback", "retire",
     "upgrade", "auto-upgrade", "auto-ramp", "auto-rollback"}  # the last four: check-upgrades, decisions
)


@dataclass(frozen=True)
class Proposal:
    model: str
    action: str
    version: str | None
    subject: str
    base_commit: str
    changes: Mapping[str, bytes | None]  # repo path → new content (None deletes)
    modes: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    extra_trailers: Mapping[str, str] = field(default_factory=dict)
    slug: str | None = None  # branch suffix when there is no version (e.g. split-80-20)

    @property
    def message(self) -> str:
        return commit_message(self.model, self.action, self.version, self.subject, self.body,
                              self.extra_trailers)

    def default_branch(self) -> str:
        suffix = self.slug or (f"{self.action}-{self.version}" if self.version else self.action)
        return f"modelgit/{self.model}/{suffix}"


def commit_message(model: str, action: str, version: str | None, subject: str, body: str = "",
                   extra_trailers: Mapping[str, str] | None = None) -> str:
    """The one place commit messages come from: subject, optional body, then trailers."""
    trailers = [f"Modelgit-Model: {model}", f"Modelgit-Action: {action}"]
    if version:
        trailers.append(f"Modelgit-Version: {version}")
    trailers.extend(f"{k}: {v}" for k, v in (extra_trailers or {}).items())
    parts = [subject.strip()]
    if body.strip():
        parts.append(body.strip())
    parts.append("\n".join(trailers))
    return "\n\n".join(parts) + "\n"


# -- argument checks --------------------------------------------------------------------------------
def check_model_id(model_id: str) -> None:
    if not MODEL_ID.match(model_id) or ".." in model_id or len(model_id) > 128:
        raise UsageError(
            f"'{model_id}' is not a valid model id",
            hint="use lowercase letters, digits, '_', '-', '.', with '/' only between parts "
                 "(e.g. calling_score or openrouter/qwen-2.5-7b-instruct); no '..'",
        )


def check_version_id(version: str) -> None:
    if not VERSION_ID.match(version) or len(version) > 64:
        raise UsageError(f"'{version}' is not a valid version id",
                         hint="use letters, digits, '.', '_', '-', '+', starting with a letter or digit")
