"""The Ray executor on a real two-node Ray cluster on loopback (``ray.cluster_utils.Cluster``, one CPU per
node), driven through the real command line in a subprocess that joins it with ``--address``: the same
numbers as the local executor, a worker killed mid-run is retried and resumes, a failing run is reported
while the others land, Ctrl-C cancels and the same command resumes, and sweeps give one row per point.

One cluster serves the whole module: starting one costs ~10 s and a few hundred MB on a shared machine.
Without Ray installed only the test of the error that says how to install it runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from importlib.util import find_spec
from pathlib import Path

import pytest
from helpers import RAY_CLI, interruptible, ray_cli_cluster, ray_cluster, run_cli

needs_ray = pytest.mark.skipif(
    find_spec("ray") is None, reason="ray is not installed (pip install 'vicinal[ray]')"
)

#: The digits suite at a tiny budget: 2 methods × 2 seeds.
TINY = ["--suite", "digits", "--methods", "erm,mixup", "--seeds", "0,1", "--epochs", "1"]
TINY += ["--limit-train", "64", "--evaluators", "clean"]
#: One run long enough to be interrupted after its first epoch checkpoint.
LONGER = ["--suite", "digits", "--methods", "erm", "--seeds", "0", "--epochs", "4"]
LONGER += ["--limit-train", "256", "--evaluators", "clean"]


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes of one CPU each, both on 127.0.0.1, shut down whatever the tests do."""
    pytest.importorskip("ray")
    with ray_cluster(nodes=2, cpus=1) as made:
        yield made


def _env(tmp: Path) -> dict[str, str]:
    # One torch thread, as each Ray task of one CPU gets: CPU results depend on the thread count. A token
    # in ~/.ray, as any earlier ray.init() leaves one: joining the module's cluster, which asks for none,
    # must not put the driver in token mode (its workers could not reach it: every run was lost).
    home = tmp / "home"
    (home / ".ray").mkdir(parents=True, exist_ok=True)
    (home / ".ray" / "auth_token").write_text("a-token-this-cluster-does-not-ask-for")
    return {"VICINAL_CACHE_DIR": str(tmp / "cache"), "OMP_NUM_THREADS": "1", "HOME": str(home)}


def _results(folder: Path) -> dict[tuple[str, int, str], dict]:
    """(method, seed, run_id) → the result document, for every result file under ``folder``."""
    docs = [json.loads(p.read_text()) for p in folder.rglob("*.json")]
    return {(d["method"], d["seed"], d["run_id"]): d for d in docs}


