"""Standard CIFAR augmentation (random crop from a zero-padded image, horizontal flip), batched on device."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vicinal.host.devices import to_device
from vicinal.training.rng import RunRandom


def random_crop_flip(
    x: torch.Tensor, rng: RunRandom, pad: int = 4, crop: bool = True, flip: bool = True
) -> torch.Tensor:
    """Each image gets its own crop offset in [0, 2·pad] and a fair coin for the horizontal flip (drawn on
    the CPU by ``rng`` and sent to the images' device asynchronously)."""
    n, _, h, w = x.shape
    if crop and pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        offsets = to_device((rng.uniform((2, n)) * (2 * pad + 1)).long().clamp_max(2 * pad), x.device)
        rows = (offsets[0, :, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (offsets[1, :, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    if flip:
        mask = to_device(rng.uniform((n,)) < 0.5, x.device)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x
