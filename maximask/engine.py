"""ONNX Runtime sessions for the MaxiMask and MaxiTrack networks: the one place that opens them.

Devices: ``CPU``, ``CUDA`` (needs the ``onnxruntime-gpu`` package and a GPU), or ``AUTO``
(CUDA when available, else CPU). The provider that actually runs is reported by
``Network.provider``.
"""
import os

import onnxruntime as ort

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
DEVICES = ("AUTO", "CPU", "CUDA")
_PROVIDERS = {"CPU": "CPUExecutionProvider", "CUDA": "CUDAExecutionProvider"}
_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class EngineError(RuntimeError):
    """A network cannot be run as asked (missing model file, unavailable device)."""


def model_path(name):
    """Path of the packaged ONNX model ``name`` ('maximask' or 'maxitrack')."""
    path = os.path.join(MODELS_DIR, f"{name}.onnx")
    if not os.path.isfile(path):
        raise EngineError(f"model file {path} not found: reinstall maximask")
    return path


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


class Network:
    """One network in one ONNX Runtime session.

    path: the .onnx file; device: AUTO, CPU or CUDA; nthreads: intra-op threads
    (0 = ONNX Runtime's default, all physical cores); optimization: disable, basic,
    extended or all.
    """

    def __init__(self, path, device="AUTO", nthreads=0, optimization="all"):
        if not os.path.isfile(path):
            raise EngineError(f"model file {path} not found")
        if optimization not in _OPTIMIZATION:
            raise EngineError(f"optimization {optimization} unknown: expected one of {', '.join(_OPTIMIZATION)}")
        self.device = resolve_device(device)
        options = ort.SessionOptions()
        options.graph_optimization_level = _OPTIMIZATION[optimization]
        options.intra_op_num_threads = int(nthreads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = [_PROVIDERS[self.device]]
        if self.device == "CUDA":
            providers.append(_PROVIDERS["CPU"])
        try:
            self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"cannot load {path}: {exc}") from exc
        if self.device == "CUDA" and self.session.get_providers()[0] != _PROVIDERS["CUDA"]:
            raise EngineError("device CUDA requested but onnxruntime could not start the CUDA provider")
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    @property
    def provider(self):
        """The execution provider that runs the graph, e.g. 'CPUExecutionProvider'."""
        return self.session.get_providers()[0]

    def __call__(self, batch):
        """Run the network on a float32 (N, 1, H, W) batch of compressed pixels."""
        return self.session.run([self.output_name], {self.input_name: batch})[0]


def open_network(name, device="AUTO", nthreads=0, optimization="all"):
    """Network for the packaged model ``name`` ('maximask' or 'maxitrack')."""
    return Network(model_path(name), device=device, nthreads=nthreads, optimization=optimization)
