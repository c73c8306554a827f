"""The whole-chain ONNX live path: `rvclora export --live` writes the set, the engine's block
converter runs it in ONNX Runtime, and each block matches the torch path (pitch on, formant
on and off); a set with a missing or foreign file is refused; the int8 content encoder stays
close to fp32 on real speech."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from rvclora.cli.main import export_main
from rvclora.errors import UsageError
from rvclora.export.live_manifest import LiveSetError, read_live_set
from rvclora.realtime.block_converter import load_rvc_source
from rvclora.realtime.settings import EngineSettings
from rvclora.synth.content_encoder import load_content_encoder
from rvclora.synth.onnx_stages import OnnxContentEncoder, OnnxRMVPE
from rvclora.synth.pitch import RMVPEPitch
from rvclora.synth.rmvpe import load_pitch_model
from rvclora.synth.rmvpe_net import RMVPE, RMVPEConfig
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.rvc_fixtures import make_voice_file

REL_TOL = 1e-3


def _tiny_rmvpe(path):
    """Official RMVPE layout, narrower; BatchNorm statistics that are not the identity."""
    torch.manual_seed(0)
    net = RMVPE(RMVPEConfig(base_channels=2, n_blocks=1, inter_layers=1)).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("live")
    f = {
        "dir": d,
        "voice": make_voice_file(d, version="v1", sr=40000, f0=True, seed=2),
        "hubert": write_hubert_file(d / "hubert_v1.pt", tiny_hubert_config("v1")),
        "rmvpe": _tiny_rmvpe(d / "rmvpe.pt"),
        "set": d / "voice_live",
    }
    rc = export_main(["--live", "--model", str(f["voice"]), "--hubert", str(f["hubert"]), "--rmvpe", str(f["rmvpe"]),
                      "--int8", "--no-verify", "--out", str(f["set"])])
    assert rc == 0
    return f


class _NoDecoderNoise:
    """The ORT synthesizer with its NSF source's random draws off (the torch side gets zero draws)."""

    def __init__(self, synth):
        self._synth = synth

    def __getattr__(self, name):
        return getattr(self._synth, name)

    def infer(self, *args, **kwargs):
        return self._synth.infer(*args, **kwargs, dec_noise=0.0)


@pytest.fixture
def zero_draws(monkeypatch):
    monkeypatch.setattr(torch, "randn_like", lambda x, *a, **k: torch.zeros_like(x))
    monkeypatch.setattr(torch, "rand", lambda *s, **k: torch.zeros(*s, **{a: b for a, b in k.items() if a in ("device", "dtype")}))


def _speech_blocks(speech, block, n):
    audio, sr = speech
    assert sr == 16000
    audio = audio[: block * n]
    return [audio[i * block : (i + 1) * block] for i in range(n)]


