"""Applio-made voices: the content encoder they name is the one used, foreign vocoders are refused
at import, and old RVC WebUI files with missing or odd fields still load."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from rvclora.cli.main import main
from rvclora.errors import MissingAssetError
from rvclora.synth.content_encoder import load_content_encoder
from rvclora.synth.home import Home
from rvclora.synth.hubert import Hubert
from rvclora.synth.voice_file import VoiceFileError, load_voice, voice_checkpoint
from rvclora.synth.voice_library import VoiceLibrary
from rvclora.synth.voice_meta import KNOWN_EMBEDDERS, content_encoder_path
from rvclora.tests.hubert_fixtures import TINY_CONV, tiny_hubert_config, write_hubert_file
from rvclora.tests.rvc_fixtures import make_synthesizer

# native parameter name -> transformers HubertModel name (the Hugging Face folder Applio ships)
_TO_HF = (
    (r"feature_extractor\.conv_layers\.(\d+)\.norm_(weight|bias)", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"feature_layer_norm\.(.*)", r"feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(.*)", r"feature_projection.projection.\1"),
    (r"pos_conv\.conv\.(.*)", r"encoder.pos_conv_embed.conv.\1"),
    (r"encoder_layer_norm\.(.*)", r"encoder.layer_norm.\1"),
    (r"layers\.(\d+)\.self_attn\.(.*)", r"encoder.layers.\1.attention.\2"),
    (r"layers\.(\d+)\.self_attn_layer_norm\.(.*)", r"encoder.layers.\1.layer_norm.\2"),
    (r"layers\.(\d+)\.fc1\.(.*)", r"encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"layers\.(\d+)\.fc2\.(.*)", r"encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"layers\.(\d+)\.final_layer_norm\.(.*)", r"encoder.layers.\1.final_layer_norm.\2"),
)


def write_hf_encoder(folder: Path, seed: int) -> Path:
    """A tiny HuBERT-base-shaped encoder as a Hugging Face folder (config.json + model.safetensors)."""
    cfg = tiny_hubert_config("v2")
    torch.manual_seed(seed)
    model = Hubert(cfg)
    state = {}
    with torch.no_grad():
        for name, p in model.state_dict().items():
            value = torch.randn(p.shape) * (p[0].numel() ** -0.5 if p.dim() >= 2 else 0.05) + (1.0 if "norm" in name and name.endswith("weight") else 0.0)
            for pattern, repl in _TO_HF:
                if re.fullmatch(pattern, name):
                    name = re.sub(pattern, repl, name)
                    break
            state[name] = value.contiguous()
    folder.mkdir(parents=True)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "model_type": "hubert", "hidden_size": cfg.embed_dim, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "intermediate_size": cfg.ffn_dim,
        "num_conv_pos_embeddings": cfg.pos_conv_kernel, "num_conv_pos_embedding_groups": cfg.pos_conv_groups,
        "conv_dim": [c for c, _, _ in TINY_CONV], "conv_kernel": [k for _, k, _ in TINY_CONV],
        "conv_stride": [s for _, _, s in TINY_CONV], "conv_bias": cfg.conv_bias, "feat_extract_norm": "group",
    }))
    return folder


def applio_voice(path: Path, *, embedder: str | None, vocoder: str | None = "HiFi-GAN", seed: int = 0, version: str = "v2") -> Path:
    """A voice as Applio's extract_model writes it: RVC's dict plus its own fields (f0 a bool, sr an int)."""
    model = make_synthesizer(version, 40000, True, seed, posterior=False)
    ckpt = voice_checkpoint(model, config=model.config, version=version, f0=True, info="300epoch")
    ckpt.update({"epoch": 300, "step": 9000, "sr": 40000, "f0": True, "creation_date": "2025-01-01T00:00:00",
                 "model_hash": "0" * 64, "overtrain_info": "None", "dataset_length": None, "model_name": path.stem,
                 "author": "someone", "speakers_id": 1})
    if embedder is not None:
        ckpt["embedder_model"] = embedder
    if vocoder is not None:
        ckpt["vocoder"] = vocoder
    torch.save(ckpt, path)
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))
    return Home(tmp_path / "home")


@pytest.mark.parametrize("embedder", [*KNOWN_EMBEDDERS, "chinese-hubert-large", "custom"])
def test_each_embedder_is_found_in_home_or_refused_in_one_line(tmp_path, home, embedder):
    voice = load_voice(applio_voice(tmp_path / f"{embedder}.pth", embedder=embedder))
    assert voice.meta.embedder == embedder and voice.meta.vocoder == "HiFi-GAN" and voice.meta.epoch == 300
    folder = home.assets / "embedders" / embedder
    if embedder == "contentvec":  # RVC's own encoder: hubert_base.pt as always
        assert content_encoder_path(home, embedder) == home.hubert
        write_hf_encoder(folder, seed=1)  # without hubert_base.pt, Applio's folder serves
        assert content_encoder_path(home, embedder) == folder
        return
    with pytest.raises(MissingAssetError) as exc:
        content_encoder_path(home, voice.meta.embedder)
    message = str(exc.value)
    assert "\n" not in message and embedder in message and "--hubert" in message
    if embedder == "custom":
        return
    assert str(folder) in message
    write_hf_encoder(folder, seed=1)
    assert content_encoder_path(home, voice.meta.embedder) == folder
    assert load_content_encoder(folder, version="v2").out_dim == 768


def test_a_path_in_the_embedder_field_is_refused(tmp_path, home):
    voice = load_voice(applio_voice(tmp_path / "evil.pth", embedder="../../../etc"))
    with pytest.raises(ValueError, match="not a plain name"):
        content_encoder_path(home, voice.meta.embedder)


@pytest.mark.parametrize("vocoder", ["RefineGAN", "MRF HiFi-GAN", "BigVGAN"])
def test_a_foreign_vocoder_is_refused_by_name_at_import(tmp_path, home, vocoder):
    path = applio_voice(tmp_path / "v.pth", embedder="contentvec", vocoder=vocoder)
    with pytest.raises(VoiceFileError) as exc:
        load_voice(path)
    assert vocoder in str(exc.value) and "\n" not in str(exc.value)
    library = VoiceLibrary(home)
    with pytest.raises(VoiceFileError, match=re.escape(vocoder)):
        library.create(path)
    assert library.list() == [] and not any(home.voices.glob("*")) if home.voices.exists() else True


def test_the_same_voice_without_the_fields_behaves_as_today(tmp_path, home):
    plain = load_voice(applio_voice(tmp_path / "plain.pth", embedder=None, vocoder=None))
    applio = load_voice(applio_voice(tmp_path / "applio.pth", embedder="contentvec", vocoder="HiFi-GAN"))
    assert plain.meta.embedder is None and plain.meta.vocoder is None
    assert content_encoder_path(home, plain.meta.embedder) == home.hubert
    for a, b in zip(plain.model.state_dict().values(), applio.model.state_dict().values()):
        assert torch.equal(a, b)


def test_old_webui_files_load_with_rvc_defaults(tmp_path):
    model = make_synthesizer("v1", 40000, True, 0, posterior=False)
    ckpt = voice_checkpoint(model, config=model.config, version="v1", f0=True)
    del ckpt["f0"], ckpt["version"]  # RVC WebUI before v2: no version (= v1), f0 missing (= 1)
    ckpt["sr"] = 40000  # an int where newer files write "40k"
    torch.save(ckpt, tmp_path / "old.pth")
    voice = load_voice(tmp_path / "old.pth")
    assert (voice.version, voice.f0, voice.sr) == ("v1", True, 40000)
    assert voice.meta.embedder is None


def _short_speech(path: Path, speech) -> Path:
    audio, sr = speech
    sf.write(path, audio[: sr], sr)
    return path


def test_convert_and_live_use_the_encoder_the_voice_names(tmp_path, home, speech, capsys):
    from rvclora.realtime.block_converter import load_rvc_source

    spin = write_hf_encoder(home.assets / "embedders" / "spin", seed=7)
    write_hubert_file(home.hubert, tiny_hubert_config("v2"), seed=3)  # the ContentVec default, different weights
    voice = applio_voice(tmp_path / "SpinVoice.pth", embedder="spin")
    src = _short_speech(tmp_path / "in.wav", speech)

    def convert(out: str, *extra) -> np.ndarray:
        args = ["convert", str(src), str(tmp_path / out), "--model", str(voice), "--f0-method", "pm", "--seed", "1", *extra]
        assert main(args) == 0, capsys.readouterr().err
        return sf.read(tmp_path / out)[0]

    auto = convert("auto.wav")
    np.testing.assert_array_equal(auto, convert("spin.wav", "--hubert", str(spin)))
    assert not np.allclose(auto, convert("contentvec.wav", "--hubert", str(home.hubert)), atol=1e-3)

    source = load_rvc_source(voice, device="cpu", precision="fp32")
    expected = load_content_encoder(spin, version="v2")
    for a, b in zip(source.encoder.state_dict().values(), expected.state_dict().values()):
        assert torch.equal(a, b)

    # info says which encoder; without the folder, convert refuses in one line naming it and where it goes
    capsys.readouterr()
    assert main(["info", str(voice)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["embedder"] == "spin" and info["vocoder"] == "HiFi-GAN"
    for f in spin.iterdir():
        f.unlink()
    spin.rmdir()
    assert main(["convert", str(src), str(tmp_path / "x.wav"), "--model", str(voice), "--f0-method", "pm"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'spin'" in err and str(spin) in err
