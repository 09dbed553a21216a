"""Adversarial robustness with foolbox: FGSM, PGD L∞ and PGD L2 over an ε grid; AutoAttack optionally.

Images stay in [0, 1] (foolbox bounds (0, 1)); vicinal models normalise inside their first layer, so
no normalisation is ever applied to the inputs. Robust accuracy is measured on a fixed, seeded subset
of the test split, the same for every method.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vicinal.core.errors import VicinalError
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

ATTACKS = ("fgsm", "pgd_linf", "pgd_l2")
#: pyautoattack's components (its ``AttackName``): any other name fails inside it, after training.
AUTOATTACK_COMPONENTS = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")


def import_foolbox():
    # foolbox 3.3.4 imports a deprecated scipy namespace and warns at import (fatal under -W error).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import foolbox

    return foolbox


@dataclass
class AdversarialConfig:
    attacks: list[str] = hp(list(ATTACKS), "attacks: fgsm, pgd_linf, pgd_l2")
    linf_eps: list[str] = hp(
        ["1/255", "2/255", "4/255", "8/255"],
        "L∞ radii (numbers or fractions such as 8/255) for fgsm and pgd_linf",
    )
    l2_eps: list[str] = hp(["0.25", "0.5"], "L2 radii for pgd_l2")
    steps: int = hp(10, "PGD iterations", ge=1, le=10_000)
    rel_stepsize: float = hp(0.25, "PGD step size as a fraction of ε", gt=0)
    random_start: bool = hp(True, "PGD starts from a uniform random point in the ε-ball")
    n_samples: int = hp(1000, "size of the seeded test subset (0 = the whole test split)", ge=0)
    seed: int = hp(0, "seed of the subset and of PGD's random starts", ge=0, le=SEED_MAX)
    batch_size: int = hp(256, "images per attack batch", ge=1, le=65_536)
    autoattack: bool = hp(False, "also run AutoAttack (pyautoattack, standard version, L∞) — slow")
    autoattack_eps: str = hp("8/255", "AutoAttack L∞ radius")
    autoattack_attacks: list[str] = hp(
        [], "AutoAttack components (e.g. apgd-ce); empty = the standard version"
    )

    def validate(self) -> None:
        unknown = [a for a in self.attacks if a not in ATTACKS]
        if unknown:
            raise ValueError(f"unknown attack(s) {', '.join(unknown)}; choose from {', '.join(ATTACKS)}")
        odd = [a for a in self.autoattack_attacks if a not in AUTOATTACK_COMPONENTS]
        if odd:
            raise ValueError(
                f"unknown AutoAttack component(s) {', '.join(odd)}; "
                f"choose from {', '.join(AUTOATTACK_COMPONENTS)}"
            )
        check_radii(self.linf_eps, "linf_eps")
        check_radii(self.l2_eps, "l2_eps")
        check_radii([self.autoattack_eps], "autoattack_eps")


@register_evaluator("adversarial")
class AdversarialEvaluator(Evaluator):
    summary = "robust accuracy under FGSM, PGD L∞ and PGD L2 (foolbox) per ε; AutoAttack optional"
    Config = AdversarialConfig
    group = "attacks"

    def grid(self) -> list[tuple[str, str, float]]:
        """(attack, norm, ε) for every robust-accuracy number this configuration produces."""
        c = self.config
        out = []
        for attack in c.attacks:
            radii = sorted(parse_eps(e) for e in (c.l2_eps if attack == "pgd_l2" else c.linf_eps))
            out += [(attack, "l2" if attack == "pgd_l2" else "linf", eps) for eps in radii]
        return out

    def metric_info(self) -> dict[str, MetricInfo]:
        info = {
            "adv_subset_acc": MetricInfo(
                "acc (adv subset)",
                True,
                percent=True,
                headline=False,
                description="clean accuracy on the attacked subset",
            )
        }
        c = self.config
        grid = self.grid()
        for attack, norm, eps in grid:
            # Every attack measured is shown by default (its smallest and largest radius): PGD L2 was in
            # the result files but in no progress line, terminal table or default board.
            radii = [e for a, _, e in grid if a == attack]
            headline = eps in (radii[0], radii[-1])
            info[f"{attack}@{eps_label(eps)}"] = MetricInfo(
                f"{attack.replace('_', ' ')} {eps_label(eps)}",
                True,
                percent=True,
                headline=headline,
                description=f"robust accuracy under {attack} ({norm}, ε = {eps:g})",
                family=attack,
                by="eps",
                key=eps_label(eps),
                clean="adv_subset_acc",
            )
        if c.autoattack:
            eps = parse_eps(c.autoattack_eps)
            info[f"autoattack@{eps_label(eps)}"] = MetricInfo(
                f"AA {eps_label(eps)}",
                True,
                percent=True,
                description="robust accuracy under AutoAttack",
                family="autoattack",
                by="eps",
                key=eps_label(eps),
                clean="adv_subset_acc",
            )
        return info

    def declarations(self) -> Declarations:
        families = list(dict.fromkeys(attack for attack, _, _ in self.grid()))
        if self.config.autoattack:
            families.append("autoattack")
        panels = tuple(
            PanelSpec(
                family.replace("_", " "),
                family=family,
                xlabel="ε (L2)" if family == "pgd_l2" else "ε (L∞)",
                ylabel="robust accuracy",
            )
            for family in families
        )
        default = "pgd_linf" if "pgd_linf" in families else families[0] if families else ""
        breakdown = Breakdown(
            "eps", "ε", default, column="ε={key}", clean="ε=0", hint="run the adversarial evaluator"
        )
        figure = FigureSpec(
            "lines",
            "Robust accuracy versus ε",
            panels,
            caption="Per attack: accuracy on the seeded attacked subset at each radius (ε = 0: its clean "
            "accuracy), radii evenly spaced; the band is ± one std over seeds.",
            by="eps",
            # Evenly spaced: the radii roughly double, and on a linear axis 1/255 and 2/255 collide.
            spacing="even",
            alt="robust accuracy versus perturbation size per attack and method",
        )
        return Declarations(self.group, (breakdown,) if default else (), (figure,) if panels else ())

    def attack_objects(self) -> dict[str, object]:
        fb, c = import_foolbox(), self.config
        pgd = {"steps": c.steps, "rel_stepsize": c.rel_stepsize, "random_start": c.random_start}
        return {
            "fgsm": fb.attacks.FGSM(),
            "pgd_linf": fb.attacks.LinfPGD(**pgd),
            "pgd_l2": fb.attacks.L2PGD(**pgd),
        }

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        c = self.config
        model = ctx.model.eval()
        idx = seeded_subset(len(ctx.data.test), c.n_samples, c.seed)
        images = ctx.data.test.images[idx]
        labels = ctx.data.test.labels[idx]
        # Per example, for paired comparisons: every radius on the same seeded subset, in its order.
        examples = ctx.test_examples(idx, f"seeded subset: n_samples {c.n_samples}, seed {c.seed}")
        # The subset's clean accuracy comes from the test logits every evaluator shares.
        ctx.record_logits("adv/clean", examples, ctx.test_logits[idx], labels)
        ctx.statistic("adv_subset_acc", "mean", ["adv/clean"])
        clean = ctx.test_logits[idx].argmax(1) == labels
        out = {"adv_subset_acc": float(clean.double().mean())}
        attacks = self.attack_objects()
        # In attacked images (each at every radius), advanced per batch: on a CPU the attacks of a
        # CIFAR model take many minutes, which a log must not spend in silence.
        runs = len(c.attacks) + (1 if c.autoattack else 0)
        task = ctx.task("adversarial", total=runs * len(images))
        for attack in c.attacks:
            radii = [parse_eps(e) for e in (c.l2_eps if attack == "pgd_l2" else c.linf_eps)]
            # The clean outcome is the one adv_subset_acc counts, so robust ⊆ clean image by image.
            correct, confidence = robust_outcomes(
                model,
                images,
                labels,
                attacks[attack],
                radii,
                c.batch_size,
                c.seed,
                ctx.device,
                None,
                clean,
                progress=lambda n, a=attack: task.advance(n, attack=a.replace("_", " ")),
            )
            for e, hit, conf in zip(radii, correct, confidence, strict=True):
                name = f"{attack}@{eps_label(e)}"
                out[name] = float(hit.double().mean())
                ctx.record_examples(f"adv/{name}", examples, correct=hit, confidence=conf)
                ctx.statistic(name, "mean", [f"adv/{name}"])
        if c.autoattack:
            eps = parse_eps(c.autoattack_eps)
            hit, conf = autoattack_outcomes(
                model, images, labels, eps, c.seed, c.batch_size, ctx.device, c.autoattack_attacks, clean
            )
            name = f"autoattack@{eps_label(eps)}"
            task.advance(len(images), attack="autoattack")  # one call to AutoAttack: no progress within
            out[name] = float(hit.double().mean())
            ctx.record_examples(f"adv/{name}", examples, correct=hit, confidence=conf)
            ctx.statistic(name, "mean", [f"adv/{name}"])
        task.close()
        return out

    def protocol(self) -> dict:
        fb, c = import_foolbox(), self.config
        return {
            "library": f"foolbox {fb.__version__}",
            "bounds": [0, 1],
            "normalisation": "inside the model (its first layer); inputs are never normalised",
            "model_mode": "eval",
            "attacks": {
                a: {
                    "norm": "l2" if a == "pgd_l2" else "linf",
                    "eps": c.l2_eps if a == "pgd_l2" else c.linf_eps,
                    **(
                        {}
                        if a == "fgsm"
                        else {
                            "steps": c.steps,
                            "rel_stepsize": c.rel_stepsize,
                            "random_start": c.random_start,
                        }
                    ),
                }
                for a in c.attacks
            },
            "subset": {"n": c.n_samples, "seed": c.seed, "split": "test"},
            "success": "misclassification; robust = correct on the clean image and still correct after "
            "the attack (an image misclassified before the attack counts as broken at every ε)",
            "autoattack": (
                {
                    "eps": c.autoattack_eps,
                    "norm": "Linf",
                    "library": "pyautoattack",
                    "version": "custom: " + ", ".join(c.autoattack_attacks)
                    if c.autoattack_attacks
                    else "standard",
                }
                if c.autoattack
                else "off"
            ),
        }


def robust_accuracy(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attack,
    radii: list[float],
    batch_size: int,
    seed: int,
    device: torch.device,
    preprocessing: dict | None = None,
) -> list[float]:
    """Accuracy under ``attack`` at each radius (``attack=None``: clean accuracy). Images are uint8."""
    correct, _ = robust_outcomes(
        model, images, labels, attack, radii, batch_size, seed, device, preprocessing
    )
    return correct.double().mean(1).tolist()


def robust_outcomes(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attack,
    radii: list[float],
    batch_size: int,
    seed: int,
    device: torch.device,
    preprocessing: dict | None = None,
    clean_correct: torch.Tensor | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per radius and image (radii × N, CPU): whether the image is robust under ``attack`` — classified
    correctly before the attack and still after it — and the model's top-1 confidence on the attacked
    image (``attack=None``: on the clean image, for every radius). ``clean_correct`` (N booleans) says
    which images count as correctly classified before the attack; by default the model's answer here.
    ``progress`` is called with each batch's number of images once it is done."""
    fb = import_foolbox()
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device, preprocessing=preprocessing)
    correct, confidence = [], []
    for start in range(0, len(images), batch_size):
        x = to_unit(images[start : start + batch_size], device)
        y = labels[start : start + batch_size].to(device)
        if attack is None:
            with torch.no_grad():
                p = fmodel(x).softmax(1)
            correct.append((p.argmax(1) == y).cpu().expand(len(radii), -1))
            confidence.append(p.max(1).values.cpu().expand(len(radii), -1))
            continue
        if clean_correct is None:
            with torch.no_grad():
                clean = (fmodel(x).argmax(1) == y).cpu()
        else:
            clean = clean_correct[start : start + batch_size].cpu()
        # foolbox draws PGD's random starts from torch's global generator: seed it per batch.
        torch.manual_seed(seed * 100_003 + start)
        _, clipped, success = attack(fmodel, x, y, epsilons=radii)
        # foolbox judges success on the attack's last iterate alone: an image misclassified before the
        # attack that the iterate happens to classify correctly (PGD's random start can land it there)
        # would count as robust.
        correct.append(clean & ~success.cpu())
        with torch.no_grad():  # after the attack and its seeding: the numbers above do not change
            confidence.append(torch.stack([fmodel(xa).softmax(1).max(1).values.cpu() for xa in clipped]))
        if progress is not None:
            progress(len(x))
    return torch.cat(correct, 1), torch.cat(confidence, 1).double()


