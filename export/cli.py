"""``rvclora export`` (alias ``rvclora-export``): merge LoRA adapters into a voice and write ONNX
or an official RVC .pth.

    rvclora export --model BASE.pth [--adapter A.safetensors[:WEIGHT]]… --out FILE.onnx|FILE.pth
    rvclora export --live --model VOICE.pth [--hubert H] [--rmvpe R] [--int8] --out FOLDER

The output path is checked before anything is loaded. `--adapter` and `--force` come from
the front door's shared option groups.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..synth.onnx_contract import COMPONENTS, DEFAULT_OPSET, EMBEDDERS, MAX_OPSET, MIN_OPSET

DESCRIPTION = (
    "Merge LoRA adapters into an RVC voice and export it: FILE.onnx writes an ONNX model "
    "(RVC's input/output contract, time axis dynamic) for ONNX Runtime and other RVC tools; "
    "FILE.pth writes an official-format RVC voice with the adapters merged in. Each ONNX "
    "export runs in a fresh process and is verified against PyTorch unless --no-verify. --live writes the "
    "voice's whole live chain (streaming synthesizer, content encoder, RMVPE) into a folder with a manifest; "
    "`rvclora run --model FOLDER` runs it in ONNX Runtime."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `rvclora export`, besides the shared --adapter and --force."""
    p.description = DESCRIPTION
    p.add_argument("--model", required=True, metavar="PATH",
                   help="the voice (.pth, released voice or pretrained G*.pth) for --component synth; "
                        "hubert_base.pt / ContentVec for --component content; rmvpe.pt for --component pitch")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="output file; the suffix picks the format: .onnx (ONNX model) or .pth (merged RVC voice, synth only)")
    p.add_argument("--component", choices=COMPONENTS, default="synth",
                   help="what to export to ONNX: the synthesizer (default), the content encoder (HuBERT/ContentVec) or RMVPE")
    p.add_argument("--streaming", action="store_true",
                   help="synthesizer graph for the live engine: extra inputs skip_head and return_length "
                        "(frames of context to skip, frames to decode)")
    p.add_argument("--fp16", action="store_true",
                   help="ONNX weights and compute in float16 (inputs/outputs stay float32; meant for CUDA). "
                        "A .pth is always written in fp16, as every RVC voice")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, metavar="N",
                   help=f"ONNX opset version, {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET}, as RVC; "
                        "22+ breaks the noise op in current onnxruntime)")
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                   help="run ONNX Runtime and PyTorch on the same inputs at two lengths and print the max abs "
                        "difference; fail above 1e-4 (fp32) or 5e-2 (fp16). For .pth: load the result back "
                        "and compare with the unmerged model (default: on)")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists (default: refuse)")
    p.add_argument("--embedder", choices=EMBEDDERS, default="hubert_base",
                   help="content encoder the voice was trained with, recorded in the ONNX metadata (default hubert_base)")
    p.add_argument("--version", choices=("v1", "v2"), default="v2",
                   help="--component content only: export v1 (256-d, layer 9 + final_proj) or v2 (768-d, layer 12) features")
    p.add_argument("--live", action="store_true",
                   help="write the live set into the folder --out: synth.onnx (streaming, with formant), content.onnx, "
                        "pitch.onnx and live.json (names, opset, hashes); run it with `rvclora run --model FOLDER`")
    p.add_argument("--hubert", default=None, metavar="PATH",
                   help="--live: the content encoder (default: the one the voice names, from the home folder)")
    p.add_argument("--rmvpe", default=None, metavar="PATH",
                   help="--live: rmvpe.pt (default: the home folder's, if there; without one the set has no pitch.onnx "
                        "and the engine uses pm)")
    p.add_argument("--int8", action="store_true",
                   help="--live: also write content_int8.onnx, the content encoder with int8 linear layers (faster on "
                        "CPU, features change slightly); run it with `rvclora run --backend onnx-int8`")
    p.add_argument("--info", default=None, metavar="TEXT", help=".pth only: the voice's info string (default: base info + adapters)")
    p.set_defaults(func=run)


