"""Hostile model files: every refused file ends in one line and exit 2, within a small memory
bound, and no payload ever runs. The commands are run as a user runs them (subprocess)."""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import rvclora.synth.voice_file as vf
from rvclora.cli.main import main
from rvclora.errors import ModelFileError
from rvclora.lora import AdapterError, load_adapter
from rvclora.synth.checkpoint import CheckpointError, UnsafeCheckpointError, load_checkpoint
from rvclora.synth.configs import SAMPLE_RATES, VERSIONS, official_config
from rvclora.synth.content_encoder import load_content_encoder
from rvclora.synth.index import FeatureIndex, FeatureIndexError, build_index
from rvclora.synth.rmvpe import load_rmvpe
from rvclora.synth.synthesizer import Synthesizer
from rvclora.synth.voice_file import VoiceFileError, inspect_voice, load_voice
from rvclora.synth.voice_shapes import check_config, expected_shapes
from tests import hostile_files as hf
from tests.rvc_fixtures import (
    make_adapter_file,
    make_base_file,
    make_voice_file,
    tiny_config,
)

MB = 1 << 20
SMALL_CONSTANT = 64 * MB  # allowed RSS growth beyond 1.5 x the file size


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def voice(folder) -> Path:
    return make_voice_file(folder, "v2", 40000, True)


@pytest.fixture(scope="module")
def adapter(folder, voice) -> Path:
    return make_adapter_file(voice, folder / "adapter.safetensors")


@pytest.fixture(scope="module")
def bad_files(folder, voice) -> dict[str, Path]:
    """The issue's cases: each must be refused."""
    marker = hf.marker_path(folder)
    files = {
        "one_byte": hf.write(folder / "one_byte.pth", b"\x80"),
        "one_char": hf.write(folder / "one_char.pth", b"x"),
        "declared_10GB_zip": hf.write(folder / "decl_zip.pth", hf.declared_storage_file(10 * 10**9, legacy=False)),
        "declared_10GB_legacy": hf.write(folder / "decl_legacy.pth", hf.declared_storage_file(10 * 10**9, legacy=True)),
        "zero_strides_zip": hf.write(folder / "zs_zip.pth", hf.zero_stride_file(2 * 10**9, legacy=False)),
        "zero_strides_legacy": hf.write(folder / "zs_legacy.pth", hf.zero_stride_file(2 * 10**9, legacy=True)),
    }
    for name, data in hf.payload_checkpoints(marker).items():
        files[name] = hf.write(folder / f"{name}.pth", data)
    memo_bomb = b"\x80\x02" + b"]\x94" * (3 << 19) + b"."  # 3 MB of new lists, each memoized
    files["memo_bomb_zip"] = hf.write(folder / "memo_zip.pth", hf.torch_zip(None, {}, pickle_bytes=memo_bomb))
    files["memo_bomb_legacy"] = hf.write(folder / "memo_legacy.pth", hf.torch_legacy(None, {}, pickle_bytes=memo_bomb))
    edits = hf.config_edits()
    for name in ("64_layers_8192_wide", "20000_resblocks", "sample_rate_0", "hop_mismatch", "heads_100", "negative_width"):
        files[name] = hf.rewrite_voice(voice, folder / f"{name}.pth", edits[name])
    return files


# --------------------------------------------------------------------------- commands, in a subprocess

# Runs each command's real entry point in one process per command family, per file: exit
# code, stderr, and the RSS high-water mark growth over a warmed-up baseline.
_DRIVER = textwrap.dedent("""
    import contextlib, io, json, resource, sys, traceback
    import torch
    torch.set_num_threads(1)
    from rvclora.cli.main import main as rvclora_main
    from rvclora.cli.main import export_main
    command, warm, adapter, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    def call(path):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                if command == "info":
                    rc = rvclora_main(["info", path])
                else:
                    rc = export_main(["--model", path, "--adapter", adapter, "--out", path + ".merged.pth", "--no-verify"])
            except SystemExit as e:
                rc = e.code
            except BaseException:
                traceback.print_exc()
                rc = "traceback"
        return rc, err.getvalue()
    call(warm)  # imports and first-use costs happen here, outside the measurement
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = {}
    for path in files:
        rc, err = call(path)
        out[path] = {"rc": rc, "stderr": err, "growth": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base}
    print(json.dumps(out))
""")


def run_commands(command: str, warm: Path, adapter: Path, files: list[Path]) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _DRIVER, command, str(warm), str(adapter), *map(str, files)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("command", ["info", "export"])
def test_every_bad_file_is_one_line_exit_2_small_memory_nothing_runs(command, folder, voice, adapter, bad_files):
    marker = hf.marker_path(folder)
    results = run_commands(command, voice, adapter, list(bad_files.values()))
    prog = "rvclora" if command == "info" else "rvclora-export"
    for name, path in bad_files.items():
        r = results[str(path)]
        lines = [ln for ln in r["stderr"].splitlines() if ln.strip()]
        assert r["rc"] == 2, f"{name}: exit {r['rc']}: {r['stderr'][-500:]}"
        assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: ") and "Traceback" not in r["stderr"], (name, lines)
        assert path.name in lines[0], (name, lines[0])
        bound = 1.5 * path.stat().st_size + SMALL_CONSTANT
        assert r["growth"] < bound, f"{name}: memory grew {r['growth'] / MB:.0f} MB (bound {bound / MB:.0f} MB)"
    assert not marker.exists(), "a payload ran"


