"""The lazy ``modelgit`` group: its table of commands (``modelgit.cli._app.VERBS``) agrees with the
commands the verb modules register, its help is what click renders from an eagerly built group,
and a command imports only the module that defines it.

The expected values come from the commands themselves: each verb module registered on a plain
``click.Group`` (click's own help shortening of each docstring), never from the table under test.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import Any

import click
import pytest

from modelgit.cli import _app

# The widths the help is compared at: below click's 50-column floor, the common ones, past the
# group's max_content_width of 100.
WIDTHS = (30, 50, 60, 79, 80, 98, 100, 120, 200)


def eager_group() -> click.Group:
    """The ``modelgit`` group as it was before it became lazy: a plain click group with the same
    options and text, every available verb module registered on it up front."""
    group = click.Group(name=_app.cli.name, callback=_app.cli.callback, params=_app.cli.params, help=_app.cli.help,
                        context_settings=_app.cli.context_settings)
    for module in _app.VERBS:
        if module in _app.OPTIONAL_VERB_MODULES and importlib.util.find_spec(module) is None:
            continue  # not installed: not registered, as before
        _app.register_module(module, group)
    return group


def lazy_group() -> _app.LazyGroup:
    """A fresh lazy group like ``modelgit.cli.cli`` (that one may have loaded its commands already)."""
    return _app.LazyGroup(name=_app.cli.name, callback=_app.cli.callback, params=_app.cli.params,
                          help=_app.cli.help, context_settings=_app.cli.context_settings, verbs=_app.VERBS)


def registered(module: str) -> dict[str, click.Command]:
    group = click.Group()
    _app.register_module(module, group)
    return dict(group.commands)


def table_to_paste() -> str:
    lines = ["VERBS = {"]
    for module in _app.VERBS:
        lines.append(f"    {module!r}: {{")
        lines += [f"        {name!r}: {command.get_short_help_str(sys.maxsize)!r},"
                  for name, command in registered(module).items()]
        lines.append("    },")
    return "\n".join([*lines, "}"])


def render(group: click.Group, args: list[str], columns: int, monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    """``modelgit ARGS`` on ``group`` at a terminal of ``columns`` (click reads COLUMNS through
    shutil.get_terminal_size): the exit code and what it printed."""
    monkeypatch.setenv("COLUMNS", str(columns))
    capsys.readouterr()
    try:
        result = group.main(args=args, prog_name="modelgit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        result = exc.exit_code
    except click.UsageError as exc:
        exc.show()
        result = 2
    out, err = capsys.readouterr()
    return result, out, err


@pytest.mark.parametrize("module", list(_app.VERBS))
def test_the_table_lists_each_module_s_commands_and_their_first_sentences(module: str) -> None:
    commands = registered(module)
    table = _app.VERBS[module]
    assert list(table) == list(commands), f"the table to paste into modelgit.cli._app:\n{table_to_paste()}"
    for name, command in commands.items():
        # The stand-in the listing shows is only right for a command click lists plainly.
        assert not command.hidden and not command.deprecated and command.short_help is None, name
        assert table[name] == command.get_short_help_str(sys.maxsize), \
            f"the table to paste into modelgit.cli._app:\n{table_to_paste()}"
        stand_in = click.Command(name, help=table[name])
        for limit in range(1, 250):  # click shortens the first sentence alike at every width
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), (name, limit)


def test_every_command_of_the_group_is_in_the_table() -> None:
    listed = {name for names in _app.VERBS.values() for name in names}
    assert len(listed) == sum(len(names) for names in _app.VERBS.values()), "a name in two modules"
    assert set(eager_group().commands) == listed
    assert set(_app.cli.commands) == listed
    assert _app.VERB_MODULES == ("modelgit.cli.registry", "modelgit.cli.proposals", "modelgit.cli.evaluation",
                                 "modelgit.cli.runtime", "modelgit.cli.learning")


@pytest.mark.parametrize("args", [["--help"], ["-h"], [], ["show", "--help"], ["ab", "--help"],
                                  ["ab", "start", "-h"], ["token", "create", "--help"], ["serve", "--help"],
                                  ["shwo"], ["frobnicate"], ["--bogus"], ["show", "--bogus"], ["--version"]])
def test_help_and_usage_errors_are_what_click_renders_from_the_eager_group(
        args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for columns in WIDTHS:
        expected = render(eager_group(), args, columns, monkeypatch, capsys)
        assert expected[1] or expected[2]
        assert render(lazy_group(), args, columns, monkeypatch, capsys) == expected, columns


def test_the_listing_imports_nothing_and_a_command_its_module_only(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    group = lazy_group()
    render(group, ["--help"], 100, monkeypatch, capsys)
    assert [name for name in group.commands if group._lazy.loaded(name)] == []
    ctx = click.Context(group, info_name="modelgit")
    show = group.get_command(ctx, "show")
    assert show is not None and show.name == "show"
    assert sorted(name for name in group.commands if group._lazy.loaded(name)) == sorted(
        _app.VERBS["modelgit.cli.registry"])
    assert group.get_command(ctx, "nope") is None
    assert "nope" not in group.commands and "show" in group.commands
    assert group.list_commands(ctx) == sorted(name for names in _app.VERBS.values() for name in names)


def test_a_module_that_does_not_define_a_listed_command_is_a_bug() -> None:
    group = _app.LazyGroup(name="cli", verbs={"modelgit.cli.runtime": {"route": "x.", "frobnicate": "y."}})
    with pytest.raises(RuntimeError) as raised:
        group.get_command(click.Context(group), "frobnicate")
    assert str(raised.value) == ("modelgit.cli.runtime registered no command 'frobnicate' "
                                 "(modelgit.cli._app.VERBS lists it)")


def run_python(code: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


IMPORTED = ("import sys, modelgit.cli\n"
            "status = modelgit.cli.run({args!r})\n"
            "print('RESULT', status, sorted(m for m in sys.modules if m.startswith('modelgit.cli')))\n")


@pytest.mark.parametrize(("args", "modules"), [
    (["--help"], []),
    (["show", "--help"], ["modelgit.cli.registry"]),
    (["ab", "stop", "--help"], ["modelgit.cli.proposals"]),
    (["check-upgrades", "--help"], ["modelgit.cli.evaluation"]),
    (["token", "--help"], ["modelgit.cli_serve"]),
])
def test_a_process_imports_only_the_verb_module_it_runs(args: list[str], modules: list[str]) -> None:
    last = run_python(IMPORTED.format(args=args))[-1]
    assert last == f"RESULT 0 {sorted(['modelgit.cli', 'modelgit.cli._app', 'modelgit.cli._render', *modules])}"


def test_the_server_verbs_are_listed_only_when_their_module_is_installed() -> None:
    hidden = "import sys\nsys.modules['modelgit.cli_serve'] = None  # as if not installed\n"
    out = run_python(hidden + IMPORTED.format(args=["--help"]))
    listed = [line.split()[0] for line in out[out.index("Commands:") + 1:-1]]
    assert "serve" not in listed and "token" not in listed and "show" in listed
    code = hidden + "import modelgit.cli\nprint('RESULT', modelgit.cli.run(['serve', '--help']))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines()[-1] == "RESULT 2"
    assert "No such command 'serve'" in proc.stderr


def raising(exc: BaseException) -> Any:
    """A stand-in for the group's ``main`` (what ``run`` calls) that raises ``exc``."""
    def main(*args: Any, **kwargs: Any) -> None:
        raise exc

    return main


