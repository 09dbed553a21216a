"""The Ray executor: one Ray task per (configuration, seed), on a cluster Ray starts on this machine or on
an existing one (``--address``).

How a run travels:

- **Data**: the driver loads and fingerprints the suite's data once (as for a local run) and puts it in
  Ray's object store (``ray.put``); every task receives it from there, so worker nodes need no copy of the
  data folder.
- **Job**: each :class:`~vicinal.execution.jobs.RunJob` is pickled by the driver and unpickled by the worker
  *after* it has loaded the run's ``--plugin`` specs, because a plugin's classes are pickled by reference to
  its module. Checkpoint and cache paths are made absolute: workers write each epoch's checkpoint there.
- **Resources**: each task asks for ``--cpus-per-run`` CPUs (1 by default; also torch's thread count in
  the worker) and ``--gpus-per-run`` GPUs: 1, or a fraction below 1 that packs several small models on one
  GPU (Ray counts the fractions; it does not cap a run's GPU memory, so the runs sharing a GPU must fit
  in it together). More than one is refused: a run trains on one GPU. Ray runs as many at once as the
  cluster holds. By default a run takes one GPU when the cluster has GPUs and the device allows it, else
  runs on the CPU. A GPU run gets a fresh worker process (``max_calls=1``), so no run inherits another's
  CUDA context, cached memory or GPU.
- **Device**: checked where each run executes (:func:`vicinal.execution.jobs.run_job`), not on the driver,
  which may have no GPU.
- **Progress**: the worker reports through :class:`~vicinal.execution.forwarding.ForwardingReporter`, whose
  events go to a small actor (:class:`EventHub`); the driver drains it while it waits and replays the events
  into its own reporter, so the console's live view (or its log lines) covers every running run.
- **Results**: a finished task returns its :class:`~vicinal.execution.jobs.JobOutput` (the result and its
  artifacts' bytes); the driver writes it into the one results folder
  (:meth:`vicinal.execution.plan.RunPlan.store`), so no shared filesystem is needed for results.
- **Failures**: a task whose worker or node dies is retried by Ray (``--max-retries``, 3 by default) and
  resumes from its last epoch checkpoint when the retry can read the cache; a run that raises is sent back
  as text (not retried), reported at the end with its traceback saved, and the other runs go on.
- **Ctrl-C**: the driver keeps the results that have arrived, cancels the other tasks (their workers are
  stopped; each keeps its last checkpoint) and re-raises, so the same command resumes.

Ray is imported only when :meth:`RayExecutor.run` runs: importing vicinal never imports it.

One module, longer than most, because connecting, resources, progress, retries and cancelling are the
parts of one protocol with Ray, and each is short.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
import pickle
import sys
import traceback
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vicinal.core.errors import VicinalError
from vicinal.execution.forwarding import Event, EventReplayer, ForwardingReporter
from vicinal.execution.jobs import JobOutput, RunData, RunJob, run_job
from vicinal.execution.outcomes import RunFailure
from vicinal.execution.ray_connect import (
    REFUSED,
    UNKNOWN,
    answers,
    auth_environment,
    available_token,
    connect_failure,
    head_auth,
    is_loopback,
    loopback_only,
    raylet_messages_to,
    refresh_ray_config,
    refused_token_message,
    stderr_aside,
)
from vicinal.host.threads import machine_cpus

if TYPE_CHECKING:
    from vicinal.execution.plan import RunPlan

DEFAULT_RETRIES = 3
#: How often the driver looks for finished runs and progress events (seconds).
POLL_S = 0.25
#: Ray's switch that makes its idea of this machine's address the loopback one (see _connect).
RAY_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass
class RemoteFailure:
    """A run that raised on a worker, as text: exceptions do not always unpickle on the driver (a plugin's
    exception class, a CUDA error), tracebacks never travel, and a failed run must not be retried."""

    summary: str
    trace: str
    #: A VicinalError: its message is the whole story, no traceback file is written.
    user_error: bool


class EventHub:
    """The actor through which workers' progress events reach the driver: workers post, the driver drains.
    Ray runs one caller's calls in order, so each run's events arrive in the order they were made."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def post(self, events: list[Event]) -> None:
        self.events.extend(events)

    def drain(self) -> list[Event]:
        events, self.events = self.events, []
        return events


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise VicinalError("--executor ray needs Ray: pip install 'vicinal[ray]'") from None
    return ray


