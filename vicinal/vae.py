"""A convolutional (β-)VAE for VarMixup, with training and an on-disk cache keyed by what determines it."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vicinal.datasets import ImageSet, count_train_batches, to_unit, train_batches
from vicinal.errors import VicinalError
from vicinal.io import atomic_torch_save
from vicinal.reporting import Reporter

ARCHITECTURE = "convvae-v1"  # bump when the network below changes: it is part of the cache key


class ConvVAE(nn.Module):
    """Stride-2 conv encoder down to 4×4, fully connected Gaussian posterior, mirrored decoder.

    The decoder outputs Bernoulli logits per pixel; ``decode`` returns the means in [0, 1].
    """

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int = 128, width: int = 32):
        super().__init__()
        c, h, w = image_shape
        if h != w or h < 8 or 2 ** round(math.log2(h)) != h:
            raise VicinalError(f"the VAE needs square images with a power-of-two side ≥ 8, got {h}×{w}")
        n_down = int(math.log2(h)) - 2
        chans = [min(width * 2**i, 256) for i in range(n_down)]
        enc: list[nn.Module] = []
        cin = c
        for cout in chans:
            enc += [nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
            cin = cout
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        self.feature_shape = (cin, 4, 4)
        flat = cin * 16
        self.to_mu = nn.Linear(flat, latent_dim)
        self.to_logvar = nn.Linear(flat, latent_dim)
        self.from_z = nn.Linear(latent_dim, flat)
        dec: list[nn.Module] = []
        for cout in [*reversed(chans[:-1]), None]:
            if cout is None:
                dec += [nn.ConvTranspose2d(cin, c, 4, 2, 1)]
            else:
                dec += [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
                cin = cout
        self.decoder = nn.Sequential(*dec)
        self.latent_dim = latent_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior N(μ, σ²) of images in [0, 1]: returns (μ, log σ²)."""
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h).clamp(-12.0, 8.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(F.leaky_relu(self.from_z(z), 0.2).view(-1, *self.feature_shape))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior-mean reconstruction decode(μ(x))."""
        return self.decode(self.encode(x)[0])


def vae_loss(vae: ConvVAE, x: torch.Tensor, beta: float, eps: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Negative ELBO per image (Bernoulli likelihood, β-weighted KL); returns (loss, recon, kl)."""
    mu, logvar = vae.encode(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    recon = F.binary_cross_entropy_with_logits(vae.decode_logits(z), x, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
    return (recon + beta * kl).mean(), recon.mean(), kl.mean()


@dataclass(frozen=True)
class VAESpec:
    """Everything that determines a trained VAE; its hash is the cache key."""

    dataset: str
    data_fingerprint: str
    image_shape: tuple[int, int, int]
    latent_dim: int
    beta: float
    epochs: int
    lr: float
    batch_size: int
    seed: int
    architecture: str = ARCHITECTURE

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def train_vae(
    spec: VAESpec, train: ImageSet, device: torch.device, reporter: Reporter
) -> tuple[ConvVAE, dict]:
    gen = torch.Generator().manual_seed(spec.seed)
    torch.manual_seed(spec.seed)
    vae = ConvVAE(spec.image_shape, spec.latent_dim).to(device)
    opt = torch.optim.Adam(vae.parameters(), lr=spec.lr)
    n = len(train)
    steps = count_train_batches(n, spec.batch_size)
    task = reporter.task(f"VAE β={spec.beta:g}", total=spec.epochs * steps)
    history = []
    start = time.perf_counter()
    for epoch in range(spec.epochs):
        vae.train()
        order = torch.randperm(n, generator=gen)
        tot = rec = kld = 0.0
        seen = 0
        for idx in train_batches(order, spec.batch_size):
            x = to_unit(train.images[idx], device)
            eps = torch.randn((len(idx), spec.latent_dim), generator=gen).to(device)
            loss, recon, kl = vae_loss(vae, x, spec.beta, eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
            rec += recon.item() * len(idx)
            kld += kl.item() * len(idx)
            seen += len(idx)
            task.advance(
                1, recon=f"{rec / seen:.1f}", KL=f"{kld / seen:.1f}", epoch=f"{epoch + 1}/{spec.epochs}"
            )
        history.append(
            {"epoch": epoch + 1, "neg_elbo": tot / seen, "recon_bce": rec / seen, "kl": kld / seen}
        )
    vae.eval()
    with torch.no_grad():
        idx = torch.arange(min(n, 2048))
        x = to_unit(train.images[idx], device)
        mse = float(F.mse_loss(vae.reconstruct(x), x))
    info = {
        "train_seconds": round(time.perf_counter() - start, 2),
        "final": history[-1] if history else {},
        "recon_mse_train": mse,
        "history": history,
    }
    task.line("trained", recon=f"{info['final'].get('recon_bce', float('nan')):.1f}", MSE=f"{mse:.4f}")
    return vae, info


def load_or_train_vae(
    spec: VAESpec, train: ImageSet, device: torch.device, cache_dir: Path, reporter: Reporter
) -> tuple[ConvVAE, dict]:
    """Return a frozen VAE for ``spec``: from the cache when present, else trained and cached."""
    path = cache_dir / "vae" / f"{spec.key()}.pt"
    if path.is_file():
        try:
            blob = torch.load(path, map_location=device, weights_only=False)
            vae = ConvVAE(spec.image_shape, spec.latent_dim).to(device)
            vae.load_state_dict(blob["state_dict"])
            info = {**blob["info"], "cache": "reused", "cache_path": str(path)}
        except Exception as exc:  # a damaged cache entry is retrained, not fatal
            reporter.warn(f"VAE cache {path} unreadable ({exc}); retraining")
        else:
            vae.eval().requires_grad_(False)
            return vae, info
    vae, info = train_vae(spec, train, device, reporter)
    atomic_torch_save({"spec": asdict(spec), "state_dict": vae.state_dict(), "info": info}, path)
    vae.eval().requires_grad_(False)
    return vae, {**info, "cache": "trained", "cache_path": str(path)}
