"""Training MaxiMask and MaxiTrack in PyTorch (the ``train`` extra): the networks, the
loss of Paillassa et al. (2020, §3.1.2) and the export to ONNX model directories."""
from maximask.training.networks import MaxiMask, MaxiTrack, load_network, network_weights, set_trainable

__all__ = ["MaxiMask", "MaxiTrack", "load_network", "network_weights", "set_trainable"]