def _node_name(ray: Any) -> str:
    """The worker's node as a person finds it: the address the node joined the cluster with and the start
    of its Ray node id (several nodes can share an address, as on a test cluster on loopback)."""
    node_id = ray.get_runtime_context().get_node_id()
    address = next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id), "?")
    return f"{address}/{node_id[:6]}"


class _WarningsTo(logging.Handler):
    """vicinal's library warnings in a worker (a damaged checkpoint retrained …), sent to the driver."""

    def __init__(self, reporter: ForwardingReporter):
        super().__init__(logging.WARNING)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        self.reporter.warn(record.getMessage())


def run_attempt(
    plugins: list[str],
    payload: bytes,
    rd: RunData,
    hub: Any,
    run: int,
    rename: dict[str, str],
    threads: int,
) -> JobOutput | RemoteFailure:
    """One attempt at one run, in a Ray worker: load the plugins, unpickle the job, train and evaluate,
    reporting to ``hub``. Returns the output, or the failure as text; only a lost worker makes Ray retry."""
    import ray

    from vicinal.core.registry import load_plugin
    from vicinal.host.allocator import apply_allocator_policy
    from vicinal.host.threads import apply_thread_policy

    node = _node_name(ray)
    reporter = ForwardingReporter(
        lambda events: hub.post.remote(events),
        run,
        attempt=uuid.uuid4().hex[:8],
        fields={"node": node},
        rename=rename,
    )
    reporter.start(node)
    handler = _WarningsTo(reporter)
    logging.getLogger("vicinal").addHandler(handler)
    try:
        try:
            for spec in plugins:
                load_plugin(spec)
            job = pickle.loads(payload)
        except Exception as exc:
            return RemoteFailure(
                f"cannot load the run on node {node}: {type(exc).__name__}: {exc}. Every node needs vicinal "
                "and the run's plugins: installed, or each --plugin file at the same path",
                traceback.format_exc(),
                True,
            )
        # The CPUs this task asked for, not every core of the node; through vicinal's thread policy so
        # that the result file records it (torch is loaded by now: Ray unpickled the data's tensors, so
        # only the count can still be chosen, and the record says so).
        apply_thread_policy(threads, origin="--cpus-per-run")
        apply_allocator_policy()
        try:
            return run_job(job, rd, reporter)
        except Exception as exc:
            return RemoteFailure(
                str(exc) if isinstance(exc, VicinalError) else f"{type(exc).__name__}: {exc}",
                traceback.format_exc(),
                isinstance(exc, VicinalError),
            )
    finally:
        logging.getLogger("vicinal").removeHandler(handler)
        reporter.flush()
        # Waits until the hub has every event posted so far, so the driver sees a run's last progress
        # before its result.
        ray.get(hub.post.remote([]))


def run_labels(jobs: list[RunJob]) -> list[str]:
    """Each run's label on screen: ``method · seed N``, with the hyperparameters that tell a sweep's
    points apart where one method runs in several configurations (``mixup [alpha=0.2] · seed 0``)."""
    configs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        configs[job.method.name].append(dataclasses.asdict(job.method.config))
    labels = []
    for job in jobs:
        mine = dataclasses.asdict(job.method.config)
        others = configs[job.method.name]
        differing = [k for k in mine if len({repr(c.get(k)) for c in others}) > 1]
        if differing:
            setting = ", ".join(f"{k}={mine[k]}" for k in differing)
            labels.append(f"{job.method.name} [{setting}] · seed {job.seed}")
        else:
            labels.append(job.label)
    return labels


def _parse_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a ``HOST:PORT`` address; None for ``auto`` and ``ray://`` (Ray resolves those)."""
    if address == "auto" or address.startswith("ray://"):
        return None
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise VicinalError(
            f"--address {address!r}: give auto or HOST:PORT of a Ray head node (ray start --head --port=PORT)"
        )
    return host.strip("[]"), int(port)


