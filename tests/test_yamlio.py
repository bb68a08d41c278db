"""Unit tests of the strict YAML reader: how plain scalars are typed, and where ``locate`` points.

Plain scalars are typed as PyYAML's YAML 1.1 resolver types them, so that ``version: 1.10`` is
*seen* as the float 1.1 and refused with a hint. Each expected value below is written by hand and
checked against both our loader and ``yaml.safe_load``; the deliberate differences are listed
apart.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
import yaml

from modelgit import yamlio

NAN = object()  # NaN is not equal to itself; compare it by math.isnan

# (plain scalar, the value YAML 1.1 gives it)
SAME_AS_PYYAML: list[tuple[str, Any]] = [
    ("1.10", 1.1),            # the reason for all this: a version id read as a float
    ("1.0", 1.0),
    ("0.", 0.0),
    (".5", 0.5),
    ("1_0.5", 10.5),
    ("1.0e+5", 100000.0),     # YAML 1.1 wants a dot and a signed exponent
    ("0755", 493),            # octal
    ("0x1f", 31),
    ("+0x1F", 31),
    ("0b101", 5),
    ("-0b11", -3),
    ("1_000", 1000),
    ("-1_000", -1000),
    ("+12", 12),
    ("-0", 0),
    ("0", 0),
    ("1:20", 80),             # sexagesimal: 1 * 60 + 20
    ("190:20:30", 685230),
    ("1:20.5", 80.5),
    (".inf", math.inf),
    ("-.inf", -math.inf),
    (".Inf", math.inf),
    (".NaN", NAN),
    ("~", None),
    ("null", None),
    ("Null", None),
    ("NULL", None),
    ("", None),
    ("no", False),
    ("No", False),
    ("off", False),
    ("FALSE", False),
    ("yes", True),
    ("ON", True),
    ("True", True),
    # Strings: near misses of the patterns above.
    ("y", "y"),
    ("n", "n"),
    ("nULL", "nULL"),
    ("tRUE", "tRUE"),
    ("08", "08"),             # not octal, not decimal (a leading 0)
    ("0o17", "0o17"),         # YAML 1.2 octal, a string in 1.1
    ("0x", "0x"),
    ("1:60", "1:60"),         # 60 is not a sexagesimal digit pair
    ("1,000", "1,000"),
    ("1.2.3", "1.2.3"),
    ("+.5", "+.5"),
    ("v1.10", "v1.10"),
    ("hello world", "hello world"),
]

# Where we differ from yaml.safe_load on purpose: (text, ours, PyYAML's).
DELIBERATE_DIFFERENCES: list[tuple[str, Any, Any]] = [
    # Dates and timestamps stay text: `trained: 2025-12-28` is a string in the schema, and a
    # datetime would not survive JSON.
    ("2025-12-28", "2025-12-28", datetime.date(2025, 12, 28)),
    ("2001-12-14 21:59:43", "2001-12-14 21:59:43", datetime.datetime(2001, 12, 14, 21, 59, 43)),
]

# Exponent forms that YAML 1.1 readers disagree on: PyYAML follows the YAML 1.1 float regexp (a
# dot in the mantissa, a sign on the exponent) and reads a string; ruamel.yaml — our writer —
# reads a float in YAML 1.1 and 1.2 alike (warning, in 1.1, that the dot is missing). A file must
# mean one thing to every tool, so the reader refuses them: (text, the float ruamel reads).
DISPUTED_EXPONENTS: list[tuple[str, float]] = [
    ("9e1", 90.0),
    ("1e3", 1000.0),
    ("-1e-3", -0.001),
    ("3E-1", 0.3),
    ("1_000e1", 10000.0),
    ("1.0e5", 100000.0),      # a dot, but an unsigned exponent
    ("+2.5e3", 2500.0),
]


def _value(text: str) -> Any:
    value, findings = yamlio.load(f"k: {text}\n".encode(), "t.yaml")
    assert findings == []
    return value["k"]


def _same(got: Any, expected: Any) -> bool:
    if expected is NAN:
        return isinstance(got, float) and math.isnan(got)
    return type(got) is type(expected) and got == expected


def test_the_corpus_is_big_enough() -> None:
    assert len(SAME_AS_PYYAML) >= 30


@pytest.mark.parametrize(("text", "expected"), SAME_AS_PYYAML, ids=[repr(t) for t, _ in SAME_AS_PYYAML])
def test_plain_scalar_typing_matches_pyyaml(text: str, expected: Any) -> None:
    ours = _value(text)
    theirs = yaml.safe_load(f"k: {text}\n")["k"]
    assert _same(ours, expected), (ours, expected)
    assert _same(theirs, expected), (theirs, expected)


@pytest.mark.parametrize(("text", "ours", "pyyaml"), DELIBERATE_DIFFERENCES,
                         ids=[repr(t) for t, _, _ in DELIBERATE_DIFFERENCES])
def test_deliberate_differences_from_pyyaml(text: str, ours: Any, pyyaml: Any) -> None:
    assert _same(_value(text), ours)
    assert _same(yaml.safe_load(f"k: {text}\n")["k"], pyyaml)


def _ruamel(text: str, version: str = "") -> Any:
    import warnings

    from ruamel.yaml import YAML

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MantissaNoDotYAML1_1Warning: the disagreement itself
        return YAML(typ="rt").load(f"{version}k: {text}\n")["k"]


@pytest.mark.parametrize(("text", "number"), DISPUTED_EXPONENTS, ids=[t for t, _ in DISPUTED_EXPONENTS])
def test_exponents_the_libraries_disagree_on_are_refused(text: str, number: float) -> None:
    assert yaml.safe_load(f"k: {text}\n")["k"] == text  # PyYAML: a string
    assert float(_ruamel(text)) == number  # ruamel.yaml, as our writer loads files (YAML 1.2)
    assert float(_ruamel(text, "%YAML 1.1\n---\n")) == number
    value, findings = yamlio.load(f"weight: {text}\n".encode(), "t.yaml")
    assert value is None
    assert [(f.line, f.col, f.code) for f in findings] == [(1, 9, "YAML019")]
    assert findings[0].message == (f"{text} is read as the number {number!r} by some YAML readers "
                                   "and as a string by others")
    assert f"quote it if it is text: '{text}'" in findings[0].hint
    assert yamlio.is_typed_plain(text)


@pytest.mark.parametrize("number", [1e-05, 2.5e-07, 1e20, 0.3, 90.0, -1e-3, 123456789.125])
def test_the_writer_spells_floats_so_every_reader_agrees(number: float) -> None:
    from modelgit import yamledit

    text = yamledit.edit("name: m\nweight: 0.5\n", lambda data: data.__setitem__("weight", number))
    assert text.startswith("name: m\nweight: ")
    assert yaml.safe_load(text)["weight"] == number
    assert float(_ruamel(text.split("weight: ")[1].strip())) == number
    value, findings = yamlio.load(text.encode(), "t.yaml")
    assert findings == []
    assert value == {"name": "m", "weight": number}


def test_the_hint_spells_the_number_as_yaml_1_1_does() -> None:
    _, findings = yamlio.load(b"lr: 1e-5\n", "t.yaml")
    assert findings[0].hint == "write the number as 1.0e-05, or quote it if it is text: '1e-5'"
    assert yaml.safe_load("lr: 1.0e-05")["lr"] == 1e-05


def test_integer_past_pythons_digit_limit_is_a_finding() -> None:
    value, findings = yamlio.load(b"a: 1\nbig: " + b"7" * 4301 + b"\n", "t.yaml")
    assert value is None
    assert [(f.line, f.col, f.code, f.message) for f in findings] == [
        (2, 6, "YAML018", "integer with 4,301 digits is too long to read")]
    # Within the limit it is still an integer.
    assert yamlio.load(b"big: " + b"7" * 4300 + b"\n", "t.yaml")[0] == {"big": int("7" * 4300)}


def test_keys_equal_after_unicode_normalisation_are_duplicates() -> None:
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    assert nfc != nfd
    value, findings = yamlio.load(f"{nfc}: 1\nother: 2\n{nfd}: 3\n".encode(), "t.yaml")
    assert value is None
    assert [(f.line, f.col, f.code) for f in findings] == [(3, 1, "YAML017")]
    assert "another Unicode normalisation" in findings[0].message
    # Different words that merely share letters stay apart.
    assert yamlio.load("caf\u00e9: 1\ncaf\u00e8: 2\n".encode(), "t.yaml")[1] == []


@pytest.mark.parametrize("text", ["'1.10'", '"0755"', "'no'", '"~"', "'2025-12-28'", '"1:20"'])
def test_quoted_scalars_are_strings(text: str) -> None:
    assert _value(text) == text[1:-1]


def test_block_scalars_and_keys_are_strings() -> None:
    value, findings = yamlio.load(b"notes: |\n  1.10\nyes_key: 1\nk2: >\n  no\n", "t.yaml")
    assert findings == []
    assert value == {"notes": "1.10\n", "yes_key": 1, "k2": "no\n"}


def test_is_typed_plain() -> None:
    assert yamlio.is_typed_plain("1.10")
    assert yamlio.is_typed_plain("no")
    assert yamlio.is_typed_plain("2025-12-28")  # a string to us, a date to other tools: still flagged
    assert not yamlio.is_typed_plain("v1.10")
    assert not yamlio.is_typed_plain("hello")


def test_load_structure_bom_and_empty() -> None:
    text = "\ufeffname: m\nlist: [1, two, {a: ~}]\nnested:\n  - - x\n"
    value, findings = yamlio.load(text.encode(), "t.yaml")
    assert findings == []
    assert value == {"name": "m", "list": [1, "two", {"a": None}], "nested": [["x"]]}
    assert yamlio.load(b"", "t.yaml") == (None, [])
    assert yamlio.load(b"# only a comment\n", "t.yaml") == (None, [])


def test_load_refuses_with_position() -> None:
    value, findings = yamlio.load(b"a: 1\nb: &x 2\na: 3\n", "t.yaml")
    assert value is None
    assert [(f.line, f.col, f.code) for f in findings] == [(2, 4, "YAML010"), (3, 1, "YAML017")]


# -- locate -----------------------------------------------------------------------------------------
DOC = b"""\
name: m
versions:
  - version: v1
    status: active
    artifact:
      path: a.onnx
