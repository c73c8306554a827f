"""The front door as a user meets it: the installed `rvclora` script's help loads no torch and no
GUI, every headless command (train and export included) is one of its subcommands, and a
missing PySide6 is a one-line hint."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from rvclora.cli.main import main

COMMANDS = ["convert", "info", "assets", "voices", "run", "devices", "bench", "latency", "virtual-mic", "train", "export"]

# Runs an installed console script's entry point in a fresh interpreter, then lists what it imported.
PROBE = """\
import sys
from importlib import import_module
module, name = sys.argv[1].split(":")
try:
    getattr(import_module(module), name)(sys.argv[2:])
except SystemExit as e:
    code = e.code
else:
    code = 0
loaded = [m for m in ("torch", "PySide6", "rvclora.gui") if m in sys.modules]
print("EXIT", code, "LOADED", ",".join(loaded) or "-", file=sys.stderr)
"""


def _script(name: str) -> str:
    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == name]
    return ep.value


def _probe(script: str, *argv: str) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", PROBE, _script(script), *argv], capture_output=True, text=True,
                          timeout=120, check=False)
    last = done.stderr.strip().splitlines()[-1]
    return done.stdout, last


@pytest.mark.parametrize("argv", [[], *([c] for c in COMMANDS)], ids=lambda a: " ".join(a) or "rvclora")
def test_help_loads_neither_torch_nor_the_panel(argv):
    out, last = _probe("rvclora", *argv, "--help")
    assert last == "EXIT 0 LOADED -", last
    assert out.startswith("usage: rvclora")


@pytest.mark.parametrize("script", ["rvclora-train", "rvclora-export"])
def test_alias_help_loads_no_torch(script):
    out, last = _probe(script, "--help")
    assert last == "EXIT 0 LOADED -", last
    assert out.startswith(f"usage: {script}")


def test_every_headless_command_is_a_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    for command in COMMANDS:
        assert f"    {command} " in listed


@pytest.mark.parametrize("command", ["train", "export"])
def test_train_and_export_subcommands_take_the_shared_options(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--device" in out if command == "train" else "--adapter" in out and "--force" in out


def test_without_pyside6_the_panel_is_a_one_line_hint(monkeypatch, capsys):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setitem(sys.modules, "PySide6", None)  # what an install without the gui extra looks like
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("rvclora: error:") and "rvclora[gui]" in err, err


def test_a_parse_error_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as done:
        main(["convert", "in.wav"])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("rvclora convert: error:"), err
