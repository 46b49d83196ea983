"""MaxiMask and MaxiTrack as PyTorch modules, with exactly the operations of the ONNX graphs.

Parameters are named and laid out as the ONNX initializers (``maximask._architecture``):
``module.state_dict()`` is the weights dict that ``maximask._onnx_graphs`` writes, and the
packaged graphs' initializers load into it unchanged.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maximask import _architecture as arch

NETWORKS = ("maximask", "maxitrack")


def _pool(x):
    """2x2 max-pool, stride 2, with the argmax as flat indices per plane; odd sizes keep the
    last row/column (ONNX ``auto_pad=SAME_UPPER``: ceil(H/2) x ceil(W/2)).

    x (N, C, H, W) -> (values, argmax), both (N, C, ceil(H/2), ceil(W/2)). On a tie the
    first position of the window in row-major order wins (a later one only if strictly
    greater), as in ONNX Runtime's MaxPool Indices and TensorFlow's argmax. Flat regions
    (saturation plateaus, ReLU zeros) tie everywhere and the unpooling scatters to the
    argmax, so the rule is written out here rather than left to ``max_pool2d``'s CPU
    kernel. The values are gathered at the argmax: their gradient goes to that position.
    """
    n, c, height, width = x.shape
    h, w = -(-height // 2), -(-width // 2)
    with torch.no_grad():
        # -inf padding never wins: each window's first position is in the image.
        window = F.pad(x, (0, 2 * w - width, 0, 2 * h - height), value=float("-inf")).view(n, c, h, 2, w, 2)
        best = window[:, :, :, 0, :, 0]
        argmax = torch.zeros(best.shape, dtype=torch.int64, device=x.device)
        for (dy, dx), step in zip(((0, 1), (1, 0), (1, 1)), (1, width, width + 1)):
            candidate = window[:, :, :, dy, :, dx]
            wins = candidate > best
            best = torch.where(wins, candidate, best)
            argmax.masked_fill_(wins, step)
        rows = torch.arange(h, device=x.device).mul_(2 * width)
        argmax += rows[:, None] + torch.arange(w, device=x.device).mul_(2)
    return x.flatten(2).gather(2, argmax.flatten(2)).view(argmax.shape), argmax


def _unpool(x, indices, like):
    """Put x at the argmax positions of the pool whose input was `like`, zeros elsewhere."""
    return F.max_unpool2d(x, indices, 2, 2, output_size=like.shape[-2:])


class MaxiMask(nn.Module):
    """MaxiMask: compressed pixels (N, 1, H, W), any H and W, -> (N, 14, H, W).

    ``forward`` gives the sigmoid probabilities; ``logits`` the final logits and the five
    pre-predictions (before their ReLU) that the training loss also uses.
    """

    def __init__(self):
        super().__init__()
        for layer, (cin, cout) in arch.MAXIMASK_CHANNELS.items():
            self.add_module(layer, nn.Conv2d(cin, cout, arch.MAXIMASK_KERNEL, padding=arch.MAXIMASK_KERNEL // 2))

    def _conv_relu(self, x, layer):
        return F.relu(getattr(self, layer)(x))

    def logits(self, x):
        """(final logits (N, 14, H, W), {level: pre-prediction logits (N, 14, H, W)})."""
        acts, argmax = [], []
        for layers in arch.MAXIMASK_ENCODER:
            for layer in layers:
                x = self._conv_relu(x, layer)
            acts.append(x)
            x, idx = _pool(x)
            argmax.append(idx)
        x = self._conv_relu(x, arch.MAXIMASK_BOTTLENECK)

        dec_out = {}
        for level in (4, 3, 2, 1):
            x = _unpool(x, argmax[level], acts[level]) + acts[level]
            for layer in arch.MAXIMASK_DECODER[level]:
                x = self._conv_relu(x, layer)
            dec_out[level] = x
        x = _unpool(x, argmax[0], acts[0]) + acts[0]
        pre = {0: getattr(self, arch.MAXIMASK_HEAD)(x)}
        for level in arch.MAXIMASK_PREDICTION_LEVELS[1:]:
            y, layers = dec_out[level], arch.MAXIMASK_UCP[level]
            for step, layer in enumerate(layers):
                below = level - 1 - step
                y = getattr(self, layer)(_unpool(y, argmax[below], acts[below]))
                if step < len(layers) - 1:
                    y = F.relu(y)
            pre[level] = y
        heads = [F.relu(pre[level]) for level in arch.MAXIMASK_PREDICTION_LEVELS]
        return getattr(self, arch.MAXIMASK_FINAL)(torch.cat(heads, dim=1)), pre

    def forward(self, x):
        return torch.sigmoid(self.logits(x)[0])


class _ConvPReLU(nn.Module):
    """9x9 convolution ('SAME') and a PReLU with one slope per output position (C, H, W)."""

    def __init__(self, cin, cout, size):
        super().__init__()
        k = arch.MAXITRACK_KERNEL
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.alpha = nn.Parameter(torch.zeros(cout, size, size))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)

    def forward(self, x):
        x = F.conv2d(x, self.weight, self.bias, padding=arch.MAXITRACK_KERNEL // 2)
        return torch.where(x >= 0, x, self.alpha * x)


class _Dense(nn.Module):
    """x @ weight + bias, weight (in, out) as in the ONNX Gemm; then a PReLU if `prelu`."""

    def __init__(self, cin, cout, prelu):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cin, cout).uniform_(-cin ** -0.5, cin ** -0.5))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.alpha = nn.Parameter(torch.zeros(cout)) if prelu else None

    def forward(self, x):
        x = x @ self.weight + self.bias
        return x if self.alpha is None else torch.where(x >= 0, x, self.alpha * x)


class MaxiTrack(nn.Module):
    """MaxiTrack: compressed pixels (N, 1, 400, 400) -> (N, 2) softmax scores (column 1:
    tracking error); ``logits`` gives the scores before the softmax."""

    def __init__(self):
        super().__init__()
        size = arch.MAXITRACK_SIZE
        for layer, cin, cout in arch.MAXITRACK_CONVS:
            self.add_module(layer, _ConvPReLU(cin, cout, size))
            size //= 2
        for layer, cin, cout, prelu in arch.MAXITRACK_DENSE:
            self.add_module(layer, _Dense(cin, cout, prelu))

    def logits(self, x):
        for layer, _, _ in arch.MAXITRACK_CONVS:
            x = F.max_pool2d(getattr(self, layer)(x), 2, 2)
        x = torch.flatten(x, 1)
        for layer, _, _, _ in arch.MAXITRACK_DENSE:
            x = getattr(self, layer)(x)
        return x

    def forward(self, x):
        return torch.softmax(self.logits(x), dim=1)


def network_weights(module):
    """The module's parameters as the float32 NumPy arrays the ONNX writer takes, by name."""
    return {name: value.detach().cpu().numpy().astype(np.float32) for name, value in module.state_dict().items()}