def _ray_run(cluster, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("run", *args, "--executor", "ray", "--address", cluster.address, cwd=tmp, env=_env(tmp))


def _popen(cluster, tmp: Path, *args: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "vicinal.cli",
        "run",
        *args,
        "--executor",
        "ray",
        "--address",
        cluster.address,
    ]
    return subprocess.Popen(
        cmd,
        cwd=tmp,
        env={**os.environ, "COLUMNS": "200", **_env(tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=interruptible,
    )


def _wait_for_checkpoint(folder: Path, proc: subprocess.Popen, timeout: float = 300, count: int = 1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and len([p for p in folder.glob("*.pt") if not p.name.startswith(".")]) >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before its first checkpoint: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint in {folder} after {timeout} s")


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc: no psutil needed)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _running_runs(cluster) -> list[int]:
    """PIDs of this cluster's workers that are running a vicinal run now (Ray titles a busy worker
    ``ray::<task name>``; the executor names each task ``vicinal <run>``)."""
    nodes = [cluster.head_node, *cluster.worker_nodes]
    raylets = [p.process.pid for n in nodes for p in n.all_processes.get("raylet", [])]
    busy = []
    for pid in (c for r in raylets for c in _children(r)):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith(("ray::vicinal", "ray::run_attempt")):
            busy.append(pid)
    return busy


@pytest.mark.slow
def test_two_nodes_give_the_local_executors_numbers(cluster, tmp_path):
    on_ray = _ray_run(cluster, tmp_path, *TINY, "--results", str(tmp_path / "ray"))
    assert on_ray.returncode == 0, on_ray.stderr
    assert "Traceback" not in on_ray.stdout + on_ray.stderr
    # Both nodes ran runs (each line of progress names its node) and every run finished.
    assert len(set(re.findall(r"node (127\.0\.0\.1/\w+)", on_ray.stdout))) == 2, on_ray.stdout
    assert on_ray.stdout.count(" finished") == 4
    local = run_cli(
        "run", *TINY, "--results", str(tmp_path / "local"), cwd=tmp_path, env=_env(tmp_path / "other")
    )
    assert local.returncode == 0, local.stderr
    ray_docs, local_docs = _results(tmp_path / "ray"), _results(tmp_path / "local")
    assert len(ray_docs) == 4 and ray_docs.keys() == local_docs.keys()
    for key, doc in ray_docs.items():
        assert doc["metrics"] == local_docs[key]["metrics"], key  # exactly: CPU runs are deterministic
        assert doc["training"]["history"][0]["loss"] == local_docs[key]["training"]["history"][0]["loss"]
        # Each task ran one torch thread, chosen by its --cpus-per-run (default 1) and recorded.
        threads = doc["environment"]["threads"]
        assert (threads["source"], threads["threads"], threads["intra_op_threads"]) == (
            "--cpus-per-run",
            1,
            1,
        )
    # Artifacts came back from the workers and sit beside their result files.
    for path in (tmp_path / "ray").rglob("*.json"):
        for artifact in json.loads(path.read_text())["artifacts"].values():
            assert (path.parent / artifact["file"]).is_file()


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_retried_and_resumes(cluster, tmp_path):
    proc = _popen(cluster, tmp_path, *LONGER, "--results", str(tmp_path / "results"))
    _wait_for_checkpoint(tmp_path / "cache" / "checkpoints", proc)
    (victim,) = _running_runs(cluster)
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "its worker or node was lost; restarted on" in err and "attempt 2 of 4" in err
    (doc,) = _results(tmp_path / "results").values()
    assert doc["training"]["resumed_from_epoch"] >= 1  # from the checkpoint the killed worker wrote
    assert [h["epoch"] for h in doc["training"]["history"]] == [1, 2, 3, 4]
    assert len(list((tmp_path / "results").rglob("*.json"))) == 1


@pytest.mark.slow
def test_ctrl_c_cancels_the_runs_and_the_same_command_resumes(cluster, tmp_path):
    # Two runs at once, one per node: each keeps its checkpoint, and the message counts them (it said
    # "the unfinished run left a checkpoint" when two had).
    args = [*LONGER, "--seeds", "0,1", "--results", str(tmp_path / "results")]
    proc = _popen(cluster, tmp_path, *args)
    _wait_for_checkpoint(tmp_path / "cache" / "checkpoints", proc, count=2)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "2 unfinished runs left checkpoints at their last completed epoch" in " ".join(err.split())
    assert "Run the same command again to resume" in err
    deadline = time.monotonic() + 30
    while _running_runs(cluster) and time.monotonic() < deadline:  # cancelled: the worker is stopped
        time.sleep(0.2)
    assert _running_runs(cluster) == []
    assert not list((tmp_path / "results").rglob("*.json"))
    again = _ray_run(cluster, tmp_path, *args)
    assert again.returncode == 0, again.stderr
    docs = list(_results(tmp_path / "results").values())
    assert len(docs) == 2
    for doc in docs:
        assert doc["training"]["resumed_from_epoch"] >= 1 and len(doc["training"]["history"]) == 4


@pytest.mark.slow
def test_a_run_that_raises_is_reported_while_the_others_land(cluster, tmp_path):
    (tmp_path / "broken.py").write_text(
        textwrap.dedent(
            """
            from vicinal import Method, register_method

            @register_method("broken")
            class Broken(Method):
                def training_step(self, model, x, y, rng):
                    raise RuntimeError("this method is broken")
            """
        )
    )
    args = ["--suite", "digits", "--methods", "broken,erm", "--seeds", "0", "--epochs", "1"]
    args += ["--limit-train", "64", "--evaluators", "clean", "--results", str(tmp_path / "results")]
    # A relative plugin path: the workers get it as an absolute one.
    out = _ray_run(cluster, tmp_path, *args, "--plugin", "broken.py")
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr, out.stderr
    assert "1 run(s) failed, 1 finished and kept" in out.stderr
    assert "broken seed 0: RuntimeError: this method is broken" in out.stderr
    (detail,) = (tmp_path / "cache" / "errors").glob("*.txt")
    assert "this method is broken" in detail.read_text() and "training_step" in detail.read_text()
    assert len(list((tmp_path / "results" / "digits" / "erm").glob("*.json"))) == 1
    assert not (tmp_path / "results" / "digits" / "broken").exists()


@pytest.mark.slow
def test_a_sweep_on_a_private_cluster_runs_one_labelled_configuration_per_value(cluster, tmp_path):
    args = ["--suite", "digits", "--methods", "mixup", "--sweep", "mixup.alpha=0.2,1.0", "--seeds", "0"]
    args += ["--epochs", "1", "--limit-train", "64", "--evaluators", "clean"]
    # No --address: vicinal starts a cluster of its own, although the module's cluster runs on this
    # machine too (and is where a bare ray.init() would go).
    home = tmp_path / "empty-home"  # not _env's, which holds a token
    home.mkdir()
    out = run_cli(
        "run",
        *args,
        "--executor",
        "ray",
        "--results",
        str(tmp_path / "results"),
        cwd=tmp_path,
        env={**_env(tmp_path), "HOME": str(home)},
    )
    assert out.returncode == 0, out.stderr
    assert "ray (a local cluster on this machine)" in out.stdout
    # Its token stayed in the process's environment: a token left in ~/.ray (as before) turned token
    # authentication on for every later `ray start --head`, which a driver then failed to join.
    assert not (home / ".ray").exists()
    nodes = set(re.findall(r"node 127\.0\.0\.1/(\w+)", out.stdout))
    assert nodes and not nodes & {n.node_id[:6] for n in cluster.list_all_nodes()}, out.stdout
    docs = list(_results(tmp_path / "results").values())
    assert sorted(d["method_info"]["hyperparameters"]["alpha"] for d in docs) == [0.2, 1.0]
    # Progress names each point, and the leaderboard gives each its own row.
    assert "mixup [alpha=0.2] · seed 0" in out.stdout and "mixup [alpha=1.0] · seed 0" in out.stdout
    board = [line for line in out.stdout.splitlines() if "│ mixup [alpha=" in line]
    assert len(board) == 2, out.stdout


def test_without_ray_the_ray_executor_says_how_to_install_it(tmp_path):
    # ray hidden from this one process (None in sys.modules: find_spec answers None, import fails).
    code = "import sys; sys.modules['ray'] = None; from vicinal.cli import main; main()"
    args = ["run", "--suite", "digits", "--methods", "erm", "--seeds", "0", "--executor", "ray"]
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        env={**os.environ, **_env(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "--executor ray needs Ray: pip install 'vicinal[ray]'" in out.stderr


@needs_ray
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"address": "nonsense"}, "give auto or HOST:PORT of a Ray head node"),
        ({"address": "127.0.0.1:99999"}, "give auto or HOST:PORT of a Ray head node"),
        ({"gpus_per_run": 1.5}, "a run trains on one GPU"),
        ({"gpus_per_run": 2}, "a run trains on one GPU (vicinal has no data-parallel training)"),
        ({"gpus_per_run": -1}, "--gpus-per-run -1: give a number ≥ 0"),
        ({"max_retries": -1}, "--max-retries -1: give a number ≥ 0"),
        ({"cpus_per_run": 0}, "a run needs a CPU or a GPU"),
        ({"device": "mps"}, "the device is auto, cpu or cuda"),
        ({"device": "cpu", "gpus_per_run": 0.5}, "with --device cpu: drop one of them"),
    ],
)
def test_bad_ray_options_are_refused_before_any_work(options, message):
    from vicinal.core.errors import VicinalError
    from vicinal.execution.executors import make_executor
    from vicinal.execution.options import ExecutorOptions

    settings = {k: v for k, v in options.items() if k != "device"}
    with pytest.raises(VicinalError, match=re.escape(message)):
        make_executor(ExecutorOptions("ray", **settings), device=options.get("device", "auto"))


def test_an_option_of_the_ray_executor_without_it_is_one_error(tmp_path):
    args = ["--suite", "digits", "--methods", "erm", "--seeds", "0", "--address", "127.0.0.1:6379"]
    out = run_cli("run", *args, cwd=tmp_path, env=_env(tmp_path), timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr, out.stderr
    assert "--address applies only to --executor ray; the local executor takes no --address" in out.stderr


class _Nodes:
    """What _settle_resources reads of a connected Ray: ``nodes()`` as Ray reports them."""

    def __init__(self, *shapes: tuple[float, float], dead: tuple[float, float] | None = None):
        self.shapes = [{"Alive": True, "Resources": {"CPU": c, "GPU": g}} for c, g in shapes]
        if dead:
            self.shapes.append({"Alive": False, "Resources": {"CPU": dead[0], "GPU": dead[1]}})

    def nodes(self) -> list[dict]:
        return self.shapes


@needs_ray
@pytest.mark.parametrize(
    ("options", "nodes", "expected"),
    [
        ({}, _Nodes((4, 0)), {"num_cpus": 1.0, "num_gpus": 0.0}),
        ({}, _Nodes((4, 0), (8, 2)), {"num_cpus": 1.0, "num_gpus": 1.0}),  # a GPU each when any
        ({"device": "cpu"}, _Nodes((8, 2)), {"num_cpus": 1.0, "num_gpus": 0.0}),
        (
            {"gpus_per_run": 0.25, "cpus_per_run": 2, "address": "auto"},
            _Nodes((8, 1)),
            {"num_cpus": 2, "num_gpus": 0.25},
        ),
        (
            {"cpus_per_run": 2, "address": "auto"},
            _Nodes((1, 0), (1, 0)),
            "no node of the Ray cluster can hold one run",
        ),
        (
            {"cpus_per_run": 4, "address": "auto"},
            _Nodes((2, 0), dead=(8, 0)),
            "no node of the Ray cluster can hold one run",
        ),
        (
            {"gpus_per_run": 1, "address": "auto"},
            _Nodes((4, 0)),
            "--gpus-per-run 1: the Ray cluster has no GPUs",
        ),
        ({"device": "cuda"}, _Nodes((4, 0)), "--device cuda: the Ray cluster has no GPUs"),
        (
            {"gpus_per_run": 1, "cpus_per_run": 8, "address": "auto"},
            _Nodes((4, 1), (8, 0)),
            "can hold one run (8 CPU + 1 GPU",
        ),
    ],
)
def test_each_run_asks_for_what_one_node_can_hold(options, nodes, expected):
    from vicinal.core.errors import VicinalError
    from vicinal.execution.ray import RayExecutor

    executor = RayExecutor(**options)
    if isinstance(expected, dict):
        assert executor._settle_resources(nodes) == expected
    else:
        with pytest.raises(VicinalError, match=re.escape(expected)):
            executor._settle_resources(nodes)


@needs_ray
def test_an_address_where_no_head_answers_is_one_error_at_once(tmp_path):
    # Port 1 on loopback: nothing listens there. Ray itself would retry for minutes.
    started = time.monotonic()
    out = run_cli(
        "run", *TINY, "--executor", "ray", "--address", "127.0.0.1:1", cwd=tmp_path, env=_env(tmp_path)
    )
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr, out.stderr
    assert "--address 127.0.0.1:1: no Ray head answers there" in out.stderr
    assert time.monotonic() - started < 60
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.slow
def test_a_run_no_node_of_the_cluster_can_hold_is_refused_before_it_waits_forever(cluster, tmp_path):
    out = _ray_run(cluster, tmp_path, *TINY, "--cpus-per-run", "2", "--results", str(tmp_path / "results"))
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr, out.stderr
    assert "no node of the Ray cluster can hold one run (2 CPU + 0 GPU per run; its nodes: " in out.stderr
    assert not list(tmp_path.rglob("*.json"))


# ---------------------------------------------------------------- connecting (vicinal.execution.ray_connect)


@needs_ray
def test_more_cpus_per_run_than_this_machine_has_is_refused_before_a_private_cluster_starts(tmp_path):
    """`--cpus-per-run 8` without --address started a whole private cluster (16 s) before refusing."""
    too_many = str((os.cpu_count() or 1) + 1)  # more than this process may use, whatever limits it
    started = time.monotonic()
    out = run_cli(
        "run", *TINY, "--executor", "ray", "--cpus-per-run", too_many, cwd=tmp_path, env=_env(tmp_path)
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert re.search(rf"--cpus-per-run {too_many}: this machine has \d+ CPU\(s\)", out.stderr), out.stderr
    assert "ray (a local cluster" not in out.stdout and time.monotonic() - started < 60


def _proc_table(tmp_path: Path, rows: list[tuple[str, int, str]]) -> Path:
    """A fake /proc/net with tcp and tcp6 tables of (family, port, state) rows at the given addresses."""
    import ipaddress

    tables = {
        "tcp": ["  sl  local_address rem_address   st"],
        "tcp6": ["  sl  local_address rem_address   st"],
    }
    for address, port, state in rows:
        ip = ipaddress.ip_address(address)
        packed = ip.packed
        hexed = "".join(packed[i : i + 4][::-1].hex().upper() for i in range(0, len(packed), 4))
        table = "tcp" if ip.version == 4 else "tcp6"
        tables[table].append(f"   0: {hexed}:{port:04X} {'0' * len(hexed)}:0000 {state} 0 0")
    for name, lines in tables.items():
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([("127.0.0.1", 6379, "0A")], True),  # ray.cluster_utils.Cluster on 127.0.0.1
        ([("::ffff:127.0.0.1", 6379, "0A")], True),
        ([("::1", 6379, "0A"), ("127.0.0.1", 6379, "0A")], True),
        ([("::", 6379, "0A")], False),  # `ray start`: every interface
        ([("0.0.0.0", 6379, "0A")], False),
        ([("127.0.0.1", 6379, "0A"), ("192.0.2.2", 6379, "0A")], False),
        ([("127.0.0.1", 6379, "01")], False),  # an established connection, not a listener
        ([("127.0.0.1", 6380, "0A")], False),
    ],
)
def test_a_head_listening_on_loopback_only_is_told_from_the_kernels_table(rows, expected, tmp_path):
    from vicinal.execution.ray_connect import loopback_only

    assert loopback_only(6379, _proc_table(tmp_path, rows)) is expected


@needs_ray
@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0"])
def test_the_address_probe_connects_to_the_address_given_only(bind, monkeypatch):
    """vicinal's probe also connected to the machine's own network address when given a loopback one."""
    import socket

    from vicinal.execution.ray import RayExecutor

    server = socket.socket()
    server.bind((bind, 0))
    server.listen()
    port = server.getsockname()[1]
    contacted: list[tuple[str, int]] = []
    real = socket.socket.connect

    def recording(sock, address):  # every connection, TCP or UDP, from this process
        contacted.append(tuple(address)[:2])
        return real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", recording)
    try:
        executor = RayExecutor(address=f"127.0.0.1:{port}")
        assert executor._check_address("127.0.0.1", port) is (bind == "127.0.0.1")
    finally:
        server.close()
    assert contacted == [("127.0.0.1", port)]


def test_a_private_clusters_token_stays_in_the_environment_and_a_joining_driver_follows_the_head(
    tmp_path, monkeypatch
):
    from vicinal.execution import ray_connect
    from vicinal.execution.ray_connect import ACCEPTED, OPEN, auth_environment, available_token

    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with auth_environment(private=True):
        assert os.environ["RAY_AUTH_MODE"] == "token"
        assert os.environ["RAY_AUTH_TOKEN"] == ray_connect.PRIVATE_TOKEN
    assert "RAY_AUTH_MODE" not in os.environ and "RAY_AUTH_TOKEN" not in os.environ
    with auth_environment(private=False):  # no token on this machine, the head unasked: Ray's default
        assert "RAY_AUTH_MODE" not in os.environ
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("abc\n")
    assert available_token() == "abc"
    with auth_environment(private=False):  # the head unasked: as `ray start --head` here decides
        assert os.environ["RAY_AUTH_MODE"] == "token"
    with auth_environment(private=False, head=ACCEPTED):
        assert os.environ["RAY_AUTH_MODE"] == "token"
    # A head that asks no token: off, though ~/.ray holds one (a driver in token mode lost every run).
    with auth_environment(private=False, head=OPEN):
        assert os.environ["RAY_AUTH_MODE"] == "disabled"
    assert "RAY_AUTH_MODE" not in os.environ
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").write_text("def")
    assert available_token() == "def"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "ghi")
    assert available_token() == "ghi"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the user's choice stands
    with auth_environment(private=False, head=ACCEPTED), auth_environment(private=True):
        assert os.environ["RAY_AUTH_MODE"] == "disabled" and os.environ["RAY_AUTH_TOKEN"] == "ghi"


