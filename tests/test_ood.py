"""OOD detection: the metrics against scikit-learn, torchmetrics and torch-uncertainty (number for number),
the scores, the OOD sets in their real file formats (SVHN's .mat, CIFAR's Python-2 batches), their
downloads over a local server, and the ood evaluator on a trained model."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import struct
import tarfile
import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax
from sklearn.metrics import average_precision_score, roc_auc_score
from trained import context

from vicinal.core.errors import VicinalError
from vicinal.core.hparams import build_config
from vicinal.data.datasets import DataSplits, ImageSet
from vicinal.data.ood_sets import OOD_SETS, fetch
from vicinal.evaluation.evaluator import EVALUATORS, EvalContext
from vicinal.store import detection_metrics as dm
from vicinal.store.outcomes import read_examples, resample_weights

# A fixed case with ties inside each class and across them (in-distribution: False).
TIED_SCORES = np.array([0.9, 0.9, 0.8, 0.8, 0.8, 0.7, 0.5, 0.5, 0.3, 0.3, 0.3, 0.1, 0.9, 0.2, 0.7, 0.5])
TIED_OOD = np.array([0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 0], bool)


def _peers(scores: np.ndarray, is_ood: np.ndarray) -> dict[str, float]:
    """Each metric as a peer computes it, each peer set up for this module's convention."""
    pytest.importorskip("torch_uncertainty")
    from torch_uncertainty.metrics.classification.fpr import FPRx
    from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision

    s, ood = torch.tensor(scores), torch.tensor(is_ood.astype(np.int64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FPRx warns that it keeps every score in memory
        fpr = FPRx(recall_level=0.95, pos_label=1)
    fpr.update(s, 1 - ood)  # in-distribution positive, ranked by the in-distribution score
    return {
        "auroc/sklearn": roc_auc_score(~is_ood, scores),
        # torch-uncertainty's eval_ood: OOD positive, ranked by the OOD score (the negated one)
        "auroc/torchmetrics": BinaryAUROC()(-s, ood).item(),
        "aupr_in/sklearn": average_precision_score(~is_ood, scores),
        "aupr_out/sklearn": average_precision_score(is_ood, -scores),
        "aupr_out/torchmetrics": BinaryAveragePrecision()(-s, ood).item(),
        "fpr95/torch-uncertainty": fpr.compute().item(),
    }


def _ours(scores: np.ndarray, is_ood: np.ndarray) -> dict[str, float]:
    return {
        "auroc": dm.auroc(scores, is_ood),
        "aupr_in": dm.aupr_in(scores, is_ood),
        "aupr_out": dm.aupr_out(scores, is_ood),
        "fpr95": dm.fpr_at_tpr(scores, is_ood, 0.95),
    }


def _assert_equal_to_peers(scores: np.ndarray, is_ood: np.ndarray) -> None:
    ours = _ours(scores, is_ood)
    for name, value in _peers(scores, is_ood).items():
        metric, peer = name.split("/")
        # scikit-learn computes in float64; torchmetrics and torch-uncertainty in float32
        tolerance = 1e-12 if peer == "sklearn" else 1e-6
        assert ours[metric] == pytest.approx(value, abs=tolerance), (name, ours[metric], value)


def test_detection_metrics_equal_the_peers_on_fixed_scores_with_ties():
    _assert_equal_to_peers(TIED_SCORES, TIED_OOD)
    # And on many small random cases, half of them with heavy ties (scores from 5 levels).
    rng = np.random.default_rng(0)
    for trial in range(30):
        n = int(rng.integers(4, 40))
        scores = rng.integers(0, 5, n) / 4 if trial % 2 else rng.normal(size=n)
        is_ood = rng.random(n) < 0.4
        is_ood[:2] = [False, True]
        _assert_equal_to_peers(scores, is_ood)


def test_detection_metrics_equal_the_peers_on_a_trained_models_outputs():
    ctx = context()
    patches = OOD_SETS["patches"].open(ctx.data_dir, (3, 32, 32), 300, 0, "")
    z_in = ctx.test_logits.numpy()
    z_out = ctx.predict_batches(patches.batches(128)).numpy()
    is_ood = np.r_[np.zeros(len(z_in), bool), np.ones(len(z_out), bool)]
    z = np.concatenate([z_in, z_out])
    msp = softmax(z, axis=1).max(1)
    for scores in (msp, z.max(1), logsumexp(z, axis=1)):
        _assert_equal_to_peers(scores, is_ood)
    # The log-MSP the evaluator ranks by gives the same metrics where the MSP itself has no float ties.
    if len(np.unique(msp)) == len(msp):
        assert _ours(dm.log_msp(z), is_ood) == pytest.approx(_ours(msp, is_ood), abs=1e-12)


def test_fpr95_takes_the_first_threshold_at_or_above_95_percent_tpr_with_in_distribution_positive():
    # 20 in-distribution scores 20, 19, …, 1 and 10 OOD ones: TPR reaches 95 % exactly at score 2.
    outside = np.array([19.5, 18.5, 1.5, 0.5, -1, -2, -3, -4, -5, -6])
    scores = np.r_[np.arange(20, 0, -1.0), outside]
    is_ood = np.r_[np.zeros(20, bool), np.ones(10, bool)]
    assert dm.fpr_at_tpr(scores, is_ood) == pytest.approx(2 / 10)  # 19.5 and 18.5 are accepted
    # 18 in-distribution scores: TPR is 17/18 = 94.4 % at score 2 and 100 % at score 1. The TPR nearest
    # 95 % (Hendrycks's original rule) would be 94.4 %, FPR 2/10; at least 95 % is 100 %, FPR 3/10.
    scores2 = np.r_[np.arange(18, 0, -1.0), outside]
    ood2 = np.r_[np.zeros(18, bool), np.ones(10, bool)]
    assert dm.fpr_at_tpr(scores2, ood2) == pytest.approx(3 / 10)
    # torch-uncertainty's eval_ood takes OOD as positive: a different number for the same scores.
    pytest.importorskip("torch_uncertainty")
    from torch_uncertainty.metrics import FPR95

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = FPR95(pos_label=1)
    theirs.update(torch.tensor(-scores), torch.tensor(is_ood.astype(np.int64)))
    assert theirs.compute().item() != pytest.approx(dm.fpr_at_tpr(scores, is_ood))


def test_metrics_under_bootstrap_weights_equal_the_metrics_of_the_resampled_examples():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, 40) / 5.0  # ties, which duplicated examples add more of
    is_ood = rng.random(40) < 0.5
    weights = resample_weights(40, 6, rng)
    ranking = dm.Ranking(scores, is_ood)
    for r in range(len(weights)):
        drawn = np.repeat(np.arange(40), weights[r].astype(int))
        for kind, metric in dm.METRICS.items():
            expected = metric(dm.Ranking(scores[drawn], is_ood[drawn]), None, 0.95)
            assert metric(ranking, weights, 0.95)[r] == pytest.approx(expected, abs=1e-12), kind


def test_scores_rank_saturated_predictions_and_match_scipy():
    # Margins of 40 and 50 nats: the float64 MSP of both is exactly 1.0 (a tie); their log-MSPs differ.
    z = np.array([[40.0, 0.0, 0.0], [50.0, 0.0, 0.0], [1.0, 2.0, 0.5], [3.0, 3.0, -1.0]])
    assert softmax(z, axis=1).max(1)[0] == softmax(z, axis=1).max(1)[1] == 1.0
    scores = dm.ood_scores(z, temperature=2.0)
    assert scores["msp"][0] < scores["msp"][1] < 0
    np.testing.assert_allclose(scores["msp"][2:], np.log(softmax(z[2:], axis=1).max(1)), rtol=1e-14)
    np.testing.assert_allclose(scores["maxlogit"], z.max(1))
    np.testing.assert_allclose(scores["energy"], logsumexp(z, axis=1), rtol=1e-14)
    np.testing.assert_allclose(scores["msp_ts"][2:], np.log(softmax(z[2:] / 2, axis=1).max(1)), rtol=1e-14)
    with pytest.raises(ValueError, match="finite"):
        dm.auroc(np.array([0.1, np.nan]), np.array([False, True]))
    with pytest.raises(ValueError, match="booleans"):
        dm.auroc(np.array([0.1, 0.2]), np.array([0, 1]))


# ---------------------------------------------------------------- the OOD sets in their real formats


def _svhn_mat(path, n: int = 12, seed: int = 0) -> np.ndarray:
    """A small SVHN .mat as the release stores it: X uint8 (32, 32, 3, N), y (N, 1), label 10 for 0."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    savemat(path, {"X": x, "y": rng.integers(1, 11, (n, 1)).astype(np.uint8)})
    return x


def _with_md5(monkeypatch, name: str, md5: str) -> None:
    source = OOD_SETS[name]
    monkeypatch.setattr(source, "download", dataclasses.replace(source.download, md5=md5))


def test_svhn_reads_the_mat_layout_subsets_resizes_and_checks_its_md5(tmp_path, monkeypatch):
    folder = tmp_path / "svhn"
    folder.mkdir()
    x = _svhn_mat(folder / "test_32x32.mat")
    source = OOD_SETS["svhn"]
    with pytest.raises(VicinalError, match="is not the published eb5a983be6a315427106f1b164d9cef3"):
        source.open(tmp_path, (3, 32, 32), 0, 0, "")
    _with_md5(monkeypatch, "svhn", hashlib.md5((folder / "test_32x32.mat").read_bytes()).hexdigest())
    images = source.open(tmp_path, (3, 32, 32), 0, 0, "")
    got = torch.cat(list(images.batches(5)))
    assert got.dtype == torch.uint8 and got.shape == (12, 3, 32, 32)
    assert torch.equal(got, torch.from_numpy(x.transpose(3, 2, 0, 1).copy()))  # H W C N → N C H W
    # A seeded subset, the same images at any batch size; the file or its folder as a local copy.
    sub = source.open(tmp_path, (3, 32, 32), 5, 1, str(folder))
    assert sub.n == 5 and torch.equal(torch.cat(list(sub.batches(2))), torch.cat(list(sub.batches(5))))
    assert sub.fingerprint != images.fingerprint
    big = source.open(tmp_path, (3, 64, 64), 0, 0, str(folder / "test_32x32.mat"))
    assert next(big.batches(4)).shape == (4, 3, 64, 64) and "resized" in big.info


def _py2_string(raw: bytes) -> bytes:
    return (b"U" + bytes([len(raw)]) if len(raw) < 256 else b"T" + struct.pack("<i", len(raw))) + raw


def _py2_int(v: int) -> bytes:
    return b"K" + bytes([v]) if v < 256 else b"M" + struct.pack("<H", v)


def _py2_cifar_batch(data: np.ndarray, fine: list[int], coarse: list[int]) -> bytes:
    """A CIFAR-100 python batch as its authors wrote it: a Python 2 protocol-2 pickle of a dict with str
    keys (b'data', b'fine_labels', … to a bytes-decoding reader) and numpy's Python 2 array pickle."""
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _py2_int(0) + b"\x85" + _py2_string(b"b")
        + b"\x87R(" + _py2_int(1) + _py2_int(data.shape[0]) + _py2_int(data.shape[1]) + b"\x86"
        + b"cnumpy\ndtype\n" + _py2_string(b"u1") + _py2_int(0) + _py2_int(1) + b"\x87R"
        + b"(" + _py2_int(3) + _py2_string(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff" + _py2_int(0)
        + b"tb\x89" + _py2_string(data.tobytes()) + b"tb"
    )  # fmt: skip
    labels = [
        _py2_string(key) + b"](" + b"".join(_py2_int(v) for v in values) + b"e"
        for key, values in ((b"fine_labels", fine), (b"coarse_labels", coarse))
    ]
    return (
        b"\x80\x02}(" + _py2_string(b"data") + array + b"".join(labels)
        + _py2_string(b"batch_label") + _py2_string(b"testing batch 1 of 1") + b"u."
    )  # fmt: skip


def test_cifar100_test_split_is_read_from_a_python2_batch(tmp_path):
    import pickle

    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (9, 3072), dtype=np.uint8)
    blob = _py2_cifar_batch(data, [0, 99, 5, 7, 1, 2, 3, 4, 5], [1] * 9)
    assert set(pickle.loads(blob, encoding="bytes")) == {
        b"data",
        b"fine_labels",
        b"coarse_labels",
        b"batch_label",
    }
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "test").write_bytes(blob)
    source = OOD_SETS["cifar100"]
    assert source.missing(tmp_path, "") is None
    images = source.open(tmp_path, (3, 32, 32), 0, 0, "")
    got = torch.cat(list(images.batches(4)))
    assert torch.equal(got, torch.from_numpy(data.reshape(9, 3, 32, 32)))
    assert "not the published test batch" in images.info["verified"]


