"""rvclora-export: ONNX exports of every model class (with and without adapters), the
merged official .pth (checked in rvclora and in the RVC reference package), the
content encoder and RMVPE, and bad input.

References are built here, independently of the exporter: the voice file loaded
again with the adapters applied *unmerged* (live LoRA), run by PyTorch; the NSF
source's Gaussian noise is switched off on both sides (graph input dec_noise = 0,
torch.randn_like patched to zeros here) so outputs are deterministic.
"""
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import pytest
import torch

from rvclora.cli.main import export_main as main
from rvclora.export.backend import make_session
from rvclora.export.onnx_export import export_onnx
from rvclora.lora import apply_adapters, load_adapter, model_fingerprint
from rvclora.synth.configs import content_dim
from rvclora.synth.voice_file import load_voice
from rvclora.tests.rvc_fixtures import coarse_pitch, make_adapter_file, make_voice_file

TOL = 1e-4
CLASSES = [("v2", True), ("v2", False), ("v1", True), ("v1", False)]


# --------------------------------------------------------------------------- helpers


def live_model(voice_path, adapters=()):
    voice = load_voice(voice_path)
    if adapters:
        apply_adapters(voice.model, [(load_adapter(p), w) for p, w in adapters])
    return voice.model.eval()


def contract_inputs(version, f0, frames, inter, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float32)
    pitchf = (180 + 60 * torch.cos(t / 5))[None]
    pitchf[:, (t.long() % 13) < 4] = 0.0
    x = {
        "phone": torch.randn(1, frames, content_dim(version), generator=g),
        "phone_lengths": torch.tensor([frames]),
        "ds": torch.tensor([1]),
        "rnd": torch.randn(1, inter, frames, generator=g) * 0.66666,
    }
    if f0:
        x["pitch"], x["pitchf"] = coarse_pitch(pitchf), pitchf
    return x


@pytest.fixture
def no_source_noise(monkeypatch):
    """torch side: the NSF source's noise draw becomes zeros (the graph gets dec_noise = 0)."""
    monkeypatch.setattr(torch, "randn_like", lambda t, *a, **k: torch.zeros_like(t))


def torch_ref(model, x, skip_head=None, return_length=None):
    with torch.no_grad():
        return model.infer(
            x["phone"], x["phone_lengths"], x.get("pitch"), x.get("pitchf"), x["ds"], noise=x["rnd"], noise_scale=1.0,
            skip_head=skip_head, return_length=return_length,
        ).numpy()


def ort_run(session, x, **extra):
    names = {i.name for i in session.get_inputs()} | {i.name for i in session.get_overridable_initializers()}
    feed = {k: v.numpy() for k, v in x.items()}
    feed.update({k: np.asarray(v) for k, v in extra.items() if k in names})  # no-f0 graphs have no dec_noise
    return session.run(None, feed)[0]


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, *words):
    assert rc != 0
    assert err.strip() and "\n" not in err.strip() and "Traceback" not in err, err
    for w in words:
        assert w in err, err


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """For each class: a voice file and an adapter trained on it."""
    d = tmp_path_factory.mktemp("voices")
    out = {}
    for version, f0 in CLASSES:
        path = make_voice_file(d, version=version, f0=f0, seed=1)
        out[version, f0] = (path, make_adapter_file(path, d / f"{version}_{int(f0)}.safetensors", seed=2))
    return out


