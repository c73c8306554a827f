"""CPU time of `rvclora convert` on 10 s of speech with full-size models (random weights).

Builds a full-size v2 40k voice, a full-size HuBERT-base (fairseq layout) and a full-size
RMVPE, all with random weights in the official formats, then converts 10 s of real speech
(pytest-audioeval samples) with the rmvpe and pm pitch methods. Prints JSON: model load
time, and the median conversion time over repeated runs, per pitch method.

    python benchmarks/convert_cpu.py [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import _repo  # noqa: F401 — puts the repository root on sys.path for `tests`
import numpy as np
import soundfile as sf
import torch

from rvclora.synth.configs import official_config
from rvclora.synth.content_encoder import load_content_encoder
from rvclora.synth.hubert import HubertConfig
from rvclora.synth.pipeline import ConvertSettings, VoiceConverter
from rvclora.synth.pitch import make_pitch_estimator
from rvclora.synth.rmvpe_net import RMVPE
from rvclora.synth.synthesizer import Synthesizer
from rvclora.synth.voice_file import load_voice, save_voice
from tests.conftest import speech_path
from tests.hubert_fixtures import write_hubert_file
from tests.rvc_fixtures import randomize_

SPEECH = ["en/quick_brown_fox.wav", "en/counting.wav", "en/hello_world.wav", "es/conteo.wav", "fr/bonjour_monde.wav"]


def ten_seconds_of_speech() -> np.ndarray:
    parts = []
    for name in SPEECH:
        path = speech_path(name)
        if path.exists():
            parts.append(sf.read(path, dtype="float32")[0])
    audio = np.concatenate(parts)
    while len(audio) < 160000:
        audio = np.concatenate([audio, audio])
    return audio[:160000]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        config = official_config("v2", 40000)
        synth = randomize_(Synthesizer(config, version="v2", f0=True, posterior=False), seed=0)
        voice_path = save_voice(d / "voice.pth", synth, config=config, version="v2", f0=True, info="bench")
        hubert_path = write_hubert_file(d / "hubert_base.pt", HubertConfig())
        torch.save(randomize_(RMVPE(), seed=1, fp16_exact=False).state_dict(), d / "rmvpe.pt")
        audio = ten_seconds_of_speech()

        t0 = time.perf_counter()
        voice = load_voice(voice_path)
        encoder = load_content_encoder(hubert_path, version="v2")
        load_s = time.perf_counter() - t0
        report = {
            "audio_s": len(audio) / 16000,
            "threads": args.threads,
            "model": "v2 40k full size (random weights)",
            "voice_and_hubert_load_s": round(load_s, 2),
        }
        for method in ("rmvpe", "pm"):
            estimator = make_pitch_estimator(method, rmvpe_path=d / "rmvpe.pt")
            converter = VoiceConverter(voice, encoder, estimator)
            times = []
            for i in range(args.repeats):
                t0 = time.perf_counter()
                converter.convert(audio, ConvertSettings(seed=i))
                times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            estimator(np.pad(audio, 16000, mode="reflect"))
            f0_s = time.perf_counter() - t0
            report[method] = {
                "convert_median_s": round(statistics.median(times), 2),
                "real_time_factor": round(statistics.median(times) / (len(audio) / 16000), 3),
                "pitch_only_s": round(f0_s, 2),
                "runs": [round(t, 2) for t in times],
            }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
