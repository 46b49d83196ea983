"""ONNX Runtime sessions for the MaxiMask and MaxiTrack networks: the one place that opens them.

Devices: ``CPU``, ``CUDA`` (needs the ``onnxruntime-gpu`` package and a GPU), or ``AUTO``
(CUDA when available, else CPU). The provider that actually runs is reported by
``Network.provider``.
"""
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort

from . import MODEL_VERSION
from .classes import TRAINING_PRIORS

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
#: The description a model directory carries (written by maximask.training.export).
MODEL_INFO_FILE = "model.json"
#: SHA-256 of the packaged networks' weights (maximask._onnx_graphs.weights_digest; a test
#: recomputes them), the identity a model directory's model.json gives as weights_sha256.
PACKAGED_WEIGHTS_SHA256 = {
    "maximask": "60c73a239e208abb89d69958a92edcb196c7ad7d0eccbb0101249edef9c93f3f",
    "maxitrack": "49acec63b8d5cbe93f7db170fb089d1fe24933cef6a8c18c47e6cf99de7cfccd",
}
DEVICES = ("AUTO", "CPU", "CUDA")
#: Pixels in flight on the CPU (N x H x W, over all concurrent runs): about 0.5 GB of activations.
CPU_MAX_PIXELS = 1 << 19
#: Most concurrent session runs on the CPU with workers=0 (see Network).
CPU_MAX_WORKERS = 4
_PROVIDERS = {"CPU": "CPUExecutionProvider", "CUDA": "CUDAExecutionProvider"}
_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class EngineError(RuntimeError):
    """A network cannot be run as asked (missing model file, unavailable device)."""


class NetworkStopped(RuntimeError):
    """A run was ended by Network.stop (an interrupt): its output does not exist."""


def is_interrupt(exc):
    """True for what unwinds a command on a signal (KeyboardInterrupt, the commands' SIGTERM
    exception): a BaseException that is not an Exception."""
    return not isinstance(exc, Exception)


def model_path(name, device="CPU", model_dir=None):
    """Path of the ONNX model ``name`` ('maximask' or 'maxitrack') for ``device``.

    model_dir: a model directory (``maximask.training.export``); None or '' for the packaged
    networks. On CUDA, MaxiMask runs its own graph, ``maximask_cuda.onnx``: the same network
    and weights (``maximask.weights``, shared), with the unpooling written as
    ScatterElements, which the CUDA provider implements (it has no MaxUnpool kernel).
    """
    cuda_graph = device == "CUDA" and name == "maximask"
    filename = f"{name}_cuda.onnx" if cuda_graph else f"{name}.onnx"
    path = os.path.join(model_dir or MODELS_DIR, filename)
    if not os.path.isfile(path):
        if model_dir:
            raise EngineError(f"model directory {model_dir}: no {filename}, so not a {name} model")
        raise EngineError(f"model file {path} not found: reinstall maximask")
    return path


