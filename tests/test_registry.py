import dataclasses
import json
import textwrap

import pytest
from helpers import ROOT, run_cli

from vicinal import Method, VicinalError, register_method
from vicinal.core.registry import Registry
from vicinal.training.method import METHODS, get_method, list_methods

SEED_METHODS = {"erm", "mixup", "manifold-mixup", "varmixup", "varmixup-beta", "cutmix"}


def test_builtins_are_registered():
    assert set(list_methods()) >= SEED_METHODS


def test_pattern_listing():
    assert list_methods("mix*") == ["mixup"]
    assert list_methods("varmixup*") == ["varmixup", "varmixup-beta"]
    assert "manifold-mixup" in list_methods("*mix*")


def test_a_duplicate_name_is_an_error_when_used_not_when_registered():
    @register_method("test-identity")
    class Identity(Method):
        def training_step(self, model, x, y, rng):
            raise AssertionError("not called")

    try:
        assert get_method("test-identity") is Identity
        assert Identity.name == "test-identity"

        @register_method("test-identity")  # a plugin clashing with a name: registering does not fail ...
        class Other(Method):
            pass

        assert get_method("mixup")  # ... other names keep working ...
        with pytest.raises(VicinalError, match=r"'test-identity' is registered twice: by .*Identity and by "):
            get_method("test-identity")  # ... and using the clashing name says who registered it
    finally:
        METHODS.remove("test-identity")


@pytest.mark.parametrize("name", ["../../x", "rich[/x]", "[bold]m", "a,b", "a.b", "", "-x", "x" * 65, "é"])
def test_names_that_could_become_paths_or_markup_are_refused(name):
    with pytest.raises(VicinalError, match="invalid method name"):

        @register_method(name)
        class Bad(Method):
            pass


def test_a_plugin_redefining_a_builtin_only_breaks_that_name(tmp_path):
    plugin = tmp_path / "clash.py"
    plugin.write_text(
        textwrap.dedent(
            """
            from vicinal import Method, register_method

            @register_method("mixup")
            class MyMixup(Method):
                pass
            """
        )
    )
    ok = run_cli("methods", "--plugin", str(plugin), cwd=tmp_path)
    assert ok.returncode == 0 and "cutmix" in ok.stdout
    bad = run_cli("run", "--plugin", str(plugin), "--methods", "mixup", cwd=tmp_path)
    assert bad.returncode == 2 and "registered twice" in bad.stderr and str(plugin) in bad.stderr
    assert "Traceback" not in bad.stderr


def test_unknown_name_lists_closest():
    with pytest.raises(VicinalError, match="Did you mean: mixup"):
        get_method("mixpu")


def test_config_must_be_dataclass():
    with pytest.raises(TypeError, match="dataclass"):

        @register_method("test-bad-config")
        class Bad(Method):
            Config = dict


def test_registry_is_generic():
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(VicinalError, match="invalid widget name"):
        reg.add("a,b", 2)
    assert reg.names("a") == ["a"]  # a plain word matches as a substring
    assert reg.names() == ["a"]


def test_cutmix_touches_no_other_file():
    """The registry's worked example: cutmix is mentioned by its own file and by docs/tests only."""
    mentions = [
        p.relative_to(ROOT).as_posix()
        for folder in ("vicinal", "methods", "suites")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and p.suffix in {".py", ".toml"} and "cutmix" in p.read_text().lower()
    ]
    assert mentions == ["methods/cutmix.py"]
    assert get_method("cutmix").mixes_in == "input"


PLUGIN = textwrap.dedent("""
    from dataclasses import dataclass
    import torch.nn.functional as F
    from vicinal import Method, StepOutput, hp, register_method

    @register_method("label-smoothing-demo")
    class LabelSmoothing(Method):
        mixes_in = "none"
        summary = "cross-entropy with smoothed labels (plugin demo)"

        @dataclass
        class Config:
            smoothing: float = hp(0.1, "label smoothing")

        def training_step(self, model, x, y, rng):
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=self.config.smoothing)
            return StepOutput(loss, float((logits.argmax(1) == y).sum()), len(y))
""")