@pytest.fixture
def fake_head():
    """A gRPC server on loopback that answers Ray's probe call as a head does: with ``wants`` set, only
    to ``authorization: Bearer <wants>`` (else UNAUTHENTICATED, as Ray's server interceptor); with
    ``serve=False`` it serves nothing (UNIMPLEMENTED). Yields a function (wants, serve) → port."""
    grpc = pytest.importorskip("grpc")
    from concurrent.futures import ThreadPoolExecutor

    servers = []

    def start(wants: str | None, serve: bool = True) -> int:
        def cluster_id(request, context):
            given = dict(context.invocation_metadata()).get("authorization")
            if wants is not None and given != f"Bearer {wants}":
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "InvalidAuthToken: missing or incorrect")
            return b"id"

        server = grpc.server(ThreadPoolExecutor(max_workers=1))
        if serve:
            handler = grpc.unary_unary_rpc_method_handler(cluster_id)
            server.add_generic_rpc_handlers(
                (
                    grpc.method_handlers_generic_handler(
                        "ray.rpc.NodeInfoGcsService", {"GetClusterId": handler}
                    ),
                )
            )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop(None)


@pytest.mark.parametrize(
    ("wants", "serve", "token", "expected"),
    [
        (None, True, None, "open"),
        (None, True, "abc", "open"),
        ("abc", True, "abc", "accepted"),
        ("abc", True, None, "refused"),
        ("abc", True, "xyz", "refused"),
        (None, False, "abc", "unknown"),  # not a Ray head (or one that answers otherwise): Ray decides
    ],
)
def test_the_head_is_asked_whether_it_wants_a_token_before_ray_connects(
    fake_head, wants, serve, token, expected
):
    from vicinal.execution.ray_connect import head_auth

    assert head_auth("127.0.0.1", fake_head(wants, serve), token) == expected


