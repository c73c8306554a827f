"""LoRA layer math: exact deltas on Linear / Conv1d / ConvTranspose1d under every weight-norm variant."""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrizations

from rvclora.lora import (
    Adapter,
    BaseInfo,
    LoRAConfig,
    LoraModuleError,
    add_lora,
    apply_adapters,
    effective_weight,
    has_lora,
    inject,
    lora_delta,
    lora_state_dict,
    merge,
    merge_module,
    remove_adapters,
    remove_lora,
    set_lora,
    trainable_parameters,
    unmerge,
    unmerge_module,
    weight_norm_of,
)

TOL = 1e-5
WN = ("none", "legacy", "parametrization")
SETTINGS = settings(max_examples=25, deadline=None)


def _wrap(layer: nn.Module, wn: str) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if wn == "legacy":
            return torch.nn.utils.weight_norm(layer)
        if wn == "parametrization":
            return parametrizations.weight_norm(layer)
    return layer


@st.composite
def layers(draw):
    """(layer, input) over types, shapes, kernel/stride/padding/dilation, weight norm."""
    kind = draw(st.sampled_from(["linear", "conv", "convT"]))
    wn = draw(st.sampled_from(WN))
    cin, cout = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**16))
    torch.manual_seed(seed)
    if kind == "linear":
        layer = nn.Linear(cin, cout, bias=draw(st.booleans()))
        x = torch.randn(2, 3, cin)
    else:
        k, s, d = draw(st.integers(1, 6)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
        p = draw(st.integers(0, 3))
        if kind == "conv":
            mode = draw(st.sampled_from(["zeros", "reflect", "replicate"]))
            layer = nn.Conv1d(cin, cout, k, s, p, d, bias=draw(st.booleans()), padding_mode=mode)
            t = d * (k - 1) + 1 + draw(st.integers(p + 1, 12))
        else:
            p = min(p, (d * (k - 1)) // 2)  # keep the output non-empty
            layer = nn.ConvTranspose1d(cin, cout, k, s, p, dilation=d, bias=draw(st.booleans()))
            t = draw(st.integers(1, 12))
        x = torch.randn(2, cin, t)
    return _wrap(layer, wn), x, wn


def _reference(layer: nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The layer's function with weight w, written out independently of rvclora."""
    b = layer.bias
    if isinstance(layer, nn.Linear):
        return F.linear(x, w, b)
    if isinstance(layer, nn.ConvTranspose1d):
        return F.conv_transpose1d(x, w, b, layer.stride, layer.padding, 0, 1, layer.dilation)
    if layer.padding_mode != "zeros":
        x = F.pad(x, (layer.padding[0],) * 2, mode=layer.padding_mode)
        return F.conv1d(x, w, b, layer.stride, 0, layer.dilation)
    return F.conv1d(x, w, b, layer.stride, layer.padding, layer.dilation)


def _train_b(layer: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.3)


def _tensors(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items() if "lora_" not in k}


@SETTINGS
@given(layers(), st.integers(1, 5), st.booleans())
def test_fresh_adapter_changes_nothing(case, rank, rslora):
    layer, x, _ = case
    before = layer(x)
    add_lora(layer, LoRAConfig(rank=rank, alpha=2.0 * rank, rslora=rslora))
    assert torch.equal(layer(x), before)
    assert layer.lora_A.abs().sum() > 0 and not layer.lora_B.any()


@SETTINGS
@given(layers(), st.integers(1, 5), st.booleans(), st.booleans())
def test_merge_is_exact_and_unmerge_restores(case, rank, rslora, fold):
    layer, x, wn = case
    base_out, base_tensors = layer(x).detach(), _tensors(layer)
    add_lora(layer, LoRAConfig(rank=rank, alpha=3.0, rslora=rslora))
    _train_b(layer)
    with torch.no_grad():
        unmerged = layer(x)
        # the unmerged low-rank path is the layer with W_eff + ΔW, ΔW = s·(B@A).reshape(W.shape)
        s = 3.0 / (rank**0.5 if rslora else rank)
        delta = (s * layer.lora_B @ layer.lora_A).reshape(effective_weight(layer).shape)
        torch.testing.assert_close(lora_delta(layer), delta, rtol=0, atol=1e-7)
        expected = _reference(layer, x, effective_weight(layer) + delta)
        assert (unmerged - expected).abs().max() <= TOL
        assert (unmerged - base_out).abs().max() > 1e-4  # the adapter really acts

        merge_module(layer, fold_weight_norm=fold)
        assert layer.lora_merged
        assert (layer(x) - unmerged).abs().max() <= TOL
        if wn != "none":
            assert (weight_norm_of(layer) is None) == fold

        unmerge_module(layer)
        assert not layer.lora_merged and (weight_norm_of(layer) is None) == (wn == "none")
        after = _tensors(layer)
        assert after.keys() == base_tensors.keys()
        for k in base_tensors:
            assert (after[k] - base_tensors[k]).abs().max() <= 1e-6, k
        assert (layer(x) - unmerged).abs().max() <= TOL
        remove_lora(layer)
        assert torch.equal(layer(x), base_out)


def _single(layer: nn.Module, rank: int, alpha: float, seed: int) -> Adapter:
    g = torch.Generator().manual_seed(seed)
    (r, fan), out = (rank, layer.lora_A.shape[1]), layer.lora_B.shape[0]
    a = torch.randn(r, fan, generator=g) * 0.5
    b = torch.randn(out, r, generator=g) * 0.5
    base = BaseInfo("v2", 40000, True, "0" * 64)
    return Adapter({"m": (a, b)}, rank, alpha, False, "m", base)


@SETTINGS
@given(
    layers(),
    st.integers(1, 4),
    st.integers(1, 4),
    st.floats(-1.5, 1.5, width=32),
    st.floats(-1.5, 1.5, width=32),
    st.booleans(),
)
def test_blend_is_linear(case, r1, r2, w1, w2, merged):
    layer, x, _ = case
    model = nn.ModuleDict({"m": layer})
    base_out, base_tensors = layer(x).detach(), _tensors(model)
    add_lora(layer, LoRAConfig(rank=1))
    a1, a2 = _single(layer, r1, 2.0, 1), _single(layer, r2, 5.0, 2)
    with torch.no_grad():
        w_eff = effective_weight(layer).detach().clone()
        shape = w_eff.shape
        d1, d2 = a1.delta("m").reshape(shape), a2.delta("m").reshape(shape)
        apply_adapters(model, [(a1, w1), (a2, w2)], merged=merged)
        expected = _reference(layer, x, w_eff + w1 * d1 + w2 * d2)
        assert (layer(x) - expected).abs().max() <= TOL
        # re-weight on the live layer, both directions
        apply_adapters(model, [(a1, w2), (a2, w1)], merged=not merged)
        expected = _reference(layer, x, w_eff + w2 * d1 + w1 * d2)
        assert (layer(x) - expected).abs().max() <= TOL
        # a single adapter at weight 1 keeps its own factors and scaling
        apply_adapters(model, [(a2, 1.0)])
        assert layer.lora_scaling == a2.scaling and torch.equal(layer.lora_A, a2.lora["m"][0])
        assert (layer(x) - _reference(layer, x, w_eff + d2)).abs().max() <= TOL
        remove_adapters(model)
        assert not has_lora(layer)
        assert torch.equal(layer(x), base_out)
        for k, v in _tensors(model).items():
            assert torch.equal(v, base_tensors[k]), k


def test_conv_transpose_layout_and_output_size():
    """ConvTranspose1d weight is [in, out, k]: B is [in, r], A is [r, out·k]; output_size is honoured."""
    layer = _wrap(nn.ConvTranspose1d(6, 4, 8, stride=4, padding=2), "legacy")
    add_lora(layer, LoRAConfig(rank=3))
    assert tuple(layer.lora_B.shape) == (6, 3) and tuple(layer.lora_A.shape) == (3, 32)
    assert weight_norm_of(layer) == ("legacy", 0) and tuple(layer.weight_g.shape) == (6, 1, 1)
    _train_b(layer)
    x = torch.randn(1, 6, 5)
    with torch.no_grad():
        y = layer(x, output_size=[21])
        w = effective_weight(layer) + lora_delta(layer)
        ref = F.conv_transpose1d(x, w, layer.bias, 4, 2, 1, 1, 1)
    assert y.shape[-1] == 21 and (y - ref).abs().max() <= TOL
    merge_module(layer)  # keeps weight norm: g per INPUT channel
    assert tuple(layer.weight_g.shape) == (6, 1, 1)
    with torch.no_grad():
        assert (layer(x, output_size=[21]) - y).abs().max() <= TOL


def test_unbatched_conv_input():
    layer = nn.Conv1d(3, 5, 3, padding=2, dilation=2)
    add_lora(layer, LoRAConfig(rank=2))
    _train_b(layer)
    x = torch.randn(3, 10)
    with torch.no_grad():
        assert (layer(x) - layer(x[None])[0]).abs().max() <= TOL


def test_dropout_only_on_the_lora_path():
    layer = nn.Conv1d(4, 4, 3, padding=1)
    add_lora(layer, LoRAConfig(rank=2, dropout=0.5))
    x = torch.randn(1, 4, 20)
    base = F.conv1d(x, layer.weight, layer.bias, padding=1)
    layer.train()
    assert torch.equal(layer(x), base)  # B = 0: dropout on the LoRA input changes nothing
    _train_b(layer)
    torch.manual_seed(0)
    a = layer(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, layer(x))
    layer.eval()
    with torch.no_grad():
        y = layer(x)
        merge_module(layer)
        assert (layer(x) - y).abs().max() <= TOL


def test_only_lora_tensors_train():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(3, 8, 3, padding=1), nn.ReLU(), _wrap(nn.ConvTranspose1d(8, 2, 4, 2, 1), "legacy"))
    names = inject(model, ["0", "2"], LoRAConfig(rank=2), extras=["0.bias"])
    assert names == ["0", "2"]
    assert set(trainable_parameters(model)) == {"0.lora_A", "0.lora_B", "2.lora_A", "2.lora_B", "0.bias"}
    assert set(lora_state_dict(model)) == {"0.lora_A", "0.lora_B", "2.lora_A", "2.lora_B"}
    model(torch.randn(2, 3, 9)).square().mean().backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
    assert model[2].lora_B.grad.abs().sum() > 0  # B gets gradient first (A has none while B = 0)


def test_deepcopy_then_fold_leaves_the_original_intact():
    """copy.deepcopy shares a parametrized module's dynamic class; folding the copy must not break the original."""
    model = nn.Sequential(_wrap(nn.Conv1d(3, 3, 3, padding=1), "parametrization"))
    inject(model, ["0"], LoRAConfig(rank=2))
    _train_b(model[0])
    x = torch.randn(1, 3, 8)
    with torch.no_grad():
        y = model(x)
        twin = copy.deepcopy(model)
        merge(twin, fold_weight_norm=True)
        assert weight_norm_of(twin[0]) is None
        assert (model(x) - y).abs().max() == 0 and (twin(x) - y).abs().max() <= TOL
        unmerge(twin)
        assert weight_norm_of(twin[0]) == ("parametrization", 0)


def test_bad_inputs_are_refused():
    with pytest.raises(LoraModuleError, match="groups=1"):
        add_lora(nn.Conv1d(4, 4, 3, groups=2), LoRAConfig(rank=2))
    with pytest.raises(LoraModuleError, match="supports"):
        add_lora(nn.Embedding(4, 4), LoRAConfig(rank=2))
    with pytest.raises(ValueError, match="rank"):
        LoRAConfig(rank=0)
    layer = add_lora(nn.Linear(4, 3), LoRAConfig(rank=2))
    with pytest.raises(ValueError, match="already"):
        add_lora(layer, LoRAConfig(rank=2))
    with pytest.raises(ValueError, match="do not fit"):
        set_lora(layer, torch.zeros(2, 5), torch.zeros(3, 2), 1.0)
    merge_module(layer)
    with pytest.raises(LoraModuleError, match="unmerge"):
        set_lora(layer, torch.zeros(2, 4), torch.zeros(3, 2), 1.0)