def test_plugin_file_from_the_command_line(tmp_path):
    plugin = tmp_path / "smooth.py"
    plugin.write_text(PLUGIN)
    out = run_cli("methods", "--verbose", "--plugin", str(plugin), "label-*", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "label-smoothing-demo" in out.stdout and "smoothing" in out.stdout


def test_entry_point_discovery(tmp_path):
    """A package that declares a `vicinal.methods` entry point is found without any flag."""
    site = tmp_path / "site"
    (site / "demo_plugin").mkdir(parents=True)
    (site / "demo_plugin" / "__init__.py").write_text(PLUGIN)
    dist = site / "demo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[vicinal.methods]\nsmoothing = demo_plugin\n")
    out = run_cli("methods", "label-*", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr
    assert "label-smoothing-demo" in out.stdout


def test_bad_plugin_is_one_clear_error(tmp_path):
    out = run_cli("methods", "--plugin", str(tmp_path / "nope.py"), cwd=tmp_path)
    assert out.returncode == 2
    assert "plugin file" in out.stderr and "Traceback" not in out.stderr


def test_hyperparameters_are_dataclasses_with_help():
    for name in SEED_METHODS:
        for f in dataclasses.fields(get_method(name).Config):
            assert f.metadata.get("help"), f"{name}.{f.name} has no help text"


def test_editing_a_plugin_method_retrains_and_keeps_the_rows_apart(tmp_path):
    """A plugin author changes the method's code between two runs with the same settings: the second run
    must not reuse the first result or its checkpoint, and the leaderboard must not average the two."""
    plugin = tmp_path / "noisy.py"
    source = textwrap.dedent(
        """
        import torch.nn.functional as F
        from vicinal import Method, StepOutput, register_method

        @register_method("noisy")
        class Noisy(Method):
            def training_step(self, model, x, y, rng):
                logits = model(x + SCALE * rng.normal_like(x))
                loss = F.cross_entropy(logits, y)
                return StepOutput(loss, float((logits.argmax(1) == y).sum()), len(y))
        """
    )
    plugin.write_text(source.replace("SCALE", "0.1"))
    env = {"VICINAL_RESULTS_DIR": str(tmp_path / "r"), "VICINAL_CACHE_DIR": str(tmp_path / "c")}
    args = ["run", "--plugin", str(plugin), "--methods", "noisy", "--epochs", "1", "--limit-train", "64",
            "--evaluators", "clean", "--quiet"]  # fmt: skip
    first = run_cli(*args, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    again = run_cli(*args, cwd=tmp_path, env=env)
    assert "0 trained, 1 reused" in again.stdout and "same configuration, data and code" in again.stdout
    plugin.write_text(source.replace("SCALE", "1.0"))  # multiply the noise by 10
    second = run_cli(*args, cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert "1 trained, 0 reused" in second.stdout
    files = sorted((tmp_path / "r" / "digits-c" / "noisy").glob("*.json"))
    docs = [json.loads(f.read_text()) for f in files]
    assert len(docs) == 2 and docs[0]["training_id"] != docs[1]["training_id"]
    assert all(d["training"]["resumed_from_epoch"] == 0 for d in docs)  # the checkpoint was not reused
    board = json.loads(run_cli("leaderboard", "--format", "json", cwd=tmp_path, env=env).stdout)
    rows = board[0]["rows"]
    assert len(rows) == 2 and all(r["metrics"]["acc"]["n"] == 1 for r in rows)
    # The edited plugin's row is the method's; the first one is labelled as earlier code, with its date.
    labels = sorted(r["label"] for r in rows)
    assert labels[0] == "noisy" and labels[1].startswith("noisy [earlier code (vicinal "), labels
