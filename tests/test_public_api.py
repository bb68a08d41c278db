"""The package's shape: the public names are the documented ones, the facade's verbs have examples,
and no command module imports the ``modelgit.cli`` package that registers it (no import circle)."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import modelgit
from modelgit import api

SRC = Path(__file__).resolve().parent.parent / "src" / "modelgit"


def documented_names() -> list[str]:
    """The names listed under "Public API" in the package docstring (``- ``Name``: what it is``)."""
    doc = modelgit.__doc__ or ""
    section = doc.split("Public API", 1)[1]
    return re.findall(r"^- ``([A-Za-z_][A-Za-z0-9_]*)``", section, flags=re.MULTILINE)


def test_all_is_exactly_the_documented_public_api() -> None:
    assert documented_names(), "the package docstring lists no public API"
    assert sorted(modelgit.__all__) == sorted(documented_names())
    assert len(set(modelgit.__all__)) == len(modelgit.__all__)


def test_every_public_name_is_importable() -> None:
    for name in modelgit.__all__:
        namespace: dict[str, object] = {}
        exec(f"from modelgit import {name}", namespace)  # the import statement users write
        assert namespace[name] is getattr(modelgit, name), name


def test_the_facade_exports_what_it_defines_and_each_verb_shows_an_example() -> None:
    for name in api.__all__:
        assert hasattr(api, name), name
    verbs = [name for name in api.__all__ if inspect.isfunction(getattr(api, name))]
    assert {"show", "history", "diff", "validate", "propose", "evaluate", "compare", "ci", "check_upgrades",
            "recommend", "auto_upgrade", "auto_rollback", "usage"} <= set(verbs)
    for name in verbs:
        if name.startswith("open_"):
            continue
        assert ">>> " in (getattr(api, name).__doc__ or ""), f"api.{name} has no example"
    for name in api.__all__:  # every result type serialises itself
        value = getattr(api, name)
        if inspect.isclass(value):
            assert callable(getattr(value, "as_dict", None)), name


def _imports_the_cli_package(path: Path) -> list[str]:
    """The import statements of ``path`` that import ``modelgit.cli`` itself (its __init__), as text."""
    tree = ast.parse(path.read_text("utf-8"))
    in_package = path.parent.name == "cli"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: "from . import x" / "from .. import cli" resolve to the package
                base = "modelgit.cli" if in_package else "modelgit"
                parts = base.split(".")
                module = ".".join(parts[: len(parts) - node.level + 1] + ([module] if module else []))
            names = [alias.name for alias in node.names]
            if module == "modelgit.cli" or (module == "modelgit" and "cli" in names):
                found.append(f"line {node.lineno}: from {module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            found.extend(f"line {node.lineno}: import {alias.name}" for alias in node.names
                         if alias.name == "modelgit.cli")
    return found


def test_no_command_module_imports_the_cli_package() -> None:
    modules = sorted((SRC / "cli").glob("*.py")) + sorted(SRC.glob("cli_*.py"))
    modules = [p for p in modules if p.name != "__init__.py"]
    assert {p.name for p in modules} >= {"_render.py", "registry.py", "proposals.py", "evaluation.py",
                                         "runtime.py", "learning.py"}
    circles = {str(p.relative_to(SRC)): found for p in modules if (found := _imports_the_cli_package(p))}
    assert circles == {}


def test_the_scan_would_see_a_circle(tmp_path: Path) -> None:
    package = tmp_path / "cli"
    package.mkdir()
    for text in ("from modelgit.cli import _emit_json\n", "from . import run\n", "import modelgit.cli\n",
                 "from modelgit import cli\n"):
        (package / "verbs.py").write_text(text)
        assert _imports_the_cli_package(package / "verbs.py"), text
    (package / "verbs.py").write_text("from modelgit.cli._render import emit_json\nfrom ._render import fmt\n")
    assert _imports_the_cli_package(package / "verbs.py") == []


def test_the_cli_package_keeps_its_entry_points() -> None:
    cli = importlib.import_module("modelgit.cli")
    assert callable(cli.main) and callable(cli.run) and cli.cli.name == "cli"


# What a command module may take from the library besides modelgit.api: errors, rendering and
# output files, and the argument parsers the commands share with the library.
COMMAND_IMPORTS = {"modelgit", "modelgit.api", "modelgit.errors", "modelgit.cli._render", "modelgit.render",
                   "modelgit.outputs", "modelgit.ci", "modelgit.proposals", "modelgit.snapshot"}
COMMAND_NAMES = {"modelgit": {"api", "render"}, "modelgit.ci": {"write_reports"},
                 "modelgit.outputs": {"write_output"}, "modelgit.snapshot": {"MODELS_DIR"},
                 "modelgit.proposals": {"check_model_id", "is_uri", "parse_split"}}


def test_commands_compose_nothing_but_the_facade() -> None:
    """Commands are thin: parse, one call of modelgit.api, render (library internals stay behind it)."""
    for path in sorted((SRC / "cli").glob("*.py")):
        if path.name in ("__init__.py", "_app.py", "_render.py"):  # the package, not verbs
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("modelgit"):
                assert node.module in COMMAND_IMPORTS, f"{path.name}:{node.lineno}: from {node.module}"
                allowed = COMMAND_NAMES.get(node.module or "")
                if allowed is not None:
                    names = {alias.name for alias in node.names}
                    assert names <= allowed, f"{path.name}:{node.lineno}: {names - allowed}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("modelgit") for a in node.names), f"{path.name}:{node.lineno}"
