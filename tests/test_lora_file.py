"""The adapter file: round trip, header, fingerprint, refusals."""

import json
import struct

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from rvclora.lora import (
    FORMAT,
    AdapterError,
    AdapterWarning,
    BaseInfo,
    LoRAConfig,
    apply_adapters,
    check_adapter,
    extract_adapter,
    fingerprint,
    inject,
    load_adapter,
    lora_modules,
    model_fingerprint,
    save_adapter,
)
from rvclora.synth.synthesizer import Synthesizer
from rvclora.synth.voice_file import load_voice
from tests.rvc_fixtures import make_foreign_adapter_file, make_synthesizer, make_voice_file


def _trained(model, targets="decoder,flow", extras=("emb_g.weight",), seed=0):
    """Inject, then give every B (and the extras) non-zero values, as training would."""
    config = LoRAConfig(rank=4, alpha=8.0)
    base = BaseInfo(model.version, model.config.sr, model.f0, model_fingerprint(model))
    inject(model, targets, config, extras=extras, generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in lora_modules(model).values():
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.05)
        for name in extras:
            p = dict(model.named_parameters())[name]
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return extract_adapter(model, config, base=base, targets=targets, extras=extras, created_by="test"), base


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model = make_synthesizer(posterior=False)
    adapter, base = _trained(model)
    path = save_adapter(tmp_path_factory.mktemp("ad") / "voice.safetensors", adapter, dtype=torch.float32)
    return model, adapter, base, path


def test_round_trip_same_deltas_and_metadata(trained, tmp_path):
    _, adapter, base, path = trained
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert meta == {
        "format": FORMAT, "format_version": "1", "rank": "4", "alpha": "8.0", "rslora": "false",
        "targets": "decoder,flow", "base_version": "v2", "base_sr": "40000", "base_f0": "1",
        "base_fingerprint": base.fingerprint, "created_by": "test",
    }
    assert "dec.ups.0.lora_A" in keys and "flow.flows.6.enc.in_layers.2.lora_B" in keys and "emb_g.weight" in keys
    back = load_adapter(path)
    assert (back.rank, back.alpha, back.rslora, back.targets, back.base) == (4, 8.0, False, "decoder,flow", base)
    assert back.lora.keys() == adapter.lora.keys() and back.extras.keys() == {"emb_g.weight"}
    for name in adapter.lora:  # fp32 file: bit exact
        assert torch.equal(back.delta(name), adapter.delta(name))
    assert torch.equal(back.extras["emb_g.weight"], adapter.extras["emb_g.weight"])
    wide = back.to(dtype=torch.float64)  # e.g. kept next to a live model
    assert wide.lora["dec.ups.0"][0].dtype == torch.float64 and wide.base == back.base

    # fp16 file (the default): same deltas up to fp16 rounding, half the size
    small = save_adapter(tmp_path / "small.safetensors", adapter)
    assert small.stat().st_size < 0.65 * path.stat().st_size  # tiny model: the header weighs in
    half = load_adapter(small)
    for name in adapter.lora:
        want = adapter.delta(name)
        assert (half.delta(name) - want).abs().max() <= 2e-3 * want.abs().max() + 1e-7, name


def test_adapter_file_shapes_follow_the_spec(trained):
    model, adapter, _, _ = trained
    a, b = adapter.lora["dec.ups.1"]  # ConvTranspose1d weight [in, out, k]
    v = model.dec.ups[1].weight_v
    assert list(b.shape) == [v.shape[0], 4] and list(a.shape) == [4, v.shape[1] * v.shape[2]]
    a, b = adapter.lora["dec.resblocks.2.convs1.1"]
    v = model.dec.resblocks[2].convs1[1].weight_v
    assert list(b.shape) == [v.shape[0], 4] and list(a.shape) == [4, v.shape[1] * v.shape[2]]


def test_fingerprint_is_stable_across_loads_and_forms(tmp_path):
    voice = make_voice_file(tmp_path)
    a, b = load_voice(voice), load_voice(voice)
    fp = model_fingerprint(a.model)
    assert len(fp) == 64 and model_fingerprint(b.model) == fp  # same file loaded twice
    # fp16 copy, new-style weight norm keys (original0/1): same base
    assert fingerprint({k: v.half() for k, v in a.model.state_dict().items()}) == fp
    sd = {k.replace(".weight_g", ".parametrizations.weight.original0"): v for k, v in a.model.state_dict().items()}
    assert fingerprint(sd) == fp
    # the fp32 pretrained-base form G*.pth, with the training-only enc_q: same base
    full = Synthesizer(a.config, version="v2", f0=True, posterior=True)
    full.load_state_dict(a.model.state_dict(), strict=False)
    torch.save({"model": full.state_dict(), "iteration": 0}, tmp_path / "f0G40k.pth")
    assert model_fingerprint(load_voice(tmp_path / "f0G40k.pth").model) == fp
    # another training run: another fingerprint
    assert model_fingerprint(make_synthesizer(seed=1, posterior=False)) != fp
    # adapters (and applied extras, even a bias) do not change the base's fingerprint
    adapter, _ = _trained(make_synthesizer(posterior=False), extras=("enc_p.proj.bias",))
    apply_adapters(a.model, [(adapter, 1.0)], merged=True)
    assert model_fingerprint(a.model) == fp
    # weight norm folded (as the realtime engine loads it): same base
    assert model_fingerprint(b.model.remove_weight_norm()) == fp


