"""The overlapped masking pipeline: the host works while the network runs.

Three kinds of threads share a run of :meth:`maximask.masker.Masker.run_files`:

* a reader (:class:`ReadAhead`): plans each file, opens it once, reads its units (image
  HDUs, cube planes) in order, checks and compresses them (C++ kernels, GIL released),
  at most ``PREFETCH_PIXELS`` ahead of the unit being tiled;
* the network's callers (``network.workers`` threads, 1 on CUDA) run batches of tiles
  (:class:`Flight`); ONNX Runtime releases the GIL;
* the calling thread cuts the tiles of each batch, hands them to the network and
  stitches what comes back, at most ``depth`` batches in flight, in submission order,
  and writes each file once its units are stitched (``finish_file``), while the reader
  and the network go on. Writing stays on the calling thread so that SIGINT or SIGTERM
  interrupts it and removes its temporary file, as in the sequential loop.

Pixels in flight stay bounded: the units read ahead (PREFETCH_PIXELS, or one unit when it
is larger), ``depth`` batches of tiles and probabilities, and the outputs of the file
being masked.
Every result is the sequential loop's, byte for byte: batches write disjoint windows.
"""
import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import errors, fitsio, kernels
from .engine import EngineError, is_interrupt
from ._progress import progress_counter

#: Batches in flight (tiles cut, not yet stitched) of a masker whose ``depth`` is unset;
#: 0 runs the sequential loop (a batch is cut, run and stitched before the next).
DEPTH = 4
#: Pixels of the units read and compressed ahead of the one being tiled (float32 each).
PREFETCH_PIXELS = 1 << 24


class Flight:
    """Network calls in flight: at most `depth` batches, retired in submission order.

    submit(tiles, window, done) runs ``network(tiles, window)`` on one of the network's
    callers and, when the batch is retired (by a later submit or :meth:`drain`), calls
    ``done(probs)`` here, or ``done(None, exc)`` with the exception the call raised.
    """

    def __init__(self, network, depth):
        self.network = network
        self.depth = max(1, int(depth), network.workers)
        self.pool = ThreadPoolExecutor(max(1, network.workers), thread_name_prefix="maximask-network")
        self.pending = collections.deque()

    def submit(self, tiles, window, done):
        while len(self.pending) >= self.depth:
            self.retire()
        self.pending.append((self.pool.submit(self.network, tiles, window), done))

    def retire(self):
        future, done = self.pending.popleft()
        try:
            probs = future.result()
        except Exception as exc:  # noqa: BLE001 - the caller decides what a failure means
            done(None, exc)
        else:
            done(probs)

    def drain(self):
        while self.pending:
            self.retire()

    def close(self, exc=None):
        """Drop the batches not started; wait for those running. `exc`: what ended the
        masking, if anything; on an interrupt (a signal) the network's runs under way are
        ended at once (Network.stop) rather than finished, then the network is resumed."""
        stop = exc is not None and is_interrupt(exc)
        if stop:
            self.network.stop()
        for future, _ in self.pending:
            future.cancel()
        self.pending.clear()
        try:
            self.pool.shutdown(wait=True, cancel_futures=True)
        finally:
            if stop:
                self.network.resume()


def batches_of(shape, config):
    """The tile origins (N, 2) of an image of `shape` and its batches: (window, members)
    with members indices into the origins, tiles of one window together (see
    Masker.run_compressed), BATCH_SIZE at most."""
    tile, margin, size = config.TILE_SIZE, config.TILE_MARGIN, config.BATCH_SIZE
    origins = kernels.tile_origins(shape[0], shape[1], tile, margin)
    windows, group = np.unique(kernels.tile_windows(shape[0], shape[1], tile, margin), axis=0,
                               return_inverse=True)
    batches = []
    for k, window in enumerate(windows):
        members = np.flatnonzero(group.ravel() == k)
        batches += [(window, members[s:s + size]) for s in range(0, len(members), size)]
    return origins, batches


