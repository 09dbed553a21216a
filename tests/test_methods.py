"""The mixing itself: convex combinations, the right λ and partner, the right layer, the VAE's decodes."""

import torch
import torch.nn.functional as F

from vicinal.datasets import ImageSet
from vicinal.hparams import build_config
from vicinal.method import PrepareContext, get_method, mixed_cross_entropy
from vicinal.models import build_model
from vicinal.reporting import SilentReporter
from vicinal.rng import RunRandom
from vicinal.vae import ConvVAE, VAESpec, load_or_train_vae


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
    progress = SilentReporter()
    spec = VAESpec("tiny", "fp", (3, 32, 32), 8, 1.0, 1, 1e-3, 32, 0)
    vae1, info1 = load_or_train_vae(spec, train, torch.device("cpu"), tmp_path, progress)
    vae2, info2 = load_or_train_vae(spec, train, torch.device("cpu"), tmp_path, progress)
    assert (info1["cache"], info2["cache"]) == ("trained", "reused")
    for a, b in zip(vae1.state_dict().values(), vae2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = VAESpec("tiny", "fp", (3, 32, 32), 8, 4.0, 1, 1e-3, 32, 0)  # β differs: a different VAE
    assert other.key() != spec.key()
    assert load_or_train_vae(other, train, torch.device("cpu"), tmp_path, progress)[1]["cache"] == "trained"
    assert len(list((tmp_path / "vae").glob("*.pt"))) == 2


def test_vae_handles_64px_images():
    vae = ConvVAE((3, 64, 64), latent_dim=8)
    assert vae.reconstruct(torch.rand(2, 3, 64, 64)).shape == (2, 3, 64, 64)


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
