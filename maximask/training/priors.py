"""The training priors a network carries, re-estimated after training (paper eq. 27).

P(omega_c|T) ~ the mean posterior P(omega_c|x, T') over the pixels of a validation set T':
what prior correction (eq. 26) must divide out once the weights have moved. Export them as
``training_priors`` in model.json (``export_network(..., metadata=...)``).
"""
import numpy as np
import torch

from maximask.training.networks import MaxiMask


def mean_posteriors(network, batches):
    """Eq. 27 over `batches` (iterable of compressed (N, 1, H, W) tensors on the network's
    device): MaxiMask -> (14,) float64 mean probability of each class over all pixels;
    MaxiTrack -> float, the mean probability of a tracking error over all tiles."""
    total, count = 0.0, 0
    network.eval()
    with torch.no_grad():
        for x in batches:
            p = network(x).double()
            if isinstance(network, MaxiMask):
                total = total + p.sum(dim=(0, 2, 3))
                count += p.shape[0] * p.shape[2] * p.shape[3]
            else:
                total = total + p[:, 1].sum()
                count += p.shape[0]
    if count == 0:
        raise ValueError("no validation samples")
    mean = (total / count).cpu().numpy()
    return mean.astype(np.float64) if isinstance(network, MaxiMask) else float(mean)