def test_foreign_adapter_is_refused(trained):
    _, adapter, base, path = trained
    adapter = load_adapter(path)
    other = make_synthesizer(seed=5, posterior=False)
    other_base = BaseInfo("v2", 40000, True, model_fingerprint(other))
    with pytest.raises(AdapterError) as e:
        check_adapter(adapter, other, other_base)
    msg = str(e.value)
    assert "\n" not in msg and "voice.safetensors" in msg and "force" in msg
    assert f"made for base v2 40k f0 (fingerprint {base.fingerprint[:12]})" in msg
    with pytest.warns(AdapterWarning, match="because of --force"):
        check_adapter(adapter, other, other_base, force=True)  # differs only in fingerprint: allowed

    # other version / sample rate / f0: refused even with force
    for wrong in (BaseInfo("v1", 40000, True, base.fingerprint), BaseInfo("v2", "48k", True, base.fingerprint),
                  BaseInfo("v2", 40000, False, base.fingerprint)):
        with pytest.raises(AdapterError, match="made for base v2 40k f0"):
            check_adapter(adapter, other, wrong, force=True)

    # other shapes (a 48k decoder has other upsampling kernels): refused even with force
    wide = make_synthesizer(sr=48000, posterior=False)
    with pytest.raises(AdapterError, match=r"made for base v2 40k f0 .*dec\.ups\.0 expects"):
        check_adapter(adapter, wide, BaseInfo("v2", 40000, True, base.fingerprint), force=True)


def test_corrupt_or_foreign_files_are_refused(trained, tmp_path):
    _, adapter, _, path = trained
    data = path.read_bytes()
    cases = {
        "truncated.safetensors": data[: len(data) // 2],
        "garbage.safetensors": b"\x00" * 64,
        "empty.safetensors": b"",
    }
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"]["format"] = "peft"
    raw = json.dumps(header).encode()
    cases["peft.safetensors"] = struct.pack("<Q", len(raw)) + raw + data[8 + n :]
    header["__metadata__"]["format"] = FORMAT
    header["__metadata__"]["format_version"] = "7"
    raw = json.dumps(header).encode()
    cases["future.safetensors"] = struct.pack("<Q", len(raw)) + raw + data[8 + n :]
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(AdapterError) as e:
            load_adapter(tmp_path / name)
        assert "\n" not in str(e.value) and str(e.value).startswith(name), str(e.value)
    with pytest.raises(AdapterError, match="no such adapter"):
        load_adapter(tmp_path / "missing.safetensors")

    # A without B
    save_file({"dec.ups.0.lora_A": torch.zeros(2, 3)}, str(tmp_path / "half.safetensors"),
              metadata={"format": FORMAT, "format_version": "1"})
    with pytest.raises(AdapterError, match="half.safetensors"):
        load_adapter(tmp_path / "half.safetensors")


def test_an_adapter_without_base_fingerprint_applies_only_with_force(trained, tmp_path):
    model, adapter, base, path = trained
    foreign = make_foreign_adapter_file(path, tmp_path / "other-tool.safetensors")
    with safe_open(str(foreign), framework="pt") as f:
        assert "base_fingerprint" not in f.metadata()  # the documented format, less that one field
    loaded = load_adapter(foreign)
    assert loaded.base.fingerprint == "" and loaded.created_by == "another-lora-tool"
    assert "no fingerprint" in loaded.base.describe()
    with pytest.raises(AdapterError) as e:
        check_adapter(loaded, model, base)  # even on the very base it was made for: it cannot be told
    assert "\n" not in str(e.value) and "no base_fingerprint" in str(e.value) and "--force" in str(e.value)
    with pytest.warns(AdapterWarning, match="other-tool.safetensors: no base fingerprint"):
        check_adapter(loaded, model, base, force=True)
    # applied with force, it is exactly the adapter it was copied from
    for name, (a, b) in adapter.lora.items():
        assert torch.equal(loaded.lora[name][0], a) and torch.equal(loaded.lora[name][1], b)
    # shapes are still checked with force
    wide = make_synthesizer(sr=48000, posterior=False)
    with pytest.raises(AdapterError, match=r"dec\.ups\.0 expects"):
        check_adapter(loaded, wide, BaseInfo("v2", 40000, True, model_fingerprint(wide)), force=True)
