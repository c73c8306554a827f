"""Is a LoRA voice as good as a fine-tuned one?  Same base, same held-out speaker, same steps.

1. Pretrain a small RVC base (RVC's v2 40k f0 architecture with small channel counts,
   with its posterior encoder, and a discriminator) with `rvclora-train --full` on
   several speakers: the pytest-audioeval recordings of six languages (real speech)
   and espeak-ng voices.
2. Adapt it to a held-out speaker (the English pytest-audioeval speaker, real speech)
   with LoRA at ranks 4, 8, 16 for the presets `all` and `decoder`, two <= 2 MB
   mixes, LoRA with RVC's fully trained discriminator, and a full fine-tune: the
   same data, steps, batch and seed for each (`rvclora-train` with its defaults
   otherwise: a LoRA run on a pretrained D trains the light discriminator).
3. Report per variant: validation mel L1 (best), MCD, F0 correlation (from the
   training report), speaker similarity (cosine of mean MFCC vectors, c1-c19, of a
   held-out speaker's sentence converted into the voice, against the target
   speaker's own recordings; no speaker-embedding model can be downloaded here),
   the full-size (v2 40k) adapter size of the variant, and the wall time of each run.

Limits: the content encoder is a tiny random HuBERT (no weights can be downloaded),
so content features are random projections of the audio; the base is small and
pretrained briefly.  The comparison between variants is what this measures.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_quality.py [--pretrain-steps 300] [--steps 150] [--out docs/]

Writes OUT/train_quality.json, OUT/train_quality.md (table) and OUT/train_quality.svg
(plot; hand-written SVG so the benchmark needs no plotting library).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import _repo  # noqa: F401 — puts the repository root on sys.path for `tests`
import librosa
import numpy as np
import soundfile as sf
import torch

from rvclora.cli.main import train_main as train
from rvclora.lora import LoRAConfig, apply_adapters, inject, load_adapter
from rvclora.synth.audio_io import resample
from rvclora.synth.configs import official_config
from rvclora.synth.content_encoder import load_content_encoder
from rvclora.synth.pipeline import ConvertSettings, VoiceConverter
from rvclora.synth.pitch import make_pitch_estimator
from rvclora.synth.synthesizer import Synthesizer
from rvclora.synth.voice_file import load_voice
from rvclora.train.discriminators import DiscriminatorWidths, MultiPeriodDiscriminator, save_discriminator
from rvclora.train.state import load_latest
from tests.conftest import speech_path
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.rvc_fixtures import make_base_file

ESPEAK_VOICES = ["en-us+m1", "en-us+f2", "en-gb+m3", "en-us+f4", "en-gb+m7"]
SENTENCES = [
    "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.", "Four hours of steady work faced us.",
]
PRETRAIN_LANGS = ["es", "fr", "it", "ja", "pl"]
TARGET_LANG = "en"
SOURCE = "hi/pangrama.wav"  # a speaker seen by no model: converted into each voice


def variants() -> list[tuple[str, list[str]]]:
    def lora(targets: str, r: int, *more: str) -> list[str]:
        return ["--targets", targets, "--rank", str(r), "--alpha", str(2 * r), *more]

    # most informative first (a run cut short still answers the main question)
    return [
        ("full fine-tune", ["--full"]),
        ("lora all r8", lora("all", 8)),
        ("lora flow,decoder r8", lora("flow,decoder", 8)),
        ("lora all r4", lora("all", 4)),
        ("lora all r8, full D", lora("all", 8, "--train-d", "full")),
        ("lora decoder r8", lora("decoder", 8)),
        ("lora all r16", lora("all", 16)),
        ("lora decoder r4", lora("decoder", 4)),
        ("lora decoder r16", lora("decoder", 16)),
        ("lora encoder,decoder r8", lora("encoder,decoder", 8)),
    ]


def full_size_bytes(targets: str, rank: int) -> int:
    """fp16 bytes of the LoRA tensors on a full-size v2 40k model (what a user's adapter holds)."""

    with torch.device("meta"):
        m = Synthesizer(official_config("v2", 40000), version="v2", f0=True, posterior=False)
    inject(m, targets, LoRAConfig(rank=rank))
    return 2 * sum(p.numel() for n, p in m.named_parameters() if "lora_" in n)


def make_data(root: Path) -> dict[str, Path]:

    audio_root = speech_path("en/counting.wav").parent.parent
    pre, tgt = root / "pretrain", root / "target"
    for lang in PRETRAIN_LANGS:
        (pre / lang).mkdir(parents=True)
        for f in (audio_root / lang).glob("*.wav"):
            shutil.copy(f, pre / lang / f.name)
    for v in ESPEAK_VOICES:
        d = pre / v.replace("+", "_")
        d.mkdir(parents=True)
        for i, s in enumerate(SENTENCES):
            subprocess.run(["espeak-ng", "-v", v, "-s", "150", "-w", str(d / f"{i}.wav"), s], check=True)
    tgt.mkdir()
    for f in (audio_root / TARGET_LANG).glob("*.wav"):
        shutil.copy(f, tgt / f.name)
    return {"pretrain": pre, "target": tgt, "source": speech_path(SOURCE)}


def common(kit: dict, steps: int) -> list[str]:
    return ["--hubert", str(kit["hubert"]), "--f0-method", "pm", "--device", "cpu", "--batch-size", "4", "--patience", "0",
            "--max-steps", str(steps), "--save-every", str(steps), "--eval-every", str(max(1, steps // 3)), "--no-progress",
            "--seed", "7"]


def pretrain(root: Path, kit: dict, steps: int) -> tuple[Path, Path, float]:
    """Full training of a small random base and D; the last checkpoint becomes G.pth (with enc_q) and D.pth."""

    init = make_base_file(root, "v2", 40000, True, seed=0, name="init.pth")
    torch.manual_seed(0)
    d0 = save_discriminator(root / "D_init.pth", MultiPeriodDiscriminator("v2", DiscriminatorWidths.scaled(8)))
    out = root / "pre" / "pre.pth"
    t0 = time.perf_counter()
    rc = train([str(kit["pretrain"]), "--base", str(init), "--base-d", str(d0), "--out", str(out), "--full", "--lr", "5e-4",
               "--cache-dir", str(root / "cache"), *common(kit, steps)])
    assert rc == 0, "pretraining failed"
    took = time.perf_counter() - t0
    ck = load_latest(root / "pre" / "pre.train" / "checkpoints")
    state = torch.load(init, weights_only=True)["model"]
    state.update(ck["trainable"])
    g = root / "f0G40k.pth"
    torch.save({"model": state, "iteration": steps}, g)
    d = root / "f0D40k.pth"
    torch.save({"model": ck["discriminator"], "iteration": steps}, d)
    return g, d, took


def mean_mfcc(audio: np.ndarray, sr: int) -> np.ndarray:

    return librosa.feature.mfcc(y=audio.astype(np.float32), sr=sr, n_mfcc=20)[1:].mean(axis=1)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def similarity(kit: dict, model_path: Path, adapter: Path | None, target_mfcc: np.ndarray) -> float:

    voice = load_voice(model_path)
    if adapter is not None:
        apply_adapters(voice.model, [(load_adapter(adapter), 1.0)])
    conv = VoiceConverter(voice, load_content_encoder(kit["hubert"], version="v2"), make_pitch_estimator("pm"))
    src, sr = sf.read(kit["source"], dtype="float32")
    out = conv.convert(resample(src, sr, 16000), ConvertSettings(index_rate=0.0, seed=0))
    return cosine(mean_mfcc(out, voice.sr), target_mfcc)


def svg_plot(rows: list[dict], path: Path) -> None:
    """Bars of validation mel L1 and speaker similarity per variant."""
    w, bar, gap, left = 900, 16, 10, 230
    h = 60 + len(rows) * (2 * bar + gap)
    mel_max = max(r["val_mel_best"] for r in rows) * 1.1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="20">blue: validation mel L1 (lower is better, 0-{mel_max:.2f}); '
             'orange: speaker similarity, mean-MFCC cosine (higher is better, 0-1)</text>']
    for i, r in enumerate(rows):
        y = 40 + i * (2 * bar + gap)
        parts.append(f'<text x="{left - 8}" y="{y + bar + 4}" text-anchor="end">{r["variant"]} ({r["adapter_mb_full_size"]})</text>')
        mw = (w - left - 80) * r["val_mel_best"] / mel_max
        parts.append(f'<rect x="{left}" y="{y}" width="{mw:.1f}" height="{bar - 2}" fill="#3b6fb6"/>')
        parts.append(f'<text x="{left + mw + 4:.1f}" y="{y + bar - 4}">{r["val_mel_best"]:.3f}</text>')
        sim = r["speaker_similarity"]
        sw = (w - left - 80) * max(sim, 0.0)
        parts.append(f'<rect x="{left}" y="{y + bar}" width="{sw:.1f}" height="{bar - 2}" fill="#e08a2c"/>')
        parts.append(f'<text x="{left + sw + 4:.1f}" y="{y + 2 * bar - 4}">{sim:.3f}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def table(rows: list[dict], head: dict) -> str:
    lines = [
        f"Base: small RVC v2 40k f0 ({head['channel_divisor']} channel counts), pretrained {head['pretrain_steps']} steps on "
        f"{head['pretrain_speakers']} speakers in {head['pretrain_s']:.0f} s; adaptation: {head['steps']} steps, batch 4, "
        f"{head['target_files']} recordings of the held-out speaker. CPU, {head['threads']} thread(s), shared machine.",
        "",
        "| variant | adapter (full-size v2, fp16) | val mel L1 best | MCD dB | F0 corr | speaker sim. | time s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f0 = "n/a" if r["f0_correlation"] is None else f"{r['f0_correlation']:.3f}"
        mcd = "n/a" if r["mcd_db"] is None else f"{r['mcd_db']:.2f}"
        lines.append(f"| {r['variant']} | {r['adapter_mb_full_size']} | {r['val_mel_best']:.3f} | {mcd} | {f0} | "
                     f"{r['speaker_similarity']:.3f} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pretrain-steps", type=int, default=300)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--only", help="semicolon-separated variant names (default: all)")
    p.add_argument("--out", type=Path, default=Path("docs"))
    a = p.parse_args()


    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rvclora-quality-") as tmp:
        root = Path(tmp)
        kit = make_data(root)
        kit["hubert"] = write_hubert_file(root / "hubert_base.pt", tiny_hubert_config("v2"))
        g, d, pre_s = pretrain(root, kit, a.pretrain_steps)
        print(f"pretrained in {pre_s:.0f} s", flush=True)
        target = np.concatenate([sf.read(f, dtype="float32")[0] for f in sorted(kit["target"].glob("*.wav"))])

        target_mfcc = mean_mfcc(resample(target, 16000, 40000), 40000)
        rows = [{"variant": "base (not adapted)", "adapter_mb_full_size": "-", "seconds": 0.0, "mcd_db": None, "f0_correlation": None,
                 "speaker_similarity": similarity(kit, g, None, target_mfcc), "val_mel_best": float("nan")}]
        wanted = {s.strip() for s in a.only.split(";")} if a.only else None
        for name, extra in variants():
            if wanted and name not in wanted:
                continue
            full = "--full" in extra
            out = root / "v" / name.replace(" ", "_").replace(",", "+") / ("voice.pth" if full else "a.safetensors")
            t0 = time.perf_counter()
            rc = train([str(kit["target"]), "--base", str(g), "--base-d", str(d), "--out", str(out),
                        "--cache-dir", str(root / "cache"), *common(kit, a.steps), *extra])
            took = time.perf_counter() - t0
            if rc != 0:
                print(f"{name}: training failed (rc {rc})", flush=True)
                continue
            rep = json.loads((out.parent / f"{out.stem}.train" / "report.json").read_text())
            if full:
                size = "-"
            else:
                t, r = extra[extra.index("--targets") + 1], int(extra[extra.index("--rank") + 1])
                size = f"{full_size_bytes(t, r) / 1e6:.2f} MB"
            sim = similarity(kit, out if full else g, None if full else out, target_mfcc)
            rows.append({"variant": name, "adapter_mb_full_size": size, "seconds": took, "val_mel_start": rep["val_mel_start"],
                         "val_mel_best": rep["val_mel_best"], "mcd_db": rep["mcd_db"], "f0_correlation": rep["f0_correlation"],
                         "speaker_similarity": sim, "trainable_parameters": rep["trainable_parameters"]})
            rows[0]["val_mel_best"] = rep["val_mel_start"]  # step 0 of any run is the base itself
            print(json.dumps(rows[-1]), flush=True)
            head = {"channel_divisor": "the test fixtures' tiny", "pretrain_steps": a.pretrain_steps, "pretrain_speakers": len(PRETRAIN_LANGS) + len(ESPEAK_VOICES),
                    "pretrain_s": pre_s, "steps": a.steps, "target_files": len(list(kit["target"].glob("*.wav"))),
                    "threads": torch.get_num_threads()}
            (a.out / "train_quality.json").write_text(json.dumps({"setup": head, "rows": rows}, indent=2))
            (a.out / "train_quality.md").write_text(table(rows, head))
            svg_plot(rows, a.out / "train_quality.svg")
    print((a.out / "train_quality.md").read_text())


if __name__ == "__main__":
    main()
