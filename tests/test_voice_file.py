"""Voice files: the official released `.pth`, the pretrained base `G*.pth`, and bad input."""

from __future__ import annotations

import pytest
import torch

from rvclora.synth.configs import official_config
from rvclora.synth.synthesizer import Synthesizer
from rvclora.synth.voice_file import Voice, VoiceFileError, load_voice, save_voice
from tests.rvc_fixtures import (
    make_base_file,
    make_inputs,
    make_synthesizer,
    make_voice_file,
    tiny_config,
)


def run(model: Synthesizer, inp: dict, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.infer(**inp)


def raw(path) -> dict:
    return torch.load(path, weights_only=True)


def voice_error(path, match: str) -> str:
    with pytest.raises(VoiceFileError, match=match) as info:
        load_voice(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


# --------------------------------------------------------------------------- official format


def test_save_voice_writes_the_official_format(tmp_path):
    model = make_synthesizer("v2", 48000, True, seed=1)  # with enc_q: dropped on save
    path = save_voice(tmp_path / "v.pth", model, config=model.config, version="v2", f0=True, info="200epoch")
    cpt = raw(path)
    assert list(cpt) == ["weight", "config", "info", "sr", "f0", "version"]
    assert (cpt["sr"], cpt["f0"], cpt["version"], cpt["info"]) == ("48k", 1, "v2", "200epoch")
    assert cpt["config"] == tiny_config("v2", 48000).to_list() and cpt["config"][-1] == 48000
    assert all(v.dtype == torch.float16 for v in cpt["weight"].values())
    assert not any("enc_q" in k for k in cpt["weight"])
    assert "dec.ups.0.weight_g" in cpt["weight"] and "dec.ups.0.weight_v" in cpt["weight"]
    expected = [k for k in model.state_dict() if not k.startswith("enc_q.")]
    assert list(cpt["weight"]) == expected


@pytest.mark.reference
def test_rvc_reference_loads_our_file(tmp_path):
    """What RVC's own loader does: build the class from cpt["config"], load strict=False."""
    R = pytest.importorskip("rvc.lib.infer_pack.models")
    path = make_voice_file(tmp_path, "v1", 40000, True, seed=2)
    cpt = raw(path)
    cpt["config"][-3] = cpt["weight"]["emb_g.weight"].shape[0]
    net_g = R.SynthesizerTrnMs256NSFsid(*cpt["config"], is_half=False)
    del net_g.enc_q
    result = net_g.load_state_dict(cpt["weight"], strict=False)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize("version,sr,f0", [("v1", 48000, True), ("v2", 32000, False)])
def test_round_trip(tmp_path, version, sr, f0):
    model = make_synthesizer(version, sr, f0, seed=3, posterior=False)
    path = save_voice(tmp_path / "v.pth", model, config=model.config, version=version, f0=f0)
    voice = load_voice(path)
    assert isinstance(voice, Voice)
    assert (voice.version, voice.sr, voice.f0, voice.config, voice.n_speakers) == (version, sr, f0, model.config, 4)
    assert voice.path == path and not voice.model.has_posterior and not voice.model.training
    inp = make_inputs(version, 20, f0=f0)
    assert torch.equal(run(voice.model, inp), run(model, inp))  # fixture weights are fp16-exact


def test_load_options_dtype_and_folding(tmp_path):
    path = make_voice_file(tmp_path, "v2", 40000, True, seed=4)
    plain = load_voice(path)
    folded = load_voice(path, remove_weight_norm=True)
    assert not folded.model.has_weight_norm
    inp = make_inputs("v2", 20)
    assert float((run(folded.model, inp) - run(plain.model, inp)).abs().max()) <= 1e-5
    half = load_voice(path, dtype=torch.float16, remove_weight_norm=True)
    assert all(p.dtype == torch.float16 for p in half.model.parameters())


def test_new_style_and_folded_weight_norm_keys(tmp_path):
    model = make_synthesizer("v2", 40000, True, seed=5, posterior=False)
    inp = make_inputs("v2", 20)
    want = run(model, inp)
    # New-style parametrizations: X.parametrizations.weight.original0/1.
    state = {}
    for k, v in model.state_dict().items():
        k = k.replace(".weight_g", ".parametrizations.weight.original0").replace(".weight_v", ".parametrizations.weight.original1")
        state[k] = v
    save_voice(tmp_path / "p.pth", state, config=model.config, version="v2", f0=True)
    assert torch.equal(run(load_voice(tmp_path / "p.pth").model, inp), want)
    # Parametrization keys straight inside a file also load.
    cpt = raw(tmp_path / "p.pth")
    cpt["weight"] = {("module." + k): v for k, v in state.items()}
    torch.save(cpt, tmp_path / "q.pth")
    assert torch.equal(run(load_voice(tmp_path / "q.pth").model, inp), want)
    # Folded weights (after remove_weight_norm) are split back into weight_g/weight_v.
    model.remove_weight_norm()
    save_voice(tmp_path / "f.pth", model, config=model.config, version="v2", f0=True)
    assert "dec.ups.1.weight_g" in raw(tmp_path / "f.pth")["weight"]
    got = run(load_voice(tmp_path / "f.pth").model, inp)
    assert float((got - want).abs().max()) < 2e-2  # only fp16 rounding of the folded weights


def test_missing_version_and_f0_fields(tmp_path):
    path = make_voice_file(tmp_path, "v1", 40000, False)
    cpt = raw(path)
    del cpt["version"], cpt["f0"]
    torch.save(cpt, path)
    voice = load_voice(path)
    assert voice.version == "v1" and voice.f0 is False


# --------------------------------------------------------------------------- pretrained base G*.pth


@pytest.mark.parametrize(
    "version,sr,f0", [("v1", 32000, False), ("v1", 48000, False), ("v1", 48000, True), ("v2", 40000, True), ("v2", 48000, False)]
)
def test_base_file_infers_config(tmp_path, version, sr, f0):
    path = make_base_file(tmp_path, version, sr, f0, seed=6, half=(sr == 48000))
    voice = load_voice(path)
    assert (voice.version, voice.sr, voice.f0) == (version, sr, f0)
    assert voice.config == tiny_config(version, sr)
    assert voice.model.has_posterior and "enc_q.pre.weight" in voice.model.state_dict()
    assert run(voice.model, make_inputs(version, 12, f0=f0)).shape == (1, 1, 12 * sr // 100)


def test_full_size_base_config_is_official(tmp_path):
    cfg = official_config("v2", 48000)
    model = Synthesizer(cfg, version="v2", f0=True)
    torch.save({"model": model.state_dict()}, tmp_path / "f0G48k.pth")
    voice = load_voice(tmp_path / "f0G48k.pth")
    assert voice.config == cfg


def test_ambiguous_base_without_posterior(tmp_path):
    # v1 32k and v1 48k decoders only differ in upsample rates, which leave no trace
    # in a no-f0 model's shapes: the posterior's spectrogram size decides, so without it…
    path = make_base_file(tmp_path, "v1", 32000, False, with_enc_q=False)
    voice_error(path, "fits several")
    cpt = raw(path)
    cpt["sr"] = "32k"  # …an explicit sr settles it
    torch.save(cpt, path)
    assert load_voice(path).sr == 32000


# --------------------------------------------------------------------------- bad input


def test_truncated_empty_missing(tmp_path):
    path = make_voice_file(tmp_path)
    data = path.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    voice_error(tmp_path / "cut.pth", "truncated or corrupt")
    (tmp_path / "empty.pth").write_bytes(b"")
    voice_error(tmp_path / "empty.pth", "empty")
    voice_error(tmp_path / "nope.pth", "not found")


def test_wrong_missing_extra_keys(tmp_path):
    path = make_voice_file(tmp_path, "v2", 40000, True)
    good = raw(path)

    def variant(name, **edit):
        cpt = {**good, "weight": dict(good["weight"])}
        for k in edit.get("drop", []):
            del cpt["weight"][k]
        cpt["weight"].update(edit.get("add", {}))
        cpt.update(edit.get("top", {}))
        torch.save(cpt, tmp_path / name)
        return tmp_path / name

    msg = voice_error(variant("a.pth", drop=["dec.conv_post.weight", "flow.flows.2.post.bias"]), "missing")
    assert "dec.conv_post.weight" in msg and "flow.flows.2.post.bias" in msg
    voice_error(variant("b.pth", add={"dec.extra.weight": torch.zeros(2)}), "unexpected dec.extra.weight")
    voice_error(variant("c.pth", add={"enc_p.proj.bias": torch.zeros(3)}), "wrong shape enc_p.proj.bias")
    voice_error(variant("d.pth", top={"config": good["config"][:17]}), "bad synthesizer config")
    voice_error(variant("e.pth", top={"version": "v1"}), "says v1")
    voice_error(variant("f.pth", top={"f0": 0}), "f0=0")
    voice_error(variant("g.pth", top={"weight": {"a": 1}}), "no tensors")
    # A config that disagrees with the weights (v1 48k decoder list on 40k weights).
    voice_error(variant("h.pth", top={"config": tiny_config("v2", 48000).to_list()}), "do not fit")


def test_nan_weights_are_refused(tmp_path):
    path = make_voice_file(tmp_path)
    cpt = raw(path)
    cpt["weight"]["dec.conv_pre.weight"][0, 0, 0] = float("nan")
    torch.save(cpt, path)
    voice_error(path, "NaN/Inf")


@pytest.mark.parametrize(
    "content,match",
    [
        ({"unet.encoder.bn.weight": torch.ones(1), "cnn.weight": torch.ones(1), "fc.0.bias": torch.ones(1)}, "RMVPE"),
        ({"cfg": {"task": {}}, "model": {"feature_extractor.conv_layers.0.0.weight": torch.ones(1)}}, "HuBERT"),
        ({"encoder.layers.0.attention.k_proj.weight": torch.ones(1)}, "HuBERT"),
        ({"model": {"discriminators.0.convs.0.weight_g": torch.ones(1)}, "iteration": 1}, "discriminator"),
        ({"dec.ups.0.lora_A": torch.ones(1)}, "adapter"),
        ({"foo": 1, "bar": "x"}, "keys foo, bar"),
        ([1, 2, 3], "a list"),
        (torch.zeros(3), "a Tensor"),
    ],
    ids=["rmvpe", "hubert-fairseq", "hubert-hf", "discriminator", "adapter", "dict", "list", "tensor"],
)
def test_not_a_voice(tmp_path, content, match):
    path = tmp_path / "x.pth"
    torch.save(content, path)
    voice_error(path, match)


def test_save_voice_refuses_mismatched_weights(tmp_path):
    model = make_synthesizer("v2", 40000, True, posterior=False)
    with pytest.raises(VoiceFileError, match="missing enc_p.emb_pitch.weight"):
        save_voice(tmp_path / "x.pth", {k: v for k, v in model.state_dict().items() if "emb_pitch" not in k},
                   config=model.config, version="v2", f0=True)
    with pytest.raises(VoiceFileError, match="unexpected enc_p.emb_pitch.weight"):
        save_voice(tmp_path / "x.pth", model, config=model.config, version="v2", f0=False)
    assert not (tmp_path / "x.pth").exists()
