"""How locally linear the model is around and between test inputs.

- ``lin_gamma@ε``: the local-linearity measure of Qin et al. (2019),
  γ(ε, x) = max_{‖δ‖∞ ≤ ε} |ℓ(x + δ) − ℓ(x) − δᵀ∇ₓℓ(x)|, with ℓ the cross-entropy at the true label,
  maximised by projected sign-gradient ascent on δ (random starts inside the ball; x + δ kept in [0, 1]),
  averaged over a seeded test subset.
- ``interp_*``: mixup's view, along segments x_t = (1 − t)·x_a + t·x_b between test inputs of different
  classes: the deviation of the logits from the linear interpolation of the endpoint logits (relative to
  ‖z_a − z_b‖; exactly 0 for a linear model), the deviation of the loss against the mixed target from the
  interpolated endpoint losses, and the share of in-between points predicted as neither class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vicinal.core.hparams import SEED_MAX, hp
from vicinal.data.datasets import to_unit
from vicinal.evaluation.evaluator import (
    EvalContext,
    Evaluator,
    eps_label,
    parse_eps,
    register_evaluator,
    seeded_subset,
)
from vicinal.evaluation.radii import check_radii
from vicinal.store.declarations import Breakdown, Declarations, FigureSpec, MetricInfo, PanelSpec

GAMMA = "γ(ε): the largest deviation of the loss from its first-order Taylor expansion within the L∞ ball of "
INTERP = (
    "interp dev: mean deviation of the logits from the linear interpolation of the endpoint logits, "
    "relative to their distance, along segments between test inputs of different classes (0 for a linear "
    "model); interp miss: in-between points predicted as neither class."
)


@dataclass
class LinearityConfig:
    eps: list[str] = hp(["4/255", "8/255"], "L∞ radii for γ")
    steps: int = hp(10, "ascent steps on δ", ge=1, le=10_000)
    restarts: int = hp(1, "random starts (the maximum over them is kept)", ge=1, le=1_000)
    rel_stepsize: float = hp(0.25, "ascent step as a fraction of ε", gt=0)
    n_samples: int = hp(256, "seeded test subset for γ (0 = whole test split)", ge=0)
    n_pairs: int = hp(128, "segments between test inputs of different classes", ge=1, le=1_000_000)
    points: int = hp(11, "points per segment, endpoints included", ge=3, le=1_000)
    seed: int = hp(0, "seed of the subsets, pairs and random starts", ge=0, le=SEED_MAX)
    batch_size: int = hp(128, "images per batch", ge=1, le=65_536)

    def validate(self) -> None:
        check_radii(self.eps, "eps")


def local_linearity(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    restarts: int,
    rel_stepsize: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Per-image γ(ε, x) for a batch x in [0, 1] (the model in eval mode)."""
    x = x.detach().requires_grad_(True)
    loss0 = F.cross_entropy(model(x), y, reduction="none")
    (grad0,) = torch.autograd.grad(loss0.sum(), x)
    loss0, grad0, x = loss0.detach(), grad0.detach(), x.detach()

    def gap(delta: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(model(x + delta), y, reduction="none")
        return (loss - loss0 - (delta * grad0).flatten(1).sum(1)).abs()

    best = torch.zeros(len(x), device=x.device)
    for _ in range(restarts):
        delta = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device) * eps
        delta = (x + delta).clamp(0, 1) - x
        for _ in range(steps):
            delta.requires_grad_(True)
            value = gap(delta)
            (grad,) = torch.autograd.grad(value.sum(), delta)
            best = torch.maximum(best, value.detach())
            with torch.no_grad():
                delta = (delta + rel_stepsize * eps * grad.sign()).clamp(-eps, eps)
                delta = (x + delta).clamp(0, 1) - x
        with torch.no_grad():
            best = torch.maximum(best, gap(delta))
    return best


@torch.no_grad()
def segment_deviation(
    model: torch.nn.Module,
    xa: torch.Tensor,
    xb: torch.Tensor,
    ya: torch.Tensor,
    yb: torch.Tensor,
    points: int,
) -> dict[str, torch.Tensor]:
    """Per-pair deviations along x_t = (1 − t)·x_a + t·x_b (see the module docstring)."""
    t = torch.linspace(0, 1, points, device=xa.device)
    xt = (1 - t)[None, :, None, None, None] * xa[:, None] + t[None, :, None, None, None] * xb[:, None]
    n, k = xa.shape[0], points
    z = model(xt.flatten(0, 1)).double().view(n, k, -1)
    za, zb = z[:, :1], z[:, -1:]
    tt = t.double()[None, :, None]
    logit_dev = (z - ((1 - tt) * za + tt * zb)).norm(dim=2)[:, 1:-1].mean(1) / (za - zb).norm(dim=2).squeeze(
        1
    )
    classes = z.shape[2]
    target = (1 - tt) * F.one_hot(ya, classes)[:, None].double() + tt * F.one_hot(yb, classes)[
        :, None
    ].double()
    loss = -(target * z.log_softmax(2)).sum(2)
    loss_dev = (loss - ((1 - t.double()) * loss[:, :1] + t.double() * loss[:, -1:])).abs()[:, 1:-1].mean(1)
    pred = z.argmax(2)[:, 1:-1]
    miss = ((pred != ya[:, None]) & (pred != yb[:, None])).double().mean(1)
    return {"logit": logit_dev, "loss": loss_dev, "miss": miss}


def different_class_pairs(labels: torch.Tensor, n_pairs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, len(labels), (4 * n_pairs,), generator=g)
    b = torch.randint(0, len(labels), (4 * n_pairs,), generator=g)
    keep = (labels[a] != labels[b]).nonzero().squeeze(1)[:n_pairs]
    return a[keep], b[keep]


