"""`rvclora voices list|import|remove|rename|show`: the panel's voice library, without the panel."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .home import Home


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The actions of `rvclora voices`; its one-line help is in the front door's command table."""
    p.description = "Manage the voices in RVCLORA_HOME/voices, the same library the panel shows."
    vsub = p.add_subparsers(dest="voices_command", metavar="ACTION", required=True)

    ls = vsub.add_parser("list", help="list your voices", description="List your voices: name, model, index, adapters.")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=cmd_list)

    imp = vsub.add_parser(
        "import",
        help="import voice models, folders, .zip bundles or https links",
        description="Import each SOURCE: a voice model (.pth/.onnx; an .index next to it is paired by name), "
        "a folder or .zip bundle (every voice in it, each with its best index), or an https link to a "
        ".pth/.onnx/.zip (Hugging Face resolve/blob links included). A .index or adapter .safetensors "
        "is attached to the voice named with --to. Every file is checked as the panel checks it.",
    )
    imp.add_argument("sources", nargs="+", metavar="SOURCE", help="file, folder, .zip or https link")
    imp.add_argument("--name", help="name for the new voice (only with one voice to import)")
    imp.add_argument("--to", metavar="VOICE", help="attach .index / adapter files to this voice")
    imp.add_argument("--force", action="store_true", help="accept adapters made on another base (shapes are still checked)")
    imp.add_argument("--sha256", help="expected sha256 of the file a link downloads (refused when it differs)")
    imp.set_defaults(func=cmd_import)

    rm = vsub.add_parser("remove", help="delete a voice and its files", description="Delete a voice folder with everything in it.")
    rm.add_argument("name", help="the voice's name")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    rm.set_defaults(func=cmd_remove)

    rn = vsub.add_parser("rename", help="rename a voice", description="Rename a voice (its folder and voice.json).")
    rn.add_argument("name", help="the voice's current name")
    rn.add_argument("new_name", help="the new name")
    rn.set_defaults(func=cmd_rename)

    sh = vsub.add_parser("show", help="describe a voice as JSON",
                         description="Print a voice's files, defaults and model facts (version, rate, encoder, vocoder) as JSON.")
    sh.add_argument("name", help="the voice's name")
    sh.set_defaults(func=cmd_show)


def _library():
    from .voice_library import VoiceLibrary

    return VoiceLibrary(Home.from_env())


def cmd_list(args: argparse.Namespace) -> int:
    library = _library()
    entries = library.list()
    if args.json:
        print(json.dumps([{**e.to_json(), "folder": str(e.folder)} for e in entries], indent=2))
        return 0
    if not entries:
        print(f"no voices in {library.root}; add one with `rvclora voices import FILE|ZIP|LINK`")
    for e in entries:
        model = e.model or (f"adapters on {Path(e.base).name}" if e.base else "(no model)")
        extras = ([f"index {e.index}"] if e.index else []) + ([f"{len(e.adapters)} adapter(s)"] if e.adapters else [])
        print(f"{e.name:<24} {model}" + (f"  [{', '.join(extras)}]" if extras else ""))
    for problem in library.problems():
        print(f"unreadable: {problem}", file=sys.stderr)
    return 0


def _attach(library, path: Path, target: str | None, force: bool) -> str:
    from ..synth.voice_adapters import parse_adapter_spec
    from .voice_library import VoiceLibraryError

    if target is None:
        raise VoiceLibraryError(f"{path.name}: name the voice to attach it to with --to VOICE")
    if path.suffix.lower() == ".index":
        library.add_index(target, path)
        return f"index {path.name} attached to voice '{target}'"
    adapter, weight = parse_adapter_spec(str(path))
    entry = library.add_adapter(target, adapter, weight, force=force)
    forced = " (with --force)" if entry.needs_force else ""
    return f"adapter {adapter.name} attached to voice '{target}' at weight {weight:g}{forced}"


def _progress_bar():
    """A byte progress callback for link downloads (silent when stderr is not a terminal)."""
    from tqdm import tqdm

    bar = tqdm(unit="B", unit_scale=True, desc="downloading", disable=not sys.stderr.isatty())

    def update(done: int, total: int | None) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return bar, update


def cmd_import(args: argparse.Namespace) -> int:
    from .voice_import import import_source, is_link
    from .voice_library import VoiceLibraryError

    library = _library()
    def attachment(source: str) -> bool:  # .index, adapter.safetensors or adapter.safetensors:WEIGHT
        head = source.rpartition(":")[0] or source
        return not is_link(source) and (Path(source).suffix.lower() in (".index", ".safetensors")
                                        or Path(head).suffix.lower() == ".safetensors")

    attach = [s for s in args.sources if attachment(s)]
    voices = [s for s in args.sources if s not in attach]
    if args.name and len(voices) > 1:
        raise VoiceLibraryError("--name names one voice; import the sources one at a time")
    for source in voices:
        bar, update = _progress_bar() if is_link(source) else (None, None)
        try:
            report = import_source(library, source if is_link(source) else Path(source), name=args.name,
                                   sha256=args.sha256, progress=update)
        finally:
            if bar is not None:
                bar.close()
        for entry in report.voices:
            print(f"imported voice '{entry.name}' ({entry.model}{', index ' + entry.index if entry.index else ''})")
        for note in report.notes:
            print(f"  {note}")
        args.to = args.to or (report.voices[0].name if len(report.voices) == 1 else None)
    for source in attach:
        print(_attach(library, Path(source), args.to, args.force))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from .voice_library import VoiceLibraryError

    library = _library()
    entry = library.get(args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            raise VoiceLibraryError(f"removing '{entry.name}' deletes {entry.folder}; add --yes to confirm")
        answer = input(f"Delete voice '{entry.name}' and everything in {entry.folder}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("kept")
            return 1
    library.remove(entry.name)
    print(f"removed voice '{entry.name}'")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    entry = _library().rename(args.name, args.new_name)
    print(f"renamed '{args.name}' to '{entry.name}'")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .embedders import content_encoder_path

    home = Home.from_env()
    library = _library()
    entry = library.get(args.name)
    info = {**entry.to_json(), "folder": str(entry.folder)}
    model = entry.runnable_model
    if model is not None and model.suffix.lower() == ".pth" and model.is_file():
        from ..synth.voice_file import load_voice

        voice = load_voice(model)
        info.update(version=voice.version, sample_rate=voice.sr, f0=voice.f0,
                    embedder=voice.meta.embedder_name, vocoder=voice.meta.vocoder or "HiFi-GAN")
        try:
            path = content_encoder_path(home, voice.meta.embedder)
            info["content_encoder"] = {"path": str(path), "present": path.exists()}
        except ValueError as e:
            info["content_encoder"] = {"path": None, "present": False, "problem": str(e)}
    print(json.dumps(info, indent=2))
    return 0