@pytest.mark.parametrize(("raised", "code", "err"), [
    (KeyboardInterrupt(), 130, "interrupted\n"),
    (click.exceptions.Abort(), 1, "aborted\n"),
    (click.UsageError("no good"), 2, "Error: no good\n"),
    (click.FileError("f.txt", "gone"), 1, "Error: Could not open file 'f.txt': gone\n"),
    (click.exceptions.Exit(4), 4, ""),
])
def test_run_translates_what_click_and_the_user_raise(raised: BaseException, code: int, err: str,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(_app.cli, "main", raising(raised))
    assert _app.run(["show"]) == code
    assert capsys.readouterr() == ("", err)


def test_run_translates_modelgit_errors_and_bugs(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from modelgit.errors import InvalidError, NotFoundError

    for raised, code in ((NotFoundError("no model 'x'", hint="see 'modelgit show'"), 2),
                         (InvalidError("bad file"), 1)):
        monkeypatch.setattr(_app.cli, "main", raising(raised))
        assert _app.run(["show"]) == code
        assert capsys.readouterr().err == f"error: {raised.render()}\n"
    monkeypatch.setattr(_app.cli, "main", raising(ZeroDivisionError("division by zero")))
    assert _app.run(["show"]) == 3
    assert "ZeroDivisionError" not in capsys.readouterr().err
    assert _app.run(["--traceback", "show"]) == 3
    assert "ZeroDivisionError: division by zero" in capsys.readouterr().err
    monkeypatch.setattr(_app.cli, "main", lambda *a, **k: None)  # a command that returns nothing
    assert _app.run(["show"]) == 0


def test_main_freezes_what_the_import_made_and_runs_with_the_collector_on() -> None:
    code = ("import gc, io, contextlib\n"
            "import modelgit.cli\n"
            "from modelgit.cli import _app\n"
            "assert gc.get_freeze_count() == 0\n"
            "modelgit.cli.run(['--version'])\n"
            "print('RUN', gc.isenabled(), gc.get_freeze_count())  # run leaves the collector alone\n"
            "seen = []\n"
            "_app.main = lambda argv: seen.append((gc.isenabled(), gc.get_freeze_count() > 1000, argv))\n"
            "modelgit.cli.main(['--help'])\n"
            "print('MAIN', *seen[0])\n")
    assert run_python(code)[-2:] == ["RUN True 0", "MAIN True True ['--help']"]
