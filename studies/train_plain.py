"""A training script that knows nothing of vicinal: it reads CIFAR-10's python batches itself, trains a
small CNN on images in [0, 1] (standardised inside, RobustBench's convention) and saves its state dict.

Used by tests/test_robustbench.py and studies/side_by_side.py as "a model trained outside vicinal".
Usage: python studies/train_plain.py CIFAR_BATCHES_FOLDER OUT.pt EPOCHS
"""

import pickle
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class PlainCNN(nn.Module):
    def __init__(self):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

        self.features = nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 64), nn.Flatten())
        self.head = nn.Linear(64 * 4 * 4, 10)

    def forward(self, x):  # images in [0, 1]
        return self.head(self.features((x - 0.47) / 0.25))


def load(folder):
    xs, ys = [], []
    for i in range(1, 6):
        with open(Path(folder) / f"data_batch_{i}", "rb") as f:
            d = pickle.load(f, encoding="latin1")
        xs.append(d["data"])
        ys += d["labels"]
    return torch.from_numpy(np.concatenate(xs).reshape(-1, 3, 32, 32)).float() / 255, torch.tensor(ys)


if __name__ == "__main__":
    folder, out, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    x, y = load(folder)
    model = PlainCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(y)).split(128):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(model.state_dict(), out)