class PlaneJob:
    """One compressed plane being masked: its output and the batches still in flight.

    plane: (h, w) float32 network input; out: the masker's output array; all_flags: an
    optional (h, w) int16 array that also gets every class's flags; on_done(job) is called
    once every batch is stitched (or failed: ``job.error``).
    """

    def __init__(self, masker, plane, out, all_flags=None, on_done=None, desc=None):
        self.masker, self.plane, self.out, self.all_flags = masker, plane, out, all_flags
        self.on_done, self.error, self.left = on_done, None, 0
        self.origins, self.batches = batches_of(plane.shape, masker.config)
        quiet = masker.quiet or len(self.batches) < 2
        self.bar = progress_counter(len(self.batches), desc=desc, unit="batch", quiet=quiet)

    def submit(self, flight):
        """Cut every batch's tiles and hand them to `flight`; the plane is dropped after."""
        tile = self.masker.config.TILE_SIZE
        self.left = len(self.batches)
        for window, members in self.batches:
            tiles = kernels.extract_tiles(self.plane, self.origins[members], tile)
            flight.submit(tiles, window, lambda probs, exc=None, w=window, m=members: self._stitch(probs, exc, w, m))
        self.plane = None

    def _stitch(self, probs, exc, window, members):
        m = self.masker
        if exc is not None:
            self.error = self.error or exc
        elif self.error is None:
            kernels.stitch(probs, self.origins[members], self.out, window, m.mode, classes=m.classes,
                           factors=m.factors, thresholds=m.thresholds)
            if self.all_flags is not None:
                kernels.stitch(probs, self.origins[members], self.all_flags, window, "flags",
                               factors=m.factors, thresholds=m.thresholds)
        self.bar.update(1)
        self.left -= 1
        if self.left == 0:
            self.bar.close()
            if self.on_done is not None:
                self.on_done(self)


def mask_plane(masker, plane, all_flags=None, desc=None):
    """Masker.run_compressed through a Flight: the tiles of the next batches are cut and
    the last ones stitched while the network runs. Raises what the network raised."""
    job = PlaneJob(masker, plane, masker.empty_output(plane.shape), all_flags, desc=desc)
    flight = Flight(masker.network, masker.depth)
    ended = None
    try:
        job.submit(flight)
        flight.drain()
    except BaseException as exc:
        ended = exc
        raise
    finally:
        job.bar.close()
        flight.close(ended)
    if job.error is not None:
        raise job.error
    return job.out


# ----------------------------------------------------------------------------- files


class Prepared:
    """A unit read and compressed by the reader: what the masking thread needs of it."""

    def __init__(self, unit, started):
        self.unit, self.started = unit, started
        self.data = self.plane = self.kept = None
        self.lines, self.failure, self.shape = [], None, tuple(unit.shape)


class ReadAhead:
    """The reader thread: yields ("plan", plan), ("unit", plan, Prepared) for each unit,
    ("end", plan) after a file's units, ("failed", source, exc) for a file it could not
    plan or read (no unit of it follows), then None. Units read but not yet released
    (:meth:`release`) hold at most PREFETCH_PIXELS, or one unit."""

    def __init__(self, masker, sources, log, protect):
        self.masker, self.sources, self.log, self.protect = masker, list(sources), log, protect
        self.items = collections.deque()
        self.cond = threading.Condition()
        self.held = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="maximask-reader", daemon=True)
        self.thread.start()

    def _emit(self, item):
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def _reserve(self, pixels):
        with self.cond:
            self.cond.wait_for(lambda: self.stopped or self.held == 0 or
                               self.held + pixels <= PREFETCH_PIXELS)
            if self.stopped:
                return False
            self.held += pixels
            return True

    def release(self, pixels):
        with self.cond:
            self.held -= pixels
            self.cond.notify_all()

    def get(self, flight=None):
        """The next item; while there is none yet, the batches of `flight` are retired
        (the units they finish release their pixels, which the reader may wait for)."""
        while True:
            with self.cond:
                if self.items or flight is None or not flight.pending:
                    self.cond.wait_for(lambda: self.items)
                    return self.items.popleft()
            flight.retire()

    def stop(self):
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        self.thread.join()

    def _run(self):
        try:
            for source in self.sources:
                if self.stopped:
                    return
                self._file(source)
        except BaseException as exc:  # noqa: BLE001 - handed to the masking thread
            self._emit(("error", exc))
            return
        self._emit(None)

    def _file(self, source):
        m = self.masker
        try:
            plan = m.plan_file(source, self.log, self.protect)
        except (errors.InputError, EngineError) as exc:
            self._emit(("failed", source, exc))
            return
        self._emit(("plan", plan))
        try:
            with fitsio.open_image(plan.source) as image:
                cube = None  # (index, data) of the cube whose planes are being read
                for unit in plan.units:
                    if not self._reserve(unit.pixels):
                        return
                    try:
                        started = time.perf_counter()
                        if unit.plane is None:
                            data = image.read(unit.index).data
                        else:  # a cube is read once for all its planes
                            if cube is None or cube[0] != unit.index:
                                cube = (unit.index, image.read(unit.index).data)
                            data = cube[1][unit.plane]
                            if unit.plane == len(cube[1]) - 1:
                                cube = None
                        prepared = m.prepare_unit(unit, data, started)
                    except BaseException:
                        self.release(unit.pixels)
                        raise
                    self._emit(("unit", plan, prepared))
        except (errors.InputError, EngineError) as exc:
            self._emit(("failed", plan.source, exc))
            return
        self._emit(("end", plan))


