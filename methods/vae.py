"""(β-)VAEs for VarMixup, their training, and an on-disk cache keyed by everything that determines them.

Two architectures (``ARCHITECTURES``) share one interface (:class:`VAE`): ``conv``, the original small
stride-2 conv encoder/decoder, and ``resnet``, the same down/up-sampling path with a residual block at every
resolution and a full-resolution stem and head (more capacity, several times the compute). Two
likelihoods: ``bernoulli`` (binary cross-entropy on pixels in [0, 1]) and ``gaussian``, a Gaussian with one
shared variance set to its maximum-likelihood value, the batch's reconstruction MSE (the "optimal σ-VAE" of
Rybkin, Daniilidis & Levine, ICML 2021). The Bernoulli likelihood behaves like a Gaussian of variance
p(1−p) ≈ 0.25 on mid-grey pixels, far broader than the real reconstruction error, so the KL term dominates
and decodes are blurry; the calibrated Gaussian weighs reconstruction by how good it actually is.

The cache stores weights and metadata apart, so nothing in a shared cache folder is ever unpickled:
``<key>.pt`` holds only the state dict (read with ``torch.load(weights_only=True)``) and ``<key>.json``
the spec, training record and the weights' SHA-256 (written last, so it marks a complete entry). An
entry that is missing a part, does not match, or fails to load is retrained with a warning.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vicinal.core.errors import VicinalError
from vicinal.core.io import atomic_torch_save, atomic_write_text, load_plain
from vicinal.core.reporting import Pacer, Reporter
from vicinal.data.datasets import ImageSet, count_train_batches, to_unit, train_batches
from vicinal.host.devices import to_device

#: Architecture name → version; bump a version when that network changes: it is part of the cache key.
ARCHITECTURES = {"conv": "convvae-v1", "resnet": "resvae-v1"}
LIKELIHOODS = ("bernoulli", "gaussian")
CACHE_FORMAT = 2  # 1: one pickle with spec, weights and info (loaded with weights_only=False); 2: .pt + .json
# The Gaussian likelihood's variance is the batch MSE, floored so that a near-perfect batch cannot blow
# the reconstruction weight up (σ ≥ 0.01 on the [0, 1] pixel scale, well under one 8-bit level's 0.004²).
MIN_GAUSSIAN_VAR = 1e-4


class VAE(nn.Module):
    """Encoder to a fully connected Gaussian posterior N(μ, diag σ²), decoder from a latent to per-pixel
    logits; ``decode`` returns the means in [0, 1] (the sigmoid of the logits) for either likelihood."""

    encoder: nn.Module
    decoder: nn.Module
    feature_shape: tuple[int, int, int]

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, width: int):
        super().__init__()
        _, h, w = image_shape
        if h != w or h < 8 or 2 ** round(math.log2(h)) != h:
            raise VicinalError(f"the VAE needs square images with a power-of-two side ≥ 8, got {h}×{w}")
        if latent_dim < 1 or width < 1:
            raise VicinalError(f"the VAE needs latent_dim ≥ 1 and width ≥ 1, got {latent_dim}, {width}")
        self.latent_dim = latent_dim
        # Channels per stride-2 stage, down to 4×4, capped so 64-px images stay affordable.
        self.stage_channels = [min(width * 2**i, 256) for i in range(int(math.log2(h)) - 2)]

    def _heads(self, flat: int) -> None:
        self.to_mu = nn.Linear(flat, self.latent_dim)
        self.to_logvar = nn.Linear(flat, self.latent_dim)
        self.from_z = nn.Linear(self.latent_dim, flat)

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


class ConvVAE(VAE):
    """Stride-2 conv–BN–LeakyReLU encoder down to 4×4, mirrored transposed-conv decoder (``conv``)."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int = 128, width: int = 32):
        super().__init__(image_shape, latent_dim, width)
        c = image_shape[0]
        chans = self.stage_channels
        enc: list[nn.Module] = []
        cin = c
        for cout in chans:
            enc += [nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
            cin = cout
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        self.feature_shape = (cin, 4, 4)
        self._heads(cin * 16)
        dec: list[nn.Module] = []
        for cout in [*reversed(chans[:-1]), None]:
            if cout is None:
                dec += [nn.ConvTranspose2d(cin, c, 4, 2, 1)]
            else:
                dec += [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
                cin = cout
        self.decoder = nn.Sequential(*dec)


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv(act(bn(conv(act(bn(x)))))), 3×3 convolutions."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResVAE(VAE):
    """``resnet``: a 3×3 stem at full resolution, then per stage a stride-2 conv and a residual block, down
    to 4×4; the decoder mirrors it (residual block, stride-2 transposed conv) and ends in a 3×3 head at
    full resolution. Same latent interface as :class:`ConvVAE`, about 10× its compute at equal width."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int = 128, width: int = 32):
        super().__init__(image_shape, latent_dim, width)
        c = image_shape[0]
        chans = self.stage_channels
        enc: list[nn.Module] = [nn.Conv2d(c, width, 3, 1, 1)]
        cin = width
        for cout in chans:
            enc += [nn.BatchNorm2d(cin), nn.LeakyReLU(0.2), nn.Conv2d(cin, cout, 4, 2, 1), ResBlock(cout)]
            cin = cout
        self.encoder = nn.Sequential(*enc, nn.BatchNorm2d(cin), nn.LeakyReLU(0.2), nn.Flatten())
        self.feature_shape = (cin, 4, 4)
        self._heads(cin * 16)
        dec: list[nn.Module] = []
        for cout in [*reversed(chans[:-1]), width]:
            up = nn.ConvTranspose2d(cin, cout, 4, 2, 1)
            dec += [ResBlock(cin), nn.BatchNorm2d(cin), nn.LeakyReLU(0.2), up]
            cin = cout
        self.decoder = nn.Sequential(*dec, nn.BatchNorm2d(cin), nn.LeakyReLU(0.2), nn.Conv2d(cin, c, 3, 1, 1))


def build_vae(arch: str, image_shape: tuple[int, int, int], latent_dim: int, width: int = 32) -> VAE:
    """A fresh VAE of architecture ``arch`` (a key of ``ARCHITECTURES``)."""
    classes: dict[str, type[VAE]] = {"conv": ConvVAE, "resnet": ResVAE}
    if arch not in classes:
        raise VicinalError(f"unknown VAE architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
    return classes[arch](image_shape, latent_dim, width)


def reconstruction_nll(
    logits: torch.Tensor, x: torch.Tensor, likelihood: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image −log p(x | z) in nats (summed over pixels) and per-image MSE of the decoded means."""
    mean = torch.sigmoid(logits)
    se = (mean - x).pow(2).flatten(1)
    mse = se.mean(1)
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    elif likelihood == "gaussian":
        # One shared variance at its maximum-likelihood value (the batch MSE). It is detached: at the
        # optimum the gradient through σ² vanishes (envelope theorem), so this is the σ-VAE gradient.
        var = se.mean().detach().clamp_min(MIN_GAUSSIAN_VAR)
        d = se.shape[1]
        nll = se.sum(1) / (2 * var) + 0.5 * d * torch.log(2 * math.pi * var)
    else:
        raise VicinalError(f"unknown VAE likelihood {likelihood!r}; choose from {', '.join(LIKELIHOODS)}")
    return nll, mse


def vae_loss(
    vae: VAE, x: torch.Tensor, beta: float, eps: torch.Tensor, likelihood: str = "bernoulli"
) -> tuple[torch.Tensor, ...]:
    """Negative (β-weighted) ELBO per image; returns (loss, recon NLL, KL, MSE), means over the batch."""
    mu, logvar = vae.encode(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    recon, mse = reconstruction_nll(vae.decode_logits(z), x, likelihood)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
    return (recon + beta * kl).mean(), recon.mean(), kl.mean(), mse.mean()


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
    arch: str = "conv"
    likelihood: str = "bernoulli"
    width: int = 32

    @property
    def architecture(self) -> str:
        """The versioned network name (``convvae-v1``…), part of the key through ``as_dict``."""
        if self.arch not in ARCHITECTURES:
            choices = ", ".join(ARCHITECTURES)
            raise VicinalError(f"unknown VAE architecture {self.arch!r}; choose from {choices}")
        return ARCHITECTURES[self.arch]

    def as_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data, with the architecture's version and the cache format."""
        return {
            **asdict(self),
            "image_shape": list(self.image_shape),
            "architecture": self.architecture,
            "cache_format": CACHE_FORMAT,
        }

    def key(self) -> str:
        blob = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def reconstruction_mse(vae: VAE, images: torch.Tensor, device: torch.device, batch_size: int = 512) -> float:
    """Mean squared error (pixels in [0, 1]) of the posterior-mean reconstructions of uint8 ``images``."""
    was_training = vae.training
    vae.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = to_unit(images[start : start + batch_size], device)
            total += float(F.mse_loss(vae.reconstruct(x), x, reduction="sum")) / x[0].numel()
            n += len(x)
    vae.train(was_training)
    return total / max(n, 1)


def train_vae(spec: VAESpec, train: ImageSet, device: torch.device, reporter: Reporter) -> tuple[VAE, dict]:
    gen = torch.Generator().manual_seed(spec.seed)
    torch.manual_seed(spec.seed)
    vae = build_vae(spec.arch, spec.image_shape, spec.latent_dim, spec.width).to(device)
    opt = torch.optim.Adam(vae.parameters(), lr=spec.lr)
    n = len(train)
    steps = count_train_batches(n, spec.batch_size)
    task = reporter.task(f"VAE {spec.arch} β={spec.beta:g}", total=spec.epochs * steps)
    history = []
    pacer = Pacer()
    start = time.perf_counter()
    # As in the classifier's loop, no step waits for the GPU: the images live on the device (uint8), the
    # draws (made on the CPU, so a seed gives the same draws on every device) reach it asynchronously.
    images = train.images.to(device)
    for epoch in range(spec.epochs):
        vae.train()
        order = to_device(torch.randperm(n, generator=gen), device)
        # Sums kept on the device and read once per epoch: a .item() per step would make every step
        # wait for the GPU.
        sums = torch.zeros(4, dtype=torch.float64, device=device)
        seen = 0
        for idx in train_batches(order, spec.batch_size):
            x = to_unit(images[idx], device)
            eps = to_device(torch.randn((len(idx), spec.latent_dim), generator=gen), device)
            loss, recon, kl, mse = vae_loss(vae, x, spec.beta, eps, spec.likelihood)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums += torch.stack([loss, recon, kl, mse]).detach().double() * len(idx)
            seen += len(idx)
            task.advance(1)
        tot, rec, kld, sq = (v / max(seen, 1) for v in sums.tolist())
        history.append({"epoch": epoch + 1, "neg_elbo": tot, "recon_nll": rec, "kl": kld, "sampled_mse": sq})
        if pacer.due(last=epoch + 1 == spec.epochs):
            task.line(f"epoch {epoch + 1}/{spec.epochs}", recon=f"{rec:.1f}", KL=f"{kld:.1f}")
    vae.eval()
    mse = reconstruction_mse(vae, train.images[: min(n, 2048)], device)
    info = {
        "train_seconds": round(time.perf_counter() - start, 2),
        "final": history[-1] if history else {},
        "recon_mse_train": mse,
        "parameters": sum(p.numel() for p in vae.parameters()),
        "history": history,
    }
    task.line("trained", recon=f"{info['final'].get('recon_nll', float('nan')):.1f}", MSE=f"{mse:.4f}")
    task.close()
    return vae, info


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_paths(spec: VAESpec, cache_dir: Path) -> tuple[Path, Path]:
    """(weights, metadata) files of ``spec``'s cache entry."""
    stem = cache_dir / "vae" / spec.key()
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def read_cached_vae(spec: VAESpec, cache_dir: Path, device: torch.device) -> tuple[VAE, dict]:
    """The cached VAE for ``spec`` and its training record. Raises on anything missing or inconsistent;
    the weights are read with ``weights_only=True``, so a crafted file cannot run code."""
    weights, meta_path = cache_paths(spec, cache_dir)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("spec") != spec.as_dict():
        raise ValueError("its metadata describes a different VAE")
    if meta.get("weights_sha256") != _sha256(weights):
        raise ValueError("its weights do not match the checksum in its metadata")
    state = load_plain(weights, map_location=device)
    vae = build_vae(spec.arch, spec.image_shape, spec.latent_dim, spec.width).to(device)
    vae.load_state_dict(state)  # strict: a missing or extra tensor is an error
    if not isinstance(meta.get("info"), dict):
        raise ValueError("its metadata has no training record")
    return vae, meta["info"]


def write_cached_vae(spec: VAESpec, vae: VAE, info: dict, cache_dir: Path) -> None:
    """Write the weights, then the metadata naming their checksum: an interrupted write leaves an entry
    that fails the checksum (and is retrained), never a mismatched pair that loads."""
    weights, meta_path = cache_paths(spec, cache_dir)
    atomic_torch_save({k: v.detach().cpu() for k, v in vae.state_dict().items()}, weights)
    meta = {"spec": spec.as_dict(), "weights_sha256": _sha256(weights), "info": info}
    atomic_write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True))


def load_or_train_vae(
    spec: VAESpec, train: ImageSet, device: torch.device, cache_dir: Path, reporter: Reporter
) -> tuple[VAE, dict]:
    """Return a frozen VAE for ``spec``: from the cache when a complete, matching entry is there, else
    trained and cached. A damaged or unsafe entry is retrained with a warning (``reporter.warn``)."""
    weights, meta_path = cache_paths(spec, cache_dir)
    if weights.is_file() or meta_path.is_file():
        try:
            vae, info = read_cached_vae(spec, cache_dir, device)
        except Exception as exc:  # a damaged or tampered entry costs a retrain, never the run
            reporter.warn(f"VAE cache entry {weights} unusable ({type(exc).__name__}: {exc}); retraining")
        else:
            vae.eval().requires_grad_(False)
            return vae, {**info, "cache": "reused", "cache_path": str(weights)}
    vae, info = train_vae(spec, train, device, reporter)
    write_cached_vae(spec, vae, info, cache_dir)
    vae.eval().requires_grad_(False)
    return vae, {**info, "cache": "trained", "cache_path": str(weights)}
