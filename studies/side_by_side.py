"""Models of three origins on one leaderboard, under one suite's evaluation protocol.

1. vicinal's own ``erm`` and ``mixup``, trained by ``vicinal.run``;
2. a model trained by a plain PyTorch script that knows nothing of vicinal (``studies/train_plain.py``),
   evaluated with ``vicinal.evaluate(module)``;
3. a RobustBench model-zoo entry loaded offline by robustbench's own ``load_model`` from its model folder
   (``vicinal.evaluate(robustbench=…)``). Offline there is no published checkpoint to read, so the entry's
   architecture with random weights is placed where robustbench looks: its row shows the mechanics (loading,
   origin, protocol), not the zoo model's accuracy.

Everything runs on the CIFAR-10 subset in ``--data-dir`` under the study suite
``studies/cifar10-quick-c.toml`` (a CPU budget: small CNN, 10 epochs, seeds 0 and 1, the 15 common
corruptions on 300 images per cell), into ``--out``; the leaderboard is printed at the end and written to
OUT/leaderboard.md. Finished runs and evaluations are reused, so the script resumes.

Usage: python studies/side_by_side.py --data-dir ../shared/data --out /tmp/side-by-side
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import torch

import vicinal
from vicinal.core.reporting import LineReporter
from vicinal.external.robustbench import checkpoint_path, import_robustbench, zoo_entries

HERE = Path(__file__).resolve().parent
SUITE = HERE / "cifar10-quick-c.toml"
ZOO = "Kireev2021Effectiveness_RLATAugMix"  # a PreActResNet-18 entry of the CIFAR-10 corruptions zoo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--methods", default="erm,mixup", help="vicinal's own methods to train")
    parser.add_argument("--plain-epochs", type=int, default=10)
    args = parser.parse_args()
    out = args.out.resolve()
    common = {
        "data_dir": args.data_dir,
        "results_dir": out / "results",
        "cache_dir": out / "cache",
        "reporter": LineReporter(),  # one line per epoch and per evaluator
    }

    vicinal.run(str(SUITE), methods=args.methods.split(","), **common)

    weights = out / "plain-cnn.pt"
    if not weights.exists():
        batches = args.data_dir / "cifar-10-batches-py"
        script = HERE / "train_plain.py"
        subprocess.run(
            [sys.executable, str(script), str(batches), str(weights), str(args.plain_epochs)], check=True
        )
    spec = importlib.util.spec_from_file_location("train_plain", HERE / "train_plain.py")
    plain = importlib.util.module_from_spec(spec)
    sys.modules["train_plain"] = plain  # its class is fingerprinted by module name
    spec.loader.exec_module(plain)
    model = plain.PlainCNN()
    model.load_state_dict(torch.load(weights, weights_only=True))
    vicinal.evaluate(model, suite=str(SUITE), name="plain-cnn", **common)

    import_robustbench()
    models = out / "models"
    path = checkpoint_path(models, "cifar10", "corruptions", ZOO)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        net = zoo_entries("cifar10", "corruptions")[ZOO]["model"]()
        torch.save({"last": net.state_dict()}, path)  # the layout of this entry's published checkpoint
    vicinal.evaluate(robustbench=ZOO, suite=str(SUITE), model_dir=models, **common)

    board = vicinal.leaderboard(results_dir=out / "results")
    text = board.to_markdown()
    (out / "leaderboard.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