class _FileState:
    def __init__(self, plan):
        self.plan, self.results, self.left, self.ended, self.error = plan, {}, 0, False, None


def mask_files(masker, sources, log=None, protect=frozenset()):
    """Yield (source, output path or the InputError/EngineError that failed it) for each
    of `sources`, in order, as Masker.run_file would give them one after the other."""
    log = log or (lambda line: None)
    network = masker.network  # opened here, before any file is read
    reader = ReadAhead(masker, sources, log, protect)
    flight = Flight(network, masker.depth)
    outcomes = collections.deque()  # (source, output path or the exception that failed it)
    files = {}
    ended = None  # what ended the run early, if anything

    def finish(state):
        plan = state.plan
        if state.error is not None:
            outcomes.append((plan.source, state.error))
            return
        try:
            outcomes.append((plan.source, masker.finish_file(plan, state.results, log)))
        except (errors.InputError, EngineError) as exc:
            outcomes.append((plan.source, exc))

    def unit_done(state, prepared, job):
        unit = prepared.unit
        reader.release(unit.pixels)
        if job is not None and job.error is not None:
            if isinstance(job.error, EngineError):
                state.error = state.error or job.error
            else:
                raise job.error
        elif job is not None:
            state.results[unit] = masker.unit_result(prepared, job.out, job.all_flags,
                                                     seconds=time.perf_counter() - prepared.started)
        else:
            state.results[unit] = masker.unit_result(prepared, None, None)
        state.left -= 1
        if state.ended and state.left == 0:
            finish(state)

    def ready():
        while outcomes:
            yield outcomes.popleft()

    try:
        while True:
            item = reader.get(flight)
            if item is None:
                break
            kind = item[0]
            if kind == "error":
                raise item[1]
            if kind == "plan":
                files[id(item[1])] = _FileState(item[1])
            elif kind == "unit":
                state, prepared = files[id(item[1])], item[2]
                state.left += 1
                if prepared.failure or state.error is not None:
                    unit_done(state, prepared, None)
                    continue
                out = masker.empty_output(prepared.shape)
                job = PlaneJob(masker, prepared.plane, out, prepared.kept.flags if prepared.kept else None,
                               on_done=lambda job, s=state, p=prepared: unit_done(s, p, job),
                               desc=prepared.unit.name)
                prepared.plane = None
                job.submit(flight)
            elif kind == "end":
                state = files[id(item[1])]
                state.ended = True
                if state.left == 0:
                    finish(state)
                del files[id(item[1])]
            else:  # failed: a file not planned, or a unit not read (its batches are dropped)
                _, source, exc = item
                flight.drain()  # the file's units read so far: stitched into outputs dropped here
                for key, state in list(files.items()):
                    if state.plan.source is source:
                        del files[key]
                outcomes.append((source, exc))
            yield from ready()
        flight.drain()
        yield from ready()
    except BaseException as exc:
        ended = exc
        raise
    finally:
        flight.close(ended)
        reader.stop()