def set_trainable(module, names):
    """Train only the layers `names` (layer names, or groups of ``architecture``: ENCODER,
    DECODER, UCP, FINAL for MaxiMask; CONV, DENSE for MaxiTrack); freeze the others.
    Returns the names of the parameters left trainable."""
    groups = arch.MAXIMASK_GROUPS if isinstance(module, MaxiMask) else arch.MAXITRACK_GROUPS
    layers = {name for name, _ in module.named_children()}
    chosen = set()
    for name in names:
        if name.upper() in groups:  # group names in any case
            chosen.update(groups[name.upper()])
        elif name in layers:
            chosen.add(name)
        else:
            raise ValueError(f"layer {name} unknown: expected a layer name or one of {', '.join(groups)}")
    trainable = []
    for name, parameter in module.named_parameters():
        parameter.requires_grad_(name.split(".")[0] in chosen)
        if parameter.requires_grad:
            trainable.append(name)
    return trainable


def load_network(name, path=None):
    """A MaxiMask or MaxiTrack module holding the weights of an ONNX graph, in eval mode.

    name: 'maximask' or 'maxitrack'; path: the graph to read (default the packaged one,
    ``maximask/models/<name>.onnx``). Every parameter must be found there with its shape.
    """
    from maximask.engine import MODELS_DIR
    from maximask._onnx_graphs import read_weights

    if name not in NETWORKS:
        raise ValueError(f"network {name} unknown: expected one of {', '.join(NETWORKS)}")
    module = MaxiMask() if name == "maximask" else MaxiTrack()
    weights = read_weights(path or os.path.join(MODELS_DIR, f"{name}.onnx"))
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()}, strict=True)
    return module.eval()