def model_info(name, model_dir=None):
    """What a run needs to know of its network: a dict with

    label: the published model's version, or the model directory's absolute path;
    weights_sha256: the digest of the weights (for output headers);
    training_priors: the class fractions the network was trained on, which prior correction
    divides out: MaxiMask (14,) float64, MaxiTrack the fraction of tracking errors (a
    float). A model directory's model.json gives them as ``training_priors`` (re-estimated
    after training); without that entry, the published network's apply.

    thresholds: MaxiMask's best-MCC thresholds on the validation samples of its training
    (model.json ``thresholds``, 14 numbers in [0, 1]), or None (the packaged network, or a
    directory without them): see with_model_thresholds.

    A model directory whose model.json is missing, unreadable, for another network or with
    bad training priors or thresholds raises EngineError (one line).
    """
    packaged_priors = TRAINING_PRIORS.copy() if name == "maximask" else 0.5  # MaxiTrack: balanced classes
    if not model_dir:
        return {"label": MODEL_VERSION, "weights_sha256": PACKAGED_WEIGHTS_SHA256[name],
                "training_priors": packaged_priors, "thresholds": None}
    path = os.path.join(model_dir, MODEL_INFO_FILE)
    try:
        with open(path) as f:
            info = json.load(f)
    except OSError as exc:
        raise EngineError(f"model directory {model_dir}: cannot read {MODEL_INFO_FILE} "
                          f"({exc.strerror or exc})") from None
    except ValueError as exc:
        raise EngineError(f"model directory {model_dir}: {MODEL_INFO_FILE} is not valid JSON ({exc})") from None
    if not isinstance(info, dict) or info.get("network") != name or not isinstance(info.get("weights_sha256"), str):
        found = info.get("network") if isinstance(info, dict) else None
        raise EngineError(f"model directory {model_dir}: {MODEL_INFO_FILE} describes network {found}, "
                          f"not {name}")
    priors = info.get("training_priors", packaged_priors)
    try:
        checked = np.asarray(priors, dtype=np.float64)
        valid = checked.shape == np.shape(packaged_priors) and ((checked > 0) & (checked < 1)).all()
    except (TypeError, ValueError):
        valid = False
    if not valid:
        expected = f"{len(TRAINING_PRIORS)} numbers" if name == "maximask" else "a number"
        raise EngineError(f"model directory {model_dir}: {MODEL_INFO_FILE} training_priors {priors!r}: "
                          f"{expected} in (0,1) expected")
    thresholds = info.get("thresholds")
    if thresholds is not None:
        try:
            thresholds = np.asarray(thresholds, dtype=np.float64)
            valid = name == "maximask" and thresholds.shape == TRAINING_PRIORS.shape and \
                ((thresholds >= 0) & (thresholds <= 1)).all()
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise EngineError(f"model directory {model_dir}: {MODEL_INFO_FILE} thresholds {info['thresholds']!r}: "
                              f"{len(TRAINING_PRIORS)} numbers in [0,1] expected")
    return {"label": os.path.abspath(model_dir), "weights_sha256": info["weights_sha256"],
            "training_priors": checked if name == "maximask" else float(checked), "thresholds": thresholds}


def with_model_thresholds(config):
    """`config` (maximask or maxieval) with the THRESHOLDS of its NETWORK's model.json when
    THRESHOLDS was left at its default; otherwise `config` itself. Set THRESHOLDS (file or
    command line) to override a model's thresholds."""
    if not config.NETWORK or config.origin("THRESHOLDS") != "default":
        return config
    thresholds = model_info("maximask", config.NETWORK)["thresholds"]
    if thresholds is None:
        return config
    return config.replace(THRESHOLDS=tuple(float(t) for t in thresholds), location=MODEL_INFO_FILE)


def available_devices():
    """Devices ONNX Runtime can use here, e.g. ('CPU',) or ('CPU', 'CUDA')."""
    providers = ort.get_available_providers()
    return tuple(dev for dev, prov in _PROVIDERS.items() if prov in providers)


def resolve_device(device):
    """Turn AUTO/CPU/CUDA (any case) into CPU or CUDA, or raise EngineError."""
    device = str(device).upper()
    if device not in DEVICES:
        raise EngineError(f"device {device} unknown: expected one of {', '.join(DEVICES)}")
    available = available_devices()
    if device == "AUTO":
        return "CUDA" if "CUDA" in available else "CPU"
    if device not in available:
        raise EngineError(
            f"device {device} unavailable: onnxruntime offers {', '.join(available)} "
            "(install onnxruntime-gpu and check the CUDA drivers for CUDA)"
        )
    return device


_ORT_PREFIX = re.compile(r"^.*\[ONNXRuntimeError\] : \d+ : \w+ : ")
_CXX_PLACE = re.compile(r"^\S+\.(cc|cpp|h):\d+ \w+ ")