traffic: {v1: 90, "v2": 10}
tags: [a, [b, c]]
quoted: "q"
"""

LOCATIONS = [
    # path, key?, (line, col, plain text)
    ((), False, (1, 1, None)),
    (("name",), False, (1, 7, "m")),
    (("versions",), False, (3, 3, None)),            # the block sequence starts at its first '-'
    (("versions", 0), False, (3, 5, None)),          # the item mapping starts at its first key
    (("versions", 0, "status"), False, (4, 13, "active")),
    (("versions", 0, "status"), True, (4, 5, None)),  # the key itself
    (("versions", 0, "artifact", "path"), False, (6, 13, "a.onnx")),
    (("traffic", "v2"), False, (7, 25, "10")),
    (("traffic", "v2"), True, (7, 19, None)),        # a quoted key
    (("tags", 1, 0), False, (8, 12, "b")),
    (("tags", 1, 1), False, (8, 15, "c")),
    (("quoted",), False, (9, 9, None)),              # quoted: no plain text
    # Missing paths fall back to the deepest part that exists.
    (("versions", 0, "weight"), False, (3, 5, None)),
    (("versions", 3), False, (3, 3, None)),
    (("tags", 1, 5), False, (8, 11, None)),
    (("owner",), False, (1, 1, None)),
]


@pytest.mark.parametrize(("path", "key", "expected"), LOCATIONS,
                         ids=[f"{'.'.join(map(str, p)) or 'root'}{'-key' if k else ''}" for p, k, _ in LOCATIONS])
def test_locate(path: tuple[Any, ...], key: bool, expected: tuple[int, int, str | None]) -> None:
    assert yamlio.locate(DOC, path, key=key) == expected


def test_locate_counts_columns_in_characters() -> None:
    assert yamlio.locate('k: {a: "é", b: x}\n'.encode(), ("k", "b")) == (1, 16, "x")


def test_locate_in_top_level_list() -> None:
    assert yamlio.locate(b"- a\n- - b\n  - c\n", (1, 1)) == (3, 5, "c")


def test_locate_stops_at_a_syntax_error_with_what_it_found() -> None:
    broken = b"a: 1\nb: [\n"
    assert yamlio.locate(broken, ("a",)) == (1, 4, "1")
    assert yamlio.locate(broken, ("b", 0)) == (2, 4, None)


# -- the flow-depth limit, checked before libyaml sees the text ------------------------------------
def _first_too_deep_flow_start(text: str) -> tuple[int, int] | None:
    """The independent answer: libyaml's own events (their ``flow_style``), on documents shallow
    enough (< 1,000) for every libyaml build to parse."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.CollectionStartEvent) and event.flow_style:
            depth += 1
            if depth > yamlio.MAX_DEPTH:
                return event.start_mark.line + 1, event.start_mark.column + 1
        elif isinstance(event, yaml.CollectionEndEvent) and depth and _closes_flow(text, event):
            depth -= 1
    return None


