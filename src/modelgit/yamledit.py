"""Comment-preserving edits of model files with ruamel.yaml's round-trip mode.

ruamel.yaml keeps comments, key order, flow style and quoting; we only have to give it the
file's own indentation. We read that layout off the file itself (how far a nested mapping is
indented, where the dashes of a block sequence sit and where the item starts after the dash), try
it first and then the common layouts, and keep the first one whose unchanged round trip reproduces
the file byte for byte, so an edit changes only the lines it must.

When no layout reproduces the file (values aligned by hand, mixed indentation), the edit is made
with the closest layout and merged back line by line: lines the edit did not change keep their
original text. The merge is kept only if it parses to exactly the edited data; otherwise the
round-tripped file is returned as is.
"""

from __future__ import annotations

import difflib
import io
import itertools
import re
from collections.abc import Callable
from typing import Any

# (mapping indent, sequence indent, sequence dash offset), most common first.
_LAYOUTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (4, 8, 4), (2, 3, 1), (3, 5, 2))

# A block key without an inline value ("key:" or "- key:", maybe with a comment after it).
_BLOCK_KEY = re.compile(r"^((?:-\s+)*)([^\s#\-\[{][^#]*?):\s*(?:#.*)?$")
_DASH = re.compile(r"^-(\s+)\S")


def _represent_float(representer: Any, data: float) -> Any:
    """A new float as YAML 1.1 spells it, so PyYAML, ruamel.yaml and our reader all read the same
    number: ``1.0e-05``, not ruamel's ``1e-05`` (a string to PyYAML, refused by yamlio)."""
    text = repr(data).lower()
    if data != data or data in (float("inf"), float("-inf")):
        return representer.represent_float(data)
    if "e" in text and "." not in text:
        text = text.replace("e", ".0e", 1)
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


_representer_class: Any = None


def _representer() -> Any:
    """ruamel's round-trip representer with our float spelling, as a subclass so that ruamel's
    own class (shared with any host that embeds us) is left as it was."""
    global _representer_class
    if _representer_class is None:
        from ruamel.yaml.representer import RoundTripRepresenter

        class _Representer(RoundTripRepresenter):  # type: ignore[misc]
            pass

        _Representer.add_representer(float, _represent_float)
        _representer_class = _Representer
    return _representer_class


def _yaml(layout: tuple[int, int, int]) -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.Representer = _representer()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines (sha256 values, descriptions)
    yaml.indent(mapping=layout[0], sequence=layout[1], offset=layout[2])
    return yaml


def _dump(yaml: Any, data: Any) -> str:
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def guess_layout(text: str) -> tuple[int, int, int] | None:
    """The (mapping, sequence, offset) indentation the file is written in, read off its first
    nested block mapping and first block sequence; None when it has neither."""
    lines = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped and not stripped.startswith("#") and stripped != "---":
            lines.append((len(raw) - len(raw.lstrip(" ")), raw.lstrip(" ")))
    mapping = sequence = offset = None
    for (indent, line), (next_indent, next_line) in itertools.pairwise(lines):
        match = _BLOCK_KEY.match(line)
        if match is None:
            continue
        key_col = indent + len(match.group(1))
        dash = _DASH.match(next_line)
        if dash is not None or next_line == "-":
            if sequence is None and next_indent >= key_col:
                offset = next_indent - key_col
                sequence = offset + 1 + (len(dash.group(1)) if dash else 1)
        elif mapping is None and next_indent > key_col:
            mapping = next_indent - key_col
        if mapping is not None and sequence is not None:
            break
    if mapping is None and sequence is None:
        return None
    if sequence is None:
        sequence, offset = mapping + 2, mapping
    assert offset is not None
    return (mapping or 2, sequence, offset)


def _candidates(text: str) -> list[tuple[int, int, int]]:
    guessed = guess_layout(text)
    layouts = [guessed] if guessed is not None else []
    return list(dict.fromkeys([*layouts, *_LAYOUTS]))


def edit(text: str, change: Callable[[Any], None]) -> str:
    """Apply ``change`` to the round-trip data of ``text`` and return the new text."""
    candidates = _candidates(text)
    data = None
    for layout in candidates:
        yaml = _yaml(layout)
        if data is None:
            data = yaml.load(text)  # the layout only matters when dumping: load once
        if _dump(yaml, data) == text:
            change(data)
            return _dump(yaml, data)
    # No layout reproduces the file: edit with the likeliest one and keep the original text of
    # every line the edit did not touch.
    yaml = _yaml(candidates[0])
    before = _dump(yaml, data)
    change(data)
    after = _dump(yaml, data)
    merged = _merge(text, before, after)
    if merged is not None and _same_data(merged, after):
        return merged
    return after


