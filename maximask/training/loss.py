"""The MaxiMask training loss of Paillassa et al. (2020), §3.1.2, eq. 12-17.

Shapes: logits and labels (N, 14, H, W), labels 0/1 in the class order of
``maximask.classes``; pixel weights (N, 1, H, W). Losses are summed over classes and
pixels and averaged over the batch (eq. 12), so they grow with the tile area.

The pre-predictions reach the final convolution through a ReLU (as in the published graph);
their auxiliary losses take the values before it as logits: after a ReLU no logit is below
0, and no pixel could be predicted below 0.5. The paper does not say which it used.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Auxiliary losses of the pre-predictions, by decoder level (level k is 1/2^k of the tile
#: size before its unpool-conv path): the paper's 3 smallest resolutions at 33% each; the
#: other choice it reports is AUX_TWO_SMALLEST. The weights sum to 1 (§3.1.2).
AUX_THREE_SMALLEST = {4: 1 / 3, 3: 1 / 3, 2: 1 / 3}
AUX_TWO_SMALLEST = {4: 1 / 2, 3: 1 / 2}
#: Regularisation targets: the published weights (fine-tuning), zero (the paper's L2), none.
REGULARISATIONS = ("PUBLISHED", "ZERO", "NONE")


def gaussian_kernel(size=3, sigma=1.0):
    """(size, size) Gaussian of standard deviation `sigma` pixels, normalised to sum 1."""
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def class_fractions(labels):
    """Fraction of pixels labelled with each class, P(omega_c|T): (N, C, H, W) -> (C,) float64.

    For a training set, accumulate pixel counts over it and divide once (eq. 15 wants the
    fractions of the whole set); this gives them for one array.
    """
    labels = np.asarray(labels)
    return labels.sum(axis=(0, 2, 3), dtype=np.float64) / (labels.shape[0] * labels.shape[2] * labels.shape[3])


def class_weights(fractions):
    """Eq. 15: w_c = 1 / (P_c sum_i 1/P_i), so that w_i/w_j = P_j/P_i and sum w_c = 1 (eq. 16).

    A class absent from the training set (P_c = 0) labels no pixel: it gets w_c = 0 and is
    left out of the sum, which would otherwise make every weight zero.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    if (fractions < 0).any() or not (fractions > 0).any():
        raise ValueError("class fractions must be >= 0 with at least one > 0")
    present = fractions > 0
    inverse = np.where(present, 1 / np.where(present, fractions, 1), 0.0)
    return inverse / inverse.sum()


