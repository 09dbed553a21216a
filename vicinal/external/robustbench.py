"""RobustBench inside vicinal: load model-zoo entries through robustbench's own ``load_model``, and export a
result in the form a RobustBench model-zoo submission takes.

robustbench is optional (``pip install "vicinal[robustbench]"``) and imported only here, lazily. What its
1.1.1 release needs, as measured with torch 2.14.1 / torchvision 0.29.1:

- it imports ``autoattack`` (``from autoattack import AutoAttack``, ``from autoattack.state import
  EvaluationState``), a package that is not on PyPI under that name; PyPI's ``pyautoattack`` is the same
  code under the module name ``pyautoattack``. When ``autoattack`` itself is not importable, vicinal makes
  the name point at ``pyautoattack`` (and ``autoattack.state`` at ``pyautoattack.state``) before
  importing robustbench — only here, only then;
- it imports ``pkg_resources``, which setuptools 81 removed: hence ``setuptools<81``;
- its import emits deprecation warnings (timm's moved modules, ``pkg_resources``, ``torch.jit``), which
  are silenced around the import only;
- it installs a top-level ``tests`` package into site-packages; this repository's tests are found by path
  (``--import-mode=importlib``, ``pythonpath = ["tests"]``, no ``tests/__init__.py``), so it is never
  imported in their place.

RobustBench's own conventions that vicinal follows: models take images in [0, 1] and normalise inside;
its corruption accuracy is the unweighted mean of the per-(corruption, severity) accuracies over its 15
corruptions × 5 severities (``robustbench.eval.corruptions_evaluation``) — vicinal's ``c_acc`` is computed
the same way over the same cells (tested against ``load_cifar10c`` + ``clean_accuracy``).

One module (longer than most) for everything that touches robustbench, so that nothing else imports it:
the import shims, zoo loading and the submission export.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from vicinal.core.errors import VicinalError

#: vicinal datasets that RobustBench's zoo covers, by RobustBench's name for them.
DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100"}
THREATS = ("corruptions", "Linf", "L2")
INSTALL = 'pip install "vicinal[robustbench]"'
DEFAULT_MODEL_DIR = Path("models")  # robustbench.utils.load_model's own default (relative to the cwd)
#: Severities of RobustBench's CIFAR corruption benchmark (its 15 corruptions are vicinal's "common" ones).
N_SEVERITIES = 5


def _alias_autoattack() -> None:
    """Make ``import autoattack`` find PyPI's ``pyautoattack`` when the original package is absent."""
    try:
        importlib.import_module("autoattack")
        return  # the GitHub package (module name autoattack) is installed: robustbench uses it
    except ImportError:
        pass
    try:
        package = importlib.import_module("pyautoattack")
        state = importlib.import_module("pyautoattack.state")
    except ImportError:
        raise VicinalError(
            f"robustbench imports autoattack, which is not installed: {INSTALL} (installs pyautoattack)"
        ) from None
    sys.modules["autoattack"] = package
    sys.modules["autoattack.state"] = state


def import_robustbench() -> ModuleType:
    """robustbench, imported as described in this module's docstring; one clear error when it is missing."""
    if "robustbench.utils" in sys.modules:
        return sys.modules["robustbench"]
    if importlib.util.find_spec("robustbench") is None:
        raise VicinalError(f"RobustBench is not installed: {INSTALL}")
    _alias_autoattack()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # import-time deprecations of its dependencies, not ours to fix
            module = importlib.import_module("robustbench")
            importlib.import_module("robustbench.utils")
            importlib.import_module("robustbench.data")
    except ImportError as exc:
        hint = (
            " (setuptools 81 removed pkg_resources: pip install 'setuptools<81')"
            if "pkg_resources" in str(exc)
            else ""
        )
        raise VicinalError(f"robustbench failed to import: {exc}{hint}; reinstall with {INSTALL}") from None
    return module


def robustbench_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("robustbench")
    except PackageNotFoundError:
        return None


def zoo_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise VicinalError(
            f"RobustBench's model zoo has CIFAR-10, CIFAR-100 and ImageNet models; this suite's dataset is "
            f"{dataset}. Use a cifar10 or cifar100 suite (e.g. --suite cifar10-c)"
        )
    return DATASETS[dataset]


def check_threat(threat: str) -> str:
    if threat not in THREATS:
        raise VicinalError(f"--threat {threat!r}: choose one of {', '.join(THREATS)}")
    return threat