def test_a_missing_download_is_one_message_naming_the_command(tmp_path):
    why = OOD_SETS["svhn"].missing(tmp_path, "")
    assert f"vicinal download svhn --data-dir {tmp_path}" in why and "evaluators.ood.paths" in why
    assert "vicinal download cifar100" in OOD_SETS["cifar100"].missing(tmp_path, "")
    assert OOD_SETS["uniform"].missing(tmp_path, "") is None
    ood = EVALUATORS.get("ood")
    evaluator = ood(build_config(ood.Config, {"sets": ["svhn", "uniform"]}, "evaluators.ood"))
    images = torch.zeros((2, 3, 32, 32), dtype=torch.uint8)
    test = ImageSet(images, torch.zeros(2, dtype=torch.long))
    data = DataSplits("cifar10", test, test, 10, [str(i) for i in range(10)], "random")
    # As `vicinal run` checks inputs: the suite's data and folders, no trained model yet.
    ctx = EvalContext(None, data, torch.device("cpu"), batch_size=2, data_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(VicinalError, match="vicinal download svhn"):
        evaluator.check_inputs(ctx)
    for bad, message in (
        ({"sets": ["svhn", "nope"]}, "unknown OOD set 'nope'"),
        ({"sets": ["uniform"], "paths": ["svhn=/x"]}, "not NAME=PATH"),
        ({"sets": ["uniform", "uniform"]}, "twice"),
    ):
        with pytest.raises(VicinalError, match=message):
            ood(build_config(ood.Config, bad, "evaluators.ood"))


def test_generated_sets_are_seeded_whatever_the_batch_size():
    from pathlib import Path

    gaussian = torch.cat(list(OOD_SETS["gaussian"].open(Path("."), (3, 32, 32), 2500, 0, "").batches(300)))
    again = torch.cat(list(OOD_SETS["gaussian"].open(Path("."), (3, 32, 32), 2500, 0, "").batches(1000)))
    other = torch.cat(list(OOD_SETS["gaussian"].open(Path("."), (3, 32, 32), 2500, 1, "").batches(1000)))
    assert torch.equal(gaussian, again) and not torch.equal(gaussian, other)
    # N(0.5, 1) clipped: P(x ≤ 0) = P(x ≥ 1) = Φ(−0.5) = 0.3085
    share = (gaussian == 0).double().mean().item(), (gaussian == 255).double().mean().item()
    assert share == pytest.approx((0.3085, 0.3085), abs=0.005)
    uniform = torch.cat(list(OOD_SETS["uniform"].open(Path("."), (3, 32, 32), 1000, 0, "").batches(512)))
    assert uniform.double().mean().item() == pytest.approx(127.5, abs=0.5)
    patches = OOD_SETS["patches"].open(Path("."), (3, 48, 40), 50, 0, "")
    x = torch.cat(list(patches.batches(16)))
    assert x.shape == (50, 3, 48, 40) and x.dtype == torch.uint8
    assert x.float().std(dim=(2, 3)).mean() > 10  # photographs, not flat colour
    with pytest.raises(VicinalError, match="takes no path"):
        OOD_SETS["patches"].open(Path("."), (3, 32, 32), 5, 0, "/somewhere")


def test_a_generated_set_is_made_once_per_process_and_is_the_same_images(monkeypatch):
    """Every model of a run evaluates the same generated set: the second model reads the kept images, which
    are those a fresh generator makes; a stream abandoned half-way keeps nothing, and another size, seed
    or shape is made anew."""
    from pathlib import Path

    patches = type(OOD_SETS["patches"])()
    first = torch.cat(list(patches.open(Path("."), (3, 32, 32), 1500, 3, "").batches(256)))
    made = []
    monkeypatch.setattr(patches, "chunk", lambda *a: made.append(a) or type(patches).chunk(patches, *a))
    again = torch.cat(list(patches.open(Path("."), (3, 32, 32), 1500, 3, "").batches(100)))
    assert torch.equal(first, again) and made == []  # kept: no chunk made again
    fresh = torch.cat(list(type(patches)().open(Path("."), (3, 32, 32), 1500, 3, "").batches(1500)))
    assert torch.equal(first, fresh)
    for other in ((1500, 4, (3, 32, 32)), (1499, 3, (3, 32, 32)), (1500, 3, (1, 32, 32))):
        n, seed, shape = other
        made.clear()
        x = torch.cat(list(patches.open(Path("."), shape, n, seed, "").batches(512)))
        assert len(made) == 2 and x.shape == (n, *shape)
    # half a stream: nothing kept, the next full one makes every chunk
    next(iter(patches.open(Path("."), (3, 16, 16), 1500, 0, "").batches(100)))
    made.clear()
    list(patches.open(Path("."), (3, 16, 16), 1500, 0, "").batches(100))
    assert len(made) == 2


def test_downloads_resume_verify_and_extract_from_a_local_server(tmp_path, monkeypatch):
    import http.server
    import threading

    svhn_dir = tmp_path / "src"
    svhn_dir.mkdir()
    _svhn_mat(svhn_dir / "test_32x32.mat")
    mat = (svhn_dir / "test_32x32.mat").read_bytes()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        blob = _py2_cifar_batch(np.zeros((2, 3072), np.uint8), [1, 2], [0, 0])
        info = tarfile.TarInfo("cifar-100-python/test")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    files = {"/test_32x32.mat": mat, "/cifar-100-python.tar.gz": archive.getvalue()}
    served = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files[self.path]
            start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
            served.append((self.path, start))
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        for name, path in (("svhn", "/test_32x32.mat"), ("cifar100", "/cifar-100-python.tar.gz")):
            source = OOD_SETS[name]
            md5 = hashlib.md5(files[path]).hexdigest()
            monkeypatch.setattr(
                source, "download", dataclasses.replace(source.download, urls=(base + path,), md5=md5)
            )
        data = tmp_path / "data"
        (data / "svhn").mkdir(parents=True)
        (data / "svhn" / "test_32x32.mat.part").write_bytes(mat[:1000])  # an interrupted download
        assert fetch("svhn", data) == data / "svhn" / "test_32x32.mat"
        assert fetch("cifar100", data) == data / "cifar-100-python" / "test"
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert served == [("/test_32x32.mat", 1000), ("/cifar-100-python.tar.gz", 0)]
    assert (data / "svhn" / "test_32x32.mat").read_bytes() == mat
    assert OOD_SETS["svhn"].open(data, (3, 32, 32), 0, 0, "").n == 12
    assert OOD_SETS["cifar100"].open(data, (3, 32, 32), 0, 0, "").n == 2
    with pytest.raises(VicinalError, match="generated"):
        fetch("uniform", data)


# ---------------------------------------------------------------- the evaluator


def test_ood_evaluator_metrics_per_example_statistics_and_figures(tmp_path):
    ood = EVALUATORS.get("ood")
    evaluator = ood(build_config(ood.Config, {"n_generated": 120}, "evaluators.ood"))
    ctx = context(artifact_stem=tmp_path / "run", data_dir=tmp_path)
    out = evaluator.evaluate(ctx)
    info = evaluator.metric_info()
    assert set(out) == set(info)
    assert {k for k, m in info.items() if m.headline} == {"ood_auroc", "ood_fpr95"}
    assert {m.key for m in info.values() if m.by == "ood"} == {"uniform", "gaussian", "patches"}
    # Each number from the metric functions on the model's logits, T shared with the calibration evaluator.
    t = ctx.temperature
    z_in = ctx.test_logits.numpy()
    for name in ("uniform", "gaussian", "patches"):
        images = OOD_SETS[name].open(tmp_path, (3, 32, 32), 120, 0, "")
        z_out = ctx.predict_batches(images.batches(64)).numpy()
        is_ood = np.r_[np.zeros(len(z_in), bool), np.ones(len(z_out), bool)]
        for suffix, score in (("", "msp"), ("_energy", "energy"), ("_ts", "msp_ts")):
            s = np.concatenate([dm.ood_scores(z_in, t)[score], dm.ood_scores(z_out, t)[score]])
            assert out[f"ood_auroc{suffix}/{name}"] == pytest.approx(dm.auroc(s, is_ood), abs=1e-12)
            assert out[f"ood_fpr95{suffix}/{name}"] == pytest.approx(dm.fpr_at_tpr(s, is_ood), abs=1e-12)
    assert out["ood_auroc"] == pytest.approx(
        np.mean([out[f"ood_auroc/{n}"] for n in ("uniform", "gaussian", "patches")])
    )
    # The per-example file recomputes every metric exactly (the ranks of the scores are stored).
    ctx.write_examples()
    file = read_examples(tmp_path / "run.examples.npz")
    assert file.space_of("ood_auroc").n_total == len(z_in) + 3 * 120
    for metric in out:
        assert file.point(metric) == pytest.approx(out[metric], abs=1e-12), metric
    assert "ood" in ctx.artifacts
    assert (tmp_path / "run.ood.png").stat().st_size > 10_000


def test_pairs_of_sets_keep_their_own_groups_under_resampling():
    """ood_auroc (the mean over sets) is the mean of the per-set values under every resample: the sets
    share the in-distribution draws of one space."""
    from vicinal.board.paired import Resampler

    ood = EVALUATORS.get("ood")
    evaluator = ood(build_config(ood.Config, {"n_generated": 60, "figures": False}, "evaluators.ood"))
    ctx = context()
    evaluator.evaluate(ctx)
    file = read_examples(ctx.examples.to_bytes())
    reps = Resampler(resamples=300, seed=2).replicates(
        [(file, "ood_auroc"), *((file, f"ood_auroc/{n}") for n in ("uniform", "gaussian", "patches"))]
    )
    np.testing.assert_allclose(reps[0], np.mean(reps[1:], axis=0), rtol=1e-12)
    assert 0 < np.std(reps[0]) < 0.1


@pytest.mark.parametrize("n", [2, 3])
def test_tie_groups_of_every_size_count_half(n):
    # n in-distribution and n OOD examples all tied: AUROC is exactly 1/2, whatever the order.
    for perm in itertools.permutations(range(2 * n)):
        is_ood = (np.array(perm) % 2).astype(bool)
        assert dm.auroc(np.zeros(2 * n), is_ood) == 0.5


# ---------------------------------------------------------------- end to end


def test_a_digits_run_has_ood_and_selective_columns_a_by_ood_board_and_paired_intervals(isolated):
    """The issue's done-criteria in small: a digits run with both evaluators, their headline columns
    marked by paired intervals, `--by ood`, and `compare` with an interval from the per-example outcomes."""
    import json

    import vicinal
    from vicinal import api

    settings = {
        "evaluators.ood.n_generated": 60,
        "evaluators.ood.figures": False,
        "evaluators.selective.figure": False,
    }
    results = vicinal.run(
        "digits",
        methods=["erm", "mixup"],
        epochs=1,
        evaluators=["clean", "ood", "selective"],
        settings=settings,
        results_dir=isolated / "r",
        cache_dir=isolated / "c",
        device="cpu",
    )
    assert {r.method for r in results} == {"erm", "mixup"}
    (board,) = json.loads(vicinal.leaderboard(isolated / "r").to_json())
    assert {"ood_auroc", "ood_fpr95", "aurc", "augrc"} <= set(board["columns"])
    # Each new headline column marked by the paired bootstrap, not by the fallback rule.
    assert all(board["marking"][m]["rule"] == "interval" for m in ("ood_auroc", "aurc"))
    by_ood = vicinal.leaderboard(isolated / "r", by="ood").to_csv()
    assert "uniform" in by_ood and "gaussian" in by_ood and "patches" in by_ood
    metrics = ["ood_auroc", "ood_fpr95_energy", "aurc", "augrc", "cov@5"]
    comparison = api.compare("mixup", "erm", results_dir=isolated / "r", metrics=metrics, resamples=300)
    for d in comparison.differences:
        assert d.basis == "examples" and d.low is not None and d.low <= d.diff <= d.high, d.metric