@register_evaluator("linearity")
class LinearityEvaluator(Evaluator):
    summary = "local linearity γ (Qin et al. 2019) and deviation from linearity between test inputs"
    Config = LinearityConfig
    group = "linearity"

    def radii(self) -> list[str]:
        return [eps_label(e) for e in sorted(parse_eps(e) for e in self.config.eps)]

    def declarations(self) -> Declarations:
        radii = self.radii()
        breakdown = Breakdown("eps", "ε", "lin_gamma", column="ε={key}", hint="run the linearity evaluator")
        bars = [PanelSpec(f"γ at ε = {radii[0]}", metric=f"lin_gamma@{radii[0]}")] if len(radii) == 1 else []
        bars += [
            PanelSpec("interp dev", metric="interp_logit_dev"),
            PanelSpec("interp miss", metric="interp_miss"),
        ]
        figures = []
        if len(radii) > 1:  # with one radius, a bar per method says it better than a line of single points
            figures.append(
                FigureSpec(
                    "lines",
                    "Local linearity",
                    (
                        PanelSpec(
                            "local linearity γ (lower = more linear)",
                            "lin_gamma",
                            xlabel="ε (L∞)",
                            ylabel="γ",
                        ),
                    ),
                    caption=GAMMA + "radius ε, averaged over the seeded test subset (Qin et al. 2019).",
                    by="eps",
                    spacing="even",
                    alt="local linearity γ versus ε per method",
                )
            )
        figures.append(
            FigureSpec(
                "bars",
                "Linearity" if len(radii) == 1 else "Linearity between test inputs",
                tuple(bars),
                caption=(GAMMA + "ball (Qin et al. 2019), lower = more linear; " if len(radii) == 1 else "")
                + INTERP,
                alt="linearity measures per method",
            )
        )
        return Declarations(self.group, (breakdown,), tuple(figures))

    def metric_info(self) -> dict[str, MetricInfo]:
        radii = self.radii()
        info = {
            f"lin_gamma@{r}": MetricInfo(
                f"γ {r}",
                False,
                headline=(i == len(radii) - 1),
                description=f"local linearity γ at ε = {r} (L∞), lower = more linear",
                family="lin_gamma",
                by="eps",
                key=r,
            )
            for i, r in enumerate(radii)
        }
        info["interp_logit_dev"] = MetricInfo(
            "interp dev",
            False,
            description="mean relative deviation of the logits from linear interpolation between test inputs",
        )
        info["interp_loss_dev"] = MetricInfo(
            "interp loss dev",
            False,
            headline=False,
            description="mean |loss − interpolated endpoint losses| along segments",
        )
        info["interp_miss"] = MetricInfo(
            "interp miss",
            False,
            percent=True,
            headline=False,
            description="in-between points predicted as neither endpoint's class",
        )
        return info

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        c, model, device = self.config, ctx.model.eval(), ctx.device
        test = ctx.data.test
        out: dict[str, float] = {}
        idx = seeded_subset(len(test), c.n_samples, c.seed)
        generator = torch.Generator().manual_seed(c.seed)
        a, b = different_class_pairs(test.labels, c.n_pairs, c.seed)
        step = max(1, c.batch_size // c.points)
        # In batches (γ's ascent per radius, then the segments), advanced as each is done: γ takes
        # 2 × steps forward and backward passes per image, minutes for a CIFAR model on a CPU.
        gamma_batches = -(-len(idx) // c.batch_size)
        task = ctx.task("linearity", total=len(c.eps) * gamma_batches + -(-len(a) // step))
        for e in c.eps:
            eps = parse_eps(e)
            values = []
            for start in range(0, len(idx), c.batch_size):
                part = idx[start : start + c.batch_size]
                x = to_unit(test.images[part], device)
                values.append(
                    local_linearity(
                        model,
                        x,
                        test.labels[part].to(device),
                        eps,
                        c.steps,
                        c.restarts,
                        c.rel_stepsize,
                        generator,
                    ).cpu()
                )
                task.advance(1, measure=f"γ ε={eps_label(eps)}")
            out[f"lin_gamma@{eps_label(eps)}"] = float(torch.cat(values).mean())
        parts: dict[str, list[torch.Tensor]] = {"logit": [], "loss": [], "miss": []}
        for start in range(0, len(a), step):
            ia, ib = a[start : start + step], b[start : start + step]
            dev = segment_deviation(
                model,
                to_unit(test.images[ia], device),
                to_unit(test.images[ib], device),
                test.labels[ia].to(device),
                test.labels[ib].to(device),
                c.points,
            )
            for k in parts:
                parts[k].append(dev[k].cpu())
            task.advance(1, measure="segments")
        task.close()
        out["interp_logit_dev"] = float(torch.cat(parts["logit"]).mean())
        out["interp_loss_dev"] = float(torch.cat(parts["loss"]).mean())
        out["interp_miss"] = float(torch.cat(parts["miss"]).mean())
        return out

    def protocol(self) -> dict:
        c = self.config
        return {
            "gamma": {
                "loss": "cross-entropy at the true label",
                "norm": "linf",
                "eps": c.eps,
                "steps": c.steps,
                "restarts": c.restarts,
                "rel_stepsize": c.rel_stepsize,
                "optimiser": "projected sign ascent",
                "bounds": [0, 1],
                "subset": {"n": c.n_samples, "seed": c.seed},
            },
            "interpolation": {
                "pairs": c.n_pairs,
                "points": c.points,
                "pairing": "random test pairs of different classes",
                "seed": c.seed,
                "logit_dev": "‖z_t − lerp(z_a, z_b)‖₂ / ‖z_a − z_b‖₂, interior points",
                "loss": "cross-entropy against the mixed target",
            },
        }
