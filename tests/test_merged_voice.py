"""write_merged_voice: base voice + adapters -> an official RVC voice .pth that loads and sounds like base+adapter."""

import pytest
import torch

from rvclora.errors import OutputExistsError
from rvclora.export.merged_voice import write_merged_voice
from rvclora.lora import AdapterError, apply_adapters, bake, load_adapter
from rvclora.synth.checkpoint import load_checkpoint
from rvclora.synth.synthesizer import Synthesizer
from rvclora.synth.voice_file import load_voice
from rvclora.tests.rvc_fixtures import make_adapter_file, make_inputs, make_voice_file

FRAMES = 40


def _run(model):
    inputs = make_inputs("v2", FRAMES, f0=True)
    noise = torch.randn(1, model.config.inter_channels, FRAMES, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(0)
    with torch.no_grad():
        return model.infer(**inputs, noise=noise)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("merged")
    voice_path = make_voice_file(d)
    a1 = make_adapter_file(voice_path, d / "a1.safetensors", 1)
    a2 = make_adapter_file(voice_path, d / "a2.safetensors", 2, targets="decoder,encoder")
    return d, voice_path, a1, a2


def test_merged_voice_reproduces_base_plus_adapters(setup):
    d, voice_path, a1, a2 = setup
    spec = [(a1, 0.6), (a2, 0.4)]
    out = write_merged_voice(voice_path, spec, d / "merged.pth")

    # an official voice file: fp16 weights with weight_g/weight_v, config, sr string, f0 int, version
    ckpt = load_checkpoint(out)
    assert set(ckpt) == {"weight", "config", "info", "sr", "f0", "version"}
    assert (ckpt["sr"], ckpt["f0"], ckpt["version"]) == ("40k", 1, "v2") and len(ckpt["config"]) == 18
    assert all(v.dtype == torch.float16 for v in ckpt["weight"].values())
    assert "dec.ups.0.weight_g" in ckpt["weight"] and not any("lora" in k for k in ckpt["weight"])
    assert "a1.safetensors×0.6" in ckpt["info"]

    merged = load_voice(out)
    # expectation: the same base with the adapters applied live (unmerged, fp32)...
    live = load_voice(voice_path)
    apply_adapters(live.model, [(load_adapter(p), w) for p, w in spec])
    y_live = _run(live.model)
    # ... and that model baked and rounded to fp16 the way every voice file is
    bake(live.model)
    rounded = Synthesizer(live.config, version="v2", f0=True, posterior=False).eval()
    rounded.load_state_dict({k: v.half().float() for k, v in live.model.state_dict().items()})
    y_rounded = _run(rounded)

    y = _run(merged.model)
    assert (y - y_rounded).abs().max() <= 1e-4
    # the fp16 file is a faithful rounding of base + adapters, and the adapters are really in it
    y_base = _run(load_voice(voice_path).model)
    assert (y - y_live).abs().max() <= 0.02 * (y_live - y_base).abs().max()  # measured: 0.4 %


def test_refusals(setup, tmp_path):
    d, voice_path, a1, _ = setup
    out = tmp_path / "m.pth"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_merged_voice(voice_path, [(a1, 1.0)], out)
    assert out.read_bytes() == b"keep me"
    with pytest.raises(ValueError, match="no adapters"):
        write_merged_voice(voice_path, [], tmp_path / "n.pth")

    other = make_voice_file(tmp_path, seed=3, name="other.pth")
    with pytest.raises(AdapterError, match="a1.safetensors: made for base v2 40k f0"):
        write_merged_voice(other, [(a1, 1.0)], tmp_path / "x.pth")
    assert not (tmp_path / "x.pth").exists()
    # force: a base that differs only in its fingerprint; overwrite replaces the file
    write_merged_voice(other, [(a1, 1.0)], out, force=True, overwrite=True)
    assert load_checkpoint(out)["version"] == "v2"
