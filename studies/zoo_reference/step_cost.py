"""Step cost of the zoo's methods side by side with their reference implementations' own steps.

One training step — the method's augmentation or mixing, forward, loss, backward, SGD update — of vicinal's
small CNN on the same batch of 128 real CIFAR-10 images (or random ones), one torch thread, for: ERM;
each vicinal method; and the reference implementation doing the same work with its own code, imported
from the checkouts given on the command line (nothing of it is copied here):

- regmixup: RegMixup's ``RegMixupModel.training_step`` on the small CNN (its ``mixup_data``, one forward
  over the clean batch and the mixes, its criterion);
- augmix: google-research/augmix's per-image PIL augmentation (``AugMixDataset.__getitem__``: the image and
  two ``aug`` views, each through its preprocess) for the 128 images, then its ``cifar.train`` on that one
  batch (forward over 3n, CE + 12·JSD, backward, step); ``jsd=false``: ``aug`` once per image and CE;
- fmix: ecs-vlc/FMix's ``implementations/lightning.FMix`` (mask, permutation, mix) and its loss;
- noisy-feature-mixup: erichson/NFM's ``do_noisy_mixup`` at a layer drawn as its PreActResNet's forward
  does (input or after stage 1–3 of the small CNN), its ``mixup_criterion``;
- gaussian-vrm has no reference code; it is measured against ERM only.

Rounds interleave the contenders (the order rotates each round) so that background load hits all alike;
the figure is the median over rounds of ms per step. ``.cuda()`` and ``torch.cuda.FloatTensor`` are
mapped to the CPU for the references that call them.

Usage: python studies/zoo_reference/step_cost.py --checkouts /work/scratch/zoo --rounds 15 [--data-dir D]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from vicinal.core.hparams import build_config
from vicinal.training.method import get_method
from vicinal.training.models import build_model
from vicinal.training.rng import RunRandom

BATCH = 128


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def batch(data_dir: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    if data_dir is not None and (data_dir / "cifar-10-batches-py").is_dir():
        from vicinal.data.datasets import load_dataset

        train = load_dataset("cifar10", data_dir).train
        return train.images[:BATCH].clone(), train.labels[:BATCH].clone()
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (BATCH, 3, 32, 32), dtype=torch.uint8, generator=g), torch.randint(
        0, 10, (BATCH,), generator=g
    )


class Contender:
    def __init__(self, label: str, step):
        self.label, self.step, self.times = label, step, []


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def vicinal_step(name: str, values: dict, images: torch.Tensor, labels: torch.Tensor):
    torch.manual_seed(0)
    model = build_model("small-cnn", 10, [0.5] * 3, [0.25] * 3)
    cls = get_method(name)
    method = cls(build_config(cls.Config, values, name))
    opt = sgd(model)
    rng = RunRandom(0)
    x = images.float() / 255

    def step():
        out = method.training_step(model, x, labels, rng)
        opt.zero_grad()
        out.loss.backward()
        opt.step()

    return step


def reference_steps(checkouts: Path, images: torch.Tensor, labels: torch.Tensor) -> dict[str, object]:
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.cuda.device = lambda index: contextlib.nullcontext()
    torch.cuda.FloatTensor = torch.FloatTensor
    x = images.float() / 255
    steps = {}

    # RegMixup
    sys.path.insert(0, str(checkouts / "RegMixup"))
    from models.regmixup import RegMixup

    torch.manual_seed(0)
    net = build_model("small-cnn", 10, [0.5] * 3, [0.25] * 3)

    class Base(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            self.hparams = SimpleNamespace(mixup_alpha=20.0, mixup_beta=20.0)

        def forward(self, inputs):
            return self.net(inputs), None

    reg = RegMixup(Base)()
    reg.build_loss()
    reg_opt = sgd(net)

    def regmixup():
        loss = reg.training_step((x, labels), 0)
        reg_opt.zero_grad()
        loss.backward()
        reg_opt.step()

    steps["regmixup"] = regmixup

    # AugMix
    sys.path.insert(0, str(checkouts / "augmix"))
    argv, sys.argv = sys.argv, ["cifar.py"]
    import cifar
    from PIL import Image
    from torchvision import transforms

    sys.argv = argv
    preprocess = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])
    pils = [Image.fromarray(a) for a in images.permute(0, 2, 3, 1).numpy()]
    cifar.print = lambda *a, **k: None  # its train() prints the loss every 50 batches (so: every call)

    def augmix_step(jsd: bool):
        torch.manual_seed(0)
        model = build_model("small-cnn", 10, [0.5] * 3, [0.25] * 3)
        opt = sgd(model)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        dataset = cifar.AugMixDataset(
            list(zip(pils, labels.tolist(), strict=True)), preprocess, no_jsd=not jsd
        )

        def step():
            cifar.args.no_jsd = not jsd  # what its train() reads
            items = [dataset[i] for i in range(len(pils))]
            if jsd:
                views = tuple(torch.stack([item[0][v] for item in items]) for v in range(3))
            else:
                views = torch.stack([item[0] for item in items])
            targets = torch.tensor([item[1] for item in items])
            cifar.train(model, [(views, targets)], opt, sched)

        return step

    steps["augmix"] = augmix_step(True)
    steps["augmix[jsd=false]"] = augmix_step(False)

    # FMix
    sys.path.insert(0, str(checkouts / "FMix"))
    lightning = load_module("fmix_lightning", checkouts / "FMix" / "implementations" / "lightning.py")
    torch.manual_seed(0)
    fnet = build_model("small-cnn", 10, [0.5] * 3, [0.25] * 3)
    fopt = sgd(fnet)
    fm = lightning.FMix(decay_power=3, alpha=1, size=(32, 32))

    def fmix():
        loss = fm.loss(fnet(fm(x)), labels)
        fopt.zero_grad()
        loss.backward()
        fopt.step()

    steps["fmix"] = fmix

    # NFM
    nfm = load_module("nfm_noisy_mixup", checkouts / "NFM" / "src" / "noisy_mixup.py")
    torch.manual_seed(0)
    nnet = build_model("small-cnn", 10, [0.5] * 3, [0.25] * 3)
    nopt = sgd(nnet)

    def noisy_feature_mixup():
        # The reference's PreActResNet.forward with manifold_mixup=1, on the small CNN's stages.
        k = np.random.choice(range(4), 1)[0]
        out = nnet.normalize(x).contiguous(memory_format=torch.channels_last)
        kwargs = {"alpha": 1.0, "add_noise_level": 0.4, "mult_noise_level": 0.2}
        if k == 0:
            out, y_a, y_b, lam = nfm.do_noisy_mixup(out, labels, **kwargs)
        for i, stage in enumerate((nnet.stage1, nnet.stage2, nnet.stage3)):
            out = stage(out)
            if k == i + 1:
                out, y_a, y_b, lam = nfm.do_noisy_mixup(out, labels, **kwargs)
        logits = nnet.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))
        loss = nfm.mixup_criterion(F.cross_entropy, logits, y_a, y_b, lam)
        nopt.zero_grad()
        loss.backward()
        nopt.step()

    steps["noisy-feature-mixup"] = noisy_feature_mixup
    return steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkouts", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, labels = batch(args.data_dir)
    references = reference_steps(args.checkouts, images, labels)
    variants = {
        "erm": ("erm", {}),
        "gaussian-vrm": ("gaussian-vrm", {}),
        "regmixup": ("regmixup", {}),
        "regmixup[train_on=half]": ("regmixup", {"train_on": "half"}),
        "augmix": ("augmix", {}),
        "augmix[jsd=false]": ("augmix", {"jsd": False}),
        "fmix": ("fmix", {}),
        "noisy-feature-mixup": ("noisy-feature-mixup", {}),
    }
    contenders = [
        Contender(f"vicinal {k}", vicinal_step(n, v, images, labels)) for k, (n, v) in variants.items()
    ]
    contenders += [Contender(f"reference {k}", step) for k, step in references.items()]
    for c in contenders:  # warm-up
        c.step()
    for r in range(args.rounds):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        for c in order:
            t0 = time.perf_counter()
            c.step()
            c.times.append(time.perf_counter() - t0)
    erm = statistics.median(contenders[0].times)
    print(f"threads {args.threads}, rounds {args.rounds}, batch {BATCH}, small-cnn")
    print("| contender | median ms / step | × ERM |")
    print("|---|---|---|")
    for c in contenders:
        med = statistics.median(c.times)
        print(f"| {c.label} | {1000 * med:.0f} | {med / erm:.2f} |")


if __name__ == "__main__":
    main()
