"""LoRA on a (tiny, official-structure) RVC synthesizer: presets, exactness through `infer`, hot-swap."""

import pytest
import torch

from rvclora.lora import (
    PRESETS,
    Adapter,
    BaseInfo,
    LoRAConfig,
    apply_adapters,
    extract_adapter,
    inject,
    lora_modules,
    merge,
    parameter_counts,
    remove_adapters,
    select_modules,
    trainable_parameters,
    unmerge,
    weight_norm_of,
)
from tests.rvc_fixtures import make_inputs, make_synthesizer

FRAMES = 40


def _expected_all(n_stages: int = 4, n_kernels: int = 3) -> list[str]:
    """Preset `all`, written out from RVC's module structure (infer/lib/infer_pack/models.py)."""
    enc = [f"enc_p.encoder.attn_layers.{i}.conv_{c}" for i in range(6) for c in "qkvo"]
    enc += [f"enc_p.encoder.ffn_layers.{i}.conv_{c}" for i in range(6) for c in "12"]
    flow = [f"flow.flows.{f}.{n}" for f in (0, 2, 4, 6) for n in ("pre", "post")]
    flow += [f"flow.flows.{f}.enc.{kind}.{j}" for f in (0, 2, 4, 6) for kind in ("in_layers", "res_skip_layers") for j in range(3)]
    dec = ["dec.conv_pre", "dec.conv_post"] + [f"dec.ups.{i}" for i in range(n_stages)]
    dec += [f"dec.resblocks.{r}.convs{c}.{j}" for r in range(n_stages * n_kernels) for c in "12" for j in range(3)]
    return sorted(enc + flow + dec)