def _load_problem(exc):
    """ONNX Runtime's load error in one line, without its error codes and C++ source places."""
    text = _CXX_PLACE.sub("", _ORT_PREFIX.sub("", " ".join(str(exc).split())))
    if text.startswith("External initializer") or "external data" in text.lower():
        return (f"its weights file is truncated or damaged ({text.rstrip('.')}): reinstall maximask, "
                "or export the model directory again")
    return text or type(exc).__name__


class Network:
    """One network in one ONNX Runtime session.

    path: the .onnx file; device: AUTO, CPU or CUDA; nthreads: CPU threads (0 = all the
    cores this process may use); optimization: disable, basic, extended or all.

    workers: how many calls the caller may run at once from its own threads (the session
    runs them concurrently); the threads are shared among them, nthreads // workers
    intra-op threads each. 0 picks min(threads, CPU_MAX_WORKERS) on the CPU: single-
    threaded runs side by side keep the cores busier than one run's intra-op threads,
    whose small operators barely parallelise. CUDA always has 1.

    max_pixels: the most pixels (N x H x W) given to one session run; larger batches are
    run in chunks. On the CPU the default, CPU_MAX_PIXELS / workers, bounds the activation
    memory (about 1 kB per pixel in flight) at no cost in throughput, which on the CPU
    does not grow with the batch; on CUDA batches run whole.

    io_binding: feed the session through an IO binding (default: on for CUDA), so inputs
    go to the device once per run and the output buffer is bound rather than returned.
    """

    def __init__(self, path, device="AUTO", nthreads=0, optimization="all", max_pixels=None,
                 io_binding=None, workers=1):
        if not os.path.isfile(path):
            raise EngineError(f"model file {path} not found")
        if optimization not in _OPTIMIZATION:
            raise EngineError(f"optimization {optimization} unknown: expected one of {', '.join(_OPTIMIZATION)}")
        self.device = resolve_device(device)
        options = ort.SessionOptions()
        options.graph_optimization_level = _OPTIMIZATION[optimization]
        threads = int(nthreads) or len(os.sched_getaffinity(0))
        if self.device == "CUDA":
            self.workers = 1
        else:
            self.workers = max(1, int(workers) or min(threads, CPU_MAX_WORKERS))
        options.intra_op_num_threads = max(1, threads // self.workers)
        options.inter_op_num_threads = 1
        options.log_severity_level = 4  # fatal only: a load error is raised, said once below
        # The CPU arena keeps the largest activations allocated between runs and doubles
        # the peak memory; plain allocations cost no measurable time for these tensors.
        options.enable_cpu_mem_arena = self.device == "CUDA"
        providers = [_PROVIDERS[self.device]]
        if self.device == "CUDA":
            providers.append(_PROVIDERS["CPU"])
        try:
            self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"cannot load {path}: {_load_problem(exc)}") from exc
        if self.device == "CUDA" and self.session.get_providers()[0] != _PROVIDERS["CUDA"]:
            raise EngineError("device CUDA requested but onnxruntime could not start the CUDA provider")
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        # MaxiMask's second input: the (y0, x0, y1, x1) part of each tile to compute.
        self.takes_window = any(i.name == "window" for i in self.session.get_inputs())
        if max_pixels is None:
            max_pixels = CPU_MAX_PIXELS // self.workers if self.device == "CPU" else None
        self.max_pixels = max_pixels
        self.io_binding = self.device == "CUDA" if io_binding is None else bool(io_binding)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = set()  # the RunOptions of the session runs under way

    def stop(self):
        """End the runs under way within one operator (RunOptions.terminate) and refuse new
        ones (NetworkStopped) until :meth:`resume`: what an interrupt does, so that a signal
        never waits for a whole batch to be computed, whatever the load of the machine."""
        with self._lock:
            self._stopping.set()
            for options in self._in_flight:
                options.terminate = True

    def resume(self):
        """Accept runs again after :meth:`stop` (once the threads that ran have returned)."""
        self._stopping.clear()

    @property
    def provider(self):
        """The execution provider that runs the graph, e.g. 'CPUExecutionProvider'."""
        return self.session.get_providers()[0]

    def __call__(self, batch, window=None):
        """Run the network on a float32 (N, 1, H, W) batch of compressed pixels.

        window: for MaxiMask, (y0, x0, y1, x1) with 0 <= y0 < y1 <= H, 0 <= x0 < x1 <= W,
        the part of every tile whose probabilities are returned, (N, 14, y1 - y0, x1 - x0);
        default the whole tile. The network computes only what that part depends on.
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        feeds = {}
        if self.takes_window:
            feeds["window"] = self._window(window, batch.shape)
        elif window is not None:
            raise ValueError("this network takes no window")
        if threading.current_thread() is threading.main_thread():
            return self.interruptible(self._call, batch, feeds)
        return self._call(batch, feeds)

    def interruptible(self, function, *args):
        """``function(*args)`` in a helper thread while this one waits: Python handles a
        signal only between bytecodes of the main thread, never inside a session run, so
        the main thread waits and stops the run on an interrupt instead of finishing it."""
        pool = ThreadPoolExecutor(1)
        try:
            return pool.submit(function, *args).result()
        except BaseException as exc:
            if is_interrupt(exc):
                self.stop()
            raise
        finally:
            pool.shutdown(wait=True)
            self.resume()

    def _call(self, batch, feeds):
        run = self._run_bound if self.io_binding else self._run
        per_run = len(batch)
        if self.max_pixels:
            per_run = max(1, min(per_run, self.max_pixels // (batch.shape[2] * batch.shape[3])))
        if per_run >= len(batch):
            return run(batch, feeds)
        return np.concatenate([run(batch[k:k + per_run], feeds) for k in range(0, len(batch), per_run)])

    @staticmethod
    def _window(window, shape):
        h, w = shape[2], shape[3]
        if window is None:
            return np.array([0, 0, h, w], np.int64)
        y0, x0, y1, x1 = (int(v) for v in window)
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise ValueError(f"window {tuple(window)} is not inside a {h}x{w} tile")
        return np.array([y0, x0, y1, x1], np.int64)

    def _stoppable(self, run):
        """run(options) with RunOptions that stop() can terminate; NetworkStopped once stopped."""
        options = ort.RunOptions()
        with self._lock:
            if self._stopping.is_set():
                raise NetworkStopped("network stopped")
            self._in_flight.add(options)
        try:
            return run(options)
        except Exception:
            if options.terminate:
                raise NetworkStopped("network stopped") from None
            raise
        finally:
            with self._lock:
                self._in_flight.discard(options)

    def _run(self, batch, feeds):
        return self._stoppable(lambda options: self.session.run(
            [self.output_name], {self.input_name: batch, **feeds}, options)[0])

    def _run_bound(self, batch, feeds):
        binding = self.session.io_binding()
        device = "cuda" if self.device == "CUDA" else "cpu"
        binding.bind_ortvalue_input(self.input_name, ort.OrtValue.ortvalue_from_numpy(batch, device, 0))
        for name, value in feeds.items():  # shape-like inputs stay in host memory
            binding.bind_cpu_input(name, value)
        binding.bind_output(self.output_name, "cpu")
        self._stoppable(lambda options: self.session.run_with_iobinding(binding, options))
        return binding.copy_outputs_to_cpu()[0]


def open_network(name, device="AUTO", nthreads=0, optimization="all", model_dir=None, **options):
    """Network for the model ``name`` ('maximask' or 'maxitrack'), packaged or from
    `model_dir` (a model directory; checked as model_info does); options as Network."""
    device = resolve_device(device)
    if model_dir:
        model_info(name, model_dir)
    return Network(model_path(name, device, model_dir), device=device, nthreads=nthreads,
                   optimization=optimization, **options)