@pytest.fixture(scope="module")
def exported(voices, tmp_path_factory):
    """Every synthesizer export the tests below inspect, two at a time (each export is its
    own process, single-threaded: the two CPU cores work in parallel)."""
    d = tmp_path_factory.mktemp("onnx")
    jobs = {}
    for (version, f0), (voice_path, adapter) in voices.items():
        for with_adapter in (False, True):
            adapters = [(adapter, 0.7)] if with_adapter else []
            jobs[version, f0, with_adapter] = dict(model=voice_path, out=d / f"{version}_{int(f0)}_{int(with_adapter)}.onnx",
                                                   adapters=adapters)
    voice_path, adapter = voices["v2", True]
    jobs["streaming"] = dict(model=voice_path, out=d / "stream.onnx", adapters=[(adapter, 1.0)], streaming=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {key: pool.submit(export_onnx, job.pop("model"), job.pop("out"), **job) for key, job in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


# --------------------------------------------------------------------------- ONNX synthesizer


@pytest.mark.parametrize("with_adapter", [False, True], ids=["base", "adapter"])
@pytest.mark.parametrize("version,f0", CLASSES, ids=[f"{v}-{'f0' if f else 'nof0'}" for v, f in CLASSES])
def test_onnx_export_matches_torch_at_two_lengths(voices, exported, no_source_noise, version, f0, with_adapter):
    voice_path, adapter = voices[version, f0]
    adapters = [(adapter, 0.7)] if with_adapter else []
    result = exported[version, f0, with_adapter]
    out = result.path
    # the exporter's own check: two lengths, within tolerance
    assert len(result.lengths) == 2 and result.max_abs_diff <= TOL

    proto = onnx.load(str(out))
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(proto.graph.input) + list(proto.graph.output)}
    dim = content_dim(version)
    inter = load_voice(voice_path).config.inter_channels
    want = {"phone": [1, "T", dim], "phone_lengths": [1], "ds": [1], "rnd": [1, inter, "T"]}
    if f0:
        want |= {"pitch": [1, "T"], "pitchf": [1, "T"]}
    for name, shape in want.items():
        assert shapes[name] == shape, (name, shapes[name])
    assert isinstance(shapes["audio"][2], str)  # symbolic output length

    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["sr"] == "40000" and meta["version"] == version and meta["f0"] == str(int(f0))
    assert meta["embedder"] == "hubert_base" and meta["embedding_dim"] == str(dim)
    assert meta["base_fingerprint"] == model_fingerprint(load_voice(voice_path).model)
    assert meta["rvclora_version"]
    listed = json.loads(meta["adapters"])
    assert [(a["file"], a["weight"]) for a in listed] == [(p.name, w) for p, w in adapters]

    session, providers = make_session(out, device="cpu")
    assert providers == ["CPUExecutionProvider"]
    assert [i.name for i in session.get_inputs()] == [n for n in ("phone", "phone_lengths", "pitch", "pitchf", "ds", "rnd") if n in want]
    ref = live_model(voice_path, adapters)
    hop = ref.config.hop
    for frames in (29, 83):  # neither is the export's example length: T is really dynamic
        x = contract_inputs(version, f0, frames, inter, seed=frames)
        got = ort_run(session, x, dec_noise=np.zeros(1, np.float32))
        expect = torch_ref(ref, x)
        assert got.shape == (1, 1, frames * hop)
        assert np.abs(got - expect).max() <= TOL


def test_onnx_keeps_rvc_decoder_noise_by_default(voices, exported, no_source_noise):
    """Without dec_noise the graph draws fresh source noise each run, as RVC's export does;
    only six inputs are required, so tools that know RVC's contract run it unchanged."""
    voice_path, _ = voices["v2", True]
    session, _ = make_session(exported["v2", True, False].path, device="cpu")
    x = contract_inputs("v2", True, 40, 8, seed=3)
    a, b = ort_run(session, x), ort_run(session, x)
    quiet = ort_run(session, x, dec_noise=np.zeros(1, np.float32))
    assert np.abs(a - b).max() > 1e-3  # random source noise
    assert np.abs(a - quiet).max() > 1e-3
    assert np.abs(quiet - torch_ref(live_model(voice_path), x)).max() <= TOL


def test_streaming_graph_takes_skip_head_and_return_length(voices, exported, no_source_noise):
    voice_path, adapter = voices["v2", True]
    result = exported["streaming"]
    assert result.metadata["streaming"] == "1" and result.max_abs_diff <= TOL
    session, _ = make_session(result.path, device="cpu")
    assert [i.name for i in session.get_inputs()][-2:] == ["skip_head", "return_length"]
    ref = live_model(voice_path, [(adapter, 1.0)])
    for frames, head, length in ((90, 50, 30), (44, 10, 34), (60, 0, 60)):
        x = contract_inputs("v2", True, frames, 8, seed=frames)
        got = ort_run(session, x, skip_head=np.array([head]), return_length=np.array([length]),
                      dec_noise=np.zeros(1, np.float32))
        expect = torch_ref(ref, x, skip_head=head, return_length=length)
        assert got.shape == (1, 1, length * ref.config.hop)
        assert np.abs(got - expect).max() <= TOL


# --------------------------------------------------------------------------- merged .pth


def reference_rvc(path, version, f0):
    R = pytest.importorskip("rvc.lib.infer_pack.models", reason="the RVC reference package (rvc==0.3.5) is not installed")
    cls = {("v1", True): R.SynthesizerTrnMs256NSFsid, ("v2", True): R.SynthesizerTrnMs768NSFsid,
           ("v1", False): R.SynthesizerTrnMs256NSFsid_nono, ("v2", False): R.SynthesizerTrnMs768NSFsid_nono}[version, f0]
    cpt = torch.load(path, map_location="cpu", weights_only=True)  # as RVC loads a voice (minus pickle)
    net = cls(*cpt["config"], is_half=False)
    del net.enc_q
    net.load_state_dict(cpt["weight"], strict=False)
    return net.float().eval()


@pytest.mark.parametrize("version,f0", [("v2", True), ("v1", False)], ids=["v2-f0", "v1-nof0"])
def test_merged_pth_loads_in_rvclora_and_rvc_with_the_unmerged_output(voices, tmp_path, capsys, version, f0):
    voice_path, adapter = voices[version, f0]
    out = tmp_path / "merged.pth"
    rc, stdout, err = cli(capsys, "--model", voice_path, "--adapter", f"{adapter}:0.8", "--out", out)
    assert rc == 0, err
    assert "loads back" in stdout

    x = contract_inputs(version, f0, 48, 8, seed=11)

    def seeded(fn):
        torch.manual_seed(1234)
        with torch.no_grad():
            return fn()

    args = (x["phone"], x["phone_lengths"]) + ((x["pitch"], x["pitchf"]) if f0 else ()) + (x["ds"],)
    # every model is built before seeding: construction draws random numbers too
    rvc, merged = reference_rvc(out, version, f0), load_voice(out)
    live, base = live_model(voice_path, [(adapter, 0.8)]), live_model(voice_path)
    assert (merged.version, merged.f0, merged.sr) == (version, f0, 40000)
    run = lambda m: m.infer(x["phone"], x["phone_lengths"], x.get("pitch"), x.get("pitchf"), x["ds"])  # noqa: E731
    y_rvc = seeded(lambda: rvc.infer(*args)[0])
    y_ours = seeded(lambda: run(merged.model))
    y_live = seeded(lambda: run(live))
    y_base = seeded(lambda: run(base))
    assert (y_rvc - y_ours).abs().max() <= TOL  # same file, two implementations, same random draws
    # the fp16 file reproduces base + adapter (unmerged, fp32) up to fp16 rounding, and the adapter is in it
    effect = (y_live - y_base).abs().max()
    assert effect > 0.05
    assert (y_rvc - y_live).abs().max() <= 0.02 * effect


# --------------------------------------------------------------------------- content encoder and RMVPE


def test_content_encoder_export(tmp_path, capsys):
    from rvclora.synth.content_encoder import load_content_encoder
    from rvclora.tests.hubert_fixtures import tiny_hubert_config, write_hubert_file

    src = write_hubert_file(tmp_path / "hubert_base.pt", tiny_hubert_config("v1"))
    out = tmp_path / "content.onnx"
    rc, stdout, err = cli(capsys, "--component", "content", "--version", "v1", "--model", src, "--out", out)
    assert rc == 0, err
    session, _ = make_session(out, device="cpu")
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["embedding_dim"] == "256" and meta["embedder_output_layer"] == "9"
    enc = load_content_encoder(src, version="v1")
    for n in (4000, 9920):
        wav = torch.randn(1, n, generator=torch.Generator().manual_seed(n))
        got = session.run(None, {"wav": wav.numpy()})[0]
        with torch.no_grad():
            want = enc(wav).numpy()
        assert got.shape == want.shape == (1, enc.num_frames(n), 256)
        assert np.abs(got - want).max() <= TOL


def test_rmvpe_export(tmp_path, capsys):
    from rvclora.synth.rmvpe import RMVPE, RMVPEConfig

    torch.manual_seed(0)
    net = RMVPE(RMVPEConfig(base_channels=2, n_blocks=1, inter_layers=1)).eval()  # official layout, narrower
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    torch.save(net.state_dict(), tmp_path / "rmvpe.pt")
    out = tmp_path / "rmvpe.onnx"
    rc, _, err = cli(capsys, "--component", "pitch", "--model", tmp_path / "rmvpe.pt", "--out", out)
    assert rc == 0, err
    session, _ = make_session(out, device="cpu")
    for t in (64, 160):
        mel = torch.randn(1, 128, t, generator=torch.Generator().manual_seed(t)) - 3
        got = session.run(None, {"mel": mel.numpy()})[0]
        with torch.no_grad():
            want = net(mel).numpy()
        assert got.shape == (1, t, 360)
        assert np.abs(got - want).max() <= TOL


# --------------------------------------------------------------------------- bad input


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--model", "--adapter", "--out", "--component", "--streaming", "--fp16", "--opset", "--verify",
                "--no-verify", "--overwrite", "--force", "--embedder", "--version"):
        assert opt in text



