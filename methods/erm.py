"""Empirical risk minimisation: plain cross-entropy on the (augmented) training images."""

import torch.nn.functional as F

from vicinal.training.method import Method, Preview, StepOutput, register_method


@register_method("erm")
class ERM(Method):
    mixes_in = "none"
    summary = "Empirical risk minimisation: cross-entropy on the training images, no mixing."

    def training_step(self, model, x, y, rng):
        logits = model(x)
        return StepOutput(F.cross_entropy(logits, y), (logits.argmax(1) == y).sum(), len(y))

    def preview(self, x, y, perm, rng):
        return Preview(
            {"training image": x}, "ERM trains on the images themselves (after crop and flip, not shown)"
        )
