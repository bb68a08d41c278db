"""Comment-preserving edits of model files with ruamel.yaml's round-trip mode.

ruamel.yaml keeps comments, key order, flow style and quoting; we only have to give it the
file's own indentation. We find that by trying the common layouts and keeping the one whose
unchanged round trip reproduces the file byte for byte, so an edit changes only the lines it must.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

# (mapping indent, sequence indent, sequence dash offset), most common first.
_LAYOUTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (2, 3, 1), (3, 5, 2))


def _yaml(layout: tuple[int, int, int]) -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines (sha256 values, descriptions)
    yaml.indent(mapping=layout[0], sequence=layout[1], offset=layout[2])
    return yaml


def _dump(yaml: Any, data: Any) -> str:
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def edit(text: str, change: Callable[[Any], None]) -> str:
    """Apply ``change`` to the round-trip data of ``text`` and return the new text."""
    chosen = None
    for layout in _LAYOUTS:
        yaml = _yaml(layout)
        if _dump(yaml, yaml.load(text)) == text:
            chosen = yaml
            break
    if chosen is None:  # no layout reproduces the file: edit anyway with the usual one
        chosen = _yaml(_LAYOUTS[0])
    data = chosen.load(text)
    change(data)
    return _dump(chosen, data)


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
