"""The fast reader (yamlio._build_fast) accepts exactly what the exact builder accepts, with the
same value, and leaves everything else to it: ``load`` gives the same value and findings either way.

Expected values come from the exact builder (the reader the hostile-input tests pin down) and, for
documents without the scalars where we deliberately differ from PyYAML, from ``yaml.safe_load``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelgit import yamlio

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _typed_view(value: Any) -> Any:
    """The value with every scalar's type spelt out (so that True and 1, 1 and 1.0 differ)."""
    if isinstance(value, dict):
        return ("dict", [(_typed_view(k), _typed_view(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed_view(v) for v in value])
    if isinstance(value, float) and value != value:
        return ("float", "nan")
    return (type(value).__name__, value)


def _both(data: bytes) -> tuple[Any, Any]:
    fast_value, fast_findings = yamlio.load(data, "m.yaml")
    exact_value, exact_findings = yamlio.load(data, "m.yaml", fast=False)
    assert fast_findings == exact_findings
    assert _typed_view(fast_value) == _typed_view(exact_value)
    return exact_value, exact_findings


HOSTILE = [
    "a: &x 1\nb: *x\n", "a: *x\n", "a: !!str 1\n", "a: ! 1\n", "a: ! '1'\n", "! a: 1\n", "&a a: 1\n",
    "a: !custom {b: 1}\n", "a: 1\na: 2\n", "<<: {a: 1}\n", "'<<': 1\n", "\"<<\": 1\n", "1: a\n", "~: a\n",
    "yes: a\n", "'yes': a\n", "? [a]\n: b\n", "? {a: 1}\n: b\n", "caf\u00e9: 1\ncafe\u0301: 2\n",
    "caf\u00e9: 1\nna\u00efve: 2\n", "a: 9e1\n", "a: 1.0e5\n", "a: 1.0e+5\n", "a: " + "9" * 5000 + "\n",
    "a: 1\n---\nb: 2\n", "---\na: 1\n...\n", "---\n", "", "# only a comment\n", "...\n", "a: [1, 2\n",
    "a: b: c\n", "a:\n\t- b\n", "a: 'x\n", "- a\n- *b\n", "[a, b]\n", "plain text\n", "'quoted'\n",
    "- - - - x\n", "a: {b: [c, {d: e}]}\n", "a: |\n  text\n  more\nb: >\n  folded\n", "a: \x07\n",
    "a: 2025-01-02\nb: 1.10\nc: 0x1f\nd: 0o17\ne: 017\nf: .inf\ng: -.nan\nh: 1_000\ni: 3:25:45\n",
    "a: null\nb: Null\nc: ~\nd:\ne: ''\n", "[1, 2]: x\n", "a: [b, *c]\n", "? a\n? a\n",
    "a:\n  - &anchor\n    b: 1\n  - *anchor\n", "--- !!map\na: 1\n", "%YAML 1.1\n---\na: 1\n",
    "%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n", "a: b\n  c: d\n", "\ufeffa: 1\n",
    "a: R&D\nb: 'x*y'\nc: hi!\nd: [1, 'no']\n", "a: R&D\nb: &x 1\n", "'caf\u00e9': 1\n\"x\": 2\n",
    "- \n- ''\n- ~\n- \"\"\n", ": v\n", "'': v\n", "a: {? b}\n", "a: !!binary aGk=\n",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_snippets_read_the_same(text: str) -> None:
    _both(text.encode())


@pytest.mark.parametrize("depth", [62, 63, 64, 65, 200])
def test_nesting_limit_is_the_same(depth: int) -> None:
    for text in ("[" * depth + "]" * depth + "\n", "- " * depth + "x\n",
                 "".join("  " * i + "k:\n" for i in range(depth)) + "  " * depth + "v\n",
                 "a: " + "{b: " * depth + "c" + "}" * depth + "\n"):
        _, findings = _both(text.encode())
        if depth == 200:
            assert [f.code for f in findings] == ["YAML012"]
        if depth == 62:
            assert not findings


def _corpus() -> list[Path]:
    files = [*TESTS.rglob("*.yaml"), *TESTS.rglob("*.yml"), *(ROOT / "registry").rglob("*.yaml")]
    return sorted(p for p in files if p.is_file())


def test_every_yaml_file_of_the_repository_reads_the_same() -> None:
    files = _corpus()
    assert len(files) > 40
    refused = 0
    for path in files:
        _, findings = _both(path.read_bytes())
        refused += bool(findings)
    assert refused > 10  # the bad-inputs corpus is in there


# -- generated documents -------------------------------------------------------------------------
# Scalars PyYAML reads as we do, and some where YAML readers disagree or keys go wrong.
SAFE_PLAIN = ["a", "hello world", "v1.2", "1", "-3", "0.5", "1.10", "true", "False", "no", "~", "null",
              "0x1f", ".inf", "1_000", "s3://b/k", "x-y_z", "12ab", "caf\u00e9"]
RISKY_PLAIN = ["9e1", "1.0e5", "2025-01-02", "<<", "yes", "1" * 5000]
QUOTED = ["'1'", "'yes'", "\"a\\tb\"", "'it''s'", "\"<<\"", "''", "\"caf\\u00e9\""]
KEYS_SAFE = ["name", "task", "versions", "k1", "k2", "a b", "'quoted'", "\"dq\""]
KEYS_RISKY = ["1", "yes", "~", "<<", "caf\u00e9", "cafe\u0301", "name"]


def _gen(rng: random.Random, depth: int, risky: bool, indent: int) -> str:
    """A YAML value as text; block forms are written at ``indent`` (the text starts on a new line)."""
    kind = rng.random()
    plain = SAFE_PLAIN + (RISKY_PLAIN if risky else [])
    if depth <= 0 or kind < 0.35:
        return rng.choice(plain + QUOTED)
    keys = KEYS_SAFE + (KEYS_RISKY if risky else [])
    size = rng.randint(0, 4)
    pad = " " * indent
    if kind < 0.5:
        return "[" + ", ".join(_gen_flow(rng, depth - 1, risky) for _ in range(size)) + "]"
    if kind < 0.6:
        items = rng.sample(keys, min(size, len(keys))) if not risky else [rng.choice(keys) for _ in range(size)]
        return "{" + ", ".join(f"{k}: {_gen_flow(rng, depth - 1, risky)}" for k in items) + "}"
    if size == 0:
        return "[]"
    if kind < 0.8:
        return "\n" + "".join(f"{pad}- {_block(rng, depth - 1, risky, indent + 2)}" for _ in range(size))
    items = rng.sample(keys, min(size, len(keys))) if not risky else [rng.choice(keys) for _ in range(size)]
    return "\n" + "".join(f"{pad}{k}: {_block(rng, depth - 1, risky, indent + 2)}" for k in items)


def _gen_flow(rng: random.Random, depth: int, risky: bool) -> str:
    text = _gen(rng, min(depth, 1), risky, 0)
    return text if not text.startswith("\n") else "[]"


def _block(rng: random.Random, depth: int, risky: bool, indent: int) -> str:
    text = _gen(rng, depth, risky, indent)
    return text if text.startswith("\n") else text + "\n"


@pytest.mark.parametrize("seed", range(40))
def test_generated_documents_read_the_same(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        risky = rng.random() < 0.5
        text = "root:" + _block(rng, 4, risky, 2)
        value, findings = _both(text.encode())
        if not risky and not findings:
            # Nothing ambiguous in it: PyYAML reads the same value.
            assert _typed_view(value) == _typed_view(yaml.safe_load(text)), text


def test_generated_documents_cover_both_outcomes() -> None:
    outcomes = set()
    fast_read = 0
    rng = random.Random(0)
    for _ in range(200):
        text = "root:" + _block(rng, 4, rng.random() < 0.5, 2)
        outcomes.add(bool(yamlio.load(text.encode(), "m.yaml")[1]))
        try:
            yamlio._build_fast(text)
        except Exception:  # left to the exact builder
            continue
        fast_read += 1
    assert outcomes == {True, False}
    assert 50 < fast_read < 200  # the fast reader took many, and left some to the exact builder
