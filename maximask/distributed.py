"""Many files on a Dask cluster: one task per image HDU (or cube plane), each output written once.

Example::

    from distributed import Client
    from maximask.distributed import mask_files, score_files
    client = Client("tcp://scheduler:8786")          # or a LocalCluster, dask-jobqueue...
    for name, path in mask_files(client, ["night/"], output_type="FLAGS"):
        print(name, path)       # as files complete; path is an InputError for a failed input
    for name, scores in score_files(client, ["night/"]):
        print(name, scores)     # [TrackScore, ...] as Tracker.score_file gives

The client splits each input into units (:mod:`maximask._workunits`, headers read only),
submits one task per unit, and assembles a file's results in HDU order and writes it
atomically once, through the same ``plan_file`` / ``run_unit`` / ``finish_file`` of
Masker and Tracker as an in-process run: the outputs are the same byte for byte (but for
the processing date). Workers read their units' pixels from the shared filesystem; each
worker process keeps one Masker or Tracker per configuration, so a network opens once per
worker. A worker runs one task per Dask thread (one with CLUSTER LOCAL), so it holds one
unit's pixels and output at a time, as an in-process run does, plus the results not yet
fetched by the client. Dask reruns the tasks of a worker that dies (up to
``distributed.scheduler.allowed-failures`` times, then the file fails in one line).

Tasks of a run with DEVICE CUDA ask for the worker resource ``GPU`` (one per task), so they
go only to workers started with ``--resources GPU=1``. Dask is imported only here, and only
when a cluster is used.
"""
import contextlib
import logging
import os
import sys
import threading
import time
import uuid

from . import errors
from .inputs import DEFAULT_SUFFIX, ImageSource, find_inputs
from .engine import EngineError
from ._progress import on_terminal

__all__ = ["ClusterError", "mask_files", "score_files", "process_files", "cluster_client",
           "task_resources", "run_on_cluster"]


class ClusterError(EngineError):
    """The cluster cannot be used (Dask missing, scheduler unreachable): a setup error, exit 2."""


def task_resources(config):
    """Dask resources each task of a run asks for: one GPU for DEVICE CUDA, else none."""
    return {"GPU": 1} if config.DEVICE == "CUDA" else None


def _import_distributed(config):
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"CLUSTER {config.CLUSTER} needs Dask: pip install 'maximask[dask]'") from None
    return distributed


@contextlib.contextmanager
def cluster_client(config, log=None):
    """A ``distributed.Client`` for CLUSTER LOCAL or a scheduler address: yields (client, threads).

    LOCAL starts NWORKERS worker processes (0 = one per core) of one Dask thread each;
    threads is then the ONNX Runtime threads of each task, NTHREADS or the cores shared
    among the workers. With an address, threads is NTHREADS or 1 (start the workers with
    one Dask thread per core, Dask's default). An unreachable scheduler (after Dask's
    ``distributed.comm.timeouts.connect``) raises ClusterError.
    """
    distributed = _import_distributed(config)
    log = log or (lambda line: None)
    cluster = None
    target = config.CLUSTER
    if target.upper() == "LOCAL":
        cores = len(os.sched_getaffinity(0))
        nworkers = config.NWORKERS or cores
        threads = config.NTHREADS or max(1, cores // nworkers)
        try:
            cluster = distributed.LocalCluster(n_workers=nworkers, threads_per_worker=1, processes=True,
                                               dashboard_address=":0", silence_logs=logging.ERROR)
        except Exception as exc:  # noqa: BLE001 - Dask raises many kinds here
            raise ClusterError(f"cannot start a local Dask cluster: {' '.join(str(exc).split())}") from None
        target = cluster.scheduler_address
    else:
        threads = config.NTHREADS or 1
    try:
        try:
            client = distributed.Client(cluster or target)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {target}: "
                               f"{' '.join(str(exc).split())}") from None
        try:
            if config.VERBOSE_TYPE == "FULL":
                log(f"Dask scheduler {target}, dashboard {client.dashboard_link}")
            yield client, threads
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


# ------------------------------------------------------------------ on the workers

_PIPELINES = {}  # the most recent configurations' pipelines of this worker process
_PIPELINES_KEPT = 2
#: Keywords that say where outputs go: run_unit does not use them, runs share a pipeline.
_PLACEMENT = ("OUTPUT_DIR", "OUTPUT_SUFFIX", "OVERWRITE", "OUTPUT_NAME")
_PIPELINES_LOCK = threading.Lock()


class _UnitFailed:
    """An InputError raised by a task, carried back as a value (InputError does not pickle)."""

    def __init__(self, exc):
        self.name, self.problem = exc.name, exc.problem

    def error(self):
        return errors.InputError(self.name, self.problem)


def _run_unit(kind, config, unit):
    """The task: run_unit of this worker's `kind` (Masker or Tracker) for `config`, built once."""
    key = (kind.__module__, kind.__qualname__,
           tuple(item for item in config.items() if item[0] not in _PLACEMENT))
    with _PIPELINES_LOCK:
        pipeline = _PIPELINES.get(key)
        if pipeline is None:
            while len(_PIPELINES) >= _PIPELINES_KEPT:  # each holds a network session
                del _PIPELINES[next(iter(_PIPELINES))]
            pipeline = _PIPELINES[key] = kind(config)
            pipeline.network  # opened here, once, rather than by concurrent tasks
    try:
        return pipeline.run_unit(unit)
    except errors.InputError as exc:
        return _UnitFailed(exc)


# ------------------------------------------------------------------ on the client

