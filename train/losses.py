"""RVC's training losses (VITS/HiFi-GAN): LSGAN, feature matching, KL, mel L1.

All are computed in fp32, as RVC does under autocast.
"""

from __future__ import annotations

import torch


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Least squares: real scores pulled to 1, fake to 0, summed over discriminators."""
    loss = torch.zeros((), device=real[0].device)
    for r, g in zip(real, fake):
        loss = loss + torch.mean((1 - r.float()) ** 2) + torch.mean(g.float() ** 2)
    return loss


def generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """Least squares: the generator wants its audio scored 1 (real)."""
    loss = torch.zeros((), device=fake[0].device)
    for g in fake:
        loss = loss + torch.mean((1 - g.float()) ** 2)
    return loss


def feature_loss(fmap_real: list[list[torch.Tensor]], fmap_fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean |D features of real - of generated|, summed over every layer of every
    discriminator (unweighted; RVC's x2 is applied by the caller via c_fm).  Real
    features are targets, so no gradient flows into them."""
    loss = torch.zeros((), device=fmap_real[0][0].device)
    for dr, dg in zip(fmap_real, fmap_fake):
        for r, g in zip(dr, dg):
            loss = loss + torch.mean(torch.abs(r.float().detach() - g.float()))
    return loss


def kl_loss(z_p: torch.Tensor, logs_q: torch.Tensor, m_p: torch.Tensor, logs_p: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(posterior || prior) per valid latent frame, with z_p the flowed posterior sample
    (VITS' single-sample estimate)."""
    z_p, logs_q, m_p, logs_p = (t.float() for t in (z_p, logs_q, m_p, logs_p))
    kl = logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p) ** 2 * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * mask) / torch.sum(mask)


def mel_l1(mel_real: torch.Tensor, mel_fake: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.l1_loss(mel_fake.float(), mel_real.float())