def autoattack_accuracy(model, images, labels, eps, seed, batch_size, device, attacks=()) -> float:
    """Robust accuracy under AutoAttack (L∞): the standard version, or only the named components."""
    correct, _ = autoattack_outcomes(model, images, labels, eps, seed, batch_size, device, attacks)
    return float(correct.double().mean())


def autoattack_outcomes(
    model, images, labels, eps, seed, batch_size, device, attacks=(), clean_correct=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (CPU): robust under AutoAttack (L∞) — correct before the attack and after it — and the
    top-1 confidence on the attacked image. ``clean_correct`` as in ``robust_outcomes``."""
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        raise VicinalError(
            "adversarial.autoattack needs pyautoattack: pip install 'vicinal[autoattack]'"
        ) from None
    version = "custom" if attacks else "standard"
    aa = AutoAttack(
        model, norm="Linf", eps=eps, seed=seed, version=version, device=device, attacks=list(attacks) or None
    )
    aa.verbose = False
    x = to_unit(images, device)
    y = labels.to(device)
    if clean_correct is None:
        with torch.no_grad():
            clean_correct = torch.cat([model(b).argmax(1) for b in x.split(batch_size)]) == y
    # AutoAttack attacks only the images it finds correct and returns the others as they are, so this
    # rule changes nothing where its clean pass agrees with ``clean_correct``; it is applied the same way.
    x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=batch_size)
    with torch.no_grad():
        p = model(x_adv).softmax(1)
    return (clean_correct.cpu() & (p.argmax(1) == y).cpu()), p.max(1).values.double().cpu()