def _closes_flow(text: str, event: Any) -> bool:
    mark = event.start_mark
    return text.split("\n")[mark.line][mark.column : mark.column + 1] in ("]", "}")


# Strings that look like YAML syntax, so the scan must tell text from structure.
_TRICKY = ["[", "]", "{", "it's", 'say "hi"', "# not a comment", "a: b", "- x", "|", "> y", "[1, 2]", "\\", "''"]


def _leaf(rng: Any) -> Any:
    return rng.choice([*_TRICKY, 1, 1.5, None, True, "plain"])


def _nested(rng: Any, depth: int) -> Any:
    """A spine ``depth`` collections deep, with leaves (and short side branches) beside it."""
    if depth == 0:
        return _leaf(rng)
    items = [_nested(rng, depth - 1)]
    if rng.random() < 0.3:
        items.append(_nested(rng, rng.randint(0, 3)))
    if rng.random() < 0.5:
        items.insert(rng.randint(0, len(items)), _leaf(rng))
    if rng.random() < 0.5:
        return items
    return {rng.choice(_TRICKY) + str(i): item for i, item in enumerate(items)}


@pytest.mark.parametrize("seed", range(60))
def test_flow_depth_scan_agrees_with_libyaml_events(seed: int) -> None:
    import random

    rng = random.Random(seed)
    data = {"name": "m", "deep": _nested(rng, rng.choice([20, 66, 70, 90])), "note": rng.choice(_TRICKY)}
    text = yaml.safe_dump(data, default_flow_style=rng.choice([None, True, False]), width=rng.choice([40, 10_000]),
                          default_style=rng.choice([None, None, "'", '"', "|"]))
    assert yamlio.flow_too_deep(text) == _first_too_deep_flow_start(text)


