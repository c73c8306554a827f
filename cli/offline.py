"""The `convert`, `info` and `assets` subcommands of `rvclora`.

`convert` takes the front door's shared --adapter/--force, --device/--precision and
--hubert/--rmvpe groups; a voice.json beside the first adapter (as `rvclora train` writes)
supplies defaults for the options the user left out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UsageError
from ..library.home import Home
from ..library.presets import PresetStore, convert_preset, voice_of_model
from ..synth.constants import NOISE_SCALE
from ..synth.file_hash import sha256_file
from ..synth.limiter import limiter_note
from ..synth.pitch_options import F0_METHODS, PITCH_SHIFT_RANGE, known_f0_method, resolve_f0_method

OUTPUT_RATES = (8000, 192000)  # --sr: what every output format and resampler here handles


def add_convert(p: argparse.ArgumentParser) -> None:
    """The options of `rvclora convert`; its one-line help is in the front door's command table."""
    p.description = (
        "Convert a recording with an RVC voice model, exactly as RVC's offline inference does."
    )
    p.add_argument("input", type=Path, help="input audio (wav, flac, ogg, mp3; any rate and channel count)")
    p.add_argument("output", type=Path, help="output audio file (.wav, .flac or .ogg)")
    p.add_argument("--model", "-m", type=Path, required=True, help="RVC voice model (.pth) or pretrained base G*.pth")
    lo, hi = PITCH_SHIFT_RANGE
    p.add_argument("--pitch", "-p", type=float, help=f"transpose in semitones, {lo:g}…{hi:g}, e.g. 12 for male→female (default 0)")
    p.add_argument(
        "--f0-method",
        choices=F0_METHODS,
        help="pitch estimator: rmvpe (best; needs rmvpe.pt), pm (Praat, no weights), fcpe (needs torchfcpe); "
        "auto (default) = rmvpe when rmvpe.pt is present, else pm",
    )
    p.add_argument("--index", type=Path, help="feature index (added_*.index) of the voice, for timbre retrieval")
    p.add_argument("--index-rate", type=float, help="how much retrieved timbre to blend in, 0–1 (default 0.75)")
    p.add_argument(
        "--protect",
        type=float,
        help="keep breaths and voiceless consonants from the index blend, 0–0.5; 0.5 turns it off (default 0.33)",
    )
    p.add_argument("--noise-scale", type=float, default=NOISE_SCALE, help=f"latent noise scale; RVC uses {NOISE_SCALE} (default)")
    p.add_argument("--speaker", type=int, default=0, help="speaker id for multi-speaker models (default 0)")
    p.add_argument("--seed", type=int, help="random seed, for reproducible output")
    p.add_argument("--sr", type=int, help="output sample rate (default: the model's own)")
    p.add_argument("--ceiling-db", type=float, default=-1.0,
                   help="true-peak limiter ceiling in dBTP, -60…0; louder peaks are limited, quieter audio is untouched (default -1)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--preset", metavar="NAME", help="start from this saved preset (default: the voice's default "
                   "preset, as live uses it); options given here still win")
    p.set_defaults(func=cmd_convert)


def add_info(p: argparse.ArgumentParser) -> None:
    """The options of `rvclora info`; its one-line help is in the front door's command table."""
    p.description = (
        "Print what a voice model (.pth) or LoRA adapter (.safetensors) holds, as JSON."
    )
    p.add_argument("model", type=Path, help="RVC voice .pth, pretrained G*.pth, or an rvclora adapter .safetensors")
    p.set_defaults(func=cmd_info)


def add_assets(p: argparse.ArgumentParser) -> None:
    """The options of `rvclora assets`; its one-line help is in the front door's command table."""
    p.description = (
        "Manage the shared model files (content encoder, RMVPE, pretrained bases) in RVCLORA_HOME/assets."
    )
    asub = p.add_subparsers(dest="assets_command", metavar="ACTION", required=True)
    d = asub.add_parser(
        "download",
        help="fetch missing assets from the Hugging Face Hub",
        description="Fetch missing assets from the Hugging Face Hub (repo lj1995/VoiceConversionWebUI). "
        "Honours HF_ENDPOINT for mirrors. Files already present are kept. The first download pins the repo's "
        "commit in assets/assets.lock.json and later ones reuse it; each file's sha256 is checked against the "
        "Hub's listing, and broken downloads resume.",
    )
    d.add_argument("names", nargs="*", help="asset names or groups (default: the 'default' group)")
    d.set_defaults(func=cmd_assets_download)
    c = asub.add_parser("check", help="list assets and whether they are present", description="List assets and whether they are present.")
    c.set_defaults(func=cmd_assets_check)