def test_the_payloads_are_real(tmp_path):
    """Control: unpickled without restrictions, every payload does create its marker."""
    for name, pkl in hf.payload_pickles(hf.marker_path(tmp_path)).items():
        pickle.loads(pkl)
        assert hf.marker_path(tmp_path).exists(), name
        hf.marker_path(tmp_path).unlink()


def test_export_console_script_through_its_onnx_worker(folder, adapter, bad_files):
    """The installed `rvclora-export` script on a reported case, through the ONNX export's worker
    process (the other cases run through `main` in test_every_bad_file_...[export])."""
    exe = Path(sys.executable).with_name("rvclora-export")
    for name, out in (("zip_stack_global_memo", "x.onnx"),):
        proc = subprocess.run([str(exe), "--model", str(bad_files[name]), "--adapter", str(adapter),
                               "--out", str(folder / out)], capture_output=True, text=True, timeout=300)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, (name, proc.stderr[-1000:])
    assert not hf.marker_path(folder).exists()


# --------------------------------------------------------------------------- every loader, in process


@pytest.mark.parametrize("load", [load_checkpoint, load_voice, load_content_encoder, load_rmvpe])
def test_payload_pickles_refused_by_every_loader(load, tmp_path):
    marker = hf.marker_path(tmp_path)
    for name, data in hf.payload_checkpoints(marker).items():
        path = hf.write(tmp_path / f"{name}.pt", data)
        with pytest.raises(ModelFileError) as err:
            load(path)
        assert "\n" not in str(err.value) and "could run code" in str(err.value), (name, str(err.value))
        assert isinstance(err.value, UnsafeCheckpointError) or "refused" in str(err.value)
    assert not marker.exists()


def test_declared_sizes_are_checked_before_allocation(tmp_path):
    # A storage that claims more than its record, and one that lies about the legacy byte count.
    for legacy in (False, True):
        path = hf.write(tmp_path / "d.pth", hf.declared_storage_file(16, legacy=legacy))
        assert load_checkpoint(path)["weight"]["w"].shape == (4,)  # honest: 16 bytes declared and written
        for declared in (20, 10**12):
            path = hf.write(tmp_path / "d.pth", hf.declared_storage_file(declared, legacy=legacy))
            with pytest.raises(CheckpointError, match="storage 0 declares .* but the file holds 16 bytes"):
                load_checkpoint(path)


def test_views_past_or_over_their_storage_are_refused(tmp_path):
    s = hf.StorageSpec("0", 8)
    cases = {
        "zero stride": hf.TensorSpec(s, (10**6,), (0,)),
        "past the end": hf.TensorSpec(s, (4,), (1,), offset=6),
        "overlapping": hf.TensorSpec(s, (8, 8), (1, 1)),
    }
    for why, spec in cases.items():
        path = hf.write(tmp_path / "v.pth", hf.torch_zip({"w": spec}, {"0": b"\0" * 32}))
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        assert "\n" not in str(err.value), why
    ok = hf.write(tmp_path / "ok.pth", hf.torch_zip({"w": hf.TensorSpec(s, (2, 3), (3, 1), offset=2)}, {"0": b"\0" * 32}))
    assert load_checkpoint(ok)["w"].shape == (2, 3)


def test_bytearray_of_a_declared_size_is_refused(tmp_path):
    pkl = b"\x80\x02cbuiltins\nbytearray\n\x8a\x05\x00\xe4\x0bT\x02\x85R."  # bytearray(10**10)
    path = hf.write(tmp_path / "b.pth", hf.torch_zip(None, {}, pickle_bytes=pkl))
    with pytest.raises(CheckpointError, match="bytearray"):
        load_checkpoint(path)


# --------------------------------------------------------------------------- configs and shapes


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("sr", SAMPLE_RATES)
def test_expected_shapes_match_the_model(version, sr):
    """The arithmetic shapes used to check a file before building equal the real model's."""
    for f0 in (True, False):
        for posterior in (True, False):
            for resblock in ("1", "2"):
                c = tiny_config(version, sr)
                if resblock == "2":
                    c = c.replace(resblock="2", resblock_dilation_sizes=((1, 3),) * 3)
                check_config(c)
                check_config(official_config(version, sr))
                model = {k: tuple(v.shape) for k, v in Synthesizer(c, version=version, f0=f0, posterior=posterior).state_dict().items()}
                assert expected_shapes(c, version, f0, posterior) == model


