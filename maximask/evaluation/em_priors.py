"""Class priors of unlabeled data by EM (Saerens, Latinne & Decaestecker 2002; paper §5).

Each MaxiMask output is a binary classifier whose posterior p was trained under the prior
t = P(omega|T) (``maximask.classes.TRAINING_PRIORS``). On new data O with an unknown class
fraction pi = P(omega|O), eq. 26 of the paper corrects every posterior to
logit(p') = logit(p) + logit(pi) - logit(t). The EM of Saerens et al. starts from pi = t and
repeats

    pi <- mean over the pixels of p'(pi)

until pi stops changing: the fixed point is the maximum-likelihood class fraction, the one
that makes the prior-corrected posteriors self-consistent. Pixels are given either as
probabilities or, for many images, as the logit histograms of
:class:`maximask.evaluation.metrics.ScoreHistograms` (each bin stands for its centre), so the
estimate needs no second pass over the images.
"""
import numpy as np

from ..classes import TRAINING_PRIORS
from .metrics import logit, sigmoid

#: Bounds kept on the estimated fractions (a fraction of exactly 0 or 1 is a fixed point).
PRIOR_BOUNDS = (1e-9, 1 - 1e-9)


def em_priors(logits, weights, training_priors, tol=1e-8, max_iter=20000):
    """EM priors from raw-logit values with weights (counts).

    logits, weights: (K, n) arrays, one row per class (weights >= 0; -inf/+inf logits
    allowed). training_priors: (K,). Returns (priors (K,), iterations run): the iteration
    stops when no prior changes by more than tol times itself.
    """
    x = np.asarray(logits, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    t = np.asarray(training_priors, dtype=np.float64).reshape(-1)
    if x.ndim != 2 or x.shape != w.shape or x.shape[0] != t.size:
        raise ValueError(f"logits and weights must be (K, n) with K = {t.size}, got {x.shape}, {w.shape}")
    total = w.sum(axis=1)
    if np.any(total <= 0):
        raise ValueError("every class needs pixels with positive weight")
    keep = w.sum(axis=0) > 0  # drop empty bins once
    x, w = x[:, keep], w[:, keep]
    base = x - logit(t)[:, None]
    pi = t.copy()
    for iteration in range(1, max_iter + 1):
        new = (w * sigmoid(base + logit(pi)[:, None])).sum(axis=1) / total
        new = np.clip(new, *PRIOR_BOUNDS)
        done = np.all(np.abs(new - pi) <= tol * pi)
        pi = new
        if done:
            break
    return pi, iteration


def estimate_priors(data, training_priors=TRAINING_PRIORS, tol=1e-8, max_iter=20000):
    """Class fractions P(omega|O) of unlabeled pixels, one EM per class (see module doc).

    data: a :class:`maximask.evaluation.metrics.ScoreHistograms` (all its pixels, positives and
    negatives together, are used), or raw probabilities (K, ...) with K classes on the
    first axis. training_priors: (K,) priors the network was trained under.
    Returns (priors (K,) float64, iterations).
    """
    t = np.asarray(training_priors, dtype=np.float64)
    if hasattr(data, "totals"):
        counts = data.totals()
        centres = np.broadcast_to(data.centres, counts.shape)
        return em_priors(centres, counts, t, tol, max_iter)
    p = np.asarray(data)
    if p.shape[0] != t.size:
        raise ValueError(f"expected {t.size} classes on the first axis, got shape {p.shape}")
    x = logit(p.reshape(t.size, -1))
    return em_priors(x, np.ones_like(x), t, tol, max_iter)