def zoo_entries(dataset: str, threat: str) -> dict[str, Any]:
    """RobustBench's model-zoo entries for a dataset and threat model (name → entry)."""
    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return dict(model_dicts[BenchmarkDataset(zoo_dataset(dataset))][ThreatModel(check_threat(threat))])


def checkpoint_path(model_dir: Path, dataset: str, threat: str, name: str) -> Path:
    """Where robustbench's ``load_model`` keeps (and, offline, expects) an entry's checkpoint."""
    return Path(model_dir) / zoo_dataset(dataset) / threat / f"{name}.pt"


def load_zoo_model(name: str, dataset: str, threat: str = "corruptions", model_dir: str | Path | None = None):
    """A model-zoo entry through ``robustbench.utils.load_model`` (which downloads it when online and reads
    ``<model_dir>/<dataset>/<threat>/<name>.pt`` when it is already there), as a
    :class:`vicinal.external.given.GivenModel` with its origin."""
    from vicinal.external.given import GivenModel, code_of, file_sha256

    entries = zoo_entries(dataset, threat)
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise VicinalError(
            f"--robustbench {name}: not a RobustBench {zoo_dataset(dataset)} {threat} model{hint} "
            f"({len(entries)} entries, e.g. {', '.join(list(entries)[:3])})"
        )
    folder = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
    checkpoint = checkpoint_path(folder, dataset, threat, name)
    ensemble = isinstance(entries[name].get("gdrive_id"), list)
    files = (
        [Path(f"{checkpoint}_m{i}.pt") for i in range(len(entries[name]["gdrive_id"]))]
        if ensemble
        else [checkpoint]
    )
    present = all(f.is_file() for f in files)
    from robustbench.utils import load_model

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = load_model(name, model_dir=str(folder), dataset=zoo_dataset(dataset), threat_model=threat)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if not present:
            raise VicinalError(
                f"RobustBench could not fetch {name} ({type(exc).__name__}: {first}); without a network, "
                f"put its checkpoint at {files[0]}"
            ) from None
        raise VicinalError(
            f"RobustBench could not load {name} from {files[0]}: {type(exc).__name__}: {first}"
        ) from None
    cls = type(model)
    origin: dict[str, Any] = {
        "kind": "robustbench",
        "robustbench": {
            "name": name,
            "dataset": zoo_dataset(dataset),
            "threat_model": threat,
            "version": robustbench_version(),
            "loader": "robustbench.utils.load_model",
        },
        "architecture": cls.__name__,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "normalisation": {"from": "inside the model (RobustBench's convention: inputs in [0, 1])"},
    }
    existing = [f for f in files if f.is_file()]
    if existing:
        origin["checkpoint"] = str(existing[0].resolve())
        origin["sha256"] = file_sha256(existing[0])
        if len(existing) > 1:
            origin["ensemble_checkpoints"] = {str(f.resolve()): file_sha256(f) for f in existing}
    return GivenModel(model.eval(), origin, code_of(cls))


# ---------------------------------------------------------------- export for a submission

#: The fields of a RobustBench model-info file (robustbench.utils.ModelInfo), in its order.
MODEL_INFO_FIELDS = (
    "link",
    "name",
    "authors",
    "additional_data",
    "number_forward_passes",
    "dataset",
    "venue",
    "architecture",
    "eps",
    "clean_acc",
    "reported",
    "corruptions_acc",
    "corruptions_acc_3d",
    "corruptions_mce",
    "corruptions_mce_3d",
    "autoattack_acc",
    "footnote",
)
#: Fields only the authors can fill (the paper and whether extra data was used, for evaluated models).
TO_FILL = ("link", "name", "authors", "venue", "reported")
#: RobustBench's standard radius per threat model on CIFAR (its leaderboards' ``eps``).
STANDARD_EPS = {"Linf": "8/255", "L2": "0.5"}


def _percent(value: float) -> str:
    """RobustBench writes accuracies as percentage strings with two decimals (``update_json``)."""
    return str(round(value * 100, 2))