def test_config_edits_refused_with_the_field_named(bad_files):
    for name, field in (("64_layers_8192_wide", "inter_channels is 8192"), ("20000_resblocks", "20000 resblock kernels"),
                        ("sample_rate_0", "sample rate 0 Hz"), ("heads_100", "n_heads is 100"),
                        ("negative_width", "inter_channels is -8")):
        with pytest.raises(VoiceFileError, match=field):
            inspect_voice(bad_files[name])


def test_voices_rvc_never_produces_are_refused(tmp_path, voice):
    edits = {
        "hop 800 at 40k": lambda c: c["config"].__setitem__(12, [10, 10, 4, 2]),
        "16 kHz": lambda c: c["config"].__setitem__(17, 16000),
    }
    for why, edit in edits.items():
        with pytest.raises(VoiceFileError) as err:
            load_voice(hf.rewrite_voice(voice, tmp_path / "x.pth", edit))
        assert "\n" not in str(err.value) and ("hop" in str(err.value) or "16000" in str(err.value)), why
    # A pretrained base carries no config: its shapes decide, and its decoder must fit an official one.
    base = make_base_file(tmp_path, "v2", 48000, True)
    assert load_voice(base).sr == 48000


def test_info_never_builds_the_model(voice, monkeypatch, capsys):

    def refuse(*args, **kwargs):
        raise AssertionError("info built a model")

    monkeypatch.setattr(Synthesizer, "__init__", refuse)
    assert main(["info", str(voice)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sample_rate"] == 40000 and info["version"] == "v2" and info["parameters"] > 1000


def test_a_file_smaller_than_its_model_is_refused_by_the_budget(tmp_path, voice, monkeypatch):
    """Second line: with the config and shape checks passed, a model that needs far more memory
    than its file holds is still refused before it is built."""
    monkeypatch.setattr(vf, "memory_budget", lambda size, factor=1.5: 1000)
    with pytest.raises(VoiceFileError, match="its model would need"):
        load_voice(voice)


# --------------------------------------------------------------------------- adapters and indexes


def _rewrite_adapter(src: Path, dst: Path, change) -> Path:
    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(src))
    change(tensors)
    save_file(tensors, str(dst), metadata=meta)
    return dst


def test_adapter_tensors_must_be_finite_floats_of_the_header_rank(tmp_path, adapter):
    a_key = next(k for k in load_file(str(adapter)) if k.endswith(".lora_A"))
    cases = {
        "int64": lambda t: t.__setitem__(a_key, t[a_key].long()),
        "NaN": lambda t: t[a_key].__setitem__((0, 0), float("nan")),
        "rank": lambda t: t.__setitem__(a_key, torch.zeros(t[a_key].shape[0] + 1, t[a_key].shape[1])),
    }
    for why, change in cases.items():
        with pytest.raises(AdapterError) as err:
            load_adapter(_rewrite_adapter(adapter, tmp_path / "bad.safetensors", change))
        msg = str(err.value)
        assert "\n" not in msg and ({"int64": "int64", "NaN": "NaN", "rank": "rank"}[why] in msg), msg
    assert load_adapter(adapter).rank == 4


def test_index_that_declares_more_than_it_holds_is_refused(tmp_path):
    feats = np.random.default_rng(0).standard_normal((300, 32)).astype(np.float32)
    path = build_index(feats, tmp_path / "added.index", n_ivf=4)
    data = path.read_bytes()
    # header ntotal (bytes 8..16 after the fourcc and d) and the flat quantizer's vector count
    huge = (2**40).to_bytes(8, "little")
    quantizer = data.index(b"IxF2") + 4 + 4 + 8 + 16 + 1 + 4
    for pos in (8, quantizer):
        bad = hf.write(tmp_path / "bad.index", data[:pos] + huge + data[pos + 8 :])
        with pytest.raises(FeatureIndexError) as err:
            FeatureIndex.load(bad)
        assert "\n" not in str(err.value)
    sq = faiss.index_factory(32, "IVF4,SQ8")
    sq.train(feats)
    faiss.write_index(sq, str(tmp_path / "sq.index"))
    with pytest.raises(FeatureIndexError, match="not the IVF-Flat or Flat index RVC writes"):
        FeatureIndex.load(tmp_path / "sq.index")
    assert FeatureIndex.load(path).size == 300


# --------------------------------------------------------------------------- the fuzzer, bounded


@pytest.mark.slow
def test_fuzz_every_loader_bounded():
    """Up to 40 hypothesis examples (15 s) over all seven file kinds, in a subprocess capped by RLIMIT_AS."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "tests.fuzz_cases", "--examples", "40", "--seconds", "15"],
                          capture_output=True, text=True, timeout=300, env=env,
                          cwd=Path(__file__).resolve().parents[1])  # where `tests` is importable
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], report["failures"]
    assert report["tried"] >= 10 and report["refused"] > 0 and len(report["by_kind"]) >= 4, report
    assert math.isfinite(report["slowest_s"])
