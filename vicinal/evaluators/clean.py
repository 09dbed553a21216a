"""Clean test-set accuracy, negative log-likelihood and Brier score."""

import torch
import torch.nn.functional as F

from vicinal.evaluation import EvalContext, Evaluator, MetricInfo, register_evaluator


@register_evaluator("clean")
class CleanEvaluator(Evaluator):
    summary = "accuracy, NLL and Brier score on the clean test split"
    metrics = {
        "acc": MetricInfo("acc", True, percent=True, description="top-1 accuracy on the clean test split"),
        "nll": MetricInfo("NLL", False, description="mean negative log-likelihood (nats)"),
        "brier": MetricInfo("Brier", False, description="mean over images of Σ_k (p_k − 1[y=k])²"),
    }

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        return classification_metrics(ctx.test_logits, ctx.test_labels)

    def protocol(self) -> dict:
        return {"split": "test", "brier": "sum over classes, mean over images"}


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    probs = logits.softmax(1)
    onehot = F.one_hot(labels, logits.shape[1]).to(probs.dtype)
    return {
        "acc": float((logits.argmax(1) == labels).double().mean()),
        "nll": float(F.cross_entropy(logits, labels)),
        "brier": float(((probs - onehot) ** 2).sum(1).mean()),
    }