def protocol_differences(result: Any, threat: str) -> list[str]:
    """How a result's protocol differs from RobustBench's for ``threat`` (empty: the same protocol)."""
    from vicinal.corruptions import corruption_names

    out = []
    n_test = result.data.get("n_test")
    if n_test != 10_000:
        out.append(f"clean accuracy on {n_test} test images, not the 10,000 of the test set")
    if threat == "corruptions":
        proto = result.protocol.get("corruption")
        if proto is None:
            return [*out, "no corruption evaluator in the result (use a -c suite)"]
        missing = [c for c in corruption_names("common") if c not in proto.get("common", [])]
        if missing:
            out.append(f"corruptions missing: {', '.join(missing)}")
        if sorted(proto.get("severities", [])) != list(range(1, N_SEVERITIES + 1)):
            out.append(f"severities {proto.get('severities')}, not 1–5")
        source = proto.get("source")
        if not (
            isinstance(source, dict)
            and source.get("kind") == "released"
            and source.get("verified") == "md5 ok"
        ):
            kind = source.get("kind") if isinstance(source, dict) else source
            out.append(f"corrupted set {kind!r}, not the released CIFAR-C files (MD5-verified)")
        elif source.get("images_per_cell") != 10_000:
            out.append(f"{source.get('images_per_cell')} images per corruption and severity, not 10,000")
    else:
        proto = result.protocol.get("adversarial", {})
        if threat == "L2":
            out.append(
                "vicinal runs AutoAttack under L∞ only; RobustBench's L2 claim needs AutoAttack L2 at 0.5"
            )
        elif f"autoattack@{STANDARD_EPS['Linf']}" not in result.metrics:
            out.append("no AutoAttack accuracy at 8/255 (--set evaluators.adversarial.autoattack=true)")
        elif (
            proto.get("subset", {}).get("n") not in (0, None) and proto.get("subset", {}).get("n", 0) < 10_000
        ):
            out.append(f"AutoAttack on a subset of {proto['subset']['n']} test images, not all 10,000")
    return out


def model_info(result: Any, threat: str, footnote: str = "") -> dict[str, Any]:
    """A RobustBench model-info record for ``result`` (fields as in robustbench.utils.ModelInfo and its
    model_info/*.json files). What vicinal cannot know is left empty for the authors to fill."""
    dataset = zoo_dataset(result.data.get("dataset", ""))
    evaluated = result.evaluated or {}
    architecture = evaluated.get("architecture") or result.suite_spec.get("model")
    info: dict[str, Any] = dict.fromkeys(MODEL_INFO_FIELDS)
    info.update(
        {
            "link": "",
            "name": "",
            "authors": "",
            # vicinal trains only on the suite's training split; of an evaluated model it cannot know.
            "additional_data": False if result.evaluated is None else None,
            "number_forward_passes": 1,
            "dataset": dataset,
            "venue": "",
            "architecture": architecture,
            "eps": None if threat == "corruptions" else STANDARD_EPS[threat],
            "clean_acc": _percent(result.metrics["acc"]),
        }
    )
    if threat == "corruptions":
        info["corruptions_acc"] = _percent(result.metrics["c_acc"])
    elif f"autoattack@{STANDARD_EPS['Linf']}" in result.metrics:
        info["autoattack_acc"] = _percent(result.metrics[f"autoattack@{STANDARD_EPS['Linf']}"])
    info["footnote"] = footnote or None
    return {k: v for k, v in info.items() if v is not None or k in ("eps", "reported", "additional_data")}


def unaggregated_row(result: Any, model_name: str) -> str:
    """The per-(corruption, severity) accuracies as RobustBench's ``unaggregated_results.csv`` holds them:
    two header rows (corruption, severity) and one row per model, accuracies as fractions."""
    import csv
    import io

    from vicinal.corruptions import corruption_names

    cells = [(c, s) for c in corruption_names("common") for s in range(1, N_SEVERITIES + 1)]
    cells = [(c, s) for c, s in cells if f"c_acc/{c}/s{s}" in result.metrics]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["", *[c for c, _ in cells]])
    writer.writerow(["", *[s for _, s in cells]])
    writer.writerow([model_name, *[result.metrics[f"c_acc/{c}/s{s}"] for c, s in cells]])
    return out.getvalue()