def pixel_weights(labels, weights, kernel=None):
    """Eq. 14 then the smoothing: w_{p,b} = sum of w_c over the classes of pixel p, convolved
    with `kernel` (default the 3x3 Gaussian of unit sigma), zero beyond the tile edges as a
    'SAME' convolution. labels (N, C, H, W), weights (C,) -> (N, 1, H, W)."""
    kernel = gaussian_kernel() if kernel is None else np.asarray(kernel)
    w = torch.as_tensor(weights, dtype=labels.dtype, device=labels.device)
    raw = torch.einsum("nchw,c->nhw", labels, w)[:, None]
    k = torch.as_tensor(kernel, dtype=labels.dtype, device=labels.device)[None, None]
    return F.conv2d(raw, k, padding=kernel.shape[0] // 2)


def sigmoid_cross_entropy(logits, labels, weights):
    """Eq. 12: ``-(1/|B|) sum_b sum_p w'_{p,b} sum_c [y log s + (1 - y) log(1 - s)]``, s = sigmoid(logits)."""
    per_class = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (weights * per_class.sum(dim=1, keepdim=True)).sum() / logits.shape[0]


def kernel_norms(module, reference=None):
    """Eq. 17 without lambda: sum over the convolution kernels k_i (4-D weights) of ||k_i||_2,
    or of ||k_i - k_i^ref||_2 with `reference` ({name: tensor}, e.g. the published weights)."""
    total = 0
    for name, value in module.named_parameters():
        if value.dim() == 4:
            target = 0 if reference is None else reference[name].to(value)
            total = total + torch.linalg.vector_norm(value - target)
    return total


class Regularisation(nn.Module):
    """lambda times the kernel norms of eq. 17: mode PUBLISHED (towards `reference`, the
    starting weights: {name: tensor} or a module), ZERO (the paper's L2) or NONE;
    strength: lambda (the paper found 1 best, training MaxiMask from scratch)."""

    def __init__(self, mode="PUBLISHED", strength=1.0, reference=None):
        super().__init__()
        if mode not in REGULARISATIONS:
            raise ValueError(f"regularisation {mode} unknown: expected one of {', '.join(REGULARISATIONS)}")
        if mode == "PUBLISHED" and reference is None:
            raise ValueError("regularisation PUBLISHED needs the reference weights")
        self.mode, self.strength = mode, float(strength)
        if isinstance(reference, nn.Module):
            reference = reference.state_dict()
        # Buffers, so that .to(device) moves them with the loss ('.' is not allowed in their names).
        for name, value in (reference or {}).items():
            if value.dim() == 4:
                self.register_buffer(name.replace(".", "/"), value.detach().clone())

    def forward(self, network):
        if self.mode == "NONE":
            return torch.zeros(())  # a 0-d CPU tensor adds to losses on any device
        reference = {k.replace("/", "."): v for k, v in self.named_buffers()} if self.mode == "PUBLISHED" else None
        return self.strength * kernel_norms(network, reference)


class MaskLoss(nn.Module):
    """The total MaxiMask loss: main + auxiliary sigmoid cross-entropies + regularisation
    (+ distillation when a teacher is given).

    weights: the class weights w_c (eq. 15, from the training set's class fractions, once);
    aux: {decoder level: weight} of the pre-prediction losses; regularisation, strength,
    reference: as Regularisation.

    Fine-tuning aimed at some classes (Learning without Forgetting, Li & Hoiem 2016):
    `teacher`, a frozen copy of the starting network, and `focus`, the indices of the classes
    aimed at. The cross-entropies then cover the focus classes only, and every other class
    is held to the teacher's logits: + distill * sum over pixels of the mean over those
    classes of (z - z_teacher)^2, averaged over the batch. Logits, not probabilities, so
    that the ranking of low-probability pixels, which an AUC counts, is kept too.
    """

    def __init__(self, weights, aux=AUX_THREE_SMALLEST, regularisation="PUBLISHED", strength=1.0,
                 reference=None, teacher=None, focus=(), distill=1.0):
        super().__init__()
        self.regularise = Regularisation(regularisation, strength, reference)
        self.register_buffer("weights", torch.as_tensor(np.asarray(weights), dtype=torch.float32))
        self.aux = dict(aux)
        self.teacher, self.distill = teacher, float(distill)
        if teacher is not None:
            if not len(focus):
                raise ValueError("distillation needs the focus classes, which it leaves free")
            teacher.eval().requires_grad_(False)
        # the classes the cross-entropies cover: the focus ones under distillation, else all
        scored = np.ones(len(self.weights), bool)
        if teacher is not None:
            scored[:] = False
            scored[list(focus)] = True
        self.register_buffer("scored", torch.as_tensor(scored))

    def forward(self, network, x, labels):
        """Losses of `network` (a MaxiMask module) on compressed pixels x and 0/1 labels, as a
        dict of scalars: main, aux, regularisation, distillation (with a teacher) and total
        (what to minimise)."""
        final, pre = network.logits(x)
        labels = labels.to(final.dtype)
        weights = pixel_weights(labels, self.weights)
        scored = self.scored
        main = sigmoid_cross_entropy(final[:, scored], labels[:, scored], weights)
        aux = sum((w * sigmoid_cross_entropy(pre[level][:, scored], labels[:, scored], weights)
                   for level, w in self.aux.items()), final.new_zeros(()))
        reg = self.regularise(network)
        parts = {"main": main, "aux": aux, "regularisation": reg}
        if self.teacher is not None:
            with torch.no_grad():
                target = self.teacher.logits(x)[0][:, ~scored]
            gap = (final[:, ~scored] - target) ** 2
            parts["distillation"] = self.distill * gap.mean(dim=1).sum() / x.shape[0]
        parts["total"] = sum(parts.values())
        return parts


class TrackLoss(nn.Module):
    """The MaxiTrack loss: softmax cross-entropy over the two classes (paper §3.2), averaged
    over the batch, + regularisation of its convolution kernels (as Regularisation).

    weights: optional (2,) weights of the classes (no error, tracking error), e.g. inverse
    to their frequency when labelled exposures are unbalanced.
    """

    def __init__(self, weights=None, regularisation="PUBLISHED", strength=1.0, reference=None):
        super().__init__()
        self.regularise = Regularisation(regularisation, strength, reference)
        self.register_buffer("weights", None if weights is None else torch.as_tensor(weights, dtype=torch.float32))

    def forward(self, network, x, labels):
        """Losses of `network` (a MaxiTrack module) on compressed tiles x (N, 1, 400, 400)
        and labels (N,) (1: tracking error), as a dict: main, regularisation, total."""
        main = F.cross_entropy(network.logits(x), labels.long(), weight=self.weights)
        reg = self.regularise(network)
        return {"main": main, "regularisation": reg, "total": main + reg}