@pytest.mark.slow
@needs_ray
def test_the_readme_recipe_on_one_machine_with_rays_own_command_line(tmp_path):
    """The README's "Running on several machines (Ray)" recipe as written, on one machine, with Ray's own
    command line: a token (`ray get-auth-token --generate`), `ray start --head`, two workers as separate
    processes (`RAY_AUTH_MODE=token ray start --address …`), then `vicinal run --executor ray --address
    127.0.0.1:PORT`. With a token in ~/.ray (as one left by an earlier private cluster was) the head turns
    token authentication on; a driver given an explicit address sent no token and failed after ~27 s of
    warnings. Now it sends the machine's token, as the head decided; a driver without the token is told
    so in one line, before Ray tries to connect."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    env.update(RAY_USAGE_STATS_ENABLED="0", COLUMNS="200", **_env(tmp_path))
    home = Path(env["HOME"])
    shutil.rmtree(home / ".ray")  # _env's stray token: here the machine's own is made by `ray`
    token = subprocess.run(
        [*RAY_CLI, "get-auth-token", "--generate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert token.returncode == 0 and (home / ".ray" / "auth_token").is_file(), token.stderr
    with ray_cli_cluster(env, workers=2, worker_env={"RAY_AUTH_MODE": "token"}) as address:
        elsewhere = tmp_path / "elsewhere"  # another user's home: no token
        elsewhere.mkdir()
        refused = run_cli(
            "run",
            *TINY,
            "--executor",
            "ray",
            "--address",
            address,
            cwd=tmp_path,
            env={**env, "HOME": str(elsewhere)},
        )
        out = subprocess.run(
            [sys.executable, "-m", "vicinal.cli", "run", *TINY, "--executor", "ray", "--address", address],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
    # Refused before Ray connects (no time asserted: the machine is shared): one line, none of the
    # ~20 lines of Ray's retries that ended the run after ~27 s (42 s at load 6) before.
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().count("\n") == 0 and "Traceback" not in refused.stderr, refused.stderr
    assert "it uses token authentication and this machine has none" in refused.stderr
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "WARNING" not in out.stderr and "gcs_client" not in out.stderr
    assert out.stdout.count(" finished") == 4
    # Ray registers every node under the machine's network address (it rewrites loopback on Linux);
    # the nodes are told apart by their ids, and the runs used more than one of them.
    nodes = set(re.findall(r"node [\d.]+/(\w+)", out.stdout))
    assert len(nodes) >= 2, out.stdout
    assert len(_results(tmp_path / "results")) == 4


NODE_DEAD = """The node with node id: 10e1d97a93015a6940c5b911bbab5ddf2017139b4e8c77d330e53287 and address: \
192.0.2.2 and node name: 192.0.2.2 has been marked dead because the detector has missed too many heartbeats \
from it. This can happen when a
\t(1) raylet crashes unexpectedly (OOM, etc.)
\t(2) raylet has lagging heartbeats due to slow network or busy workload."""


@needs_ray
def test_what_ray_prints_for_a_raylet_is_one_warning_line_per_message(capsys):
    """Killing a node poured Ray's ~25 lines of raylet state into the console; each message is one line
    now (what Ray's listener thread prints goes through print_to_stdstream, patched for the run)."""
    import ray._private.worker as ray_worker

    from vicinal.execution.ray_connect import raylet_messages_to

    said: list[str] = []
    with raylet_messages_to(said.append):
        ray_worker.print_to_stdstream(
            {"lines": [NODE_DEAD], "pid": "raylet", "is_err": False}, ignore_prefix=False
        )
    assert said == [
        "Ray: The node with node id: 10e1d97a93015a6940c5b911bbab5ddf2017139b4e8c77d330e53287 and address: "
        "192.0.2.2 and node name: 192.0.2.2 has been marked dead because the detector has missed too many "
        "heartbeats from it."
    ]
    assert capsys.readouterr().out == ""
    ray_worker.print_to_stdstream({"lines": ["after"], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    assert "after" in capsys.readouterr().out  # Ray's own printing is back after the run
