"""Clean test-set accuracy, negative log-likelihood and Brier score; accuracy and NLL on the held-out
validation split too, where the suite holds one out, for model selection (``vicinal leaderboard
--best-of``) that never looks at the test split. Metrics named ``val_*`` are validation metrics."""

from vicinal.evaluation.calibration_metrics import brier, nll
from vicinal.evaluation.evaluator import EvalContext, Evaluator, MetricInfo, register_evaluator


@register_evaluator("clean")
class CleanEvaluator(Evaluator):
    summary = "accuracy, NLL and Brier score on the clean test split"
    group = "accuracy & calibration"
    metrics = {
        "acc": MetricInfo("acc", True, percent=True, description="top-1 accuracy on the clean test split"),
        "nll": MetricInfo("NLL", False, description="mean negative log-likelihood (nats)"),
        "brier": MetricInfo(
            "Brier", False, description="mean over images of Σ_k (p_k − 1[y=k])²", headline=False
        ),
        "val_acc": MetricInfo(
            "val acc",
            True,
            percent=True,
            description="top-1 accuracy on the held-out validation split (for model selection)",
            headline=False,
        ),
        "val_nll": MetricInfo(
            "val NLL",
            False,
            description="mean NLL on the held-out validation split (for model selection)",
            headline=False,
        ),
    }

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        # Per example, for paired comparisons: each metric is the mean of its column over the test split.
        ctx.record_logits("test", ctx.test_examples(), ctx.test_logits, ctx.test_labels, nll=True, brier=True)
        for metric, column in (("acc", "correct"), ("nll", "nll"), ("brier", "brier")):
            ctx.statistic(metric, "mean", ["test"], column)
        logits, labels = ctx.test_logits.numpy(), ctx.test_labels.numpy()
        out = {
            "acc": float((logits.argmax(1) == labels).mean()),
            "nll": nll(logits, labels),
            "brier": brier(logits, labels),
        }
        if ctx.val_logits is not None:  # shared with temperature scaling: computed once per run
            val_logits, val_labels = ctx.val_logits.numpy(), ctx.data.val.labels.numpy()
            out["val_acc"] = float((val_logits.argmax(1) == val_labels).mean())
            out["val_nll"] = nll(val_logits, val_labels)
        return out

    def protocol(self) -> dict:
        return {
            "split": "test",
            "brier": "sum over classes, mean over images",
            "validation": "val_acc, val_nll on the held-out validation split when the suite holds one out",
        }
