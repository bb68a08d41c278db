"""Strict YAML reading with positions.

Registry files are read from libyaml's *event* stream and built into plain Python data by a small
loop of our own, instead of ``yaml.safe_load``:

* libyaml's parser is iterative, so deep nesting cannot overflow the C stack (its recursive
  composer segfaults near 30,000 nested ``[``); we stop at :data:`MAX_DEPTH` levels.
* Anchors, aliases, merge keys, explicit tags, duplicate keys, several documents and non-string
  keys are all visible in events and refused with their line and column — an alias can never be
  expanded, so a "billion laughs" document costs nothing.
* It is faster than PyYAML's constructor (no node graph, no generators), which matters because
  parsing is the floor of a cold ``validate``. Two readers share the work: a fast one
  (:func:`_build_fast`) that only accepts, and gives up on anything it would have to report; then
  the exact one (:func:`_build`) reads the file again for its findings. Tests hold them to the
  same outcome on every file.

Positions of values are not kept on the fast path; :func:`locate` re-reads the file to find the
line of a JSON path when a finding needs it (rare, so we pay only then).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import yaml
import yaml.reader
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from modelgit.errors import Finding

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64

try:  # libyaml is bundled with PyYAML wheels; fall back to the pure parser if it is missing.
    _Parser: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Parser = yaml.SafeLoader

# YAML 1.1 implicit typing of plain scalars, as PyYAML applies it. We keep it (rather than
# reading everything as strings) so that `version: 1.10` is *detected* and refused with a hint
# instead of silently becoming the float 1.1 or the string "1.10" depending on the tool.
_BOOL = re.compile(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
_TRUE = frozenset({"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_INT = re.compile(
    r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
    r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$"
)
_FLOAT = re.compile(
    r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
    r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
    r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+)$"
)
_TIMESTAMP = re.compile(
    r"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}"
    r":[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$"
)
# First characters that can start a non-string plain scalar; anything else is a string at once.
_TYPED_START = frozenset("0123456789+-.~ynYNtTfFoO")
_constructor = SafeConstructor()


_typed_memo: dict[str, Any] = {}
_DECIMAL = re.compile(r"^[-+]?[0-9]+\.[0-9]+$")


def _typed(text: str) -> Any:
    """The value PyYAML's YAML 1.1 resolver gives a plain scalar (timestamps stay text)."""
    if not text:
        return None
    if text[0] not in _TYPED_START:
        return text
    # Registry files repeat the same scalars (statuses, weights, dates): resolve each text once.
    found = _typed_memo.get(text, _typed_memo)
    if found is not _typed_memo:
        return found
    if len(_typed_memo) > 100_000:
        _typed_memo.clear()
    value = _typed_memo[text] = _resolve(text)
    return value


# A float whose mantissa has no dot (`9e1`, `1e-5`) or whose exponent has no sign (`1.0e5`):
# PyYAML follows the YAML 1.1 float regexp and reads these as strings, ruamel.yaml (our writer,
# in either YAML version) reads them as floats. A file must mean one thing to every tool, so the
# reader refuses them (:class:`AmbiguousNumber`) and the writer never emits them (yamledit).
_AMBIGUOUS_FLOAT = re.compile(
    r"^[-+]?(?:[0-9][0-9_]*[eE][-+]?[0-9]+|[0-9][0-9_]*\.[0-9_]*[eE][0-9]+|\.[0-9][0-9_]*[eE][0-9]+)$"
)


class AmbiguousNumber:
    """A plain scalar that YAML 1.1 readers disagree on: a float to ruamel.yaml, a string to PyYAML."""

    __slots__ = ("number", "text")

    def __init__(self, text: str, number: float) -> None:
        self.text = text
        self.number = number


