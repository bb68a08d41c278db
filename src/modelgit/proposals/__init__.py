"""Proposals: every registry change is a validated commit on its own branch.

A verb (``plan_*``, in :mod:`.plans`; ``plan_rollback`` in :mod:`.rollback`) reads the model file
at a base commit, edits it with comment-preserving YAML, and returns a :class:`Proposal` (new file
bytes + commit message, :mod:`.message`). :func:`apply` (:mod:`.apply`) validates the resulting
registry with the same pipeline as ``modelgit validate`` (including the base-ref rules) and only
then writes git objects and creates the branch — from objects alone, never touching the user's
working tree, index or HEAD (except with ``on_current_branch``, which updates exactly the files it
changed).

>>> from modelgit import proposals
>>> base = proposals.load_base(loader, "HEAD", "calling_score")                      # doctest: +SKIP
>>> proposals.apply(repo, proposals.plan_promote(base, "calling_score", "v4")).branch  # doctest: +SKIP
'modelgit/calling_score/promote-v4'
"""

from __future__ import annotations

from modelgit.proposals.apply import Outcome, apply, load_base, overlay, render_diff, validate_change
from modelgit.proposals.message import (
    MODEL_ID,
    SERVABLE,
    SERVING_ACTIONS,
    VERSION_ID,
    Proposal,
    check_model_id,
    check_version_id,
    commit_message,
)
from modelgit.proposals.plans import (
    HOSTED_MODEL_ID,
    PROVIDER,
    NewVersion,
    check_hosted,
    is_uri,
    parse_split,
    plan_ab_start,
    plan_ab_stop,
    plan_archive,
    plan_dataset,
    plan_deprecate,
    plan_promote,
    plan_register,
    plan_retire,
    plan_split,
    plan_weight,
)
from modelgit.proposals.rollback import SERVING_CHANGE_KINDS, plan_rollback

__all__ = [
    "HOSTED_MODEL_ID",
    "MODEL_ID",
    "PROVIDER",
    "SERVABLE",
    "SERVING_ACTIONS",
    "SERVING_CHANGE_KINDS",
    "VERSION_ID",
    "NewVersion",
    "Outcome",
    "Proposal",
    "apply",
    "check_hosted",
    "check_model_id",
    "check_version_id",
    "commit_message",
    "is_uri",
    "load_base",
    "overlay",
    "parse_split",
    "plan_ab_start",
    "plan_ab_stop",
    "plan_archive",
    "plan_dataset",
    "plan_deprecate",
    "plan_promote",
    "plan_register",
    "plan_retire",
    "plan_rollback",
    "plan_split",
    "plan_weight",
    "render_diff",
    "validate_change",
]