def _asset_or_flag(flag: Path | None, default: Path, what: str, hint: str) -> Path:
    path = flag if flag is not None else default
    if not path.exists():
        from ..errors import MissingAssetError

        raise MissingAssetError(f"{what} not found at {path}; {hint}")
    return path


def _fill_defaults(args: argparse.Namespace, adapters: list[tuple[Path, float]]) -> None:
    """Options the user left out come from the voice.json beside the first adapter, else RVC's defaults."""
    from ..library.voice_library import VoiceLibraryError, read_voice_json

    entry = None
    for path, _ in adapters[:1]:
        try:
            entry = read_voice_json(path.parent)
        except VoiceLibraryError:
            entry = None
        if entry is not None and not any(a.file == path.name for a in entry.adapters):
            entry = None  # a voice.json about something else
    d = entry.defaults if entry is not None else None
    if args.pitch is None:
        args.pitch = d.pitch if d else 0.0
    if args.f0_method is None:
        args.f0_method = known_f0_method(d.f0_method if d else None)
    if args.index is None and entry is not None and entry.index_path is not None and entry.index_path.is_file():
        args.index = entry.index_path
    if args.index_rate is None:
        args.index_rate = d.index_rate if d and args.index is not None else 0.75
    if args.protect is None:
        args.protect = d.protect if d else 0.33


def _fill_from_preset(args: argparse.Namespace, home: Home) -> None:
    """Options left out come from --preset or the voice's default preset, so convert sounds as live does."""
    preset = convert_preset(PresetStore.for_home(home), args.preset, voice_of_model(args.model, home))
    if preset is None:
        return
    parser_defaults = {"noise_scale": 0.66666, "speaker": 0}  # options with a default of their own
    for key, value in preset.convert_values().items():
        if getattr(args, key, None) is None or getattr(args, key) == parser_defaults.get(key, object()):
            setattr(args, key, value)


def _check_convert_options(args: argparse.Namespace) -> None:
    """Everything about the options that can be refused before any file is read (one-line UsageErrors)."""
    from ..synth.limiter import check_ceiling_option  # scipy: loaded by the command, not by --help

    lo, hi = PITCH_SHIFT_RANGE
    if not lo <= args.pitch <= hi:
        raise UsageError(f"--pitch {args.pitch:g}: must be from {lo:g} to {hi:g} semitones")
    if not 0 <= args.index_rate <= 1:
        raise UsageError(f"--index-rate {args.index_rate}: must be between 0 and 1")
    if not 0 <= args.protect <= 0.5:
        raise UsageError(f"--protect {args.protect}: must be between 0 and 0.5")
    if args.sr is not None and not OUTPUT_RATES[0] <= args.sr <= OUTPUT_RATES[1]:
        raise UsageError(f"--sr {args.sr}: must be from {OUTPUT_RATES[0]} to {OUTPUT_RATES[1]} Hz")
    check_ceiling_option(args.ceiling_db)


