"""The mixing itself: convex combinations, the right λ and partner, the right layer, the VAE's decodes."""

import json

import torch
import torch.nn.functional as F
from spies import Spy
from vicinal.methods.vae import ConvVAE, ResVAE, VAESpec, build_vae, cache_paths, load_or_train_vae, vae_loss

from vicinal.core.hparams import build_config
from vicinal.core.reporting import SilentReporter
from vicinal.data.datasets import ImageSet
from vicinal.training.method import PrepareContext, get_method, mixed_cross_entropy
from vicinal.training.models import build_model
from vicinal.training.rng import RunRandom


def _batch(n=8, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 3, 32, 32), generator=g), torch.randint(0, classes, (n,), generator=g)


def test_mixup_is_the_convex_combination_with_the_drawn_lambda_and_partner():
    from vicinal.methods.mixup import mix_batch

    x, y = _batch()
    batch = mix_batch(x, y, alpha=1.0, rng=RunRandom(123))
    # The same seed, drawn independently: λ from Beta(1, 1) via numpy, then the torch permutation.
    ref = RunRandom(123)
    lam = ref.beta(1.0)
    perm = ref.permutation(len(x))
    assert batch.lam == lam and 0 < lam < 1
    assert torch.equal(batch.perm, perm)
    torch.testing.assert_close(batch.x, lam * x + (1 - lam) * x[perm])
    assert torch.equal(batch.y_a, y) and torch.equal(batch.y_b, y[perm])


def test_mixup_loss_equals_cross_entropy_with_mixed_soft_targets():
    logits = torch.randn(6, 4)
    y_a, y_b, lam = torch.tensor([0, 1, 2, 3, 0, 1]), torch.tensor([3, 2, 1, 0, 0, 2]), 0.3
    soft = lam * F.one_hot(y_a, 4) + (1 - lam) * F.one_hot(y_b, 4)
    expected = -(soft * logits.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(mixed_cross_entropy(logits, y_a, y_b, lam), expected)


def test_mixup_alpha_zero_is_erm():
    from vicinal.methods.mixup import mix_batch

    x, y = _batch()
    batch = mix_batch(x, y, alpha=0.0, rng=RunRandom(0))
    assert batch.lam == 1.0 and torch.equal(batch.x, x)


def test_manifold_mixup_mixes_the_chosen_hidden_layer():
    torch.manual_seed(0)
    model = build_model("preactresnet18", 10, [0.5] * 3, [0.25] * 3).eval()
    x, y = _batch(n=4)
    method = get_method("manifold-mixup")()
    seed = next(s for s in range(100) if RunRandom(s).integer(3) == 2)  # a seed that picks layer2's output
    rng = RunRandom(seed)
    assert method.candidates(model) == ["input", "layer1", "layer2"]

    seen = {}

    def observe(_module, inp, _out):
        seen["layer3_input"] = inp[0]

    handle = model.layer3.register_forward_hook(observe)
    with torch.no_grad():
        clean_hidden = model.layer2(model.layer1(model.conv1(model.normalize(x))))
        out = method.training_step(model, x, y, rng)
    handle.remove()

    ref = RunRandom(seed)
    assert ref.integer(3) == 2
    lam, perm = ref.beta(2.0), ref.permutation(4)
    torch.testing.assert_close(seen["layer3_input"], lam * clean_hidden + (1 - lam) * clean_hidden[perm])
    assert torch.isfinite(out.loss)
    # The hook is gone afterwards: a plain forward is unmixed again.
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))
        assert not model.layer2._forward_hooks


def test_manifold_mixup_draws_every_candidate_layer():
    model = build_model("small-cnn", 10, [0.5] * 3, [0.25] * 3)
    method = get_method("manifold-mixup")()
    rng = RunRandom(0)
    picks = {method.candidates(model)[rng.integer(3)] for _ in range(200)}
    assert picks == {"input", "stage1", "stage2"}


def _tiny_train_set(n=64):
    g = torch.Generator().manual_seed(1)
    return ImageSet(
        (torch.rand((n, 3, 32, 32), generator=g) * 255).to(torch.uint8),
        torch.randint(0, 10, (n,), generator=g),
    )


def _prepare_ctx(tmp_path, train):
    return PrepareContext(
        train=train,
        num_classes=10,
        dataset="tiny",
        data_fingerprint="fp",
        seed=0,
        device=torch.device("cpu"),
        cache_dir=tmp_path,
        reporter=SilentReporter(),
    )


