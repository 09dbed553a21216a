"""AugMix (Hendrycks, Mu, Cubuk, Zoph, Gilmer & Lakshminarayanan, ICLR 2020, arXiv 1912.02781).

Each training image x gets two AugMix views. A view mixes ``width`` = 3 augmentation chains: chain i
applies ``depth`` operations (drawn uniformly from 1–3 per chain when ``depth = -1``), each drawn
uniformly from the operations below with a magnitude level ~ U(0.1, severity), severity 3; the chains
are combined with weights w ~ Dirichlet(α, …, α) and the result with the clean image by m ~ Beta(α, α):
x̃ = (1 − m)·x + m·Σ_i w_i·chain_i(x), α = 1. The classifier sees x and both views in one forward pass
(3n images per step) and the loss is CE(p_clean, y) + λ·JS(p_clean, p_aug1, p_aug2), λ = 12, the
Jensen–Shannon divergence of the three predictive distributions from their mean (clamped at 1e-7 before
the log, as the reference does). ``jsd = false`` is the paper's ablation without the consistency loss:
CE on one AugMix view per image, n images per step — the equal-compute variant.

Operations: the reference's ``augmentations`` list — autocontrast, equalize, posterize, rotate,
solarize, shear_x, shear_y, translate_x, translate_y — never its ``augmentations_all``, whose extra
contrast, color, brightness and sharpness are the test corruptions' own transforms (contrast,
saturate, brightness, and the blurs' opposite); ``EXCLUDED`` names them and the corruption each
overlaps, and the tests check the list stays disjoint from vicinal's corruptions. Magnitudes follow the
reference's mapping of a level in [0.1, severity) onto each operation: posterize keeps 4 − ⌊4ℓ/10⌋ bits,
rotate by ±⌊3ℓ⌋ degrees, solarize above 256 − ⌊25.6ℓ⌋, shear by ±0.03ℓ, translate by ±⌊ℓ·size/30⌋ px,
the sign a fair coin.

Fidelity (tests/test_augmix.py, against google-research/augmix at 9b9824c, run with Pillow 13.0.0):
every operation, for the same uint8 image, level and sign, is bit-identical to the reference's PIL
operation; a whole view for draws recorded from the reference's training augmentation (``cifar.py``
``aug``) has bit-identical chains and equals its mix to float rounding; the consistency loss for fixed
logits equals the reference's; and over many draws the mean change a view makes to an image matches the
reference's within the stated statistical tolerance.

Where vicinal differs from the reference code, and why:

- **Batched on the training device.** The reference runs PIL image by image in DataLoader workers; here
  every operation is a torch kernel over the images of the batch that drew it: equalize is
  torchvision's (which reproduces PIL's), autocontrast, posterize and solarize are per-image lookup
  tables and comparisons, and rotate, shear and translate are one affine warp per chain step that
  reproduces PIL's BILINEAR transform (sampling at pixel centres, edge-clamped neighbours inside the
  image, zero outside, truncation to uint8). torchvision's tensor affine (``grid_sample``) blends with
  zeros at the borders and rounds instead of truncating, and its posterize and solarize take one
  parameter per call rather than one per image, so those are written here. No operation runs per image.
- **Randomness.** All draws for a batch come at once from the run's numpy generator; the reference
  draws image by image from numpy's global state. Same distributions, different streams — hence the
  statistical test beside the exact ones.
- **Image size.** The reference's shear and translate assume ``IMAGE_SIZE = 32`` (its ImageNet script
  sets 224); vicinal uses the batch's own height and width (translate_y uses the height).
- **Mixing space.** The reference mixes normalised images ((x − 0.5)/0.5); vicinal mixes in [0, 1] and
  normalises inside the model. The mix is convex, so the two agree up to float rounding (< 1e-6).
- **Correct predictions** for the progress bar count all three views (their label is y).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vicinal import Method, Preview, StepOutput, hp, register_method
from vicinal.host.devices import to_device

#: The reference's ``augmentations.augmentations``, in its order (an operation's index is its draw).
OPERATIONS = (
    "autocontrast",
    "equalize",
    "posterize",
    "rotate",
    "solarize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
#: Left out, as in the paper (Sec. 4) and the reference's default list: each is, or undoes, a test
#: corruption — the vicinal corruption(s) it overlaps.
EXCLUDED = {
    "contrast": ("contrast",),
    "color": ("saturate",),
    "brightness": ("brightness",),
    "sharpness": ("defocus_blur", "gaussian_blur"),
}
#: The longest chain drawn when ``depth = -1``.
MAX_RANDOM_DEPTH = 3


@dataclass
class AugMixDraws:
    """Everything random in a batch of AugMix views, one row per image (host numpy arrays)."""

    ops: np.ndarray  # (n, width, steps) int: index into OPERATIONS
    levels: np.ndarray  # (n, width, steps) float64: magnitude level ~ U(0.1, severity)
    signs: np.ndarray  # (n, width, steps) ±1: direction of rotate, shear and translate
    depth: np.ndarray  # (n, width) int: how many of the steps each chain applies
    weights: np.ndarray  # (n, width) float32 ~ Dirichlet(α, …, α): the chains' weights
    m: np.ndarray  # (n,) float32 ~ Beta(α, α): the weight of the chains' mix against the clean image


def draw(
    n: int, width: int, depth: int, severity: float, alpha: float, gen: np.random.Generator
) -> AugMixDraws:
    """The random choices of ``n`` AugMix views (as the reference's ``aug``, for a whole batch at once)."""
    steps = depth if depth > 0 else MAX_RANDOM_DEPTH
    weights = gen.dirichlet([alpha] * width, size=n).astype(np.float32)
    m = gen.beta(alpha, alpha, size=n).astype(np.float32)
    depths = np.full((n, width), depth) if depth > 0 else gen.integers(1, MAX_RANDOM_DEPTH + 1, (n, width))
    ops = gen.integers(len(OPERATIONS), size=(n, width, steps))
    levels = gen.uniform(0.1, severity, size=(n, width, steps))
    signs = np.where(gen.random((n, width, steps)) > 0.5, -1, 1)
    return AugMixDraws(ops, levels, signs, depths, weights, m)


# ---------------------------------------------------------------- the operations, batched (uint8 N×C×H×W)


def autocontrast(images: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.autocontrast`` (no cutoff): per channel, stretch [min, max] onto [0, 255]."""
    flat = images.flatten(-2)
    lo, hi = flat.amin(-1).double(), flat.amax(-1).double()
    # A true division: torch turns ``255.0 / tensor`` into 255·(1/tensor), which differs from PIL's
    # 255.0 / (hi − lo) in the last bit and moved a pixel from 255 to 254.
    scale = torch.full_like(lo, 255.0) / (hi - lo).clamp_min(1)
    offset = -lo * scale
    ix = torch.arange(256, dtype=torch.float64, device=images.device)
    lut = (ix * scale[..., None] + offset[..., None]).floor().clamp(0, 255)
    lut = torch.where((hi > lo)[..., None], lut, ix).to(torch.uint8)
    return lut.gather(-1, flat.long()).view_as(images)


def equalize(images: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.equalize`` per channel (torchvision's batched kernel, which reproduces it)."""
    from torchvision.transforms.v2.functional import equalize as tv_equalize

    return tv_equalize(images.contiguous())


def posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.posterize``: keep the top ``bits`` bits of every value (one count per image)."""
    keep = (255 - (2 ** (8 - bits) - 1)).to(torch.uint8)
    return images & keep[:, None, None, None]


def on(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A step's draws on the training device, sent without making the host wait for the GPU."""
    return to_device(torch.as_tensor(array), device)


def solarize(images: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.solarize``: invert the values at or above the image's threshold (up to 256)."""
    return torch.where(images >= threshold[:, None, None, None], 255 - images, images)


def affine(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """PIL's ``Image.transform(size, AFFINE, matrix, BILINEAR)`` for each image's own matrix (K×6, the
    output-to-input map (a, b, c, d, e, f)): the pixel centre (x + ½, y + ½) is sampled at (a·x' + b·y' + c,
    d·x' + e·y' + f), bilinearly from edge-clamped neighbours, 0 outside the image, truncated to uint8 —
    PIL's ``bilinear_filter32RGB`` in double precision, so the result is bit-identical."""
    k, c, h, w = images.shape
    m = matrices.to(images.device, torch.float64)[:, :, None, None]
    xs = torch.arange(w, dtype=torch.float64, device=images.device) + 0.5
    ys = torch.arange(h, dtype=torch.float64, device=images.device)[:, None] + 0.5
    x_in = m[:, 0] * xs + m[:, 1] * ys + m[:, 2]
    y_in = m[:, 3] * xs + m[:, 4] * ys + m[:, 5]
    inside = (x_in >= 0) & (x_in < w) & (y_in >= 0) & (y_in < h)
    x_in, y_in = x_in - 0.5, y_in - 0.5
    x0, y0 = x_in.floor(), y_in.floor()
    dx, dy = (x_in - x0)[:, None], (y_in - y0)[:, None]
    x0, y0 = x0.long(), y0.long()
    left, right = x0.clamp(0, w - 1), (x0 + 1).clamp(0, w - 1)
    top, bottom = y0.clamp(0, h - 1), (y0 + 1).clamp(0, h - 1)
    flat = images.reshape(k, c, h * w).double()

    def at(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        index = (rows * w + cols).reshape(k, 1, h * w).expand(k, c, h * w)
        return flat.gather(2, index).view(k, c, h, w)

    upper = at(top, left) + (at(top, right) - at(top, left)) * dx
    lower = at(bottom, left) + (at(bottom, right) - at(bottom, left)) * dx
    value = upper + (lower - upper) * dy
    return torch.where(inside[:, None], value.trunc(), 0).to(torch.uint8)


@functools.lru_cache(maxsize=256)
def rotation_matrix(degrees: int, w: int, h: int) -> tuple[float, ...]:
    """The matrix PIL's ``Image.rotate(degrees, BILINEAR)`` hands to its transform (about the centre,
    same size), computed with PIL's own float operations so that the warp matches it bit for bit."""
    angle = degrees % 360.0
    if angle == 0:
        return (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    r = -math.radians(angle)
    a, b = round(math.cos(r), 15), round(math.sin(r), 15)
    d, e = round(-math.sin(r), 15), round(math.cos(r), 15)
    cx, cy = w / 2, h / 2
    return (a, b, a * -cx + b * -cy + 0.0 + cx, d, e, d * -cx + e * -cy + 0.0 + cy)


# Magnitudes: the reference's int_parameter(ℓ, max) = int(ℓ·max/10) and float_parameter(ℓ, max) = ℓ·max/10,
# evaluated in the same float64 order so that the integer cut-offs fall where the reference's do.


def rotate_matrices(levels: np.ndarray, signs: np.ndarray, h: int, w: int) -> np.ndarray:
    degrees = np.floor(levels * 30 / 10).astype(np.int64) * signs
    return np.array([rotation_matrix(int(d), w, h) for d in degrees]).reshape(-1, 6)


def shear_matrices(levels: np.ndarray, signs: np.ndarray, slot: int) -> np.ndarray:
    out = np.tile(np.array([1.0, 0, 0, 0, 1, 0]), (len(levels), 1))
    out[:, slot] = levels * 0.3 / 10.0 * signs
    return out


def translate_matrices(levels: np.ndarray, signs: np.ndarray, size: int, slot: int) -> np.ndarray:
    out = np.tile(np.array([1.0, 0, 0, 0, 1, 0]), (len(levels), 1))
    out[:, slot] = np.floor(levels * (size / 3) / 10) * signs
    return out


#: Operations that change values in place, given the images and their levels.
PIXEL_OPERATIONS: dict[str, Callable[[torch.Tensor, np.ndarray], torch.Tensor]] = {
    "autocontrast": lambda images, levels: autocontrast(images),
    "equalize": lambda images, levels: equalize(images),
    "posterize": lambda images, levels: posterize(
        images, on(4 - np.floor(levels * 4 / 10).astype(np.int64), images.device)
    ),
    "solarize": lambda images, levels: solarize(
        images, on(256 - np.floor(levels * 256 / 10).astype(np.int64), images.device)
    ),
}
#: Operations that move pixels: each image's affine matrix from its level, sign and the image size.
GEOMETRIC_OPERATIONS: dict[str, Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]] = {
    "rotate": rotate_matrices,
    "shear_x": lambda levels, signs, h, w: shear_matrices(levels, signs, 1),
    "shear_y": lambda levels, signs, h, w: shear_matrices(levels, signs, 3),
    "translate_x": lambda levels, signs, h, w: translate_matrices(levels, signs, w, 2),
    "translate_y": lambda levels, signs, h, w: translate_matrices(levels, signs, h, 5),
}


def apply_operations(
    images: torch.Tensor, ops: np.ndarray, levels: np.ndarray, signs: np.ndarray, active: np.ndarray
) -> torch.Tensor:
    """One chain step: image i gets operation ``OPERATIONS[ops[i]]`` at ``levels[i]``, ``signs[i]`` where
    ``active[i]``, else stays as it is. Each pixel operation runs once, over all the images that drew it,
    and the geometric ones share one warp."""
    out = images.clone()
    h, w = images.shape[-2:]
    warped, matrices = [], []
    for k, name in enumerate(OPERATIONS):
        rows = np.flatnonzero(active & (ops == k))
        if len(rows) == 0:
            continue
        if name in GEOMETRIC_OPERATIONS:
            warped.append(rows)
            matrices.append(GEOMETRIC_OPERATIONS[name](levels[rows], signs[rows], h, w))
            continue
        index = on(rows, images.device)
        out[index] = PIXEL_OPERATIONS[name](out[index], levels[rows])
    if warped:
        index = on(np.concatenate(warped), images.device)
        out[index] = affine(out[index], on(np.concatenate(matrices), images.device))
    return out


def chains(images: torch.Tensor, draws: AugMixDraws) -> list[torch.Tensor]:
    """The ``width`` augmentation chains of every image (uint8, as the reference's PIL images)."""
    out = []
    for i in range(draws.depth.shape[1]):
        chain = images.contiguous()
        for step in range(draws.ops.shape[2]):
            chain = apply_operations(
                chain,
                draws.ops[:, i, step],
                draws.levels[:, i, step],
                draws.signs[:, i, step],
                draws.depth[:, i] > step,
            )
        out.append(chain)
    return out


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] back to the 8-bit values they were made from (exact for vicinal's batches)."""
    return x if x.dtype == torch.uint8 else (x * 255).round_().clamp_(0, 255).to(torch.uint8)


def augment(x: torch.Tensor, draws: AugMixDraws) -> torch.Tensor:
    """AugMix views of a batch x (float in [0, 1], or uint8), as float in [0, 1]:
    (1 − m)·x + m·Σ_i w_i·chain_i(x)."""
    clean = x.float() / 255 if x.dtype == torch.uint8 else x
    weights = on(draws.weights, x.device)
    mix = torch.zeros_like(clean)
    for i, chain in enumerate(chains(to_uint8(x), draws)):
        mix += weights[:, i, None, None, None] * (chain.float() / 255)
    m = on(draws.m, x.device)[:, None, None, None]
    return (1 - m) * clean + m * mix


def jensen_shannon(*logits: torch.Tensor) -> torch.Tensor:
    """The reference's consistency term: mean over the distributions of KL(p_i ‖ M), M their mean clamped
    to [1e-7, 1] before the log, each KL averaged over the batch."""
    probs = [F.softmax(z.float(), dim=1) for z in logits]
    log_mixture = torch.clamp(sum(probs) / len(probs), 1e-7, 1).log()
    return sum(F.kl_div(log_mixture, p, reduction="batchmean") for p in probs) / len(probs)


@register_method("augmix")
class AugMix(Method):
    mixes_in = "input"
    summary = (
        "AugMix: two views per image, each a Dirichlet mix of 3 chains of 1–3 operations mixed with the "
        "image by m~Beta(1,1); CE on the clean image + 12·Jensen–Shannon over clean and views (3n/step)."
    )

    @dataclass
    class Config:
        severity: int = hp(
            3, "magnitude of the operations: levels are drawn from U(0.1, severity)", ge=1, le=10
        )
        width: int = hp(3, "augmentation chains mixed into a view", ge=1)
        depth: int = hp(-1, "operations per chain; -1: drawn uniformly from 1, 2, 3 for each chain", ge=-1)
        alpha: float = hp(1.0, "parameter of the chains' Dirichlet weights and of m ~ Beta(α, α)", gt=0)
        jsd: bool = hp(
            True,
            "true: the clean image and two views, CE + λ·JS consistency (3n images per step); false: CE on "
            "one view per image, n per step (the paper's ablation; equal compute)",
        )
        jsd_weight: float = hp(12.0, "λ, the weight of the Jensen–Shannon consistency term", ge=0)

        def validate(self) -> None:
            if self.depth == 0:
                raise ValueError("depth = 0 applies no operation: use -1 (1–3 at random) or a depth ≥ 1")

    def views(self, x: torch.Tensor, rng) -> torch.Tensor:
        c = self.config
        return augment(x, draw(len(x), c.width, c.depth, c.severity, c.alpha, rng.numpy))

    def training_step(self, model, x, y, rng):
        if not self.config.jsd:
            logits = model(self.views(x, rng))
            return StepOutput(F.cross_entropy(logits, y), (logits.argmax(1) == y).sum(), len(y))
        first, second = self.views(x, rng), self.views(x, rng)
        # One forward pass over the clean images and both views, as the reference does (shared BN stats).
        logits = model(torch.cat([x, first, second]))
        clean, aug1, aug2 = logits.split(len(x))
        loss = F.cross_entropy(clean, y) + self.config.jsd_weight * jensen_shannon(clean, aug1, aug2)
        return StepOutput(loss, (logits.argmax(1) == y.repeat(3)).sum(), 3 * len(y))

    def preview(self, x, y, perm, rng):
        c = self.config
        draws = draw(len(x), c.width, c.depth, c.severity, c.alpha, rng.numpy)
        rows = {"training image": x}
        for i, chain in enumerate(chains(to_uint8(x), draws), start=1):
            rows[f"chain {i}"] = chain.float() / 255
        rows["AugMix view (trained on)"] = augment(x, draws)
        used = "the image and two such views, CE + 12·JS" if c.jsd else "one such view per image, CE"
        return Preview(
            rows,
            f"each image draws its own chains of 1–3 operations (severity {c.severity}) and mixing weights; "
            f"trains on {used}",
        )