def _merge(original: str, before: str, after: str) -> str | None:
    """``after`` with each line that is unchanged from ``before`` replaced by the original line
    it came from; None when ``before`` and ``original`` do not correspond line by line."""
    original_lines = original.splitlines(True)
    before_lines = before.splitlines(True)
    after_lines = after.splitlines(True)
    if len(original_lines) != len(before_lines):
        return None
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, before_lines, after_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.extend(original_lines[i1:i2])
        else:
            out.extend(after_lines[j1:j2])
    return "".join(out)


def _same_data(left: str, right: str) -> bool:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    try:
        return bool(yaml.load(left) == yaml.load(right))
    except Exception:  # the merge broke the structure: not the same
        return False


# -- structural edits that keep comments where they belong ------------------------------------------
# ruamel.yaml stores the comment lines that follow a node (up to the next key) on the last scalar
# before them. Adding a key or item after that scalar, or deleting it, would otherwise leave those
# lines above the new node or drop them; these helpers move them along.
def _is_block(node: Any) -> bool:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    return isinstance(node, CommentedMap | CommentedSeq) and len(node) > 0 and not node.fa.flow_style()


def _last_slot(container: Any, key: Any) -> tuple[Any, Any, int]:
    """The comment slot that holds what follows ``container[key]``'s last line."""
    from ruamel.yaml.comments import CommentedMap

    while _is_block(container[key]):
        container = container[key]
        key = next(reversed(container)) if isinstance(container, CommentedMap) else len(container) - 1
    return container, key, 2 if isinstance(container, CommentedMap) else 0


def _take_tail(slot: tuple[Any, Any, int]) -> str:
    """Detach and return the comment lines after the slot's own line (its end-of-line comment
    stays)."""
    container, key, pos = slot
    tokens = container.ca.items.get(key)
    token = tokens[pos] if tokens and len(tokens) > pos else None
    if token is None or "\n" not in token.value:
        return ""
    line, tail = token.value.split("\n", 1)
    if not tail:
        return ""
    if line.strip():
        token.value = line + "\n"
    else:
        tokens[pos] = None
    return tail


def _give_tail(slot: tuple[Any, Any, int], tail: str) -> None:
    if not tail:
        return
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    container, key, pos = slot
    tokens = container.ca.items.setdefault(key, [None, None, None, None])
    while len(tokens) <= pos:
        tokens.append(None)
    token = tokens[pos]
    if token is None:
        tokens[pos] = CommentToken("\n" + tail, CommentMark(0), None)
    else:
        token.value = (token.value if token.value.endswith("\n") else token.value + "\n") + tail


def insert(mapping: Any, index: int, key: str, value: Any) -> None:
    """Insert ``key`` at ``index`` of a round-trip mapping; comment lines that followed the key
    before it now follow the new one."""
    keys = list(mapping)
    tail = _take_tail(_last_slot(mapping, keys[index - 1])) if 0 < index <= len(keys) else ""
    mapping.insert(index, key, value)
    _give_tail(_last_slot(mapping, key), tail)


def append(sequence: Any, item: Any) -> None:
    """Append to a round-trip sequence, keeping the comment lines after it after it."""
    tail = _take_tail(_last_slot(sequence, len(sequence) - 1)) if len(sequence) else ""
    sequence.append(item)
    _give_tail(_last_slot(sequence, len(sequence) - 1), tail)


def delete(mapping: Any, key: str) -> Any:
    """Delete ``key`` from a round-trip mapping and return its value; the comment lines that
    followed it (they introduce what comes next) stay, after the previous key."""
    keys = list(mapping)
    index = keys.index(key)
    tail = _take_tail(_last_slot(mapping, key))
    value = mapping.pop(key)
    mapping.ca.items.pop(key, None)
    if index > 0:
        _give_tail(_last_slot(mapping, keys[index - 1]), tail)
    return value


def new_document(data: dict[str, Any], header: str = "") -> str:
    """Text of a new model file in the registry's usual layout."""
    return header + _dump(_yaml(_LAYOUTS[0]), data)


def flow(items: Any) -> Any:
    """A list or mapping written in flow style (``[a, b]``, ``{a: 1}``)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(items, dict):
        result: Any = CommentedMap(items)
    else:
        result = CommentedSeq(items)
    result.fa.set_flow_style()
    return result
