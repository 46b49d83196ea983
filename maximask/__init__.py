"""maximask: contaminant flagging of astronomical images with the MaxiMask and MaxiTrack networks.

The networks of Paillassa, Bertin & Bouy (2020, A&A 634, A48) run through ONNX Runtime; the
hot paths of the pipeline are C++ kernels (``maximask.kernels``).
"""
__version__ = "0.1.0"

#: Version of the published MaxiMask package whose trained weights the ONNX models carry.
MODEL_VERSION = "MaxiMask 1.4.1"

__all__ = ["Masker", "Tracker", "InputError", "OutputError", "OutputExistsError", "ConfigError",
           "EngineError", "__version__", "MODEL_VERSION"]

from .config import ConfigError  # noqa: E402  (pure Python, no extension)
from .errors import InputError, OutputError, OutputExistsError  # noqa: E402


def __getattr__(name):
    # Imported on first use, so that configuration and FITS modules load without the
    # C++ extension and ONNX Runtime.
    if name == "Masker":
        from .masker import Masker

        return Masker
    if name == "EngineError":
        from .engine import EngineError

        return EngineError
    if name == "Tracker":
        from .tracker import Tracker

        return Tracker
    raise AttributeError(f"module 'maximask' has no attribute {name!r}")
