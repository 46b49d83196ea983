"""Training MaxiMask and MaxiTrack in PyTorch (the ``train`` extra): the networks
(``networks``), samples (``samples``), the loss of Paillassa et al. (2020, §3.1.2) (``loss``),
the trainer (``trainer``), training priors (``priors``), the export to ONNX model
directories (``export``) and the maxitrain pipeline (``pipeline``).

PyTorch is imported on first use of a network, so that ``maxitrain`` can say how to install
it when it is missing.
"""
__all__ = ["MaxiMask", "MaxiTrack", "load_network", "network_weights", "set_trainable"]


def __getattr__(name):
    if name in __all__:
        from . import networks

        return getattr(networks, name)
    raise AttributeError(f"module 'maximask.training' has no attribute {name!r}")