def export_submission(
    result_file: str | Path,
    out: str | Path,
    *,
    threat: str = "corruptions",
    checkpoint: str | Path | None = None,
    model_name: str | None = None,
    cache_dir: str | Path | None = None,
    allow_partial: bool = False,
) -> dict[str, Path]:
    """Write what a RobustBench model-zoo submission needs for the model behind ``result_file``:

    - ``model_info/<dataset>/<threat>/<name>.json``: the model-info record (``model_info``), as robustbench
      lays out its repository;
    - ``<dataset>/<threat>/<name>.pt``: the state dict, where ``robustbench.utils.load_model`` looks for
      it (so ``DIR`` can be passed to it as ``model_dir`` once the architecture is a zoo entry);
    - ``model_info/<dataset>/corruptions/unaggregated_results.csv``: the per-cell accuracies (corruptions);
    - ``SUBMISSION.md``: what was filled from where and what the authors still have to fill.

    The weights come from ``checkpoint`` if given, else from the run's cached final checkpoint (found
    from the result's ``training_id`` and seed; vicinal-trained results only) or the evaluated
    checkpoint recorded in the result (checked against its SHA-256). A result whose protocol is not
    RobustBench's is refused with the differences, unless ``allow_partial`` (they then go into the
    footnote)."""
    from vicinal.core.io import atomic_torch_save, atomic_write_text
    from vicinal.core.names import check_name
    from vicinal.store.results import default_cache_dir, read_result

    check_threat(threat)
    path = Path(result_file)
    if not path.is_file():
        raise VicinalError(f"--robustbench {result_file}: no such result file")
    try:
        result = read_result(path)
    except ValueError as exc:
        raise VicinalError(f"{path}: not a vicinal result file ({exc})") from None
    if result.is_reported:
        raise VicinalError(f"{path} holds numbers reported by a paper; there is no model to export")
    recorded = result.data.get("dataset") or "not recorded"
    if recorded not in DATASETS:  # zoo_dataset's advice names --suite, an option export does not have
        raise VicinalError(
            f"{path} is a result of suite {result.suite} (dataset {recorded}); RobustBench's zoo takes "
            "CIFAR-10 and CIFAR-100 models: export a result of a cifar10 or cifar100 suite"
        )
    dataset = zoo_dataset(result.data["dataset"])
    name = check_name(model_name or result.method, "model")
    if "acc" not in result.metrics:
        raise VicinalError(f"{path} has no clean accuracy (the clean evaluator); RobustBench needs clean_acc")
    if threat == "corruptions" and "c_acc" not in result.metrics:
        raise VicinalError(f"{path} has no corruption accuracy (c_acc); evaluate on a -c suite")
    differences = protocol_differences(result, threat)
    if differences and not allow_partial:
        raise VicinalError(
            f"{path} was not measured under RobustBench's {threat} protocol: {'; '.join(differences)}. "
            "Evaluate on the released set (vicinal download cifar10-c) and the full test split, or pass "
            "--allow-partial to export anyway with the differences in the footnote"
        )
    footnote = f"Not RobustBench's protocol: {'; '.join(differences)}." if differences else ""
    state, weights_from = _weights_for(
        result, checkpoint, Path(cache_dir) if cache_dir else default_cache_dir()
    )
    root = Path(out)
    info_path = root / "model_info" / dataset / threat / f"{name}.json"
    weights_path = root / dataset / threat / f"{name}.pt"
    atomic_write_text(info_path, json.dumps(model_info(result, threat, footnote), indent=2) + "\n")
    atomic_torch_save(state, weights_path)
    written = {"model_info": info_path, "weights": weights_path}
    if threat == "corruptions":
        csv_path = root / "model_info" / dataset / "corruptions" / "unaggregated_results.csv"
        atomic_write_text(csv_path, unaggregated_row(result, name))
        written["unaggregated"] = csv_path
    notes = root / "SUBMISSION.md"
    atomic_write_text(
        notes, _submission_notes(result, path, name, threat, weights_from, written, differences)
    )
    written["notes"] = notes
    return written


