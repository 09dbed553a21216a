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
from vicinal.methods.vae import VAE, VAESpec, load_or_train_vae

from vicinal.core.hparams import hp
from vicinal.training.method import (
    Method,
    PrepareContext,
    Preview,
    StepOutput,
    interpolate,
    mixed_correct,
    mixed_cross_entropy,
    register_method,
)
from vicinal.training.rng import RunRandom


@dataclass
class VarMixupConfig:
    alpha: float = hp(1.0, "Beta(α, α) parameter of λ", ge=0)
    beta: float = hp(1.0, "weight of the KL term of the VAE (1 = VAE, > 1 = β-VAE)", gt=0)
    latent_dim: int = hp(128, "size of the VAE's latent space", ge=1, le=4096)
    vae_epochs: int = hp(30, "VAE training epochs (Adam)", ge=1, le=100_000)
    vae_lr: float = hp(1e-3, "VAE learning rate (Adam)", gt=0)
    vae_batch_size: int = hp(128, "VAE batch size", ge=2, le=65_536)
    vae_arch: Literal["conv", "resnet"] = hp(
        "conv",
        "conv: stride-2 conv encoder/decoder; resnet: the same path with a residual block per resolution "
        "and full-resolution stem and head (more capacity, several times the compute)",
    )
    vae_width: int = hp(
        32, "channels of the VAE's first stage (doubling per stage, at most 256)", ge=1, le=256
    )
    vae_likelihood: Literal["bernoulli", "gaussian"] = hp(
        "bernoulli",
        "bernoulli: cross-entropy on pixels in [0, 1]; gaussian: one shared variance set to the batch's "
        "reconstruction MSE (optimal σ-VAE, Rybkin et al. 2021)",
    )
    mix: Literal["sample", "means"] = hp(
        "sample",
        "sample: interpolate μ and σ, draw z ~ N(μ̃, σ̃²); means: decode the interpolated μ",
    )
    train_on: Literal["decoded", "decoded+clean", "half"] = hp(
        "decoded+clean",
        "decoded: only the decoded mixes; decoded+clean: add plain CE on the clean batch (twice the "
        "images per step); half: equal compute, the first ⌈n/2⌉ images of the batch replaced by decoded "
        "mixes among themselves, the rest clean, one mean loss over the n images",
    )


@dataclass
class LatentMix:
    images: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: float
    perm: torch.Tensor


def latent_mix(
    vae: VAE, x: torch.Tensor, y: torch.Tensor, lam: float, perm: torch.Tensor, mode: str, rng: RunRandom
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


def half_split(n: int) -> int:
    """How many of a batch of ``n`` images ``train_on = "half"`` replaces by decoded mixes: ⌈n/2⌉."""
    return n - n // 2


@register_method("varmixup")
class VarMixup(Method):
    mixes_in = "latent"
    summary = "VarMixup: mix VAE posteriors of a pair, decode, train on decoded images with λ-mixed labels."
    Config = VarMixupConfig

    def vae_spec(
        self, dataset: str, fingerprint: str, image_shape: tuple[int, int, int], seed: int
    ) -> VAESpec:
        """The VAE this configuration trains for a run (public so studies can pre-train and measure it)."""
        c = self.config
        return VAESpec(
            dataset,
            fingerprint,
            image_shape,
            c.latent_dim,
            c.beta,
            c.vae_epochs,
            c.vae_lr,
            c.vae_batch_size,
            seed,
            arch=c.vae_arch,
            likelihood=c.vae_likelihood,
            width=c.vae_width,
        )

    def prepare(self, ctx: PrepareContext) -> dict:
        spec = self.vae_spec(ctx.dataset, ctx.data_fingerprint, tuple(ctx.train.images.shape[1:]), ctx.seed)
        self.vae, info = load_or_train_vae(spec, ctx.train, ctx.device, ctx.cache_dir, ctx.reporter)
        return {"vae": {"key": spec.key(), "architecture": spec.architecture, **info}}

    def training_step(self, model, x, y, rng):
        c = self.config
        lam = rng.beta(c.alpha)
        if c.train_on == "half":
            # Equal compute: one batch of the suite's size, its first ⌈n/2⌉ images (a random half, as
            # batches are shuffled) replaced by decoded mixes of pairs among themselves, the rest clean.
            # Every image counts once in one mean loss, as in ERM, so the step's cost and loss scale are
            # ERM's (plus the VAE's forward pass on half a batch).
            m = half_split(len(x))
            perm = rng.permutation(m, x.device)
            mix = latent_mix(self.vae, x[:m], y[:m], lam, perm, c.mix, rng)
            logits = model(torch.cat([mix.images, x[m:]]))
            mixed_logits, clean_logits = logits[:m], logits[m:]
            mixed_sum = m * mixed_cross_entropy(mixed_logits, mix.y_a, mix.y_b, lam)
            clean_sum = F.cross_entropy(clean_logits, y[m:], reduction="sum")
            # Correct counts stay tensors on the device: float() here would make every step wait.
            clean_correct = (clean_logits.argmax(1) == y[m:]).sum()
            correct = mixed_correct(mixed_logits, mix.y_a, mix.y_b, lam) + clean_correct
            return StepOutput((mixed_sum + clean_sum) / len(x), correct, len(x))
        perm = rng.permutation(len(x), x.device)
        mix = latent_mix(self.vae, x, y, lam, perm, c.mix, rng)
        if c.train_on == "decoded":
            logits = model(mix.images)
            loss = mixed_cross_entropy(logits, mix.y_a, mix.y_b, lam)
            return StepOutput(loss, mixed_correct(logits, mix.y_a, mix.y_b, lam), len(y))
        # One forward over both halves keeps batch-norm statistics shared, as a single batch would.
        logits = model(torch.cat([mix.images, x]))
        mixed_logits, clean_logits = logits[: len(x)], logits[len(x) :]
        loss = mixed_cross_entropy(mixed_logits, mix.y_a, mix.y_b, lam) + F.cross_entropy(clean_logits, y)
        correct = mixed_correct(mixed_logits, mix.y_a, mix.y_b, lam) + (clean_logits.argmax(1) == y).sum()
        # The classifier saw 2n images this step (n decoded mixes and the n clean ones).
        return StepOutput(loss, correct, 2 * len(y))

    def preview(self, x, y, perm, rng):
        lam = rng.beta(self.config.alpha)
        mix = latent_mix(self.vae, x, y, lam, perm, self.config.mix, rng)
        with torch.no_grad():
            recon = self.vae.reconstruct(x)
        what = "a latent drawn from the mixed posterior" if self.config.mix == "sample" else "the mixed mean"
        beside = {
            "decoded": "",
            "decoded+clean": " beside the clean batch",
            "half": " in half of each batch, clean images in the other half",
        }[self.config.train_on]
        return Preview(
            {
                "image A": x,
                "image B": x[perm],
                "VAE reconstruction A": recon,
                "VAE reconstruction B": recon[perm],
                f"decoded mix, λ = {lam:.2f}": mix.images,
            },
            f"decodes {what} ({self.config.vae_arch} VAE, {self.config.vae_likelihood} likelihood, "
            f"β = {self.config.beta:g}); trained on with labels mixed by λ{beside}",
        )


@register_method("varmixup-beta")
class VarMixupBeta(VarMixup):
    summary = "VarMixup with a β-VAE (β = 4 by default): a smoother, more disentangled latent space."

    @dataclass
    class Config(VarMixupConfig):
        beta: float = hp(4.0, "weight of the KL term of the VAE (> 1: β-VAE)", gt=0)