def _export_pth(args, adapters: list[tuple[str, float]]) -> str:
    import torch

    from ..synth.output_file import staged_output
    from ..synth.voice_file import load_voice
    from .example_inputs import synth_inputs
    from .merged_voice import write_merged_voice
    from .onnx_export import ExportError
    from .verify import reference_synth

    out = Path(args.out)
    if args.component != "synth" or args.streaming:
        raise ExportError("a .pth output is a merged voice: --component content/pitch and --streaming need a .onnx output")
    if not adapters:
        raise ExportError("nothing to merge: a .pth export needs at least one --adapter")
    for path in [args.model, *(p for p, _ in adapters)]:
        if not Path(path).is_file():
            raise ExportError(f"{path}: file not found")
    with staged_output(out, overwrite=args.overwrite) as tmp:
        write_merged_voice(args.model, adapters, tmp, overwrite=True, force=args.force, info=args.info)
        if args.verify:
            merged = load_voice(tmp).model
            live = reference_synth(args.model, adapters, force=args.force)
            x = synth_inputs(live, 50, seed=5)
            with torch.no_grad():
                run = lambda m: m.infer(x["phone"], x["phone_lengths"], x.get("pitch"), x.get("pitchf"), x["ds"],  # noqa: E731
                                        noise=x["rnd"], noise_scale=1.0, dec_noise=0.0)
                diff = float((run(merged) - run(live)).abs().max())
    names = ", ".join(f"{Path(p).name}×{w:g}" for p, w in adapters)
    line = f"wrote {out} (official RVC voice, fp16; merged {names})"
    if args.verify:
        line += f"; loads back, max abs diff vs unmerged {diff:.2e} (fp16 weights)"
    return line


def _export_onnx(args, adapters: list[tuple[str, float]]) -> str:
    from tqdm import tqdm

    from .onnx_export import export_onnx

    with tqdm(total=1, desc=f"exporting {args.component} to ONNX", unit="step", leave=False,
              disable=not sys.stderr.isatty()) as bar:
        result = export_onnx(
            args.model, args.out, component=args.component, adapters=adapters, streaming=args.streaming,
            fp16=args.fp16, opset=args.opset, verify=args.verify, overwrite=args.overwrite, force=args.force,
            embedder=args.embedder, version=args.version,
        )
        bar.update(1)
    meta = result.metadata
    what = args.component
    if what == "synth":
        what = f"synthesizer {meta['version']} {int(meta['sr']) // 1000}k {'f0' if meta['f0'] == '1' else 'no-f0'}"
        what += ", streaming" if args.streaming else ""
        if adapters:
            what += f", {len(adapters)} adapter(s) merged"
    line = f"wrote {result.path} ({what}, {meta.get('precision', 'fp32')}, opset {meta['opset']}, {result.seconds:.1f} s)"
    if result.max_abs_diff is not None:
        lengths = ",".join(str(n) for n in result.lengths)
        line += f"; verified: ONNX Runtime vs PyTorch max abs diff {result.max_abs_diff:.2e} at lengths {lengths}"
    return line


def _export_live(args, adapters: list[tuple[str, float]]) -> str:
    from .live_set import export_live_set
    from .onnx_export import ExportError

    if args.component != "synth" or args.streaming or Path(args.out).suffix.lower() in (".onnx", ".pth"):
        raise ExportError("--live writes a folder (--out FOLDER) with every component; drop --component/--streaming")
    result = export_live_set(
        args.model, args.out, hubert=args.hubert, rmvpe=args.rmvpe, adapters=adapters, int8=args.int8,
        fp16=args.fp16, opset=args.opset, verify=args.verify, overwrite=args.overwrite, force=args.force,
    )
    parts = ", ".join(entry["file"] for entry in result.manifest["files"].values())
    line = f"wrote live set {result.folder} ({parts}, opset {args.opset}, {result.seconds:.1f} s)"
    diffs = [r.max_abs_diff for r in result.results.values() if r.max_abs_diff is not None]
    if diffs:
        line += f"; verified: ONNX Runtime vs PyTorch max abs diff {max(diffs):.2e}"
    return line


def run(args: argparse.Namespace) -> int:
    from ..synth.output_file import check_output_path
    from ..synth.voice_adapters import parse_adapter_spec

    if args.live:
        print(_export_live(args, [parse_adapter_spec(s) for s in args.adapter]))
        return 0
    if args.hubert or args.rmvpe or args.int8:
        from .onnx_export import ExportError

        raise ExportError("--hubert, --rmvpe and --int8 go with --live")
    check_output_path(args.out, overwrite=args.overwrite, suffixes=(".onnx", ".pth"))  # before any loading
    adapters = [parse_adapter_spec(s) for s in args.adapter]
    if Path(args.out).suffix.lower() == ".pth":
        print(_export_pth(args, adapters))
    else:
        print(_export_onnx(args, adapters))
    return 0
