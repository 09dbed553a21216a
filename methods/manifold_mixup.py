"""Manifold mixup (Verma et al., ICML 2019): mix at a layer drawn per batch from input and hidden stages."""

from dataclasses import dataclass

from vicinal.core.errors import VicinalError
from vicinal.core.hparams import hp
from vicinal.training.method import (
    Method,
    Preview,
    StepOutput,
    interpolate,
    mix_output_of,
    mixed_correct,
    mixed_cross_entropy,
    register_method,
)


@register_method("manifold-mixup")
class ManifoldMixup(Method):
    mixes_in = "hidden"
    summary = (
        "Manifold mixup: per batch, mix at a layer drawn uniformly from {input, stage 1, stage 2} "
        "outputs; α = 2."
    )

    @dataclass
    class Config:
        alpha: float = hp(2.0, "Beta(α, α) parameter of λ", ge=0)
        layers: int = hp(2, "mix at the input or after one of the model's first N mixable stages", ge=0)
        include_input: bool = hp(True, "the input itself is one of the candidate layers")

        def validate(self) -> None:
            if self.layers == 0 and not self.include_input:
                raise ValueError("no candidate layer: set layers ≥ 1 or include_input = true")

    def candidates(self, model) -> list[str]:
        stages = list(model.mixing_layers())
        if self.config.layers > len(stages):
            raise VicinalError(
                f"manifold-mixup.layers = {self.config.layers}, but the model exposes only "
                f"{len(stages)} mixable stages ({', '.join(stages)})"
            )
        return (["input"] if self.config.include_input else []) + stages[: self.config.layers]

    def training_step(self, model, x, y, rng):
        options = self.candidates(model)
        layer = options[rng.integer(len(options))]
        lam = rng.beta(self.config.alpha)
        perm = rng.permutation(len(x), x.device)
        if layer == "input":
            logits = model(interpolate(x, perm, lam))
        else:
            with mix_output_of(model.mixing_layers()[layer], perm, lam):
                logits = model(x)
        y_b = y[perm]
        return StepOutput(
            mixed_cross_entropy(logits, y, y_b, lam), mixed_correct(logits, y, y_b, lam), len(y)
        )

    def preview(self, x, y, perm, rng):
        # Only the input layer's mix is an image; the hidden-layer mixes have no picture.
        lam = rng.beta(self.config.alpha)
        rows = {"image A": x, "image B": x[perm]}
        if self.config.include_input:
            rows[f"input-layer mix, λ = {lam:.2f}"] = interpolate(x, perm, lam)
        return Preview(
            rows,
            "mixes hidden activations (a layer drawn per batch); only the input-layer draw is an image",
        )
