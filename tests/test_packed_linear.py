"""The content encoder's linears with pre-packed weights compute what `F.linear` does."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from rvclora.realtime.rvc_converter import BlockShape, RVCBlockConverter
from rvclora.synth.content_encoder import ContentEncoder
from rvclora.synth.hubert import Hubert
from rvclora.synth.packed_linear import PackedLinear, pack_linears, packing_available
from tests.hubert_fixtures import tiny_hubert_config

pytestmark = pytest.mark.skipif(not packing_available(), reason="this torch build has no oneDNN")


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_packed_linear_matches_f_linear_and_follows_weight_changes():
    torch.manual_seed(0)
    lin = torch.nn.Linear(96, 160)
    packed = PackedLinear(copy.deepcopy(lin), rows=50)
    x = torch.randn(1, 50, 96)
    with torch.inference_mode():
        assert rel_err(packed(x), F.linear(x, lin.weight, lin.bias)) < 1e-5
        assert rel_err(packed(x[:, :7]), F.linear(x[:, :7], lin.weight, lin.bias)) < 1e-5  # other row counts
    with torch.no_grad():  # changed in place (as an adapter merge would): the packed copy follows
        packed.weight.mul_(-2.0)
    with torch.inference_mode():
        assert rel_err(packed(x), F.linear(x, -2.0 * lin.weight, lin.bias)) < 1e-5


def test_gradients_still_flow_through_the_plain_path():
    lin = PackedLinear(torch.nn.Linear(8, 4), rows=3)
    x = torch.randn(3, 8)
    lin(x).sum().backward()
    assert lin.weight.grad is not None and torch.allclose(lin.weight.grad, x.sum(0).expand(4, 8))


def test_packed_encoder_gives_the_same_features_and_keeps_its_state_dict():
    torch.manual_seed(1)
    enc = ContentEncoder(Hubert(tiny_hubert_config("v2")), "v2").eval()
    ref = copy.deepcopy(enc)
    keys = list(enc.state_dict())
    assert pack_linears(enc, rows=55) == sum(isinstance(m, torch.nn.Linear) for m in ref.modules())
    assert pack_linears(enc, rows=55) == 0  # idempotent
    assert list(enc.state_dict()) == keys
    wav = torch.randn(1, 17600)
    with torch.inference_mode():
        assert rel_err(enc(wav), ref(wav)) < 1e-4


def test_the_live_converter_packs_a_cpu_encoder():
    enc = ContentEncoder(Hubert(tiny_hubert_config("v2")), "v2").eval()

    class Source:  # only what the constructor reads
        sr, device, encoder = 40000, torch.device("cpu"), enc

    RVCBlockConverter(Source(), BlockShape(960, 480, 160, 16000))  # type: ignore[arg-type]
    assert isinstance(enc.model.layers[0].fc1, PackedLinear)
