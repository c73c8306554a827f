"""Safe checkpoint loading: real formats load, code in a pickle never runs."""

import argparse
import os
import sys
import types

import pytest
import torch

from rvclora.synth.checkpoint import CheckpointError, InertObject, UnsafeCheckpointError, load_checkpoint


class _Payload:
    """Pickles to a call of os.system that would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def fake_fairseq():
    """Temporarily importable `fairseq` / `omegaconf` classes, so a pickle references them like a real hubert_base.pt."""
    created = {}
    for name in ("fairseq", "fairseq.data", "fairseq.data.dictionary", "omegaconf", "omegaconf.dictconfig"):
        created[name] = types.ModuleType(name)
    Dictionary = type("Dictionary", (), {"__module__": "fairseq.data.dictionary"})
    DictConfig = type("DictConfig", (), {"__module__": "omegaconf.dictconfig"})
    created["fairseq.data.dictionary"].Dictionary = Dictionary
    created["omegaconf.dictconfig"].DictConfig = DictConfig
    sys.modules.update(created)
    try:
        yield Dictionary, DictConfig
    finally:
        for name in created:
            sys.modules.pop(name, None)


@pytest.mark.parametrize("zipped", [True, False])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, zipped):
    marker = tmp_path / "pwned"
    path = tmp_path / "voice.pth"
    torch.save({"weight": {"w": torch.ones(2)}, "x": _Payload(marker)}, path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint(path)
    assert "system" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_fairseq_config_objects_become_inert(tmp_path, fake_fairseq):
    Dictionary, DictConfig = fake_fairseq
    d = Dictionary()
    d.symbols = ["<s>", "a"]
    cfg = DictConfig()
    cfg.__dict__["_content"] = {"model": {"encoder_layers": 12}}
    weights = {"encoder.layers.0.fc1.weight": torch.randn(4, 3)}
    ckpt = {"model": weights, "args": argparse.Namespace(normalize=False), "cfg": cfg, "task_state": {"dictionaries": [d]}}
    path = tmp_path / "hubert_base.pt"
    torch.save(ckpt, path)
    for name in [n for n in sys.modules if n.startswith(("fairseq", "omegaconf"))]:
        sys.modules.pop(name)

    out = load_checkpoint(path)
    assert torch.equal(out["model"]["encoder.layers.0.fc1.weight"], weights["encoder.layers.0.fc1.weight"])
    assert isinstance(out["args"], InertObject) and out["args"].normalize is False
    assert out["task_state"]["dictionaries"][0].symbols == ["<s>", "a"]
    assert out["cfg"]["model"]["encoder_layers"] == 12


def test_plain_voice_dict_round_trips(tmp_path):
    ckpt = {"weight": {"emb_g.weight": torch.randn(3, 4).half()}, "config": [1, [2, 3]], "sr": "40k", "f0": 1, "version": "v2"}
    path = tmp_path / "v.pth"
    torch.save(ckpt, path)
    out = load_checkpoint(path)
    assert out["sr"] == "40k" and out["config"] == [1, [2, 3]]
    assert out["weight"]["emb_g.weight"].dtype == torch.float16
    assert torch.equal(out["weight"]["emb_g.weight"], ckpt["weight"]["emb_g.weight"])


@pytest.mark.parametrize(
    "content, expected",
    [(b"", "empty"), (b"not a checkpoint at all", "not a PyTorch checkpoint"), (b"\x80\x02garbage", "not a readable checkpoint")],
)
def test_garbage_files_give_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=expected) as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


def test_truncated_and_missing_files(tmp_path):
    path = tmp_path / "v.pth"
    torch.save({"weight": {"w": torch.randn(64, 64)}}, path)
    path.write_bytes(path.read_bytes()[:700])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pth")
