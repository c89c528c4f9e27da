"""Executors: where the shards of a population are trained (docs/architecture.md, "Executors").

Population training is embarrassingly parallel across shards of models. An executor takes one shard function
and the keyword arguments of every shard, calls the function once per shard, and hands each result to the
caller's ``on_result(key, result)`` *as soon as that shard finishes*, so the caller writes it to the run directory
at once and a killed run loses at most the shards in flight.

- :class:`LocalExecutor` (``"local"``) calls the function in this process, one shard after the other.
- :class:`RayExecutor` (``"ray"``) runs every shard as a Ray task, on an existing cluster
  (``ray.init(address=...)``) or on a local Ray instance it starts with the given number of CPUs, collects the
  results with ``ray.wait`` in completion order, and retries a task whose worker process dies
  (``max_retries``); an exception raised by the shard function itself is not retried but raised in the driver.

The shard function must be importable by the Ray workers (a module-level function of an installed package, or a
closure, which Ray pickles by value). A :class:`~memlens.population.Population` result travels between worker and
driver as the bytes of its ``.npz`` (no pickle for what is written to disk), and the driver, never a worker, writes
the run directory: the workers of a cluster need no access to it. Results do not depend on the executor: a shard's
models depend only on the run's seed and their row indices, and every shard runs with one BLAS thread.
"""
from __future__ import annotations

import collections
import io
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from tqdm.auto import tqdm

from .._threads import limit_threads, usable_cpus
from .._validation import MemlensInputError, check_int
from ..population import Population

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "PoolExecutor", "RayExecutor", "ExecutorError", "make_executor",
           "train_missing_shards"]

#: Executor names accepted by :func:`make_executor` (``run_audit(executor=...)``, ``memlens audit --backend``).
EXECUTORS = ("local", "ray")

#: Seconds to wait for a TCP connection to a given Ray address before giving up with a clear error. Without this
#: check ``ray.init`` keeps retrying an unreachable address for minutes.
CONNECT_TIMEOUT_S = 5.0

OnResult = Callable[[Any, Any], None]


class ExecutorError(RuntimeError):
    """A shard could not be computed by the executor (e.g. its Ray worker died more often than ``max_retries``)."""


class Executor:
    """What an executor does: ``map(fn, jobs, shared=..., on_result=...)``.

    Attributes
    ----------
    name : str
    in_process : bool
        True when ``fn`` runs in the calling process (callbacks such as progress bars may then be passed to it).
    """

    name = "executor"
    in_process = False

    def map(self, fn: Callable[..., Any], jobs: Iterable[tuple[Any, Mapping[str, Any]]], *,
            shared: Mapping[str, Any] | None = None, on_result: OnResult) -> list:
        """Call ``fn(**shared, **kwargs)`` for every ``(key, kwargs)`` of ``jobs``; ``on_result(key, result)``
        as each finishes. Returns the keys in the order they finished."""
        raise NotImplementedError


class LocalExecutor(Executor):
    """Run every shard in this process, in the order given (``executor="local"``, the default)."""

    name = "local"
    in_process = True

    def map(self, fn, jobs, *, shared=None, on_result):
        shared = dict(shared or {})
        done = []
        for key, kwargs in jobs:
            on_result(key, fn(**shared, **kwargs))
            done.append(key)
        return done

    def __repr__(self) -> str:
        return "LocalExecutor()"