def test_live_set_files_and_manifest(files):
    live = read_live_set(files["set"])
    assert set(live.files) == {"synth", "content", "content_int8", "pitch"}
    m = live.manifest
    assert m["opset"] == 17 and m["version"] == "v1" and m["sr"] == 40000 and m["f0"] is True
    assert len(m["sources"]["voice"]) == 64 and m["sources"]["rmvpe"] and m["base_fingerprint"]
    synth_inputs = {i.name for i in onnx.load(str(live.files["synth"]), load_external_data=False).graph.input}
    assert {"skip_head", "return_length", "return_length2"} <= synth_inputs
    # int8: the linear layers really are quantised, the file is smaller
    ops = {n.op_type for n in onnx.load(str(live.files["content_int8"])).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    assert live.files["content_int8"].stat().st_size < live.files["content"].stat().st_size


def test_onnx_live_path_matches_torch_per_block(files, speech, zero_draws):
    """Same blocks through both converters, the settings changed live: plain, pitch + formant up,
    formant down. Random draws are zero on both sides (noise_scale 0, the NSF source's draws off)."""
    settings = EngineSettings(f0_method="rmvpe", noise_scale=0.0, context_ms=400)
    torch_source = load_rvc_source(files["voice"], hubert=files["hubert"], rmvpe=files["rmvpe"])
    torch_source._estimators["rmvpe"] = RMVPEPitch(load_pitch_model(files["rmvpe"]))  # the reduced test layout
    onnx_source = load_rvc_source(files["set"])
    assert onnx_source.backend == "onnx" and onnx_source.resolve_f0_method("auto") == "rmvpe"
    onnx_source.synth = _NoDecoderNoise(onnx_source.synth)
    a, b = torch_source.make_converter(settings), onnx_source.make_converter(settings)
    blocks = _speech_blocks(speech, a.shape.block, 12)
    for i, (formant, pitch) in enumerate([(0.0, 0.0), (2.5, 4.0), (-3.0, 0.0)]):
        step = settings.replace(formant=formant, pitch=pitch)
        onnx_source.check_settings(step)  # formant is no longer refused on the ONNX path
        worst, loud = 0.0, 0.0
        for block in blocks[4 * i : 4 * i + 4]:
            want, got = a.convert(block, step), b.convert(block, step)
            assert got.shape == want.shape == (a.shape.return_length * 400,)
            peak = float(np.abs(want).max())
            loud = max(loud, peak)
            worst = max(worst, float(np.abs(got - want).max()) / max(peak, 1e-4))
        assert loud > 1e-3  # the blocks carry audio, so the ratio means something
        assert worst <= REL_TOL, (formant, pitch, worst)
    assert b._cache.voiced(b.shape.frames).any()  # the pitch path is really on


def test_onnx_stages_match_torch_on_speech(files, speech):
    """Each stage on its own: ORT content encoder and RMVPE against the torch modules."""
    live = read_live_set(files["set"])
    wav = torch.from_numpy(speech[0][:16000]).unsqueeze(0)
    enc = load_content_encoder(files["hubert"], version="v1")
    with torch.no_grad():
        want = enc(wav)
    got = OnnxContentEncoder(live.files["content"], device="cpu")(wav)
    assert got.shape == want.shape and float((got - want).abs().max()) <= 1e-4 * float(want.abs().max())
    f0_want = load_pitch_model(files["rmvpe"]).infer_from_audio(speech[0][:16000])
    f0_got = OnnxRMVPE(live.files["pitch"], device="cpu").infer_from_audio(speech[0][:16000])
    np.testing.assert_allclose(f0_got, f0_want, rtol=1e-4)


def test_int8_content_features_stay_close_on_speech(files, speech):
    live = read_live_set(files["set"])
    wav = torch.from_numpy(speech[0]).unsqueeze(0)
    fp32 = OnnxContentEncoder(live.files["content"], device="cpu")(wav)[0]
    int8 = OnnxContentEncoder(live.files["content_int8"], device="cpu")(wav)[0]
    # Random weights give frames close to their mean (plain cosine ≈ 1 whatever int8 does), so
    # compare what varies with the input: both centred on the fp32 frames' mean.
    mean = fp32.mean(0, keepdim=True)
    cos = torch.nn.functional.cosine_similarity(fp32 - mean, int8 - mean, dim=-1)
    assert float(cos.mean()) >= 0.95 and float(cos.min()) >= 0.85, (float(cos.mean()), float(cos.min()))
    assert float((fp32 - int8).abs().max()) > 0  # it is a different model, not the fp32 file again
    source = load_rvc_source(files["set"], backend="onnx-int8")
    assert source.encoder.precision == "int8"


def test_refuses_a_missing_or_foreign_file(files, tmp_path):
    broken = tmp_path / "set"
    shutil.copytree(files["set"], broken)
    (broken / "pitch.onnx").unlink()
    with pytest.raises(LiveSetError, match="pitch.onnx: missing from the live set"):
        load_rvc_source(broken)
    shutil.copy(files["set"] / "pitch.onnx", broken / "pitch.onnx")
    shutil.copy(files["set"] / "content.onnx", broken / "synth.onnx")  # another file under the synth's name
    with pytest.raises(LiveSetError, match="synth.onnx: not the file exported with voice"):
        load_rvc_source(broken)
    shutil.copy(files["set"] / "synth.onnx", broken / "synth.onnx")
    manifest = json.loads((broken / "live.json").read_text())
    manifest["base_fingerprint"] = "0" * 16  # the manifest of another voice around this synthesizer
    (broken / "live.json").write_text(json.dumps(manifest))
    with pytest.raises(LiveSetError, match="belongs to another voice"):
        load_rvc_source(broken)
    # a set exported without --int8 cannot run the int8 encoder
    del manifest["files"]["content_int8"]
    manifest["base_fingerprint"] = read_live_set(files["set"]).manifest["base_fingerprint"]
    (broken / "live.json").write_text(json.dumps(manifest))
    (broken / "content_int8.onnx").unlink()
    assert load_rvc_source(broken).backend == "onnx"
    with pytest.raises(UsageError, match="no int8 content encoder; re-export it with --int8"):
        load_rvc_source(broken, backend="onnx-int8")


def test_export_live_refuses_in_one_line(files, tmp_path, capsys):
    rc = export_main(["--live", "--model", str(files["voice"]), "--hubert", str(files["hubert"]), "--out", str(files["set"])])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "\n" not in err and "not empty" in err, err
    rc = export_main(["--live", "--model", str(files["voice"]), "--rmvpe", str(tmp_path / "no.pt"),
                      "--hubert", str(files["hubert"]), "--out", str(tmp_path / "new")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "\n" not in err and "rmvpe.pt not found" in err, err
    assert not (tmp_path / "new").exists()
