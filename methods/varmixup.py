"""VarMixup (Mangla et al., 2020, arXiv 2003.06566): mixup in the latent space of a (β-)VAE.

The VAE is trained first on the training split (cached on disk, then frozen). Per batch, both images
of a pair are encoded to Gaussian posteriors, the posteriors are mixed with λ ~ Beta(α, α), a latent is
drawn from the mixed posterior (or its mean is taken), decoded, and the classifier is trained on the
decoded images with labels mixed by λ. Choices the paper leaves open are hyperparameters here.
"""

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from vicinal.hparams import hp
from vicinal.method import (
    Method,
    PrepareContext,
    Preview,
    StepOutput,
    interpolate,
    mixed_correct,
    mixed_cross_entropy,
    register_method,
)
from vicinal.rng import RunRandom
from vicinal.vae import ConvVAE, VAESpec, load_or_train_vae


@dataclass
class VarMixupConfig:
    alpha: float = hp(1.0, "Beta(α, α) parameter of λ")
    beta: float = hp(1.0, "weight of the KL term of the VAE (1 = VAE, > 1 = β-VAE)")
    latent_dim: int = hp(128, "size of the VAE's latent space")
    vae_epochs: int = hp(30, "VAE training epochs (Adam)")
    vae_lr: float = hp(1e-3, "VAE learning rate (Adam)")
    vae_batch_size: int = hp(128, "VAE batch size")
    mix: Literal["sample", "means"] = hp(
        "sample",
        "sample: interpolate μ and σ, draw z ~ N(μ̃, σ̃²); means: decode the interpolated μ",
        choices=("sample", "means"),
    )
    train_on: Literal["decoded", "decoded+clean"] = hp(
        "decoded+clean",
        "decoded: only the decoded mixes; decoded+clean: add plain CE on the clean batch",
        choices=("decoded", "decoded+clean"),
    )

    def validate(self) -> None:
        if self.alpha < 0 or self.beta <= 0 or self.latent_dim < 1 or self.vae_epochs < 1:
            raise ValueError("need alpha ≥ 0, beta > 0, latent_dim ≥ 1, vae_epochs ≥ 1")


@dataclass
class LatentMix:
    images: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: float
    perm: torch.Tensor


def latent_mix(
    vae: ConvVAE, x: torch.Tensor, y: torch.Tensor, lam: float, perm: torch.Tensor, mode: str, rng: RunRandom
) -> LatentMix:
    """Decode the mixture of the posteriors of x and x[perm] (μ and σ interpolated by λ)."""
    with torch.no_grad():
        mu, logvar = vae.encode(x)
        mu_mix = interpolate(mu, perm, lam)
        if mode == "means":
            z = mu_mix
        else:
            z = mu_mix + interpolate(torch.exp(0.5 * logvar), perm, lam) * rng.normal_like(mu_mix)
        images = vae.decode(z)
    return LatentMix(images, y, y[perm], lam, perm)


@register_method("varmixup")
class VarMixup(Method):
    mixes_in = "latent"
    summary = "VarMixup: mix VAE posteriors of a pair, decode, train on decoded images with λ-mixed labels."
    Config = VarMixupConfig

    def prepare(self, ctx: PrepareContext) -> dict:
        c = self.config
        spec = VAESpec(
            ctx.dataset,
            ctx.data_fingerprint,
            tuple(ctx.train.images.shape[1:]),
            c.latent_dim,
            c.beta,
            c.vae_epochs,
            c.vae_lr,
            c.vae_batch_size,
            ctx.seed,
        )
        self.vae, info = load_or_train_vae(spec, ctx.train, ctx.device, ctx.cache_dir, ctx.reporter)
        return {"vae": {"key": spec.key(), "architecture": spec.architecture, **info}}

    def training_step(self, model, x, y, rng):
        lam = rng.beta(self.config.alpha)
        perm = rng.permutation(len(x), x.device)
        mix = latent_mix(self.vae, x, y, lam, perm, self.config.mix, rng)
        if self.config.train_on == "decoded":
            logits = model(mix.images)
            loss = mixed_cross_entropy(logits, mix.y_a, mix.y_b, lam)
            return StepOutput(loss, mixed_correct(logits, mix.y_a, mix.y_b, lam), len(y))
        # One forward over both halves keeps batch-norm statistics shared, as a single batch would.
        logits = model(torch.cat([mix.images, x]))
        mixed_logits, clean_logits = logits[: len(x)], logits[len(x) :]
        loss = mixed_cross_entropy(mixed_logits, mix.y_a, mix.y_b, lam) + F.cross_entropy(clean_logits, y)
        correct = mixed_correct(mixed_logits, mix.y_a, mix.y_b, lam) + float(
            (clean_logits.argmax(1) == y).sum()
        )
        return StepOutput(loss, correct, 2 * len(y))

    def preview(self, x, y, perm, rng):
        lam = rng.beta(self.config.alpha)
        mix = latent_mix(self.vae, x, y, lam, perm, self.config.mix, rng)
        with torch.no_grad():
            recon = self.vae.reconstruct(x)
        what = "a latent drawn from the mixed posterior" if self.config.mix == "sample" else "the mixed mean"
        return Preview(
            {
                "image A": x,
                "image B": x[perm],
                "VAE reconstruction A": recon,
                "VAE reconstruction B": recon[perm],
                f"decoded mix, λ = {lam:.2f}": mix.images,
            },
            f"decodes {what} (β = {self.config.beta:g}); trained on with labels mixed by λ"
            + (" beside the clean batch" if self.config.train_on == "decoded+clean" else ""),
        )


@register_method("varmixup-beta")
class VarMixupBeta(VarMixup):
    summary = "VarMixup with a β-VAE (β = 4 by default): a smoother, more disentangled latent space."

    @dataclass
    class Config(VarMixupConfig):
        beta: float = hp(4.0, "weight of the KL term of the VAE (> 1: β-VAE)")