@pytest.mark.parametrize("text", [
    "a: |\n  " + "[" * 100 + "\nb: 1\n",          # a block scalar is text
    "a: it's " + "[" * 100 + "\n",                # an apostrophe in plain text opens nothing
    "a: 'it''s " + "[" * 100 + "'\n",             # '' inside single quotes
    'a: "x\\" ' + "[" * 100 + '"\n',              # \" inside double quotes
    "# " + "[" * 100 + "\nb: [1]\n",              # a comment
    "a: [" + "'[', " * 100 + "]\n",               # quoted brackets inside flow
])
def test_flow_depth_scan_reads_text_as_text(text: str) -> None:
    yaml.parse(text, Loader=yaml.CSafeLoader)  # each is valid YAML
    assert yamlio.flow_too_deep(text) is None
    assert yamlio.load(text.encode(), "f.yaml")[1] == []


def test_flow_depth_limit_is_ours_whatever_libyaml_allows() -> None:
    for depth in (65, 999, 1_001, 30_000):  # libyaml stops near 1,000 with an error of its own
        _, findings = yamlio.load(("k: v\nversions: " + "[" * depth + "\n").encode(), "f.yaml")
        assert [(f.line, f.col, f.code) for f in findings] == [(2, 11 + yamlio.MAX_DEPTH, "YAML012")]
    _, findings = yamlio.load(("k: " + "[" * 64 + "]" * 64 + "\n").encode(), "f.yaml")
    assert [f.code for f in findings] == ["YAML012"]  # 64 flow levels + the root mapping: 65 in all