def _run(model, seed=0):
    """`infer` with fixed latent noise and a fixed seed for the NSF source's random phase/noise."""
    inputs = make_inputs("v2", FRAMES, f0=model.f0)
    noise = torch.randn(1, model.config.inter_channels, FRAMES, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.infer(**inputs, noise=noise)


def _randomize_lora(model, seed=1, scale=0.2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lora_modules(model).values():
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * scale)


@pytest.fixture(scope="module")
def base_out():
    return _run(make_synthesizer(posterior=False))


def test_preset_all_selects_exactly_the_documented_modules():
    model = make_synthesizer(posterior=True)  # enc_q present (training) and never matched
    names = inject(model, "all", LoRAConfig(rank=2))
    assert sorted(names) == _expected_all() and len(names) == 146
    assert sorted(lora_modules(model)) == sorted(names)
    parts = [set(select_modules(model, p)) for p in ("encoder", "flow", "decoder")]
    assert set.union(*parts) == set(names) and sum(map(len, parts)) == len(names)
    assert all(n.startswith("enc_p.") for n in parts[0]) and all(n.startswith("flow.") for n in parts[1])
    assert all(n.startswith("dec.") for n in parts[2]) and len(parts[2]) == 2 + 4 + 72
    # exact layer kinds: transposed + weight-normed ups, dilated weight-normed resblocks
    assert type(model.dec.ups[0]).__name__ == "ConvTranspose1d" and weight_norm_of(model.dec.ups[0]) == ("legacy", 0)
    assert model.dec.resblocks[5].convs1[2].dilation == (5,)
    # only adapter tensors train; the named extra too when asked
    assert all(k.endswith(("lora_A", "lora_B")) for k in trainable_parameters(model))
    lora, base = parameter_counts(model)
    assert 0 < lora < base


def test_presets_on_other_layouts():
    v1 = make_synthesizer("v1", 32000, f0=False, posterior=False)  # 5-stage decoder, no NSF
    assert sorted(select_modules(v1, "all")) == _expected_all(n_stages=5)
    assert sorted(select_modules(v1, "re:dec\\.ups\\.[0-2], flow")) == sorted(
        [f"dec.ups.{i}" for i in range(3)] + select_modules(v1, "flow")
    )
    with pytest.raises(ValueError, match="matches no"):
        select_modules(v1, "dec.nothing.*")
    assert set(PRESETS) == {"all", "encoder", "flow", "decoder"}


def test_lora_through_full_infer(base_out):
    model = make_synthesizer(posterior=False)
    inject(model, "all", LoRAConfig(rank=4, alpha=4.0), extras=["emb_g.weight"])
    assert torch.equal(_run(model), base_out)  # fresh adapter: no-op
    _randomize_lora(model)
    unmerged = _run(model)
    assert (unmerged - base_out).abs().max() > 1e-2  # a non-zero adapter changes the voice
    merge(model)  # weight norm kept
    assert (_run(model) - unmerged).abs().max() <= 1e-5
    unmerge(model)
    merge(model, fold_weight_norm=True)
    assert weight_norm_of(model.dec.ups[1]) is None
    assert (_run(model) - unmerged).abs().max() <= 1e-5
    unmerge(model)
    assert weight_norm_of(model.dec.ups[1]) == ("legacy", 0)
    assert (_run(model) - unmerged).abs().max() <= 1e-5
    remove_adapters(model)
    assert torch.equal(_run(model), base_out)


def test_gradients_reach_only_adapter_tensors():
    model = make_synthesizer(posterior=False)
    inject(model, "decoder", LoRAConfig(rank=2), extras=["emb_g.weight"])
    _randomize_lora(model, scale=0.05)
    inputs = make_inputs("v2", 20, f0=True)
    model.infer(**inputs).square().mean().backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
    assert model.emb_g.weight.grad.abs().sum() > 0 and model.dec.ups[0].lora_A.grad.abs().sum() > 0


def _adapter(model_seed_lora: int, rank: int) -> Adapter:
    model = make_synthesizer(posterior=False)
    inject(model, "all", LoRAConfig(rank=rank, alpha=rank), generator=torch.Generator().manual_seed(model_seed_lora))
    _randomize_lora(model, seed=model_seed_lora, scale=0.1)
    base = BaseInfo("v2", 40000, True, "0" * 64)
    return extract_adapter(model, LoRAConfig(rank=rank, alpha=rank), base=base, targets="all")


def test_hot_swap_and_blend_on_a_live_model(base_out):
    a1, a2 = _adapter(1, 2), _adapter(2, 4)
    ref1, ref2 = make_synthesizer(posterior=False), make_synthesizer(posterior=False)
    apply_adapters(ref1, [(a1, 1.0)])
    apply_adapters(ref2, [(a2, 1.0)])
    y1, y2 = _run(ref1), _run(ref2)

    live = make_synthesizer(posterior=False)
    for merged in (False, True):
        apply_adapters(live, [(a1, 1.0)], merged=merged)
        assert (_run(live) - y1).abs().max() <= 1e-5
        apply_adapters(live, [(a2, 1.0)], merged=merged)  # swap, base never reloaded
        assert (_run(live) - y2).abs().max() <= 1e-5
    # a blend equals the same blend computed on another model, merged or not
    apply_adapters(live, [(a1, 0.3), (a2, 0.7)])
    blend = _run(live)
    apply_adapters(ref1, [(a1, 0.3), (a2, 0.7)], merged=True)
    assert (_run(ref1) - blend).abs().max() <= 1e-5
    assert (blend - y1).abs().max() > 1e-3 and (blend - y2).abs().max() > 1e-3
    apply_adapters(live, [])  # no adapter: the plain base
    assert (_run(live) - base_out).abs().max() <= 1e-6
    # the realtime engine folds weight norm after loading, possibly while merged: swaps keep working
    apply_adapters(live, [(a2, 1.0)], merged=True)
    live.remove_weight_norm()
    apply_adapters(live, [(a1, 1.0)], merged=True)
    assert weight_norm_of(live.dec.ups[0]) is None and (_run(live) - y1).abs().max() <= 1e-5
    remove_adapters(live)
    assert (_run(live) - base_out).abs().max() <= 1e-6