@pytest.mark.parametrize("suffix", [".onnx", ".pth"])
def test_adapter_for_another_base_is_refused(voices, tmp_path, capsys, suffix):
    v1_voice, _ = voices["v1", True]
    _, v2_adapter = voices["v2", True]
    out = tmp_path / f"x{suffix}"
    rc, _, err = cli(capsys, "--model", v1_voice, "--adapter", v2_adapter, "--out", out)
    assert_one_line_error(rc, err, "made for base v2")
    assert not out.exists() and not list(tmp_path.iterdir())  # no partial file left behind

    # same class, different training: refused unless --force
    other = make_voice_file(tmp_path, version="v2", f0=True, seed=9, name="other.pth")
    rc, _, err = cli(capsys, "--model", other, "--adapter", v2_adapter, "--out", out)
    assert_one_line_error(rc, err, "--force")
    assert not out.exists()
    rc, _, err = cli(capsys, "--model", other, "--adapter", v2_adapter, "--out", out, "--force", "--no-verify")
    assert rc == 0, err
    assert out.exists()


def test_missing_files(voices, tmp_path, capsys):
    voice_path, adapter = voices["v2", True]
    rc, _, err = cli(capsys, "--model", tmp_path / "nope.pth", "--out", tmp_path / "a.onnx")
    assert_one_line_error(rc, err, "nope.pth", "not found")
    rc, _, err = cli(capsys, "--model", voice_path, "--adapter", tmp_path / "gone.safetensors", "--out", tmp_path / "a.pth")
    assert_one_line_error(rc, err, "gone.safetensors", "not found")
    rc, _, err = cli(capsys, "--model", voice_path, "--out", tmp_path / "a.txt")
    assert_one_line_error(rc, err, ".onnx or .pth")
    rc, _, err = cli(capsys, "--model", voice_path, "--out", tmp_path / "a.onnx", "--opset", "23")
    assert_one_line_error(rc, err, "opset 23")
    not_a_voice = tmp_path / "junk.pth"
    not_a_voice.write_bytes(b"not a checkpoint")
    rc, _, err = cli(capsys, "--model", not_a_voice, "--out", tmp_path / "a.onnx")
    assert_one_line_error(rc, err, "junk.pth")
    assert not (tmp_path / "a.onnx").exists() and not (tmp_path / "a.pth").exists()