class RayExecutor:
    """One Ray task per run; see the module's docstring for how data, progress and results travel."""

    name = "ray"
    options = ("address", "gpus_per_run", "cpus_per_run", "max_retries")
    #: The device is checked on the workers (``run_job``) and against the cluster's GPUs, never against
    #: the driver's: the plan does not resolve it here.
    resolves_device = True

    def __init__(
        self,
        address: str | None = None,
        gpus_per_run: float | None = None,
        cpus_per_run: float | None = None,
        max_retries: int | None = None,
        plugins: list[str] | tuple[str, ...] = (),
        device: str = "auto",
    ):
        if importlib.util.find_spec("ray") is None:
            raise VicinalError("--executor ray needs Ray: pip install 'vicinal[ray]'")
        if address is not None:
            address = address.strip()
            _parse_address(address)
        if gpus_per_run is not None:
            if gpus_per_run < 0:
                raise VicinalError(f"--gpus-per-run {gpus_per_run:g}: give a number ≥ 0")
            if gpus_per_run > 1:
                raise VicinalError(
                    f"--gpus-per-run {gpus_per_run:g}: a run trains on one GPU (vicinal has no data-parallel "
                    "training), so the others would sit idle; give 1, or a fraction below 1 to share a GPU "
                    "between runs"
                )
        if cpus_per_run is not None and cpus_per_run < 0:
            raise VicinalError(f"--cpus-per-run {cpus_per_run:g}: give a number ≥ 0")
        if cpus_per_run == 0 and not gpus_per_run:
            raise VicinalError("--cpus-per-run 0 without --gpus-per-run: a run needs a CPU or a GPU")
        if max_retries is not None and max_retries < 0:
            raise VicinalError(f"--max-retries {max_retries}: give a number ≥ 0")
        if device not in ("auto", "cpu", "cuda"):
            raise VicinalError(
                f"--device {device} with --executor ray: Ray gives each run its GPUs, so the device is "
                "auto, cpu or cuda (each run sees its own GPUs as cuda:0, …)"
            )
        if device == "cpu" and gpus_per_run:
            raise VicinalError(f"--gpus-per-run {gpus_per_run:g} with --device cpu: drop one of them")
        if device == "cuda" and gpus_per_run == 0:
            raise VicinalError("--device cuda with --gpus-per-run 0: a CUDA run needs a GPU")
        if address is None and cpus_per_run is not None and cpus_per_run > machine_cpus():
            # Checked here, before a private cluster is started (16 s) only to find the run cannot fit.
            raise VicinalError(
                f"--cpus-per-run {cpus_per_run:g}: this machine has {machine_cpus()} CPU(s) for the "
                "private Ray cluster vicinal would start; lower --cpus-per-run, or join a cluster whose "
                "nodes are larger (--address)"
            )
        if address is None and gpus_per_run:
            import torch

            if not torch.cuda.is_available():
                raise VicinalError(
                    f"--gpus-per-run {gpus_per_run:g}: this machine has no GPU for Ray to start a local "
                    "cluster with; leave --gpus-per-run out to run on its CPU cores, or join a cluster "
                    "with GPUs (--address)"
                )
        self.address = address
        self.gpus_per_run = gpus_per_run
        self.cpus_per_run = cpus_per_run
        self.max_retries = DEFAULT_RETRIES if max_retries is None else max_retries
        # A plugin file is named by its absolute path: workers load it from there.
        self.plugins = [
            str(os.path.abspath(p)) if p.endswith(".py") or os.path.exists(p) else p for p in plugins
        ]
        self.device = device
        #: Resources per run, settled once connected (the cluster decides the defaults).
        self.resources: dict[str, float] = {}

    def describe(self) -> str:
        where = f"ray at {self.address}" if self.address else "ray (a local cluster on this machine)"
        per_run = []
        if self.gpus_per_run:
            per_run.append(f"{self.gpus_per_run:g} GPU")
        if self.cpus_per_run is not None:
            per_run.append(f"{self.cpus_per_run:g} CPU")
        return where + (f" · {' + '.join(per_run)} per run" if per_run else "")

    # ------------------------------------------------------------------ connecting

    def _check_address(self, host: str, port: int) -> bool:
        """Whether a head answers at ``host:port`` (Ray would retry a dead address for minutes: say it at
        once), and True when it is on this machine and listens on loopback only (a cluster made with
        ``ray.cluster_utils.Cluster``; ``ray start`` listens on every interface). Connects to nothing
        but the address given (:mod:`vicinal.execution.ray_connect`)."""
        if answers(host, port):
            return is_loopback(host) and loopback_only(port)
        raise VicinalError(
            f"--address {self.address}: no Ray head answers there; start one with "
            f"`ray start --head --port={port}` or check the address"
        )

    def _connect(self) -> tuple[Any, bool]:
        """Ray, connected; and whether this executor made the connection (then it closes it)."""
        parsed = _parse_address(self.address) if self.address else None
        on_loopback = parsed is not None and self._check_address(*parsed)
        if "ray" not in sys.modules and (self.address is None or on_loopback):
            # Ray turns a loopback address into the machine's network address wherever it meets one
            # (ray.init's own node address included), unless this switch is off; Ray reads it once, on
            # import, and then treats this machine as reachable on loopback only. That is what a private
            # local cluster should be (nothing on the network can reach it), and what joining a head that
            # listens on loopback only needs. It affects this process (and what it starts), nothing else.
            os.environ.setdefault(RAY_LOOPBACK_ENV, "0")
        ray = _import_ray()
        if ray.is_initialized():  # a Python caller's own ray.init(): use that cluster, leave it open
            return ray, False
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
        # Asked of the head before Ray connects: a token it wants and this driver lacks is one line now,
        # not ~27 s of Ray's retries; a head that wants none gets a driver that expects none.
        head = head_auth(*parsed, available_token()) if parsed is not None else UNKNOWN
        if head == REFUSED:
            raise VicinalError(refused_token_message(where, available_token()))
        self._auth = auth_environment(private=self.address is None, head=head)
        self._auth.__enter__()
        refresh_ray_config()  # Ray read its settings on import: have it read the authentication mode again
        try:
            with stderr_aside() as noise:
                try:
                    if self.address is None:
                        # A private cluster of this machine's CPUs (as counted before it started: see
                        # machine_cpus) and GPUs, on loopback, protected by a token kept in this
                        # process's environment: nothing is left in ~/.ray for a later cluster to find.
                        ray.init(
                            address="local",  # a new cluster even where a `ray start` head runs here
                            include_dashboard=False,
                            _node_ip_address="127.0.0.1",
                            num_cpus=machine_cpus(),
                            **quiet,
                        )
                    else:
                        ray.init(address=self.address, **quiet)
                    failure = None
                except Exception as exc:  # Ray's own errors vary by version; each is one message here
                    failure = exc
            if failure is not None:
                raise VicinalError(connect_failure(where, failure, noise)) from None
        except BaseException:
            self._disconnected()
            raise
        return ray, True

    def _disconnected(self) -> None:
        """Restore the environment :meth:`_connect` set for Ray's authentication."""
        auth, self._auth = getattr(self, "_auth", None), None
        if auth is not None:
            auth.__exit__(None, None, None)
            refresh_ray_config()

    def _settle_resources(self, ray: Any) -> dict[str, float]:
        """CPUs and GPUs per run, checked against the cluster: a request no node can hold would wait
        forever, so it is refused here, before any run starts."""
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        gpus_total = sum(r.get("GPU", 0) for r in nodes)
        shape = ", ".join(f"{r.get('CPU', 0):g} CPU + {r.get('GPU', 0):g} GPU" for r in nodes) or "no nodes"
        gpus = self.gpus_per_run
        if gpus is None:
            gpus = 1.0 if self.device in ("auto", "cuda") and gpus_total > 0 else 0.0
        if self.device == "cuda" and gpus_total == 0:
            raise VicinalError(f"--device cuda: the Ray cluster has no GPUs (its nodes: {shape})")
        if gpus and gpus_total == 0:
            raise VicinalError(
                f"--gpus-per-run {gpus:g}: the Ray cluster has no GPUs (its nodes: {shape}); leave "
                "--gpus-per-run out to run on CPUs"
            )
        cpus = 1.0 if self.cpus_per_run is None else self.cpus_per_run
        if not any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
            raise VicinalError(
                f"no node of the Ray cluster can hold one run ({cpus:g} CPU + {gpus:g} GPU per run; its "
                f"nodes: {shape}); lower --cpus-per-run or --gpus-per-run"
            )
        return {"num_cpus": cpus, "num_gpus": gpus}

    def remote_options(self) -> dict[str, Any]:
        """How ``run_attempt`` is made a Ray function (settled resources first). A GPU run gets a fresh
        worker process (``max_calls=1``): a reused worker keeps its CUDA context, its cached GPU memory and
        the GPU it first ran on, whatever GPU Ray assigns the next run. Ray defaults to that only when
        ``num_gpus`` is given to ``ray.remote`` (not through ``.options()``, where the resources go), and
        ``max_calls`` cannot be given to ``.options()``. CPU runs reuse workers (0: no limit)."""
        return {"max_calls": 1 if self.resources.get("num_gpus") else 0}

    def task_options(self) -> dict[str, Any]:
        """What each run's task is submitted with: its resources and Ray's retries of a lost worker."""
        return {"max_retries": self.max_retries, "retry_exceptions": False, **self.resources}

    # ------------------------------------------------------------------ running

    def run(self, plan: RunPlan, rd: RunData, jobs: list[RunJob]) -> None:
        ray, owned = self._connect()
        try:
            self.resources = self._settle_resources(ray)
            with raylet_messages_to(plan.reporter.warn):
                self._run(ray, plan, rd, jobs)
        finally:
            if owned:
                ray.shutdown()
                self._disconnected()

    def _run(self, ray: Any, plan: RunPlan, rd: RunData, jobs: list[RunJob]) -> None:
        gpus, cpus = self.resources["num_gpus"], self.resources["num_cpus"]
        device = "cuda" if gpus else "cpu"
        labels = run_labels(jobs)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # On the driver's own node: a hub placed on a worker node died with it, and the driver stopped
        # with a traceback (ActorUnavailableError) instead of retrying the run that node held.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        hub = ray.remote(num_cpus=0, scheduling_strategy=here, max_restarts=-1)(EventHub).remote()
        replay = EventReplayer(plan.reporter, dict(enumerate(labels)), self.max_retries)
        attempt = ray.remote(**self.remote_options())(run_attempt)
        options = self.task_options()
        data = ray.put(rd)  # once: every task reads the same copy from the object store
        pending: dict[Any, int] = {}
        for i, job in enumerate(jobs):
            shipped = dataclasses.replace(
                job,
                device=device,
                checkpoint=job.checkpoint.absolute(),
                cache_dir=job.cache_dir.absolute(),
                data_dir=job.data_dir.absolute() if job.data_dir is not None else None,
            )
            rename = {job.label: labels[i]} if labels[i] != job.label else {}
            ref = attempt.options(name=f"vicinal {labels[i]}", **options).remote(
                self.plugins, pickle.dumps(shipped), data, hub, i, rename, max(1, int(cpus))
            )
            pending[ref] = i
        overall = plan.reporter.task("runs", total=len(jobs))
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_S)
                # A hub that is restarting loses this poll's progress, not the runs.
                with contextlib.suppress(ray.exceptions.RayActorError):
                    replay.apply(ray.get(hub.drain.remote()))
                for ref in ready:
                    i = pending.pop(ref)
                    ok = self._collect(ray, plan, jobs[i], labels[i], ref)
                    overall.advance(1)
                    overall.line(f"{labels[i]} {'finished' if ok else 'failed'}")
        except KeyboardInterrupt:
            # Keep what has already arrived, stop the rest: each keeps its last epoch checkpoint.
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            for ref in ready:
                i = pending.pop(ref)
                self._collect(ray, plan, jobs[i], labels[i], ref, quiet=True)
            self._cancel(ray, pending)
            raise
        except BaseException:
            self._cancel(ray, pending)
            raise
        finally:
            overall.close()
            ray.kill(hub)

    @staticmethod
    def _cancel(ray: Any, pending: dict[Any, int]) -> None:
        for ref in pending:
            # force: the worker process is stopped at once (the run's checkpoint is written atomically,
            # so it is whole whenever that happens); a cancelled task is never retried.
            ray.cancel(ref, force=True)

    def _collect(
        self, ray: Any, plan: RunPlan, job: RunJob, label: str, ref: Any, quiet: bool = False
    ) -> bool:
        """Store a finished run's output (True), or record why it failed."""
        try:
            out = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return False
        except ray.exceptions.RayError as exc:  # its worker or node died more often than retries allow
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            failure = RunFailure(
                job.method.name,
                job.seed,
                f"its worker or node was lost {self.max_retries + 1} time(s) ({type(exc).__name__}: "
                f"{why}); raise --max-retries, or see the Ray logs of the node",
            )
        else:
            if isinstance(out, JobOutput):
                plan.store(job, out)
                return True
            if out.user_error:
                failure = RunFailure(job.method.name, job.seed, out.summary)
            else:
                failure = RunFailure.of_traceback(job, out.summary, out.trace, plan.cache_dir)
        plan.fail(failure, label, quiet=quiet)
        return False