def _weights_for(result: Any, checkpoint: str | Path | None, cache_dir: Path) -> tuple[dict, str]:
    """The state dict to export and a sentence saying where it came from."""

    from vicinal.core.io import load_plain
    from vicinal.external.given import file_sha256
    from vicinal.store.results import config_hash

    evaluated = result.evaluated
    if checkpoint is not None:
        file = Path(checkpoint).expanduser()
        if not file.is_file():
            raise VicinalError(f"--checkpoint {checkpoint}: no such file")
        if evaluated and evaluated.get("sha256") and file_sha256(file) != evaluated["sha256"]:
            raise VicinalError(
                f"--checkpoint {file} is not the checkpoint this result evaluated (its SHA-256 differs from "
                f"{evaluated['sha256'][:12]}… recorded in the result)"
            )
        source = f"--checkpoint {file}"
    elif evaluated is not None:
        recorded = evaluated.get("checkpoint")
        if not recorded:
            raise VicinalError(
                f"the model behind this result was a {evaluated.get('kind')} (no file); pass --checkpoint "
                "with its state dict"
            )
        file = Path(recorded)
        if not file.is_file() or file_sha256(file) != evaluated.get("sha256"):
            raise VicinalError(f"{file} (the evaluated checkpoint) is gone or changed; pass --checkpoint")
        source = f"the evaluated checkpoint {file} (SHA-256 checked)"
    else:
        # Rebuild the run's training identity from the result file; it must hash to the recorded
        # training_id, so the cached checkpoint found from it is exactly this run's final one.
        spec = result.suite_spec
        keys = ("dataset", "limit_train", "validation", "model", "recipe", "milestone_epochs")
        training = {
            "schema": result.schema,
            "suite": {k: spec.get(k) for k in keys},
            "data_fingerprint": result.data.get("fingerprint"),
            "method": result.method,
            "hyperparameters": result.method_info.get("hyperparameters", {}),
            "code": result.environment.get("code", {}),
        }
        if config_hash(training) != result.training_id:
            raise VicinalError(
                "cannot find this run's cached checkpoint (its training identity could not be rebuilt "
                "from the result file); pass --checkpoint"
            )
        file = cache_dir / "checkpoints" / f"{config_hash({**training, 'seed': result.seed})}.pt"
        if not file.is_file():
            raise VicinalError(
                f"the run's final checkpoint {file} is not in the cache; pass --checkpoint or --cache-dir"
            )
        run = f"training_id {result.training_id[:12]}, seed {result.seed}"
        source = f"the run's cached final checkpoint {file} ({run})"
    try:
        obj = load_plain(file, map_location="cpu")
    except ValueError as exc:
        raise VicinalError(f"{file} {exc}") from None
    from vicinal.external.given import state_dict_of

    state, _ = state_dict_of(obj, file)
    if evaluated is None and isinstance(obj, dict) and "epoch" in obj and obj["epoch"] != result.epochs:
        raise VicinalError(f"{file} holds epoch {obj['epoch']} of {result.epochs}: not the final model")
    return state, source


def _submission_notes(
    result: Any,
    path: Path,
    name: str,
    threat: str,
    weights_from: str,
    written: dict[str, Path],
    differences: list[str],
) -> str:
    lines = [
        f"# RobustBench submission material for {name}",
        "",
        f"Exported by vicinal from `{path}` (suite {result.suite}, run {result.run_id[:12]}).",
        "",
        f"- `{written['model_info']}`: the model-info record. clean_acc and "
        + ("corruptions_acc" if threat == "corruptions" else "autoattack_acc")
        + " come from the result file (vicinal's `acc` and "
        + (
            "`c_acc`, the unweighted mean over 15 corruptions × 5 severities, as RobustBench averages"
            if threat == "corruptions"
            else "`autoattack@8/255`"
        )
        + "); architecture and dataset from its protocol.",
        f"- `{written['weights']}`: the state dict, from {weights_from}.",
    ]
    if "unaggregated" in written:
        lines.append(
            f"- `{written['unaggregated']}`: the per-(corruption, severity) accuracies, RobustBench's layout."
        )
    lines += [
        "",
        f"Fill in by hand: {', '.join(TO_FILL)}"
        + (" and additional_data" if result.evaluated is not None else "")
        + ' (the paper and its claim). Then open a "New Model(s)" issue on RobustBench\'s repository with '
        "these numbers and a link to the checkpoint.",
    ]
    if result.evaluated is None:
        lines += [
            "",
            f"The architecture is vicinal's `{result.suite_spec.get('model')}` (`vicinal.training.models`): "
            "it normalises its inputs in its first layer (`normalize.mean` / `normalize.std` buffers, in the "
            "state dict). A model-zoo entry needs that definition added to robustbench's "
            "`model_zoo/architectures`.",
        ]
    if differences:
        lines += [
            "",
            "**Not RobustBench's protocol** (exported with --allow-partial): " + "; ".join(differences) + ".",
        ]
    return "\n".join(lines) + "\n"