def test_unwritable_output(voices, tmp_path, capsys):
    voice_path, adapter = voices["v2", True]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, _, err = cli(capsys, "--model", voice_path, "--out", blocker / "v.onnx")
    assert_one_line_error(rc, err, "not a folder")
    rc, _, err = cli(capsys, "--model", voice_path, "--out", tmp_path / "missing" / "v.pth", "--adapter", adapter)
    assert_one_line_error(rc, err, "does not exist")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            rc, _, err = cli(capsys, "--model", voice_path, "--out", locked / "v.onnx")
            assert_one_line_error(rc, err, "not writable")
        finally:
            locked.chmod(0o700)


@pytest.mark.parametrize("suffix", [".onnx", ".pth"])
def test_existing_output_is_kept_unless_overwrite(voices, tmp_path, capsys, suffix):
    voice_path, adapter = voices["v2", False]
    out = tmp_path / f"v{suffix}"
    out.write_bytes(b"keep me")
    args = ["--model", voice_path, "--adapter", adapter, "--out", out]
    rc, _, err = cli(capsys, *args)
    assert_one_line_error(rc, err, "already exists", "--overwrite")
    assert out.read_bytes() == b"keep me"
    rc, stdout, err = cli(capsys, *args, "--overwrite")
    assert rc == 0, err
    assert ("max abs diff" if suffix == ".onnx" else "loads back") in stdout
    assert out.read_bytes() != b"keep me"
    if suffix == ".pth":
        assert load_voice(out).version == "v2"
    else:
        onnx.checker.check_model(str(out))
