"""Corrupted sets on disk: layout, streaming, checksums, resumable downloads, the corruption evaluator."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import stat
import statistics
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli

from vicinal.board.relative import add_relative_metrics
from vicinal.core.errors import VicinalError
from vicinal.corruptions import corrupt
from vicinal.data.corrupted import NpySet, Release, cell_generator, find_set, write_set
from vicinal.data.datasets import ImageSet, load_dataset
from vicinal.evaluation.calibration_metrics import calibration_metrics
from vicinal.evaluation.evaluator import EvalContext, MetricInfo
from vicinal.evaluators.corruption import CorruptionEvaluator, rebatch
from vicinal.store.results import Result
from vicinal.training.models import build_model

CPU = torch.device("cpu")
PICK = ["gaussian_noise", "brightness", "speckle_noise"]  # two common corruptions and one extra


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").hold_out(0.1)


@pytest.fixture(scope="module")
def small_test(digits):
    return digits.test.subset(torch.arange(60))


def _write(test: ImageSet, out: Path, corruptions=PICK, severities=(1, 3), seed=0) -> dict:
    return write_set(
        test,
        out,
        list(corruptions),
        list(severities),
        seed=seed,
        table=None,
        device=CPU,
        source={"dataset": "digits", "test_fingerprint": test.fingerprint()},
        chunk=25,  # several chunks, so the generator's state carries across them
    )


def test_written_set_has_the_released_layout_and_reads_back(tmp_path, small_test):
    manifest = _write(small_test, tmp_path)
    n = len(small_test)
    arr = np.load(tmp_path / "gaussian_noise.npy")
    assert arr.shape == (2 * n, 32, 32, 3) and arr.dtype == np.uint8
    assert np.array_equal(np.load(tmp_path / "labels.npy"), np.tile(small_test.labels.numpy(), 2))
    # Severity-major rows, each equal to the engine's output with that cell's generator.
    gen = cell_generator(0, "gaussian_noise", 3, CPU)
    expected = torch.cat(
        [corrupt(small_test.images[i : i + 25], "gaussian_noise", 3, generator=gen) for i in (0, 25, 50)]
    )
    assert np.array_equal(arr[n:], expected.permute(0, 2, 3, 1).numpy())
    assert manifest["settings"]["table"] == "cifar" and manifest["severities"] == [1, 3]
    assert set(manifest["md5"]) == {"labels", *PICK}
    assert (
        manifest["md5"]["brightness"] == hashlib.md5((tmp_path / "brightness.npy").read_bytes()).hexdigest()
    )

    cset = find_set(tmp_path, None)
    assert cset.n == n and cset.severities == [1, 3] and cset.corruptions == PICK
    assert cset.verified == "md5 ok" and (tmp_path / ".vicinal-verified.json").is_file()
    index = torch.tensor([3, 4, 5, 40])
    got = torch.cat(list(cset.batches("gaussian_noise", 3, 3, index)))
    assert torch.equal(got, expected[index])
    assert torch.equal(cset.labels(), small_test.labels)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_file_of_a_written_set_has_one_mode_the_umasks(tmp_path, small_test, umask):
    """A generated set is meant to be shared: the corruption files were written 0600 (mkstemp's mode)
    while labels.npy and manifest.json were 0644."""
    old = os.umask(umask)
    try:
        _write(small_test, tmp_path, corruptions=PICK[:2], severities=(1,))
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir() if not p.name.startswith(".")}
    assert set(modes) == {"labels.npy", "manifest.json", "gaussian_noise.npy", "brightness.npy"}
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_write_resumes_and_regenerates_only_what_is_missing(tmp_path, small_test):
    _write(small_test, tmp_path)
    kept = (tmp_path / "brightness.npy").stat().st_mtime_ns
    (tmp_path / "gaussian_noise.npy").unlink()
    _write(small_test, tmp_path)
    assert (tmp_path / "brightness.npy").stat().st_mtime_ns == kept
    assert (tmp_path / "gaussian_noise.npy").is_file()
    _write(small_test, tmp_path, seed=1)  # other settings: everything is made again
    assert (tmp_path / "brightness.npy").stat().st_mtime_ns != kept


def test_truncated_misshaped_and_tampered_files_name_the_file(tmp_path, small_test):
    _write(small_test, tmp_path)
    target = tmp_path / "brightness.npy"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(VicinalError, match=r"brightness\.npy.*(truncated|not a readable)"):
        NpySet(tmp_path)
    np.save(target, np.zeros((5, 32, 32, 3), np.uint8))
    with pytest.raises(VicinalError, match=r"brightness\.npy has shape \(5, 32, 32, 3\)"):
        NpySet(tmp_path)
    _write(small_test, tmp_path)
    flipped = bytearray(target.read_bytes())
    flipped[-1] ^= 0xFF
    target.write_bytes(bytes(flipped))
    # Issue 22: the manifest's own checksum is not called "published".
    recorded = r"brightness\.npy: its MD5 is .* \(the MD5 manifest\.json recorded"
    with pytest.raises(VicinalError, match=recorded):
        NpySet(tmp_path)


def test_released_files_are_checked_against_published_md5s(tmp_path):
    labels = np.tile(np.arange(10), 5)
    np.save(tmp_path / "labels.npy", labels)
    np.save(tmp_path / "fog.npy", np.full((50, 32, 32, 3), 7, np.uint8))
    md5 = {p.stem: hashlib.md5(p.read_bytes()).hexdigest() for p in tmp_path.glob("*.npy")}
    release = Release("x", "X-C", "X-C.tar", "", None, (), 10, md5)
    assert NpySet(tmp_path, release).verified == "md5 ok"
    bad = dataclasses.replace(release, file_md5={**md5, "fog": "0" * 32})
    (tmp_path / ".vicinal-verified.json").unlink()
    published = r"fog\.npy: its MD5 is \w+, not 0{32} \(the published MD5 of the X-C"
    with pytest.raises(VicinalError, match=published):
        NpySet(tmp_path, bad)


# ---------------------------------------------------------------- downloads over a local HTTP server


class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""
    html = False

    def do_GET(self):
        if self.html:
            body = b"<!DOCTYPE html><html><body>Zenodo is down</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        start = 0
        if rng := self.headers.get("Range"):
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = self.payload[start:]
        type(self).served.append(start)
        self.send_header("Content-Type", "application/x-tar")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("H", (_Handler,), {"served": [], "payload": b"", "html": False})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}/X-C.tar"
    httpd.shutdown()
    httpd.server_close()


def _tar_of_set() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, arr in (("labels", np.tile(np.arange(10), 5)), ("fog", np.ones((50, 32, 32, 3), np.uint8))):
            raw = io.BytesIO()
            np.save(raw, arr)
            info = tarfile.TarInfo(f"X-C/{name}.npy")
            info.size = len(raw.getvalue())
            tar.addfile(info, io.BytesIO(raw.getvalue()))
    return buf.getvalue()


def test_download_resumes_a_partial_file_verifies_and_extracts(tmp_path, server, monkeypatch):
    from vicinal.data import corrupted, download

    handler, url = server
    handler.payload = _tar_of_set()
    md5 = hashlib.md5(handler.payload).hexdigest()
    (tmp_path / "X-C.tar.part").write_bytes(handler.payload[:1000])  # an interrupted earlier download
    release = Release("x", "X-C", "X-C.tar", md5, len(handler.payload), ("http://127.0.0.1:9/nope", url), 10)
    monkeypatch.setitem(corrupted.RELEASES, "x", release)
    folder = download.fetch_release("x", tmp_path)
    assert handler.served == [1000]  # only the missing bytes were fetched
    assert NpySet(folder).corruptions == ["fog"]
    assert not (tmp_path / "X-C.tar.part").exists()


def test_download_refuses_html_and_wrong_checksums(tmp_path, server):
    from vicinal.data.download import download_file

    handler, url = server
    handler.html = True
    with pytest.raises(VicinalError, match="HTML page"):
        download_file([url], tmp_path / "X-C.tar", "0" * 32)
    assert not (tmp_path / "X-C.tar").exists()
    handler.html, handler.payload = False, b"not the archive"
    with pytest.raises(VicinalError, match="MD5"):
        download_file([url], tmp_path / "X-C.tar", "0" * 32)
    assert not (tmp_path / "X-C.tar").exists() and not (tmp_path / "X-C.tar.part").exists()


# ---------------------------------------------------------------- the evaluator


def _ctx(digits, model, cache_dir=None, data_dir=None):
    return EvalContext(model, digits, CPU, 128, cache_dir=cache_dir, data_dir=data_dir)


def _evaluator(**kw):
    cfg = CorruptionEvaluator.Config(corruptions=PICK, severities=[1, 3], **kw)
    return CorruptionEvaluator(cfg)


def test_evaluator_numbers_match_an_independent_computation(tmp_path, digits):
    torch.manual_seed(0)
    mean, std = digits.channel_stats()
    model = build_model("small-cnn", 10, mean, std).eval()
    ev = _evaluator(n_samples=0)
    out = ev.evaluate(_ctx(digits, model, cache_dir=tmp_path))
    labels = digits.test.labels
    cells = {}
    for name in PICK:
        for s in (1, 3):
            x = torch.cat(
                [
                    corrupt(
                        digits.test.images[i : i + 1000], name, s, generator=cell_generator(0, name, s, CPU)
                    )
                    for i in range(0, len(labels), 1000)
                ]
            )
            with torch.no_grad():
                logits = model(x.float() / 255).double()
            cells[(name, s)] = (logits.argmax(1) == labels).double().mean().item()
            assert out[f"c_acc/{name}/s{s}"] == pytest.approx(cells[(name, s)], abs=1e-12)
            # The cells are evaluated in one stream whose batches straddle cells: each cell's ECE is
            # still its own images' (up to float rounding of the batch composition).
            ece = calibration_metrics(logits.numpy(), labels.numpy(), 15)["ece"]
            assert out[f"c_ece/{name}/s{s}"] == pytest.approx(ece, abs=1e-6)
    common = ["gaussian_noise", "brightness"]
    assert out["c_acc"] == pytest.approx(statistics.fmean(cells[(c, s)] for c in common for s in (1, 3)))
    assert out["c_acc_all"] == pytest.approx(statistics.fmean(cells.values()))
    assert out["c_acc/s3"] == pytest.approx(statistics.fmean(cells[(c, 3)] for c in common))
    assert out["c_acc/speckle_noise"] == pytest.approx(
        (cells[("speckle_noise", 1)] + cells[("speckle_noise", 3)]) / 2
    )
    assert 0 <= out["c_ece"] <= 1 and "c_ece_ts" in out
    # Generated once into the cache; on the fly (no cache) gives the same images and numbers.
    assert len(list((tmp_path / "corrupted").iterdir())) == 1
    assert ev.evaluate(_ctx(digits, model)) == out
    protocol = ev.protocol()
    assert protocol["common"] == common and protocol["severities"] == [1, 3]
    assert protocol["source"]["images_per_cell"] == len(labels)


def test_evaluator_prefers_a_set_on_disk_and_checks_it_matches(tmp_path, digits):
    model = build_model("small-cnn", 10, *digits.channel_stats()).eval()
    _write(digits.test, tmp_path / "digits-C")
    ev = _evaluator(source="disk")
    ev.evaluate(_ctx(digits, model, data_dir=tmp_path))
    assert ev.protocol()["source"]["kind"] == "generated" and ev.protocol()["source"]["path"].endswith(
        "digits-C"
    )
    other = dataclasses.replace(digits, test=digits.test.subset(torch.arange(100)))
    with pytest.raises(VicinalError, match="other test images"):
        _evaluator(source="disk", n_samples=0).evaluate(_ctx(other, model, data_dir=tmp_path))
    with pytest.raises(VicinalError, match="vicinal corrupt"):
        _evaluator(source="disk").evaluate(_ctx(digits, model, data_dir=tmp_path / "empty"))
    with pytest.raises(VicinalError, match="lacks fog"):
        CorruptionEvaluator(CorruptionEvaluator.Config(corruptions=["fog"], source="disk")).evaluate(
            _ctx(digits, model, data_dir=tmp_path)
        )


def test_bad_evaluator_settings_are_errors():
    with pytest.raises(VicinalError, match="unknown corruption 'fgo'"):
        CorruptionEvaluator(CorruptionEvaluator.Config(corruptions=["fgo"]))
    with pytest.raises(VicinalError, match="choose from 1–5"):
        CorruptionEvaluator(CorruptionEvaluator.Config(severities=[0, 6]))
    ev = CorruptionEvaluator(CorruptionEvaluator.Config(corruptions=["blur", "extra"]))
    assert ev.corruptions == [
        "defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "speckle_noise", "gaussian_blur", "spatter",
        "saturate",
    ]  # fmt: skip


# ---------------------------------------------------------------- mCE


def _cells_result(method, acc, cells, seed=0):
    metrics = {"acc": acc, "mce": 0.25}  # the calibration evaluator's maximum calibration error
    info = {"acc": MetricInfo("acc", True), "mce": MetricInfo("MCE", False)}
    for (c, s), v in cells.items():
        metrics[f"c_acc/{c}/s{s}"] = v
        info[f"c_acc/{c}/s{s}"] = MetricInfo(f"acc {c} s{s}", True, family="c_acc", by="cell", key=f"{c}/{s}")
    return Result(
        suite="toy",
        method=method,
        seed=seed,
        metrics=metrics,
        metric_info=info,
        protocol={"corruption": {"common": ["fog", "snow"]}},
        training={"epochs": 3},
        data={"n_train": 100},
    )


def test_mce_and_relative_mce_against_a_hand_computation():
    erm = _cells_result("erm", 0.9, {("fog", 1): 0.8, ("fog", 2): 0.6, ("snow", 1): 0.7, ("snow", 2): 0.5})
    mix = _cells_result("mixup", 0.8, {("fog", 1): 0.8, ("fog", 2): 0.7, ("snow", 1): 0.6, ("snow", 2): 0.6})
    base, other = add_relative_metrics([erm, mix])
    # per corruption: fog (0.2 + 0.3) / (0.2 + 0.4); snow (0.4 + 0.4) / (0.3 + 0.5)
    assert other.metrics["ce/fog"] == pytest.approx(0.5 / 0.6)
    assert other.metrics["ce/snow"] == pytest.approx(0.8 / 0.8)
    # mCE: errors summed over all four cells, over erm's sum over the same cells
    assert other.metrics["c_mce"] == pytest.approx((0.5 + 0.8) / (0.6 + 0.8))
    # relative: (0.2−0.2 + 0.3−0.2 + 0.4−0.2 + 0.4−0.2) / (0.2−0.1 + 0.4−0.1 + 0.3−0.1 + 0.5−0.1)
    assert other.metrics["c_rel_mce"] == pytest.approx(0.5 / 1.0)
    assert base.metrics["c_mce"] == pytest.approx(1.0) and base.metrics["c_rel_mce"] == pytest.approx(1.0)
    assert other.metrics["mce"] == 0.25  # calibration's MCE is a different metric, left alone
    assert "c_mce" not in mix.metrics  # the inputs are not modified
    alone = add_relative_metrics([mix])  # no erm baseline: nothing derived
    assert "c_mce" not in alone[0].metrics


def test_mce_cannot_rank_against_corrupted_accuracy():
    # The digits-c case: erm almost never errs on fog, a method errs 10× as often there but
    # far less on snow. Its corrupted accuracy is better; the mean of per-corruption ratios said 5× worse.
    erm = _cells_result("erm", 1.0, {("fog", 1): 0.9996, ("fog", 2): 1.0, ("snow", 1): 0.8, ("snow", 2): 0.6})
    var = _cells_result(
        "varmixup", 1.0, {("fog", 1): 0.998, ("fog", 2): 0.998, ("snow", 1): 0.95, ("snow", 2): 0.85}
    )
    _, other = add_relative_metrics([erm, var])
    ratios = (0.004 / 0.0004 + 0.2 / 0.6) / 2  # Hendrycks's mean of per-corruption ratios
    assert ratios > 5 and other.metrics["ce/fog"] == pytest.approx(10)
    assert other.metrics["c_mce"] == pytest.approx(0.204 / 0.6004) and 0.204 / 0.6004 < 1
    # Many methods, erm over several seeds: mCE equals (1 − acc-C) / (1 − erm's mean acc-C), so its
    # order is exactly the reverse of acc-C's.
    rng = np.random.default_rng(0)
    keys = [(c, s) for c in ("fog", "snow") for s in (1, 2, 3)]

    def draw(method, seed=0):
        accs = 1 - rng.uniform(0, 0.3, len(keys)) * rng.uniform(0, 1, len(keys)) ** 3
        return _cells_result(method, 1.0, dict(zip(keys, accs, strict=True)), seed)

    rows = [draw("erm", 0), draw("erm", 1), *(draw(f"m{i}") for i in range(30))]
    derived = add_relative_metrics(rows)
    acc_c = [np.mean([r.metrics[f"c_acc/{c}/s{s}"] for c, s in keys]) for r in rows]
    erm_err = 1 - np.mean(acc_c[:2])
    for r, a in zip(derived, acc_c, strict=True):
        assert r.metrics["c_mce"] == pytest.approx((1 - a) / erm_err, rel=1e-12)
    order = np.argsort([r.metrics["c_mce"] for r in derived[2:]], kind="stable")
    assert list(order) == list(np.argsort(-np.array(acc_c[2:]), kind="stable"))


# ---------------------------------------------------------------- suites and the command line


def test_c_suites_extend_their_clean_suite():
    from vicinal.execution.suite import load_suite

    clean, c = load_suite("cifar10"), load_suite("cifar10-c")
    assert c.recipe == clean.recipe and c.model == clean.model and c.name == "cifar10-c"
    assert list(c.evaluators) == [*clean.evaluators, "corruption"]
    assert load_suite("digits-c").evaluators["corruption"]["source"] == "generate"


def test_suite_extends_loops_are_errors(tmp_path):
    from vicinal.execution.suite import load_suite

    (tmp_path / "a.toml").write_text('extends = "b.toml"\nname = "a"\n[data]\ndataset = "digits"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\nname = "b"\n')
    with pytest.raises(VicinalError, match="loops"):
        load_suite(str(tmp_path / "a.toml"))


def test_corrupt_command_writes_a_set_and_rejects_bad_input(tmp_path):
    out = run_cli(
        "corrupt", "--dataset", "digits", "--out", str(tmp_path / "set"), "--corruptions", "fog,saturate",
        "--severities", "2,5", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["settings"]["corruptions"] == ["fog", "saturate"] and manifest["severities"] == [2, 5]
    assert np.load(tmp_path / "set" / "fog.npy", mmap_mode="r").shape == (900, 32, 32, 3)
    bad = run_cli("corrupt", "--dataset", "digits", "--corruptions", "fgo", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown corruption 'fgo'" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("corrupt", "--dataset", "digits", "--severities", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "severities run from 1 to 5" in bad.stderr


def test_released_tiny_imagenet_c_folders_are_read_in_place(tmp_path):
    from PIL import Image

    from vicinal.data.corrupted import RELEASES

    wnids = ["n02", "n01"]  # the clean dataset's class order (wnids.txt), not sorted
    rng = np.random.default_rng(0)
    for c in ("fog", "contrast"):
        for s in range(1, 6):
            for w in wnids:
                (tmp_path / c / str(s) / w).mkdir(parents=True)
                for k in range(2):
                    pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(tmp_path / c / str(s) / w / f"val_{k}.JPEG", quality=95)
    cset = find_set(tmp_path, RELEASES["tinyimagenet"], wnids=wnids)
    assert cset.corruptions == ["fog", "contrast"] and cset.n == 4
    assert cset.labels().tolist() == [1, 1, 0, 0]  # n01 is class 1 in this dataset's order
    (batch,) = list(cset.batches("contrast", 4, 8))
    assert batch.shape == (4, 3, 64, 64) and batch.dtype == torch.uint8
    first = np.array(Image.open(tmp_path / "contrast" / "4" / "n01" / "val_0.JPEG").convert("RGB"))
    assert torch.equal(batch[0], torch.from_numpy(first).permute(2, 0, 1))


def test_download_unpacks_a_set_wrapped_in_a_second_archive(tmp_path, server, monkeypatch):
    from vicinal.data import corrupted, download

    handler, url = server
    inner = _tar_of_set()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Wrapped/X-C.tar")
        info.size = len(inner)
        tar.addfile(info, io.BytesIO(inner))
    handler.payload = buf.getvalue()
    md5 = hashlib.md5(handler.payload).hexdigest()
    monkeypatch.setitem(corrupted.RELEASES, "x", Release("x", "X-C", "X-C-outer.tar", md5, None, (url,), 10))
    folder = download.fetch_release("x", tmp_path)
    assert folder == tmp_path / "X-C" and NpySet(folder).corruptions == ["fog"]


def test_corruptions_on_which_erm_makes_no_error_have_no_ce_but_count_in_mce():
    erm = _cells_result("erm", 1.0, {("fog", 1): 0.8, ("fog", 2): 0.6, ("snow", 1): 1.0, ("snow", 2): 1.0})
    mix = _cells_result("mixup", 0.9, {("fog", 1): 0.7, ("fog", 2): 0.7, ("snow", 1): 0.9, ("snow", 2): 0.9})
    _, other = add_relative_metrics([erm, mix])
    assert "ce/snow" not in other.metrics  # x / 0
    assert other.metrics["ce/fog"] == pytest.approx(0.6 / 0.6)
    assert other.metrics["c_mce"] == pytest.approx((0.6 + 0.2) / (0.6 + 0.0))
    perfect = _cells_result("erm", 1.0, {(c, s): 1.0 for c in ("fog", "snow") for s in (1, 2)})
    assert "c_mce" not in add_relative_metrics([perfect, mix])[1].metrics  # nothing to divide by


def test_rebatch_keeps_every_image_in_order_in_full_batches():
    parts = [torch.arange(n) + 100 * i for i, n in enumerate([450, 450, 7, 0, 300])]
    out = list(rebatch(iter(parts), 128))
    assert torch.equal(torch.cat(out), torch.cat(parts))
    assert [len(b) for b in out[:-1]] == [128] * (len(out) - 1) and 0 < len(out[-1]) <= 128
