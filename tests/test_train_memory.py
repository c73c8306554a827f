"""The memory savings change where memory goes, not what a step computes."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest
import torch

from rvclora.train.config import TrainConfig
from rvclora.train.dataset import Batch
from rvclora.train.discriminators import DiscriminatorWidths, MultiPeriodDiscriminator, light_training
from rvclora.train.generator import build_generator, checkpoint_decoder
from rvclora.train.mel import SpecConfig
from rvclora.train.memory import discriminator_mode, drop_weight_norm_caches, precision_dtype, uses_checkpointing
from rvclora.train.step import train_step
from tests.rvc_fixtures import make_base_file


def _batch(setup, spec: SpecConfig, n: int = 2, frames: int = 60) -> Batch:
    g = torch.Generator().manual_seed(5)
    c = setup.model.config
    f0 = 120 + 80 * torch.rand(n, frames, generator=g)
    return Batch(
        phone=torch.randn(n, frames, 768, generator=g), lengths=torch.full((n,), frames),
        pitch=torch.randint(1, 255, (n, frames), generator=g), pitchf=f0,
        spec=torch.rand(n, c.spec_channels, frames, generator=g), wav=0.1 * torch.randn(n, 1, frames * spec.hop, generator=g),
    )


def _step(tmp_path, *, saving: bool):
    cfg = TrainConfig(rank=4, alpha=8, seed=3, segment_frames=24)
    tmp_path.mkdir()
    setup = build_generator(make_base_file(tmp_path, seed=1), cfg, torch.device("cpu"))
    spec = SpecConfig.for_model(setup.voice.sr, setup.voice.config.spec_channels, setup.voice.config.hop)
    torch.manual_seed(0)
    d = MultiPeriodDiscriminator("v2", DiscriminatorWidths.scaled(16))
    if saving:  # what `rvclora train` does in LoRA mode
        checkpoint_decoder(setup.model)
        d.checkpointing = True
        drop_weight_norm_caches(d)
        restore_g = drop_weight_norm_caches(setup.model)
    params = setup.trainable()
    opt_g = torch.optim.SGD(list(params.values()), lr=1e-2)
    opt_d = torch.optim.SGD(d.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    losses = train_step(setup, d, [_batch(setup, spec)], opt_g, opt_d, scaler, cfg, spec, torch.device("cpu"), seeds=[11])
    if saving:  # between steps G and D hold their parameters, not a second copy of their weights
        # (a checkpointed block's recomputation stops inside its last conv: that one weight may stay)
        assert len(_cached_weights(setup.model)) <= len(setup.model.dec.resblocks)
        assert len(_cached_weights(d)) <= len(d.discriminators)
        restore_g()  # what reads the weight outside a forward finds it again
        setup.model.remove_weight_norm()
    return losses, {n: p.detach().clone() for n, p in params.items()}, {n: p.detach().clone() for n, p in d.named_parameters()}


def _cached_weights(model: torch.nn.Module) -> list[str]:
    """Layers holding a tensor that is neither a parameter nor a buffer (legacy weight norm's weight)."""
    own = {id(t) for t in [*model.parameters(), *model.buffers()]}
    return [f"{name}.{k}" for name, m in model.named_modules() for k, t in vars(m).items() if isinstance(t, torch.Tensor) and id(t) not in own]


def test_activation_checkpointing_gives_the_same_step(tmp_path):
    plain = _step(tmp_path / "a", saving=False)
    saved = _step(tmp_path / "b", saving=True)
    assert saved[0] == pytest.approx(plain[0], rel=1e-5)
    for n, t in plain[1].items():  # the adapter after one update
        torch.testing.assert_close(saved[1][n], t, rtol=1e-5, atol=1e-7)
    for n, t in plain[2].items():  # the discriminator after one update
        torch.testing.assert_close(saved[2][n], t, rtol=1e-5, atol=1e-7)
    assert any(float(t.abs().max()) > 0 for n, t in plain[1].items() if n.endswith("lora_B"))  # it did train


def test_light_discriminator_trains_gains_biases_and_outputs_only():
    d = MultiPeriodDiscriminator("v2", DiscriminatorWidths.scaled(16))
    total = sum(p.numel() for p in d.parameters())
    n = light_training(d)
    trainable = {name for name, p in d.named_parameters() if p.requires_grad}
    assert n == sum(p.numel() for p in d.parameters() if p.requires_grad) and 0 < n < 0.2 * total
    assert all(t.endswith(("weight_g", "bias")) or ".conv_post." in t for t in trainable)
    assert "discriminators.1.convs.4.weight_g" in trainable and "discriminators.1.convs.4.weight_v" not in trainable


def test_memory_defaults_and_refusals():
    cpu = torch.device("cpu")
    assert precision_dtype(TrainConfig(), cpu) is None  # fp32 on the CPU
    assert precision_dtype(TrainConfig(precision="bf16"), cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        precision_dtype(TrainConfig(fp16=True), cpu)
    assert uses_checkpointing(TrainConfig()) and not uses_checkpointing(TrainConfig(full=True))
    assert discriminator_mode(TrainConfig(), pretrained=True) == "light"
    assert discriminator_mode(TrainConfig(), pretrained=False) == "full"  # a random D must learn everything
    assert discriminator_mode(TrainConfig(full=True), pretrained=True) == "full"
    with pytest.raises(ValueError, match="needs a pretrained discriminator"):
        discriminator_mode(TrainConfig(train_d="light"), pretrained=False)


# A fresh process (the allocator's settings are per process; numpy, which imports in a
# fraction of torch's time, allocates large arrays with malloc as torch does): arrays of
# 8 MB are freed while the last one stays alive.  Once a 30 MB block has been freed, glibc's dynamic
# threshold serves 8 MB from the heap, and the freed ones below the live one stay resident.
_FRAGMENT = textwrap.dedent("""
    import os, sys
    import numpy as np
    from rvclora.synth.heap import return_freed_memory

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    if sys.argv[1] == "on":
        assert return_freed_memory()
    big = np.ones(30 << 17)  # 30 MB, mapped; freeing it raises the dynamic threshold
    del big
    ts = [np.ones(1 << 20) for _ in range(30)]  # 30 x 8 MB, each written
    peak = rss()
    keep = ts[-1]
    del ts
    print(peak - rss())
""")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_freed_tensors_go_back_to_the_os():
    def returned(policy: str) -> float:
        out = subprocess.run([sys.executable, "-c", _FRAGMENT, policy], check=True, capture_output=True, text=True)
        return float(out.stdout.strip().splitlines()[-1])

    assert returned("on") > 200  # 29 of the 30 blocks (232 MB) leave the resident set at once
    assert returned("off") < 50  # the reference: glibc's default keeps them
