"""The ONNX Runtime backend: session factory (providers really in use, CUDA fallback
detected) and OnnxSynthesizer, a drop-in for Synthesizer.infer."""
import inspect
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort
import pytest
import torch

from rvclora.export.onnx_export import export_onnx
from rvclora.synth import onnx_backend as backend
from rvclora.synth.onnx_backend import BackendError, OnnxSynthesizer, make_session
from rvclora.synth.synthesizer import Synthesizer
from rvclora.synth.voice_file import load_voice
from tests.rvc_fixtures import make_inputs, make_voice_file

TOL = 1e-4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A plain and a streaming export of the same f0 voice, and a no-f0 export."""
    d = tmp_path_factory.mktemp("backend")
    f0_voice = make_voice_file(d, version="v2", f0=True, seed=4)
    nof0_voice = make_voice_file(d, version="v1", f0=False, seed=5)
    jobs = {"f0": (f0_voice, {}), "stream": (f0_voice, {"streaming": True}), "nof0": (nof0_voice, {})}
    with ThreadPoolExecutor(max_workers=2) as pool:  # one process per export, two at a time
        futures = {k: pool.submit(export_onnx, v, d / f"{k}.onnx", verify=False, **kw) for k, (v, kw) in jobs.items()}
        return {k: (jobs[k][0], f.result().path) for k, f in futures.items()}


@pytest.fixture
def no_source_noise(monkeypatch):
    monkeypatch.setattr(torch, "randn_like", lambda t, *a, **k: torch.zeros_like(t))


def test_cpu_session_reports_the_providers_in_use(models):
    _, path = models["f0"]
    session, providers = make_session(path, device="cpu")
    assert providers == session.get_providers() == ["CPUExecutionProvider"]
    session, providers = make_session(path, device="auto", threads=1)
    assert providers == session.get_providers()
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if not has_cuda:
        assert providers == ["CPUExecutionProvider"]


def test_cuda_fallback_is_detected_not_hidden(models, monkeypatch):
    """onnxruntime-gpu without a usable GPU lists CUDA as available, then runs on CPU:
    simulated here by claiming CUDA is compiled in; auto reports CPU, cuda refuses."""
    _, path = models["f0"]
    real = ort.get_available_providers()
    if "CUDAExecutionProvider" in real:
        pytest.skip("this onnxruntime really has CUDA")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    session, providers = make_session(path, device="auto")
    assert providers == ["CPUExecutionProvider"] == session.get_providers()
    with pytest.raises(BackendError, match="fell back to CPU"):
        make_session(path, device="cuda")
    monkeypatch.setattr(ort, "get_available_providers", lambda: real)
    with pytest.raises(BackendError, match="no CUDA provider"):
        make_session(path, device="cuda")


def test_bad_session_requests(tmp_path):
    with pytest.raises(BackendError, match="not found"):
        make_session(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not onnx")
    with pytest.raises(BackendError, match="cannot load"):
        make_session(junk)
    with pytest.raises(BackendError, match="unknown device"):
        make_session(junk, device="tpu")


def test_onnx_synthesizer_has_synthesizer_infer_signature():
    ours = inspect.signature(OnnxSynthesizer.infer).parameters
    theirs = inspect.signature(Synthesizer.infer).parameters
    for name, p in theirs.items():
        assert name in ours and ours[name].kind == p.kind and ours[name].default == p.default, name


@pytest.mark.parametrize("key", ["f0", "nof0"])
def test_onnx_synthesizer_matches_torch_synthesizer(models, no_source_noise, key):
    voice_path, path = models[key]
    voice = load_voice(voice_path)
    onnx_synth = OnnxSynthesizer(path, device="cpu")
    assert (onnx_synth.sr, onnx_synth.version, onnx_synth.f0) == (voice.sr, voice.version, voice.f0)
    assert onnx_synth.device == "cpu"
    x = make_inputs(voice.version, 45, f0=voice.f0, batch=2, seed=3)
    noise = torch.randn(2, voice.config.inter_channels, 45, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        want = voice.model.infer(**x, noise=noise)
    got = onnx_synth.infer(**x, noise=noise, dec_noise=0.0)
    assert got.shape == want.shape == (2, 1, 45 * voice.config.hop)
    assert (got - want).abs().max() <= TOL
    # streaming arguments need a streaming export
    with pytest.raises(BackendError, match="--streaming"):
        onnx_synth.infer(**x, noise=noise, skip_head=10, return_length=20)


def test_streaming_onnx_synthesizer(models, no_source_noise):
    voice_path, path = models["stream"]
    voice = load_voice(voice_path)
    onnx_synth = OnnxSynthesizer(path, device="cpu")
    assert onnx_synth.streaming
    x = make_inputs("v2", 80, f0=True, seed=6)
    noise = torch.randn(1, voice.config.inter_channels, 80, generator=torch.Generator().manual_seed(9))
    for head, length in ((40, 30), (0, 80)):
        with torch.no_grad():
            want = voice.model.infer(**x, noise=noise, skip_head=head, return_length=length)
        got = onnx_synth.infer(**x, noise=noise, skip_head=head, return_length=length, dec_noise=0.0)
        assert got.shape == want.shape == (1, 1, length * voice.config.hop)
        assert (got - want).abs().max() <= TOL


def test_default_noise_is_random_like_rvc(models):
    _, path = models["f0"]
    onnx_synth = OnnxSynthesizer(path, device="cpu")
    x = make_inputs("v2", 30, f0=True)
    a, b = onnx_synth.infer(**x), onnx_synth.infer(**x)
    assert torch.isfinite(a).all() and (a - b).abs().max() > 1e-3
    assert np.abs(a.numpy()).max() <= 1.0  # tanh output


def test_non_synth_model_is_refused(tmp_path):
    import onnx  # noqa: PLC0415 — optional extra (onnx)
    from onnx import TensorProto, helper  # noqa: PLC0415 — optional extra (onnx)

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    with pytest.raises(BackendError, match="not an rvclora synthesizer"):
        OnnxSynthesizer(path, device="cpu")
    assert {"auto", "cpu", "cuda", "directml", "coreml"} <= set(backend.DEVICES)