def test_varmixup_decodes_the_mixed_posterior(tmp_path):
    from vicinal.methods.varmixup import latent_mix

    cls = get_method("varmixup")
    method = cls(build_config(cls.Config, {"latent_dim": 16, "vae_epochs": 1, "mix": "means"}, "varmixup"))
    info = method.prepare(_prepare_ctx(tmp_path, _tiny_train_set()))
    vae = method.vae
    assert info["vae"]["cache"] == "trained"
    x, y = _batch(n=6)
    perm = torch.tensor([1, 2, 3, 4, 5, 0])
    # λ = 1: the VAE's own reconstruction of x_i.
    mix = latent_mix(vae, x, y, 1.0, perm, "means", RunRandom(0))
    torch.testing.assert_close(mix.images, vae.reconstruct(x))
    # λ = 0.3, means: decode(0.3 μ_i + 0.7 μ_j); the labels are the pair's.
    mu = vae.encode(x)[0]
    mix = latent_mix(vae, x, y, 0.3, perm, "means", RunRandom(0))
    torch.testing.assert_close(mix.images, vae.decode(0.3 * mu + 0.7 * mu[perm]))
    assert torch.equal(mix.y_b, y[perm])
    # sample: z = μ̃ + σ̃·ε with σ interpolated like μ.
    mu, logvar = vae.encode(x)
    sigma = torch.exp(0.5 * logvar)
    eps = RunRandom(5).normal_like(mu)
    expected = vae.decode(0.3 * mu + 0.7 * mu[perm] + (0.3 * sigma + 0.7 * sigma[perm]) * eps)
    torch.testing.assert_close(latent_mix(vae, x, y, 0.3, perm, "sample", RunRandom(5)).images, expected)
    assert mix.images.min() >= 0 and mix.images.max() <= 1


