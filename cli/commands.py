"""The subcommand registry: every `rvclora <command>` in one table.

Each command's options live in its own package's torch-free CLI module; `adder` names the
function there that adds them to the command's parser, which also sets `func` (what runs).
The table's `help` is the line `rvclora --help` shows, so listing the commands imports none
of them. `parents` names the shared option groups (`options.SHARED`) the command takes.
To add a command: one row here, and `adder` in the owning package.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    module: str  # imported only when this command is chosen
    adder: str  # function(parser) in `module` adding the options and `func`
    help: str
    parents: tuple[str, ...] = ()


_VOICE_PARENTS = ("adapters", "compute", "assets")

COMMANDS: dict[str, Command] = {
    "convert": Command("rvclora.cli.offline", "add_convert", "convert a recording with a voice model (offline)", _VOICE_PARENTS),
    "info": Command("rvclora.cli.offline", "add_info", "describe a voice model or adapter as JSON"),
    "assets": Command("rvclora.cli.offline", "add_assets", "download or check the shared model files"),
    "voices": Command("rvclora.library.voices_cli", "add_arguments",
                      "list, import, rename, remove and show your voices (the panel's library)"),
    "run": Command("rvclora.realtime.cli", "add_run", "convert your microphone live (or a file through the live engine)",
                   _VOICE_PARENTS),
    "devices": Command("rvclora.realtime.cli", "add_devices", "list audio inputs and outputs"),
    "bench": Command("rvclora.realtime.bench_cli", "add_bench", "measure per-block compute (JSON)", _VOICE_PARENTS),
    "latency": Command("rvclora.realtime.latency_cli", "add_arguments",
                       "measure true end-to-end latency through the live engine"),
    "virtual-mic": Command("rvclora.realtime.cli", "add_virtual_mic",
                           "create or remove the rvclora virtual microphone (Linux)"),
    "ctl": Command("rvclora.realtime.ctl_cli", "add_command",
                   "control a running panel or `rvclora run` (start, stop, voice, preset, pitch, bypass)"),
    "train": Command("rvclora.train.cli", "add_arguments", "train a LoRA voice adapter from recordings",
                     ("device", "assets")),
    "export": Command("rvclora.export.cli", "add_arguments",
                      "merge adapters into a voice; write ONNX or an official RVC .pth", ("adapters",)),
}