class PoolExecutor(Executor):
    """Run the shards on ``jobs`` cores of this machine, one BLAS/torch thread each (``--jobs N``).

    This process trains shards itself, in a background thread, from the start; worker processes are started only
    when that has not finished every shard after :attr:`worth_s` seconds (each worker imports memlens and torch,
    seconds that a small run's whole training does not take). From then on this process and ``jobs - 1`` worker
    processes (loky, joblib's process pool) each take the next shard when they are free, so every core is busy
    until the shards run out, and a run of a few long shards does not wait for one of them to finish before using
    the other cores. Results (a Population travels from a worker as its ``.npz`` bytes) are handed to
    ``on_result`` as each finishes, one at a time, so the caller writes each shard at once. The shard function and
    the inputs every shard shares (the dataset, the shared start) are sent to each worker once, when it starts.

    A shard's models depend only on the run's seed and their rows, and every shard runs with one thread, so the
    population is the same, bit for bit, as the in-process :class:`LocalExecutor`'s (tested). When a shard
    fails, no further shard is started; the shards already running finish and are handed over (their files
    serve a resumed run), then the error is raised. An interrupt (Ctrl-C, SIGTERM) stops at once.
    """

    #: Seconds of in-process training after which, with shards left, worker processes are started.
    worth_s = 5.0

    name = "local"
    in_process = False

    def __init__(self, jobs: int):
        self.jobs = check_int("jobs", jobs, min_value=1, hint="(worker processes of the local backend)")

    def map(self, fn, jobs, *, shared=None, on_result):
        jobs = list(jobs)
        if min(self.jobs, len(jobs)) <= 1:
            return LocalExecutor().map(fn, jobs, shared=shared, on_result=on_result)
        shared = dict(shared or {})
        pending = collections.deque(jobs)
        lock = threading.Lock()          # guards pending, done and on_result (the run directory's writes)
        stop, finished = threading.Event(), threading.Event()
        done: list = []
        failure: list = []

        def take():
            with lock:
                return None if stop.is_set() or not pending else pending.popleft()

        def deliver(key, result):
            with lock:
                on_result(key, result)
                done.append(key)

        def in_process():
            try:
                with limit_threads(1):   # as in a worker: the same single-threaded arithmetic
                    while (job := take()) is not None:
                        deliver(job[0], fn(**shared, **job[1]))
            except BaseException as exc:  # noqa: BLE001 - raised by the calling thread below
                failure.append(exc)
                stop.set()
            finally:
                finished.set()

        thread = threading.Thread(target=in_process, name="memlens-shards", daemon=True)
        thread.start()
        pool, running = None, {}
        try:
            finished.wait(self.worth_s)
            n = min(self.jobs - 1, len(pending))
            if n >= 1 and not stop.is_set():
                from joblib.externals.loky import get_reusable_executor  # worker processes only when they pay

                # the shard function and the large shared inputs reach each worker once, not once per shard
                pool = get_reusable_executor(max_workers=n, initializer=_init_worker, initargs=(fn, shared),
                                             reuse=False, env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                                               "OPENBLAS_NUM_THREADS": "1"})
                while True:
                    while len(running) < n and (job := take()) is not None:
                        running[pool.submit(_worker_task, job[0], job[1])] = job[0]
                    if not running:
                        break
                    finished_now, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished_now:
                        running.pop(future)
                        key, wire = future.result()
                        deliver(key, _decode(wire))
            _join(thread)
        except Exception:
            stop.set()       # no new shard; those running finish and are written, then the error is raised
            for future in list(running):
                try:
                    key, wire = future.result()
                    deliver(key, _decode(wire))
                except Exception:  # noqa: BLE001 - the first error is the one raised
                    pass
            _join(thread)
            raise
        except BaseException:
            stop.set()       # an interrupt: do not wait for the running shards
            if pool is not None:
                pool.shutdown(wait=False, kill_workers=True)
                pool = None
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=False)
        if failure:
            raise failure[0]
        return done

    def __repr__(self) -> str:
        return f"PoolExecutor(jobs={self.jobs})"


_WORKER: dict = {}


def _init_worker(fn, shared) -> None:
    """A worker process's start: keep the shard function and the inputs every shard shares."""
    _WORKER.update(fn=fn, shared=dict(shared))


def _worker_task(key, kwargs):
    """One shard in a worker process: ``(key, encoded fn(**shared, **kwargs))`` with one BLAS/torch thread."""
    return key, _run_encoded(_WORKER["fn"], _threads=1, **_WORKER["shared"], **kwargs)


def _join(thread) -> None:
    """Wait for ``thread``, interruptibly."""
    while thread.is_alive():
        thread.join(0.2)


# ---------------------------------------------------------------------------------------------- Ray
def _import_ray():
    try:
        import ray  # ray is optional (memlens[ray]) and heavy
    except ImportError:
        raise MemlensInputError("Ray is not installed, and executor='ray' (--backend ray) needs it; install it with "
                                "pip install 'memlens[ray]', or use the local executor") from None
    return ray


def _encode(result):
    """A shard result as it travels from a Ray worker: a Population as its ``.npz`` bytes, anything else as is."""
    if isinstance(result, Population):
        return ("memlens-population-npz", result.to_npz_bytes())
    return ("value", result)


def _decode(wire):
    kind, payload = wire
    if kind == "memlens-population-npz":
        return Population.from_npz(io.BytesIO(payload))
    return payload