class TooLongInteger:
    """A plain integer past Python's limit on digits converted to ``int`` (4,300 by default)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _resolve(text: str) -> Any:
    if _DECIMAL.match(text):
        return float(text)  # the common case, without building a PyYAML node
    if text in _NULL:
        return None
    if _BOOL.match(text):
        return text in _TRUE
    if _INT.match(text):
        try:
            return _constructor.construct_yaml_int(yaml.ScalarNode("", text))
        except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
            return TooLongInteger(text)
    if _AMBIGUOUS_FLOAT.match(text):
        return AmbiguousNumber(text, float(text.replace("_", "")))
    if _FLOAT.match(text):
        return _constructor.construct_yaml_float(yaml.ScalarNode("", text))
    return text


def is_typed_plain(text: str) -> bool:
    """True when a plain (unquoted) scalar would not be read as the string it looks like (or some
    YAML readers would not read it so)."""
    return not isinstance(_typed(text), str) or bool(_TIMESTAMP.match(text))


class _Stop(Exception):
    """Raised inside the builder when reading cannot go on (depth, parse error)."""


def _err(findings: list[Finding], path: str, mark: Any, code: str, message: str, hint: str = "") -> None:
    findings.append(Finding(path, mark.line + 1, mark.column + 1, code, message, hint))


def _quote_hint(text: str) -> str:
    return "quote it: '" + text.replace("'", "''") + "'"


def load(data: bytes, path: str, *, fast: bool = True) -> tuple[Any, list[Finding]]:
    """Read one YAML document strictly. Returns ``(data, findings)``; data is None on findings.

    Every finding has the file, line and column, a stable code (``YAML…``) and a hint.
    ``fast=False`` skips the fast reader (:func:`_build_fast`), for tests that compare the two.
    """
    findings: list[Finding] = []
    if len(data) > MAX_BYTES:
        findings.append(
            Finding(
                path, None, None, "YAML001",
                f"file is {len(data):,} bytes, over the {MAX_BYTES:,}-byte limit",
                "split the model or move data out of the registry file",
            )
        )
        return None, findings
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        findings.append(
            Finding(path, line, col, "YAML002",
                    f"not UTF-8 text: byte 0x{data[exc.start]:02x} is not valid UTF-8 here",
                    "save the file as UTF-8; it looks like another encoding, e.g. Latin-1 or UTF-16")
        )
        return None, findings
    if text.startswith("\ufeff"):
        text = text[1:]
    deep = flow_too_deep(text)
    if deep is not None:
        # Checked before libyaml sees the text: libyaml builds stop deep flow nesting with their
        # own error at a depth of their choosing (about 1,000 since PyYAML 6.0.4), before our
        # event loop could apply MAX_DEPTH, so the limit must not depend on the build installed.
        findings.append(Finding(path, deep[0], deep[1], "YAML012",
                                f"flow nesting ('[' and '{{') deeper than {MAX_DEPTH} levels",
                                "flatten the structure"))
        return None, findings
    if fast:
        try:
            return _build_fast(text), findings
        except Exception:  # anything unusual: the exact builder below says what
            pass
    try:
        value = _build(text, path, findings)
    except _Stop:
        return None, findings
    except yaml.MarkedYAMLError as exc:
        findings.append(_syntax_finding(exc, text, path))
        return None, findings
    except yaml.reader.ReaderError as exc:  # control characters: a position, not a mark
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        findings.append(Finding(path, line, col, "YAML004",
                                f"control character U+{_codepoint(exc.character):04X} is not allowed",
                                "remove it or write it as an escape in a double-quoted string"))
        return None, findings
    if findings:
        return None, findings
    return value, findings


_FLOW_SPECIAL = re.compile(r"[\[\]{}'\"#\n|>]")


def flow_too_deep(text: str) -> tuple[int, int] | None:
    """Line and column (1-based) of the first ``[`` or ``{`` that opens flow nesting deeper than
    :data:`MAX_DEPTH`, found by our own scan of the text; None when the nesting stays within it.

    Exact for valid YAML except one corner: a multi-line plain scalar whose continuation lines
    start with ``[``/``{`` counts them as openers (an over-count needs 65 such lines). Quoted
    scalars, comments and block scalars (``|``, ``>``) are skipped; a quote or bracket counts only
    where a value can start, so ``it's`` or ``see [1]`` inside plain text are text.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None  # the common case: too few openers to go deep, no scan
    depth = 0
    line_start = 0
    block_indent = -1  # while skipping a block scalar: the indentation its lines must exceed
    i = 0
    n = len(text)
    while i < n:
        if block_indent >= 0:  # inside a block scalar: skip whole lines that belong to it
            end = text.find("\n", i)
            end = n if end < 0 else end
            line = text[i:end]
            stripped = line.lstrip(" ")
            if stripped and len(line) - len(stripped) <= block_indent:
                block_indent = -1
                continue  # this line is not content: scan it normally
            i = line_start = end + 1
            continue
        match = _FLOW_SPECIAL.search(text, i)
        if match is None:
            return None
        i = match.start()
        ch = text[i]
        if ch == "\n":
            i = line_start = i + 1
            continue
        before = text[line_start:i]
        if ch == "#":
            if i == line_start or before[-1] in " \t":
                end = text.find("\n", i)
                i = n if end < 0 else end
            else:
                i += 1
            continue
        starts_value = _starts_value(before, depth > 0)
        if ch in "[{":
            if depth or starts_value:
                depth += 1
                if depth > MAX_DEPTH:
                    return text.count("\n", 0, i) + 1, i - line_start + 1
        elif ch in "]}":
            if depth:
                depth -= 1
        elif ch in "'\"":
            if starts_value:
                i = _skip_quoted(text, i)
                line_start = text.rfind("\n", 0, i) + 1
                continue
        elif starts_value and depth == 0:  # '|' or '>' opens a block scalar
            content = before.lstrip(" ")
            while content.startswith(("- ", "? ")):
                content = content[2:].lstrip(" ")
            block_indent = len(before) - len(content)
            end = text.find("\n", i)
            i = line_start = n if end < 0 else end + 1
            continue
        i += 1
    return None


def _starts_value(before: str, in_flow: bool) -> bool:
    """Whether a node can start right after ``before`` (the line so far): at the line's start, or
    after an indicator (``- ``, ``? ``, ``: ``, and ``[``, ``{``, ``,`` in flow), or a property."""
    rest = before.rstrip(" \t")
    if not rest:
        return True
    if rest[-1] in "-?" and (len(rest) == 1 or rest[-2] in " \t") and len(rest) < len(before):
        return True
    if rest[-1] == ":" and (len(rest) < len(before) or in_flow):
        return True
    if in_flow and rest[-1] in "[{,":
        return True
    last = rest.rsplit(None, 1)[-1]
    return last[0] in "&!" and len(rest) < len(before) and _starts_value(rest[: -len(last)], in_flow)


def _skip_quoted(text: str, i: int) -> int:
    """Index just past the quoted scalar that starts at ``i`` (the end of text if unclosed)."""
    quote = text[i]
    j = i + 1
    while True:
        j = text.find(quote, j)
        if j < 0:
            return len(text)
        if quote == '"':
            slashes = 0
            while text[j - 1 - slashes] == "\\":
                slashes += 1
            if slashes % 2:
                j += 1
                continue
        elif text.startswith("''", j):  # '' is an escaped quote inside single quotes
            j += 2
            continue
        return j + 1


def _syntax_finding(exc: yaml.MarkedYAMLError, text: str, path: str) -> Finding:
    """A parser error as one finding at the problem, naming where the broken construct began
    (e.g. the unclosed ``[``), which is often the line to fix."""
    mark = exc.problem_mark or exc.context_mark
    message = str(exc.problem or exc.context or "invalid YAML")
    context_mark = exc.context_mark
    if exc.context and exc.problem and context_mark is not None and mark is not None and (
        (context_mark.line, context_mark.column) != (mark.line, mark.column)
    ):
        message += f" ({exc.context} that starts at {context_mark.line + 1}:{context_mark.column + 1})"
    hint = "fix the YAML there: check indentation, brackets and quotes"
    if context_mark is not None and exc.context in ("while parsing a flow sequence",
                                                    "while parsing a flow mapping"):
        opener, closer = ("[", "]") if "sequence" in exc.context else ("{", "}")
        hint = (f"close the '{opener}' at {context_mark.line + 1}:{context_mark.column + 1} with "
                f"'{closer}', or separate its items with ','")
    if _char_at(text, mark) == "\t" and message.startswith("found character "):
        message = message.replace("found character ", "found a tab character ", 1)
    if "tab character" in message:
        hint = "indent with spaces; YAML does not allow tabs there"
    elif message.startswith("mapping values are not allowed"):
        hint = "a ': ' inside a plain value starts a mapping; quote the value, or fix the indentation"
    line = mark.line + 1 if mark else None
    col = mark.column + 1 if mark else None
    return Finding(path, line, col, "YAML003", f"YAML syntax error: {message}", hint)


def _char_at(text: str, mark: Any) -> str:
    if mark is None:
        return ""
    lines = text.split("\n")
    if mark.line >= len(lines) or mark.column >= len(lines[mark.line]):
        return ""
    return lines[mark.line][mark.column]


def _tag_text(tag: str) -> str:
    """A tag as the user wrote it: ``!!str`` rather than its expansion ``tag:yaml.org,2002:str``."""
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix):] if tag.startswith(prefix) else tag


def _codepoint(character: int | str) -> int:
    return character if isinstance(character, int) else ord(character)


class _Unusual(Exception):
    """The fast reader met something it leaves to the exact builder."""


def _build_fast(text: str) -> Any:
    """The document's value when the exact builder (:func:`_build`) would find nothing in it;
    raises on anything else (an anchor, alias or tag, a key that is not a plain string or is
    repeated, a merge key, a number YAML readers disagree on, nesting past :data:`MAX_DEPTH`, more
    than one document, a syntax error), and the caller then runs the exact builder for its
    findings. Valid files, the common case, skip the exact builder's bookkeeping per event (a
    frame stack, marks, finding lists): CPU time over 1,000 benchmark model files 534 → 446 ms,
    where consuming libyaml's events alone takes 362 ms.
    """
    # Without '&', '!' or '*' anywhere, no event can carry an anchor or a tag, nor be an alias:
    # then the per-event checks for them are skipped, and a scalar is plain iff its style is ''.
    props = "&" in text or "!" in text or "*" in text
    parser = _Parser(text)
    try:
        get = parser.get_event
        get()  # StreamStart
        event = get()
        if event.__class__ is StreamEndEvent:
            return None
        if event.__class__ is not DocumentStartEvent:
            raise _Unusual
        event = get()
        cls = event.__class__
        if cls is ScalarEvent:
            if event.anchor is not None or event.tag is not None:
                raise _Unusual
            root = _fast_plain(event.value) if event.implicit[0] else event.value
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            root = _fast_collection(get, event, 0, props)
        else:
            raise _Unusual
        if get().__class__ is not DocumentEndEvent or get().__class__ is not StreamEndEvent:
            raise _Unusual  # a second document (or a syntax error after the first)
        return root
    finally:
        parser.dispose()


# Plain scalars and keys already resolved by the fast reader, without the ones it refuses: the
# same texts recur across a registry's files (statuses, weights, metric names).
_fast_values: dict[str, Any] = {}
_fast_keys: set[str] = set()
_MISSING = object()


def _fast_plain(text: str) -> Any:
    """A plain scalar's value as :func:`_typed` reads it; raises on the ones the exact builder refuses."""
    value = _typed(text)
    if value.__class__ is AmbiguousNumber or value.__class__ is TooLongInteger:
        raise _Unusual
    if len(_fast_values) > 100_000:
        _fast_values.clear()
    _fast_values[text] = value
    return value


def _fast_key(key: str) -> None:
    """Accept a plain key that reads as the string it looks like, is not '<<' and is ASCII (the
    check of non-ASCII keys compares normalisations: left to the exact builder)."""
    if _typed(key).__class__ is not str or key == "<<" or not key.isascii():
        raise _Unusual
    if len(_fast_keys) > 100_000:
        _fast_keys.clear()
    _fast_keys.add(key)


def _fast_collection(get: Any, event: Any, depth: int, props: bool) -> Any:
    """A mapping or sequence read by recursion (at most MAX_DEPTH deep, checked here)."""
    if depth >= MAX_DEPTH or (props and (event.anchor is not None or event.tag is not None)):
        raise _Unusual
    depth += 1
    values = _fast_values
    typed_start = _TYPED_START
    if event.__class__ is SequenceStartEvent:
        items: list[Any] = []
        append = items.append
        while True:
            event = get()
            cls = event.__class__
            if cls is ScalarEvent:
                if props and (event.anchor is not None or event.tag is not None):
                    raise _Unusual
                value = event.value
                if not event.style:  # plain: resolve it (strings that cannot be typed stay)
                    if not value:
                        value = None
                    elif value[0] in typed_start:
                        typed = values.get(value, _MISSING)
                        value = _fast_plain(value) if typed is _MISSING else typed
                append(value)
            elif cls is SequenceEndEvent:
                return items
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                append(_fast_collection(get, event, depth, props))
            else:
                raise _Unusual
    mapping: dict[str, Any] = {}
    keys = _fast_keys
    while True:
        event = get()
        cls = event.__class__
        if cls is MappingEndEvent:
            return mapping
        if cls is not ScalarEvent or (props and (event.anchor is not None or event.tag is not None)):
            raise _Unusual
        key = event.value
        if key in mapping:
            raise _Unusual
        if not event.style:
            if key not in keys:
                _fast_key(key)
        elif not key.isascii():
            raise _Unusual
        event = get()
        cls = event.__class__
        if cls is ScalarEvent:
            # The sequence branch's scalar reading, inlined on purpose (not a helper function):
            # this runs once per value of every file, where a call is a large part of the cost.
            if props and (event.anchor is not None or event.tag is not None):
                raise _Unusual
            value = event.value
            if not event.style:
                if not value:
                    value = None
                elif value[0] in typed_start:
                    typed = values.get(value, _MISSING)
                    value = _fast_plain(value) if typed is _MISSING else typed
            mapping[key] = value
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            mapping[key] = _fast_collection(get, event, depth, props)
        else:
            raise _Unusual


def _build(text: str, path: str, findings: list[Finding]) -> Any:
    parser = _Parser(text)
    aliases: dict[str, list[int]] = {}  # alias name → [index of its finding, number of uses]
    try:
        return _build_events(parser, path, findings, aliases)
    finally:
        parser.dispose()
        # A "billion laughs" file uses each alias many times: one finding per name is enough.
        for index, uses in aliases.values():
            if uses > 1:
                first = findings[index]
                findings[index] = Finding(
                    first.path, first.line, first.col, first.code,
                    f"{first.message} (used {uses} times; the first is shown)", first.hint)


def _build_events(parser: Any, path: str, findings: list[Finding],
                  aliases: dict[str, list[int]]) -> Any:
    # Each open collection is a frame [container, is_mapping, pending_key, pending_key_mark].
    stack: list[list[Any]] = []
    root: Any = None
    documents = 0
    get_event = parser.get_event
    while True:
        event = get_event()
        cls = event.__class__
        if cls is ScalarEvent:
            if event.anchor is not None:
                _err(findings, path, event.start_mark, "YAML010",
                     f"anchor '&{event.anchor}' is not allowed", "write the value out in full")
            if event.tag is not None:
                _err(findings, path, event.start_mark, "YAML011",
                     f"explicit tag '{_tag_text(event.tag)}' is not allowed",
                     "remove the tag; to keep a value a string, quote it")
            value = _typed(event.value) if event.implicit[0] else event.value
            if value.__class__ is AmbiguousNumber or value.__class__ is TooLongInteger:
                _refuse_number(findings, path, event.start_mark, value)
                value = event.value
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            if event.anchor is not None:
                _err(findings, path, event.start_mark, "YAML010",
                     f"anchor '&{event.anchor}' is not allowed", "write the value out in full")
            if event.tag is not None:
                _err(findings, path, event.start_mark, "YAML011",
                     f"explicit tag '{_tag_text(event.tag)}' is not allowed", "remove the tag")
            if len(stack) >= MAX_DEPTH:
                _err(findings, path, event.start_mark, "YAML012",
                     f"nesting deeper than {MAX_DEPTH} levels", "flatten the structure")
                raise _Stop
            container: Any = {} if cls is MappingStartEvent else []
            stack.append([container, cls is MappingStartEvent, _NO_KEY, None])
            continue
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            value = stack.pop()[0]
        elif cls is AliasEvent:
            seen = aliases.get(event.anchor)
            if seen is None:
                aliases[event.anchor] = [len(findings), 1]
                _err(findings, path, event.start_mark, "YAML013",
                     f"alias '*{event.anchor}' is not allowed", "write the value out in full")
            else:
                seen[1] += 1
            value = None
        elif cls is DocumentStartEvent:
            documents += 1
            if documents > 1:
                _err(findings, path, event.start_mark, "YAML014",
                     "more than one YAML document in the file", "keep one document; remove '---'")
                raise _Stop
            continue
        elif cls is StreamEndEvent:
            return root
        else:  # StreamStart, DocumentEnd
            continue

        if not stack:
            root = value
            continue
        frame = stack[-1]
        if not frame[1]:
            frame[0].append(value)
        elif frame[2] is _NO_KEY:
            mark = event.start_mark
            if not isinstance(value, str):
                shown = event.value if cls is ScalarEvent else "a collection"
                hint = _quote_hint(event.value) if cls is ScalarEvent else "keys must be strings"
                _err(findings, path, mark, "YAML015",
                     f"key {shown} is read as {_kind(value)}, not a string", hint)
                value = f"\x00{id(event)}"  # placeholder so the value still pairs up
            elif value == "<<" and cls is ScalarEvent and event.implicit[0]:
                _err(findings, path, mark, "YAML016", "merge key '<<' is not allowed",
                     "write the merged keys out in full")
            elif value in frame[0]:
                _err(findings, path, mark, "YAML017", f"duplicate key '{value}'",
                     "keep one of them; YAML would silently keep the last")
            elif not value.isascii():
                _check_normalized_duplicate(findings, path, mark, value, frame[0])
            frame[2] = value
            frame[3] = mark
        else:
            frame[0][frame[2]] = value
            frame[2] = _NO_KEY


_NO_KEY = object()


def _refuse_number(findings: list[Finding], path: str, mark: Any, value: Any) -> None:
    if isinstance(value, TooLongInteger):
        digits = sum(ch.isdigit() for ch in value.text)
        _err(findings, path, mark, "YAML018",
             f"integer with {digits:,} digits is too long to read",
             "no registry value needs this many digits; if it is text, quote it")
        return
    number = value.number
    plain = repr(number) if "e" not in repr(number) else _signed_exponent(repr(number))
    _err(findings, path, mark, "YAML019",
         f"{value.text} is read as the number {number!r} by some YAML readers and as a string by others",
         f"write the number as {plain}, or quote it if it is text: '{value.text}'")


def _signed_exponent(text: str) -> str:
    """``1e-05`` as YAML 1.1 writes a float: a dot in the mantissa, a sign on the exponent."""
    mantissa, _, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if exponent[:1] not in "+-":
        exponent = "+" + exponent
    return f"{mantissa}e{exponent}"


def _check_normalized_duplicate(findings: list[Finding], path: str, mark: Any, key: str,
                                mapping: dict[str, Any]) -> None:
    """Two keys that differ only in Unicode normalisation (``café`` typed as one code point or as
    ``e`` + combining accent) look the same in every editor, yet YAML keeps both."""
    normal = unicodedata.normalize("NFC", key)
    for other in mapping:
        if not other.isascii() and unicodedata.normalize("NFC", other) == normal:
            _err(findings, path, mark, "YAML017",
                 f"duplicate key '{normal}' (the same text as an earlier key, in another "
                 "Unicode normalisation)",
                 "keep one of them; retype the key so both are written the same way")
            return


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a " + type(value).__name__


def locate(data: bytes, path: tuple[str | int, ...], *, key: bool = False) -> tuple[int, int, str | None]:
    """Line and column (1-based) of the value at JSON ``path``, and its source text when it is a
    plain scalar (None otherwise). Falls back to the deepest existing parent; (1, 1) for root.
    With ``key=True`` and a path ending in a mapping key, the position of the key itself."""
    parser = _Parser(data.decode("utf-8", errors="replace"))
    best = (1, 1, None)
    # Frames: [is_mapping, next_index_or_pending_key, expecting_key, path_prefix]
    stack: list[list[Any]] = []
    try:
        while True:
            event = parser.get_event()
            cls = event.__class__
            if cls is StreamEndEvent:
                return best
            if cls in (MappingEndEvent, SequenceEndEvent):
                stack.pop()
                continue
            if cls not in (ScalarEvent, MappingStartEvent, SequenceStartEvent, AliasEvent):
                continue
            if stack:
                frame = stack[-1]
                if frame[0] and frame[2]:  # this event is a key
                    frame[1] = event.value if cls is ScalarEvent else None
                    frame[2] = False
                    key_path = (*frame[3], frame[1])
                    if key_path == path[: len(key_path)]:
                        best = (event.start_mark.line + 1, event.start_mark.column + 1, None)
                        if key and key_path == path:
                            return best
                    continue
                if frame[0]:
                    here = (*frame[3], frame[1])
                    frame[2] = True
                else:
                    here = (*frame[3], frame[1])
                    frame[1] += 1
            else:
                here = ()
            if here == path[: len(here)]:
                plain = event.value if cls is ScalarEvent and event.implicit[0] else None
                best = (event.start_mark.line + 1, event.start_mark.column + 1, plain)
                if here == path:
                    return best
            if cls is MappingStartEvent:
                stack.append([True, None, True, here])
            elif cls is SequenceStartEvent:
                stack.append([False, 0, False, here])
    except yaml.YAMLError:
        return best
    finally:
        parser.dispose()
