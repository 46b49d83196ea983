"""maximask: contaminant flagging of astronomical images with the MaxiMask and MaxiTrack networks.

The networks of Paillassa, Bertin & Bouy (2020, A&A 634, A48) run through ONNX Runtime; the
hot paths of the pipeline are C++ kernels (``maximask.kernels``).
"""
__version__ = "0.1.0"

#: Version of the published MaxiMask package whose trained weights the ONNX models carry.
MODEL_VERSION = "MaxiMask 1.4.1"