def test_vae_cache_is_reused_and_keyed(tmp_path):
    train = _tiny_train_set()
    reporter = SilentReporter()
    spec = VAESpec("tiny", "fp", (3, 32, 32), 8, 1.0, 1, 1e-3, 32, 0)
    vae1, info1 = load_or_train_vae(spec, train, torch.device("cpu"), tmp_path, reporter)
    vae2, info2 = load_or_train_vae(spec, train, torch.device("cpu"), tmp_path, reporter)
    assert (info1["cache"], info2["cache"]) == ("trained", "reused")
    for a, b in zip(vae1.state_dict().values(), vae2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = VAESpec("tiny", "fp", (3, 32, 32), 8, 4.0, 1, 1e-3, 32, 0)  # β differs: a different VAE
    assert other.key() != spec.key()
    assert load_or_train_vae(other, train, torch.device("cpu"), tmp_path, reporter)[1]["cache"] == "trained"
    assert len(list((tmp_path / "vae").glob("*.pt"))) == 2


def test_vae_handles_64px_images():
    vae = ConvVAE((3, 64, 64), latent_dim=8)
    assert vae.reconstruct(torch.rand(2, 3, 64, 64)).shape == (2, 3, 64, 64)


def test_resnet_vae_shapes_and_capacity():
    for side in (32, 64):
        vae = ResVAE((3, side, side), latent_dim=8).eval()
        x = torch.rand(2, 3, side, side)
        mu, logvar = vae.encode(x)
        assert mu.shape == logvar.shape == (2, 8)
        out = vae.reconstruct(x)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    params = [sum(p.numel() for p in build_vae(a, (3, 32, 32), 128).parameters()) for a in ("conv", "resnet")]
    assert params[1] > params[0]  # the point of the option: more capacity at the same width


def test_vae_cache_key_covers_architecture_likelihood_width_and_version(monkeypatch):
    import vicinal.methods.vae as vae_module

    base = VAESpec("tiny", "fp", (3, 32, 32), 8, 1.0, 1, 1e-3, 32, 0)
    variants = [
        VAESpec("tiny", "fp", (3, 32, 32), 8, 1.0, 1, 1e-3, 32, 0, arch="resnet"),
        VAESpec("tiny", "fp", (3, 32, 32), 8, 1.0, 1, 1e-3, 32, 0, likelihood="gaussian"),
        VAESpec("tiny", "fp", (3, 32, 32), 8, 1.0, 1, 1e-3, 32, 0, width=16),
        VAESpec("tiny", "fp", (3, 32, 32), 8, 1.0, 1, 1e-3, 32, 1),
    ]
    keys = {base.key(), *(v.key() for v in variants)}
    assert len(keys) == 1 + len(variants)
    before = base.key()
    monkeypatch.setitem(vae_module.ARCHITECTURES, "conv", "convvae-v2")  # the network was changed
    assert base.key() != before


def test_gaussian_likelihood_is_the_normal_density_at_the_batch_mse():
    vae = build_vae("conv", (3, 32, 32), 8).eval().requires_grad_(False)
    x = torch.rand(4, 3, 32, 32)
    eps = torch.zeros(4, 8)  # z = μ: the reconstruction is decode(μ)
    _, recon, _, mse = vae_loss(vae, x, 1.0, eps, "gaussian")
    mean = vae.reconstruct(x)
    var = float(((mean - x) ** 2).mean())
    log_p = torch.distributions.Normal(mean, var**0.5).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(recon, -log_p.mean(), rtol=1e-4, atol=1e-2)
    torch.testing.assert_close(mse, torch.tensor(var))


def _varmixup(tmp_path, **values):
    cls = get_method("varmixup")
    method = cls(build_config(cls.Config, {"latent_dim": 8, "vae_epochs": 1, **values}, "varmixup"))
    info = method.prepare(_prepare_ctx(tmp_path, _tiny_train_set()))
    return method, info


def test_resnet_gaussian_varmixup_at_lambda_one_is_the_reconstruction(tmp_path):
    from vicinal.methods.varmixup import latent_mix

    method, info = _varmixup(tmp_path, vae_arch="resnet", vae_likelihood="gaussian", mix="means")
    assert isinstance(method.vae, ResVAE) and info["vae"]["architecture"] == "resvae-v1"
    assert info["vae"]["recon_mse_train"] > 0
    x, y = _batch(n=4)
    mix = latent_mix(method.vae, x, y, 1.0, torch.tensor([1, 2, 3, 0]), "means", RunRandom(0))
    torch.testing.assert_close(mix.images, method.vae.reconstruct(x))


def test_varmixup_counts_the_images_the_classifier_sees(tmp_path):
    method, _ = _varmixup(tmp_path)
    x, y = _batch(n=8)
    for train_on, count, fed in (("decoded", 8, 8), ("decoded+clean", 16, 16), ("half", 8, 8)):
        method.config.train_on = train_on
        spy = Spy()
        out = method.training_step(spy, x, y, RunRandom(0))
        assert out.count == count and len(spy.seen[0]) == fed, train_on
        assert 0 <= out.correct <= out.count


def test_varmixup_half_mixes_the_first_half_and_keeps_the_rest_clean(tmp_path):
    from vicinal.methods.varmixup import half_split, latent_mix

    method, _ = _varmixup(tmp_path, train_on="half")
    x, y = _batch(n=7)  # odd: ⌈7/2⌉ = 4 decoded mixes, 3 clean images
    m = half_split(7)
    assert m == 4
    spy = Spy()
    out = method.training_step(spy, x, y, RunRandom(11))
    fed = spy.seen[0]
    # The same draws, replayed: λ, then a permutation of the mixed part, then the latent noise.
    ref = RunRandom(11)
    lam = ref.beta(1.0)
    perm = ref.permutation(m)
    mix = latent_mix(method.vae, x[:m], y[:m], lam, perm, "sample", ref)
    torch.testing.assert_close(fed[:m], mix.images)
    assert torch.equal(fed[m:], x[m:])
    # One mean over the 7 images: per-image mixed CE for the first 4, plain CE for the other 3.
    logits = spy.proj(fed.mean((2, 3)))
    per_image = torch.cat(
        [
            lam * F.cross_entropy(logits[:m], y[:m], reduction="none")
            + (1 - lam) * F.cross_entropy(logits[:m], y[:m][perm], reduction="none"),
            F.cross_entropy(logits[m:], y[m:], reduction="none"),
        ]
    )
    torch.testing.assert_close(out.loss, per_image.mean())
    assert out.count == 7


def test_vae_cache_is_weights_plus_json_loaded_safely(tmp_path):
    train = _tiny_train_set()
    reporter = SilentReporter()
    spec = VAESpec("tiny", "fp", (3, 32, 32), 8, 1.0, 1, 1e-3, 32, 0)
    load_or_train_vae(spec, train, torch.device("cpu"), tmp_path, reporter)
    weights, meta = cache_paths(spec, tmp_path)
    doc = json.loads(meta.read_text())
    assert doc["spec"]["architecture"] == "convvae-v1" and doc["info"]["recon_mse_train"] > 0
    # The weights file is a bare state dict: it loads with weights_only=True.
    state = torch.load(weights, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


class _Warnings(SilentReporter):
    """A reporter that keeps its warnings (one message each, however many lines it has)."""

    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def warn(self, message: str) -> None:
        self.messages.append(message)


class _Payload:
    """Unpickling this calls ``_pwned`` — what a malicious cache entry would do."""

    def __reduce__(self):
        return (_pwned, ())


PWNED = []


def _pwned():
    PWNED.append(True)
    return {}


def test_vae_cache_never_unpickles_code_and_retrains(tmp_path):
    import hashlib

    train = _tiny_train_set()
    reporter = SilentReporter()
    spec = VAESpec("tiny", "fp", (3, 32, 32), 8, 1.0, 1, 1e-3, 32, 0)
    load_or_train_vae(spec, train, torch.device("cpu"), tmp_path, reporter)
    weights, meta = cache_paths(spec, tmp_path)
    # An attacker with write access to the shared cache replaces the weights and fixes the checksum.
    torch.save({"state": _Payload()}, weights)
    doc = json.loads(meta.read_text())
    doc["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    meta.write_text(json.dumps(doc))
    warned = _Warnings()
    info = load_or_train_vae(spec, train, torch.device("cpu"), tmp_path, warned)[1]
    warnings = warned.messages
    assert PWNED == []
    assert info["cache"] == "trained" and len(warnings) == 1 and "retraining" in warnings[0]
    # The retrained entry replaced the bad one and is reused cleanly.
    quiet = _Warnings()
    assert load_or_train_vae(spec, train, torch.device("cpu"), tmp_path, quiet)[1]["cache"] == "reused"
    assert quiet.messages == []


def test_damaged_vae_cache_entries_are_retrained_with_a_warning(tmp_path):
    train = _tiny_train_set()
    reporter = SilentReporter()
    spec = VAESpec("tiny", "fp", (3, 32, 32), 8, 1.0, 1, 1e-3, 32, 0)
    load_or_train_vae(spec, train, torch.device("cpu"), tmp_path, reporter)
    weights, meta = cache_paths(spec, tmp_path)
    good_weights, good_meta = weights.read_bytes(), meta.read_text()
    damages = {
        "truncated weights": lambda: weights.write_bytes(good_weights[: len(good_weights) // 2]),
        "garbled metadata": lambda: meta.write_text(good_meta[:-10]),
        "metadata missing": lambda: meta.unlink(),
        "metadata of another VAE": lambda: meta.write_text(
            good_meta.replace('"latent_dim": 8', '"latent_dim": 9')
        ),
    }
    for what, damage in damages.items():
        weights.write_bytes(good_weights)
        meta.write_text(good_meta)
        damage()
        warned = _Warnings()
        info = load_or_train_vae(spec, train, torch.device("cpu"), tmp_path, warned)[1]
        assert info["cache"] == "trained" and len(warned.messages) == 1, what


def test_varmixup_with_clean_batch_adds_the_clean_loss(tmp_path):
    cls = get_method("varmixup")
    method = cls(build_config(cls.Config, {"latent_dim": 8, "vae_epochs": 1}, "varmixup"))
    method.prepare(_prepare_ctx(tmp_path, _tiny_train_set()))
    model = build_model("small-cnn", 10, [0.5] * 3, [0.25] * 3)
    x, y = _batch(n=8)
    out = method.training_step(model, x, y, RunRandom(0))
    assert out.count == 16 and torch.isfinite(out.loss)


def test_cutmix_labels_follow_the_pasted_area():
    cls = get_method("cutmix")
    method = cls()
    x, y = torch.zeros(4, 3, 32, 32), torch.arange(4)
    captured = {}

    class Spy(torch.nn.Module):
        def forward(self, inp):
            captured["x"] = inp
            return torch.zeros(len(inp), 4, requires_grad=True)

    x[1] = 1.0  # only image 1 is white: whoever receives a box from it gets white pixels
    method.training_step(Spy(), x, y, RunRandom(3))
    ref = RunRandom(3)
    ref.numpy.random()
    ref.beta(1.0)
    perm = ref.permutation(4)
    receiver = int((perm == 1).nonzero())
    area = float(captured["x"][receiver, 0].mean())
    assert 0 < area < 1


def test_allowed_values_from_a_literal_or_from_hp_choices():
    import dataclasses

    import pytest

    from vicinal.core.errors import VicinalError
    from vicinal.core.hparams import hp

    with pytest.raises(VicinalError, match="'blurry' is not one of 'conv', 'resnet'"):
        build_config(get_method("varmixup").Config, {"vae_arch": "blurry"}, "varmixup")

    @dataclasses.dataclass
    class Plain:
        kind: str = hp("a", "a plain str setting with its values listed", choices=("a", "b"))

    assert build_config(Plain, {"kind": "b"}, "plain").kind == "b"
    with pytest.raises(VicinalError, match="'c' is not one of 'a', 'b'"):
        build_config(Plain, {"kind": "c"}, "plain")
