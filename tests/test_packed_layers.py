"""Linear and conv layers with pre-packed weights compute what the plain layers do."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from rvclora.realtime.rvc_converter import BlockShape, RVCBlockConverter
from rvclora.synth.content_encoder import ContentEncoder
from rvclora.synth.hubert import Hubert
from rvclora.synth.packed_layers import PackedConv1d, PackedLinear, pack_layers, packing_available
from tests.hubert_fixtures import tiny_hubert_config
from tests.rvc_fixtures import make_inputs, make_synthesizer, tiny_config

# Wide enough that the decoder's later stages take oneDNN's packed path (small convs stay plain).
MID = tiny_config().replace(upsample_initial_channel=256, hidden_channels=32, filter_channels=64, inter_channels=32)

pytestmark = pytest.mark.skipif(not packing_available(), reason="this torch build has no oneDNN")


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_packed_linear_and_conv_match_the_functional_ops_and_follow_weight_changes():
    torch.manual_seed(0)
    lin, conv = torch.nn.Linear(96, 160), torch.nn.Conv1d(64, 48, 7, dilation=3, padding=9)
    ref_lin, ref_conv = copy.deepcopy(lin), copy.deepcopy(conv)
    wrap = torch.nn.Sequential(lin, conv)
    assert pack_layers(wrap) == 2 and type(lin) is PackedLinear and type(conv) is PackedConv1d
    x, xc = torch.randn(1, 50, 96), torch.randn(1, 64, 1000)
    with torch.inference_mode():
        assert rel_err(lin(x), F.linear(x, ref_lin.weight, ref_lin.bias)) < 1e-5
        assert rel_err(lin(x[:, :7]), F.linear(x[:, :7], ref_lin.weight, ref_lin.bias)) < 1e-5  # other row counts
        assert rel_err(conv(xc), F.conv1d(xc, ref_conv.weight, ref_conv.bias, padding=9, dilation=3)) < 1e-5
        assert rel_err(conv(xc[..., :900]), ref_conv(xc[..., :900])) < 1e-5  # another length
    with torch.no_grad():  # changed in place (as an adapter merge does): the packed copies follow
        lin.weight.mul_(-2.0)
        conv.weight.mul_(-2.0)
    with torch.inference_mode():
        assert rel_err(lin(x), F.linear(x, -2.0 * ref_lin.weight, ref_lin.bias)) < 1e-5
        assert rel_err(conv(xc), -2.0 * ref_conv(xc) + 3.0 * ref_conv.bias[:, None]) < 1e-5


def test_gradients_still_flow_through_the_plain_path():
    lin = torch.nn.Linear(8, 4)
    pack_layers(lin)
    x = torch.randn(3, 8)
    lin(x).sum().backward()
    assert lin.weight.grad is not None and torch.allclose(lin.weight.grad, x.sum(0).expand(4, 8))


def test_packed_encoder_and_synthesizer_give_the_same_output_and_keep_state_dicts():
    torch.manual_seed(1)
    enc = ContentEncoder(Hubert(tiny_hubert_config("v2")), "v2").eval()
    synth = make_synthesizer("v2", 40000, posterior=False, config=MID).remove_weight_norm()
    ref_enc, ref_synth = copy.deepcopy(enc), copy.deepcopy(synth)
    keys = list(enc.state_dict()), list(synth.state_dict())
    assert pack_layers(enc) > 0 and pack_layers(synth) > 0
    assert pack_layers(enc) == 0  # idempotent
    assert (list(enc.state_dict()), list(synth.state_dict())) == keys
    wav = torch.randn(1, 17600)
    inputs = make_inputs("v2", frames=110)
    with torch.inference_mode():
        assert rel_err(enc(wav), ref_enc(wav)) < 1e-4
    with torch.inference_mode():
        noise = torch.randn(1, MID.inter_channels, 110 - 76)  # the flow starts 24 frames before skip_head
        kw = dict(skip_head=100, return_length=10, dec_noise=0.0, noise=noise)
        expected = ref_synth.infer(**inputs, **kw)
        assert rel_err(synth.infer(**inputs, **kw), expected) < 1e-4
    twin = copy.deepcopy(synth)  # a voice switch re-adapts a copy: the packed weights stay behind
    with torch.inference_mode():
        assert rel_err(twin.infer(**inputs, **kw), expected) < 1e-4


def test_the_live_converter_packs_cpu_models():
    enc = ContentEncoder(Hubert(tiny_hubert_config("v2")), "v2").eval()
    synth = make_synthesizer("v2", 40000, posterior=False).remove_weight_norm()

    class Source:  # only what the constructor reads
        sr, device, encoder = 40000, torch.device("cpu"), enc

    Source.synth = synth
    RVCBlockConverter(Source(), BlockShape(960, 480, 160, 16000))  # type: ignore[arg-type]
    assert isinstance(enc.model.layers[0].fc1, PackedLinear)
    assert isinstance(synth.dec.conv_pre, PackedConv1d)