def _run_encoded(fn, *, _threads: int, **kwargs):
    """The body of a Ray task: ``fn(**kwargs)`` with ``_threads`` BLAS/torch threads, its result encoded."""
    with limit_threads(_threads):
        return _encode(fn(**kwargs))


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a Ray address ``HOST:PORT`` or ``ray://HOST[:PORT]``; None for ``auto`` / ``local``."""
    if address in ("auto", "local"):
        return None
    rest, default = address, 6379
    if rest.startswith("ray://"):
        rest, default = rest[len("ray://"):], 10001
    rest = rest.rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, str(default)
    host = host.strip("[]")
    try:
        port_n = int(port)
    except ValueError:
        port_n = -1
    if not host or not 0 < port_n < 65536:
        raise MemlensInputError(f"ray_address must be 'auto', HOST:PORT (the head node's GCS address, e.g. "
                                f"10.0.0.5:6379) or ray://HOST:PORT (Ray Client); got {address!r}")
    return host, port_n


class RayExecutor(Executor):
    """Run every shard as a Ray task, results handed back (and written by the caller) as each task completes.

    Parameters
    ----------
    address : str, optional
        Address of a running Ray cluster: ``HOST:PORT`` of its head node (run the driver on a cluster node),
        ``ray://HOST:PORT`` (Ray Client), or ``"auto"`` (the cluster this node belongs to). None starts a local
        Ray instance for the duration of :meth:`map` (or uses the one this process already started).
    num_cpus : int, optional
        CPUs of the local instance (default: all of this machine's); only without ``address``.
    max_retries : int >= 0
        How often a task whose worker process died (killed, out of memory, node lost) is run again before
        :meth:`map` fails with :class:`ExecutorError`. Exceptions raised by the shard function are not retried.
    cpus_per_task : int >= 1
        CPUs reserved per shard task; the task's BLAS and torch thread count.

    Notes
    -----
    An address that accepts no TCP connection within :data:`CONNECT_TIMEOUT_S` seconds is refused at once with a
    :class:`MemlensInputError` (``ray.init`` would otherwise retry for minutes). A Ray instance this executor
    started is shut down when :meth:`map` returns or fails; one that was already running is left running.
    """

    name = "ray"
    in_process = False

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None, max_retries: int = 3,
                 cpus_per_task: int = 1):
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise MemlensInputError(f"ray_address must be a Ray cluster address such as 10.0.0.5:6379, "
                                    f"ray://10.0.0.5:10001 or 'auto'; got {address!r}")
        if address is not None:
            address = address.strip()
            _host_port(address)  # validates the form
        if num_cpus is not None:
            num_cpus = check_int("ray_num_cpus", num_cpus, min_value=1, hint="(CPUs of the local Ray instance)")
            if address is not None:
                raise MemlensInputError(f"ray_num_cpus applies to a local Ray instance only; got ray_num_cpus="
                                        f"{num_cpus} with ray_address={address!r}: the cluster decides its CPUs, "
                                        "drop ray_num_cpus")
        self.address = address
        self.num_cpus = num_cpus
        self.max_retries = check_int("max_retries", max_retries, min_value=0)
        self.cpus_per_task = check_int("cpus_per_task", cpus_per_task, min_value=1)
        self._reaper = None

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, num_cpus={self.num_cpus}, max_retries={self.max_retries})"

    # ------------------------------------------------------------------ connection
    def _check_reachable(self) -> None:
        hp = None if self.address is None else _host_port(self.address)
        if hp is None:
            return
        try:
            socket.create_connection(hp, timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise MemlensInputError(f"ray_address: no Ray cluster reachable at {self.address!r} ({hp[0]} port "
                                    f"{hp[1]}: {exc.strerror or exc}); start the cluster (ray start --head) or "
                                    "pass the head node's address, or drop --ray-address to run on a local "
                                    "Ray instance") from None

    def _connect(self, ray) -> bool:
        """Connect to (or start) Ray; True when this call started it (and :meth:`map` must shut it down)."""
        if ray.is_initialized():
            return False
        self._check_reachable()
        if self.address is None:  # "local": a new instance, never a cluster found through RAY_ADDRESS or /tmp/ray
            kwargs = dict(address="local", num_cpus=self.num_cpus, include_dashboard=False,
                          logging_level=logging.WARNING, log_to_driver=False)
        elif self.address.startswith("ray://"):  # Ray Client accepts few of ray.init's options
            kwargs = dict(address=self.address)
        else:
            kwargs = dict(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
        try:
            with _quiet_stderr():
                ray.init(**kwargs)
            if self.address is None:
                self._reaper = _start_reaper()
        except (ConnectionError, RuntimeError, ValueError) as exc:
            if self.address is None:
                raise ExecutorError(f"executor 'ray': could not start a local Ray instance ({exc}); check `ray "
                                    "status` and the logs under /tmp/ray, or use the local executor") from None
            raise MemlensInputError(f"ray_address: could not connect to a Ray cluster at {self.address!r} ({exc}); "
                                    "start the cluster (ray start --head) or pass its address (a cluster with "
                                    "token authentication, Ray's default, also needs RAY_AUTH_MODE=token and its "
                                    "token in ~/.ray/auth_token or RAY_AUTH_TOKEN), or drop --ray-address to run "
                                    "on a local Ray instance") from None
        return True

    def preflight(self) -> None:
        """Connect to the cluster at ``address`` once and disconnect, so that an address where something listens
        but no usable Ray cluster answers is refused before the run directory is created (no-op when Ray is
        already initialized in this process)."""
        ray = _import_ray()
        if self._connect(ray):
            self._shutdown(ray)

    def _shutdown(self, ray) -> None:
        """Shut down the Ray instance this executor started, then stop its reaper."""
        try:
            ray.shutdown()
        finally:
            _stop_reaper(getattr(self, "_reaper", None))
            self._reaper = None

    # ------------------------------------------------------------------ map
    def map(self, fn, jobs, *, shared=None, on_result):
        jobs = list(jobs)
        if not jobs:
            return []
        ray = _import_ray()
        started = self._connect(ray)
        pending: dict = {}
        try:
            # large shared inputs (the dataset) go to the object store once; top-level refs are resolved by Ray
            shared_refs = {name: ray.put(value) for name, value in dict(shared or {}).items()}
            task = ray.remote(_run_encoded).options(num_cpus=self.cpus_per_task, max_retries=self.max_retries,
                                                    retry_exceptions=False)
            for key, kwargs in jobs:
                ref = task.remote(fn, _threads=self.cpus_per_task, **shared_refs, **kwargs)
                pending[ref] = key
            done_keys = []
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                ref = ready[0]
                key = pending.pop(ref)
                result = self._get(ray, ref, key)
                on_result(key, _decode(result))
                done_keys.append(key)
            return done_keys
        finally:
            for ref in pending:  # a failure or an interrupt: stop the shards still in flight
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort; the instance may already be gone
                    pass
            if started:
                self._shutdown(ray)

    def _get(self, ray, ref, key):
        from ray import exceptions as rex  # ray is optional (memlens[ray]) and heavy

        try:
            return ray.get(ref)
        except rex.RayTaskError as exc:  # the shard function raised: raise its exception here
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise
        except (rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError) as exc:
            raise ExecutorError(f"shard {key}: its Ray worker died {self.max_retries + 1} times (max_retries="
                                f"{self.max_retries}; {type(exc).__name__}); finished shards are kept: continue "
                                "with --resume") from None


def _start_reaper():
    """Start the reaper of a local Ray instance (:mod:`memlens.storage._reaper`): if this process dies, even by
    SIGKILL, the Ray processes it started are killed within a second instead of outliving it. Linux only (None
    elsewhere)."""
    if not os.path.isdir("/proc"):
        return None
    script = Path(__file__).with_name("_reaper.py")
    try:
        return subprocess.Popen([sys.executable, "-S", str(script), str(os.getpid())], start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def _stop_reaper(proc) -> None:
    if proc is None:
        return
    try:
        proc.terminate()
        proc.wait(timeout=5)
    except Exception:  # noqa: BLE001 - best effort: the reaper exits with this process anyway
        pass


# ---------------------------------------------------------------------------------------------- factory
def make_executor(executor="local", *, ray_address: str | None = None, ray_num_cpus: int | None = None,
                  jobs: int | None = 1,
                  max_retries: int = 3) -> Executor:
    """An executor from its name (``"local"`` or ``"ray"``) or an :class:`Executor` instance (returned as is).

    ``ray_address`` and ``ray_num_cpus`` configure the Ray executor (see :class:`RayExecutor`) and are refused
    with the local one. ``jobs`` is the local backend's number of worker processes (:class:`PoolExecutor`; 1: this
    process, :class:`LocalExecutor`; None: every usable CPU); Ray sizes itself (``ray_num_cpus``). Raises :class:`MemlensInputError` for an unknown name; Ray's presence and the reachability
    of ``ray_address`` are checked here, so a run fails before any work when Ray is missing or unreachable.
    """
    if isinstance(executor, Executor):
        if ray_address is not None or ray_num_cpus is not None:
            raise MemlensInputError("ray_address and ray_num_cpus configure executor='ray'; got them with an "
                                    f"executor instance {executor!r}: configure the instance instead")
        return executor
    if not isinstance(executor, str) or executor not in EXECUTORS:
        raise MemlensInputError(f"executor must be one of {', '.join(EXECUTORS)}; got {executor!r} (--backend "
                                "local runs the shards in this process, --backend ray on a Ray cluster)")
    if executor == "local":
        if ray_address is not None or ray_num_cpus is not None:
            raise MemlensInputError(f"ray_address and ray_num_cpus need executor='ray' (--backend ray); got "
                                    f"ray_address={ray_address!r}, ray_num_cpus={ray_num_cpus!r} with the local "
                                    "executor")
        jobs = usable_cpus() if jobs is None else check_int("jobs", jobs, min_value=1,
                                                             hint="(worker processes of the local backend)")
        return LocalExecutor() if jobs == 1 else PoolExecutor(jobs)
    if jobs is not None and jobs != 1:
        raise MemlensInputError(f"jobs sets the local backend's worker processes; got jobs={jobs!r} with "
                                "executor='ray': Ray runs one task per CPU (--ray-num-cpus), drop --jobs", param="jobs")
    _import_ray()
    ex = RayExecutor(address=ray_address, num_cpus=ray_num_cpus, max_retries=max_retries)
    ex._check_reachable()  # an unreachable cluster is refused before any work
    if ray_address is not None:
        ex.preflight()
    return ex


class _quiet_stderr:
    """Collect what is written to file descriptor 2 (Ray's C++ core logs there while it connects) and write it
    back only when the block succeeds, so a failed connection ends in memlens's one-line error alone."""

    def __enter__(self):
        sys.stderr.flush()
        self._tmp = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._tmp.fileno(), 2)
        return self

    def __exit__(self, exc_type, exc, tb):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._tmp.seek(0)
        text = self._tmp.read()
        self._tmp.close()
        if exc_type is None and text:
            os.write(2, text)
        return False



def train_missing_shards(run, fn: Callable[..., Any], *, shared: Mapping[str, Any], fixed: Mapping[str, Any],
                         executor: "Executor | None" = None, progress: bool = True, on_shard=None,
                         desc: str = "training") -> list[int]:
    """Train every missing or damaged shard of ``run`` (a :class:`memlens.storage.runs.RunDir`) on ``executor`` and write
    each shard as soon as it is done; return their indices in ascending order.

    ``fn(**shared, **fixed, masks=..., model_offset=..., [progress=...])`` trains one shard and returns its
    :class:`memlens.Population`; ``shared`` holds the large inputs every shard reads (sent to Ray workers once),
    ``fixed`` the small per-run arguments. In-process executors get a per-model ``progress`` callback driving one
    tqdm bar over the run's models; ``on_shard(k, n_done, n_shards)`` is called after shard ``k`` is written.
    """

    executor = LocalExecutor() if executor is None else executor
    missing = run.missing_shards()
    done_models = run.n_models - sum(stop - start for start, stop in map(run.shard_rows, missing))
    bar = tqdm(total=run.n_models, initial=done_models, unit="model", desc=desc, disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    trained = []
    base = {"n": bar.n}

    def job(k):
        start, stop = run.shard_rows(k)
        kwargs = {**fixed, "masks": run.masks[start:stop], "model_offset": start}
        if progress and executor.in_process:  # per-model progress when the shard runs in this process
            def tick(n_done, start=start, stop=stop):
                bar.n = base["n"] + min(int(n_done), stop - start)
                bar.refresh()

            kwargs["progress"] = tick
        return k, kwargs

    def write(k, pop):
        start, stop = run.shard_rows(k)
        run.write_shard(k, pop)
        trained.append(k)
        base["n"] += stop - start
        bar.n = base["n"]
        bar.refresh()
        if on_shard is not None:
            on_shard(k, run.n_shards - len(missing) + len(trained), run.n_shards)

    stop = threading.Event()

    def heartbeat():     # the elapsed time keeps moving while a long shard (minutes, for Fashion-MNIST) runs
        while not stop.wait(1.0):
            bar.refresh()

    beat = threading.Thread(target=heartbeat, name="memlens-progress", daemon=True)
    if progress:
        beat.start()
    try:
        executor.map(fn, (job(k) for k in missing), shared=shared, on_result=write)
    finally:
        stop.set()
        if progress:
            beat.join()
        bar.close()
    return sorted(trained)