class _File:
    """A file in flight: its plan, the results received, its futures."""

    def __init__(self, plan):
        self.plan, self.results, self.futures, self.done = plan, {}, [], False


def process_files(client, pipeline, sources, log=None, threads=None, resources=None,
                  progress=False, plan=None):
    """Run `pipeline` (a Masker or Tracker) on ImageSources on the cluster of `client`.

    Yields (source, output) as files complete: output is what the pipeline's finish_file
    gives (a path, or a list of TrackScore), or the InputError that failed the input (the
    others go on). threads: ONNX Runtime threads per task when NTHREADS is 0 (default 1).
    resources: Dask resources per task (default :func:`task_resources`). progress: a bar
    over all units on a terminal. plan(source, log): how a file is split (default the
    pipeline's plan_file). An EngineError (e.g. no CUDA on a worker) stops the run.
    """
    from distributed import as_completed
    from tqdm import tqdm

    log = log or (lambda line: None)
    plan = plan or pipeline.plan_file
    c = pipeline.config
    task_config = c.replace(VERBOSE_TYPE="QUIET", NTHREADS=c.NTHREADS or threads or 1, CLUSTER="NONE")
    resources = task_resources(c) if resources is None else resources
    kind, tag = type(pipeline), type(pipeline).__name__.lower()
    owner, ready = {}, as_completed()
    bar = tqdm(total=0, unit="HDU", desc="HDUs", leave=False, file=sys.stderr,
               disable=not progress or not on_terminal())
    started, pixels, nfiles, ndone = time.perf_counter(), 0, 0, 0

    def fail(file, error):
        file.done = True
        client.cancel([f for f in file.futures if not f.done()])
        return file.plan.source, error

    try:
        for source in sources:
            try:
                file = _File(plan(source, log))
            except errors.InputError as exc:
                yield source, exc
                continue
            nfiles += 1
            for unit in file.plan.units:
                future = client.submit(_run_unit, kind, task_config, unit, pure=False, resources=resources,
                                       key=f"{tag}-{os.path.basename(unit.name)}-{uuid.uuid4().hex}")
                owner[future] = (file, unit)
                file.futures.append(future)
                ready.add(future)
            bar.total += len(file.plan.units)
            bar.refresh()
        for future in ready:
            file, unit = owner.pop(future)
            if file.done:
                continue
            try:
                result = future.result()
            except EngineError:
                client.cancel(list(owner))
                raise
            except Exception as exc:  # noqa: BLE001 - a task killed too often, a lost worker...
                yield fail(file, errors.InputError(unit.name, f"task failed on the cluster: "
                                                              f"{type(exc).__name__}: {exc}"))
                continue
            if isinstance(result, _UnitFailed):
                yield fail(file, result.error())
                continue
            file.results[unit] = result
            pixels += unit.pixels
            bar.update(1)
            bar.set_postfix_str(f"{ndone}/{nfiles} files, "
                                f"{pixels / 1e6 / (time.perf_counter() - started):.2f} Mpix/s")
            if len(file.results) == len(file.plan.units):
                file.done = True
                ndone += 1
                try:
                    output = pipeline.finish_file(file.plan, file.results, log)
                except errors.InputError as exc:
                    output = exc
                file.results = None  # the file's pixels go now
                yield file.plan.source, output
    finally:
        bar.close()
        client.cancel(list(owner))
    seconds, nworkers = time.perf_counter() - started, len(client.scheduler_info()["workers"])
    log(f"{ndone} files, {pixels / 1e6:.1f} Mpix in {seconds:.1f} s ({pixels / 1e6 / max(seconds, 1e-9):.2f} "
        f"Mpix/s) on {nworkers} Dask worker{'' if nworkers == 1 else 's'}")


def _on_inputs(client, pipeline, inputs, suffix, log):
    sources = []
    for arg in inputs:
        if isinstance(arg, ImageSource):
            sources.append(arg)
            continue
        try:
            sources += find_inputs([arg], suffix)
        except errors.InputError as exc:
            yield str(arg), exc
    for source, output in process_files(client, pipeline, sources, log):
        yield source.name, output


def mask_files(client, inputs, config=None, log=None, **keywords):
    """Mask files on the Dask cluster of `client`: yield (input name, output path) as they finish.

    inputs: paths, ``path[N]``, directories or lists, as on the command line; config and
    keywords as for :class:`maximask.Masker`. A failed input yields its InputError instead
    of a path. NTHREADS 0 gives each task one ONNX Runtime thread.
    """
    from .masker import Masker

    masker = Masker(config, **keywords)
    yield from _on_inputs(client, masker, inputs, masker.config.OUTPUT_SUFFIX, log)


def score_files(client, inputs, config=None, log=None, **keywords):
    """MaxiTrack scores on the Dask cluster of `client`: yield (input name, [TrackScore, ...])
    as files finish (an InputError instead of the list for a failed input); config and
    keywords as for :class:`maximask.Tracker`."""
    from .tracker import Tracker

    tracker = Tracker(config, **keywords)
    yield from _on_inputs(client, tracker, inputs, DEFAULT_SUFFIX, log)


def run_on_cluster(config, pipeline, sources, log, done, failed, plan=None):
    """The commands' cluster run: done(source, output) per file, failed(error) per failure
    (returning 1 if it counts as failed); returns the number of failed inputs."""
    count = 0
    with cluster_client(config, log) as (client, threads):
        for source, output in process_files(client, pipeline, sources, log, threads=threads, plan=plan,
                                            progress=config.VERBOSE_TYPE != "QUIET"):
            if isinstance(output, errors.InputError):
                count += failed(output)
            else:
                done(source, output)
    return count
