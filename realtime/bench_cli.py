"""`rvclora bench`: its options and command (the measuring itself is in `bench` and `stage_profile`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UsageError
from .cli import _add_voice_options, _load_source
from .settings import F0_METHODS, EngineSettings

_D = EngineSettings()


def add_bench(p: argparse.ArgumentParser) -> None:
    """The options of `rvclora bench`; its one-line help is in the front door's command table."""
    p.description = (
        "Run the live chain on a generated voice-like signal without devices and print JSON: "
        "per-block compute p50/p95/p99, real-time factor, algorithmic latency, overruns, and the cost of a "
        "naive full-window pass for comparison; --stages adds each stage's time (and prints a table)."
    )
    _add_voice_options(p, random_model=True)
    for name in ("block_ms", "crossfade_ms", "search_ms", "context_ms"):
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=int, default=getattr(_D, name), help=f"(default {getattr(_D, name)})")
    p.add_argument("--f0-method", choices=F0_METHODS, default="auto", help="pitch estimator (random models: pm, or rmvpe with random weights)")
    p.add_argument("--pitch", type=float, default=0.0, help="transpose in semitones (default 0)")
    p.add_argument("--formant", type=float, default=0.0, help="formant shift in semitones (default 0)")
    p.add_argument("--index-rate", type=float, default=0.0, help="index blend rate, with --index (default 0)")
    p.add_argument("--blocks", type=int, default=30, help="timed blocks (default 30)")
    p.add_argument("--naive-blocks", type=int, default=8, help="timed blocks of the naive full-window pass; 0 skips it (default 8)")
    p.add_argument("--stages", action="store_true",
                   help="also time each stage (input resample, content encoder, pitch, index, text encoder, flow, "
                   "decoder, SOLA, output resample) over --blocks more blocks: JSON under \"stages\", a table on stderr")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: as `rvclora run`, half the cores, at most 4)")
    p.add_argument("--input-file", type=Path, help="time on this recording instead of the generated signal")
    p.add_argument("--out", type=Path, help="also write the JSON to this file")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from ..synth.device import set_live_threads
    from .bench import run_bench, speechlike
    from .stage_profile import run_stages, stage_table

    set_live_threads(args.threads)  # as `rvclora run` does, so the figures are the live engine's
    if args.blocks < 1:
        raise UsageError("--blocks must be at least 1")
    settings = EngineSettings(
        block_ms=args.block_ms, crossfade_ms=args.crossfade_ms, search_ms=args.search_ms, context_ms=args.context_ms,
        f0_method=args.f0_method, pitch=args.pitch, formant=args.formant, index_rate=args.index_rate,
    )
    source = _load_source(args)
    input_sr = source.make_converter(settings).input_sr
    signal = None
    if args.input_file is not None:
        from ..synth.audio_io import load_mono

        signal = load_mono(args.input_file, input_sr)
    result = run_bench(source, settings, blocks=args.blocks, naive_blocks=args.naive_blocks, signal=signal)
    if args.stages:
        if signal is None:
            signal = speechlike(max(10.0, (args.blocks + 3) * settings.block_ms / 1000 + 1), input_sr)
        result.update(run_stages(source, settings, signal, blocks=args.blocks))
        print(stage_table(result, settings.block_ms), file=sys.stderr)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0
