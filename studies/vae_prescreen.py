"""Pre-screen VarMixup VAE designs by held-out reconstruction error, before spending classifier runs.

Each design is a set of VarMixup hyperparameters (``vae_arch=resnet,latent_dim=256``…). The VAE is trained
exactly as a ``vicinal run`` of the study suite would train it (same split, fingerprint, seed and cache
key), so the classifier runs that follow reuse it from ``--cache-dir``. Reported per VAE: MSE of the
posterior-mean reconstructions on the suite's validation split (images held out of the VAE's training
data; the test split is not looked at), on the training split, the final KL and the training time.

    python studies/vae_prescreen.py --data-dir /work/shared/data --cache-dir /work/vae-study/cache \
        --out /work/vae-study/prescreen.json --seeds 0 "vae_likelihood=gaussian" "vae_arch=resnet"

Results are merged into ``--out`` (JSON, one record per VAE cache key), written atomically after each VAE.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from vicinal.methods.vae import VAE, VAESpec, load_or_train_vae, reconstruction_mse

from vicinal.cli.console import reporter as console_reporter
from vicinal.core.hparams import build_config
from vicinal.core.io import atomic_write_text
from vicinal.execution.plan import RunData, load_run_data
from vicinal.execution.suite import load_suite
from vicinal.training.method import get_method

STUDY_SUITE = Path(__file__).with_name("cifar10-quick-c.toml")


def parse_design(text: str) -> dict[str, str]:
    """``"a=1,b=x"`` → ``{"a": "1", "b": "x"}``; ``""`` or ``"default"`` → the method's defaults."""
    if text in ("", "default"):
        return {}
    return dict(item.split("=", 1) for item in text.split(","))


def design_spec(design: dict[str, Any], rd: RunData, seed: int) -> tuple[VAESpec, dict[str, Any]]:
    """The VAE spec a ``vicinal run --set varmixup.K=V …`` of this design would use for ``seed``."""
    cls = get_method("varmixup")
    method = cls(build_config(cls.Config, design, "varmixup"))
    spec = method.vae_spec(rd.splits.name, rd.fingerprint, rd.splits.image_shape, seed)
    return spec, {k: getattr(method.config, k) for k in design}


def heldout_errors(vae: VAE, rd: RunData, device: torch.device) -> dict[str, float]:
    """Reconstruction MSE on the validation split (held out of VAE training) and on the training split."""
    assert rd.splits.val is not None, "the study suite holds out a validation split"
    return {
        "recon_mse_val": reconstruction_mse(vae, rd.splits.val.images, device),
        "recon_mse_train_all": reconstruction_mse(vae, rd.splits.train.images, device),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("designs", nargs="+", help='VarMixup overrides, e.g. "vae_arch=resnet,beta=4"')
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--cache-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--suite", default=str(STUDY_SUITE))
    args = ap.parse_args(argv)

    rd = load_run_data(load_suite(args.suite), args.data_dir, download=False)
    device = torch.device("cpu")
    records: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    with console_reporter() as reporter:
        for text in args.designs:
            for seed in (int(s) for s in args.seeds.split(",")):
                spec, overrides = design_spec(parse_design(text), rd, seed)
                t0 = time.perf_counter()
                vae, info = load_or_train_vae(spec, rd.splits.train, device, args.cache_dir, reporter)
                record = {
                    "design": overrides,
                    "spec": spec.as_dict(),
                    **heldout_errors(vae, rd, device),
                    "kl_final": info["final"].get("kl"),
                    "parameters": info.get("parameters"),
                    "vae_train_seconds": info["train_seconds"],
                    "cache": info["cache"],
                    "wall_seconds": round(time.perf_counter() - t0, 1),
                }
                records[spec.key()] = record
                atomic_write_text(args.out, json.dumps(records, indent=1, sort_keys=True))
                print(
                    f"{text or 'default'} seed {seed}: val MSE {record['recon_mse_val']:.5f}, "
                    f"train MSE {record['recon_mse_train_all']:.5f}, KL {record['kl_final']:.1f}, "
                    f"{info['train_seconds']:.0f} s ({info['cache']})",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