def cmd_convert(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..library.embedders import content_encoder_path
    from ..synth.audio_io import (
        check_audio_output,
        check_input_length,
        finish_audio,
        load_mono,
        resample,
        write_audio,
    )
    from ..synth.constants import SR_16K
    from ..synth.content_encoder import load_content_encoder
    from ..synth.device import resolve_device, resolve_dtype
    from ..synth.index import FeatureIndex
    from ..synth.pipeline import ConvertSettings, VoiceConverter
    from ..synth.pitch import make_pitch_estimator
    from ..synth.voice_adapters import load_voice_with_adapters, parse_adapter_spec

    check_audio_output(args.output, overwrite=args.overwrite)  # before minutes of work, not after
    check_input_length(args.input)  # before decoding it whole
    adapters = [parse_adapter_spec(a) for a in args.adapter]
    _fill_from_preset(args, Home.from_env())
    _fill_defaults(args, adapters)
    _check_convert_options(args)
    home = Home.from_env()
    hint = "run `rvclora assets download` or pass --hubert"
    if args.hubert is not None:
        _asset_or_flag(args.hubert, args.hubert, "content encoder", hint)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.precision, device)
    audio = load_mono(args.input, SR_16K)
    voice = load_voice_with_adapters(args.model, adapters, merged=True, force=args.force, device=device, dtype=dtype)
    # the encoder the voice was trained on (Applio's embedder_model), ContentVec when it does not say
    hubert = args.hubert or _asset_or_flag(None, content_encoder_path(home, voice.meta.embedder), "content encoder", hint)
    if not 0 <= args.speaker < voice.n_speakers:
        raise UsageError(f"--speaker {args.speaker}: this model has speakers 0–{voice.n_speakers - 1}")
    encoder = load_content_encoder(hubert, version=voice.version, device=device, dtype=dtype)
    estimator = None
    if voice.f0:
        rmvpe = args.rmvpe if args.rmvpe is not None else home.assets / "rmvpe.pt"
        method = resolve_f0_method(args.f0_method, rmvpe)
        estimator = make_pitch_estimator(method, rmvpe_path=rmvpe, device=device, dtype=dtype)
    index = FeatureIndex.load(args.index) if args.index is not None else None
    converter = VoiceConverter(voice, encoder, estimator, index)
    settings = ConvertSettings(
        pitch=args.pitch,
        index_rate=args.index_rate,
        protect=args.protect,
        noise_scale=args.noise_scale,
        speaker=args.speaker,
        seed=args.seed,
    )
    with tqdm(total=None, desc="converting", unit="segment", disable=not sys.stderr.isatty()) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        out = converter.convert(audio, settings, progress=progress)
    out_sr = args.sr or converter.sr
    out, limited = finish_audio(resample(out, converter.sr, out_sr), out_sr, args.ceiling_db)
    write_audio(args.output, out, out_sr, overwrite=args.overwrite, ceiling_db=None)
    print(f"wrote {args.output} ({len(out) / out_sr:.2f} s at {out_sr} Hz){limiter_note(limited)}")
    return 0


def _adapter_info(path: Path) -> dict:
    from ..lora import load_adapter

    adapter = load_adapter(path)
    return {
        "path": str(path),
        "kind": "adapter",
        "rank": adapter.rank,
        "alpha": adapter.alpha,
        "rslora": adapter.rslora,
        "targets": adapter.targets,
        "modules": len(adapter.lora),
        "extra_tensors": sorted(adapter.extras),
        "parameters": adapter.num_parameters(),
        "base": {"version": adapter.base.version, "sample_rate": adapter.base.sr, "f0": adapter.base.f0,
                 "fingerprint": adapter.base.fingerprint or None},  # None: made by another tool
        "created_by": adapter.created_by,
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }


def cmd_info(args: argparse.Namespace) -> int:
    if args.model.suffix.lower() == ".safetensors":
        print(json.dumps(_adapter_info(args.model), indent=2))
        return 0
    from ..synth.voice_file import inspect_voice

    voice = inspect_voice(args.model)  # checks the file against its config; builds no model
    info = {
        "path": str(args.model),
        "kind": "voice" if voice.kind == "voice" else "pretrained base",
        "version": voice.version,
        "sample_rate": voice.sr,
        "f0": voice.f0,
        "speakers": voice.n_speakers,
        "parameters": sum(t.numel() for t in voice.state.values()),
        "dtype": voice.dtypes[0] if len(voice.dtypes) == 1 else list(voice.dtypes),
        "info": voice.info,
        "embedder": voice.meta.embedder_name,  # the content encoder it needs (Applio's embedder_model)
        "vocoder": voice.meta.vocoder or "HiFi-GAN",
        "sha256": sha256_file(args.model),
    }
    print(json.dumps(info, indent=2))
    return 0


def cmd_assets_download(args: argparse.Namespace) -> int:
    from ..library.asset_pins import download_pinned
    from ..library.assets import select_assets

    home = Home.from_env()
    # one pinned Hub commit, the total said first, each new file's sha256 checked
    paths = download_pinned(select_assets(args.names or ["default"]), home)
    for path in paths:
        print(path)
    return 0


def cmd_assets_check(args: argparse.Namespace) -> int:
    from ..library.assets import ASSETS, check_assets

    home = Home.from_env()
    missing = 0
    print(f"assets folder: {home.assets}")
    for asset, present, size in check_assets(home, ASSETS):
        state = f"ok  {size / 1e6:8.1f} MB" if present else "missing"
        missing += not present
        print(f"  {asset.name:<14} {state:<14} {asset.local_path(home)}")
    if missing:
        print(f"{missing} missing: run `rvclora assets download` (or copy the files to the paths above)")
    return 0
