"""Per-class detection metrics of MaxiMask from probabilities and ground truth (paper §4.1.1).

Scores are accumulated image after image into fixed histograms, so memory does not grow
with the number of images::

    hist = ScoreHistograms()
    for proba, truth in samples:           # raw network probabilities, (14, h, w) each
        hist.add(proba, truth, ignore)     # ignore: (h, w) bool, pixels left out of scoring
    table = evaluate(hist, priors, thresholds)   # one ClassMetrics per class

Each class k is a binary classifier. Its pixels go into ``bins`` (default 1e5) equal bins of
the *raw* logit ``log(p / (1 - p))`` over :data:`LOGIT_RANGE`, positives (truth set) and
negatives apart; values beyond the range (including p = 0 and p = 1) fall in the end bins.
Every metric follows from cumulative counts above a cut:

* ROC (TPR, eq. 18, against FPR, eq. 19) and its AUC (pairs in one bin count 1/2, as ties
  do in the exact Mann-Whitney computation); TPR at FPR = 1e-3 and 1e-4 (linear between ROC
  points; NaN when there are fewer than 1/FPR negatives);
* purity (eq. 21) and MCC (eq. 22) at any threshold on the *prior-corrected* probability
  p' = p / (p + F (1 - p)) of the masker (eq. 26): since logit(p') = logit(p) - log F,
  p' > thr is the raw cut logit(p) > logit(thr) + log F. The prior correction moves the
  thresholds, not the ROC or the MCC values reached (§5).

The bin width (5e-4 in logit) is the resolution of every threshold.
"""
import dataclasses

import numpy as np

from ..classes import ABBREVIATIONS, NCLASSES, TRAINING_PRIORS

#: Raw-logit range of the histograms; beyond it, values fall in the first or last bin.
LOGIT_RANGE = (-30.0, 20.0)
#: Default number of histogram bins per class.
NBINS = 100_000
#: FPR levels at which the TPR is reported.
FPR_LEVELS = (1e-3, 1e-4)

#: AUC per class of the paper's Table 7 (all-contaminant test set), for comparison.
PAPER_AUC = dict(zip(ABBREVIATIONS, (
    0.96927, 0.99763, 0.99872, 0.99741, 0.99739, 0.99352, 0.99511,
    0.98057, 0.97895, 0.99965, 0.96125, 0.99997, 0.98484, 0.96895)))
#: The same on the paper's single-contaminant test sets (Table 7, second column).
PAPER_AUC_SINGLE = dict(zip(ABBREVIATIONS, (
    0.98314, 0.99957, 0.99976, 0.99965, 0.99975, 0.99951, 0.99813,
    0.93326, 0.84575, 0.99974, 0.98061, 1.00000, 0.99165, 0.98371)))


def logit(p):
    """log(p / (1 - p)) in float64; p = 0 gives -inf and p = 1 gives +inf."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


def sigmoid(x):
    """1 / (1 + exp(-x)), the inverse of :func:`logit`."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def prior_shift(priors, training_priors=TRAINING_PRIORS):
    """log F per class: the raw-logit offset of the prior correction (see kernels.prior_factors)."""
    u = np.asarray(priors, dtype=np.float64)
    t = np.asarray(training_priors, dtype=np.float64)
    return np.log(t / (1 - t)) - np.log(u / (1 - u))


class ScoreHistograms:
    """Counts of scored pixels per class, truth (0 negative, 1 positive) and logit bin.

    counts: (nclasses, 2, bins) int64. excluded: pixels left out by ignore masks (each
    pixel once, whatever its classes). images: number of images added.
    """

    def __init__(self, nclasses=NCLASSES, bins=NBINS, logit_range=LOGIT_RANGE):
        self.nclasses, self.bins = int(nclasses), int(bins)
        self.logit_range = (float(logit_range[0]), float(logit_range[1]))
        self.counts = np.zeros((self.nclasses, 2, self.bins), np.int64)
        self.excluded = 0
        self.images = 0

    @property
    def width(self):
        """Bin width in logit."""
        lo, hi = self.logit_range
        return (hi - lo) / self.bins

    @property
    def edges(self):
        """(bins + 1,) bin edges in raw logit."""
        lo, hi = self.logit_range
        return np.linspace(lo, hi, self.bins + 1)

    @property
    def centres(self):
        """(bins,) bin centres in raw logit."""
        e = self.edges
        return 0.5 * (e[1:] + e[:-1])

    def bin_index(self, proba):
        """Bin of each probability (any shape), int64."""
        lo, _ = self.logit_range
        with np.errstate(invalid="ignore"):
            index = np.floor((logit(proba) - lo) / self.width)
        index = np.nan_to_num(index, nan=0.0, posinf=self.bins - 1, neginf=0.0)
        return np.clip(index, 0, self.bins - 1).astype(np.int64)

    def add(self, proba, truth=None, ignore=None):
        """Count one image.

        proba: (nclasses, h, w) raw network probabilities (no prior correction).
        truth: (nclasses, h, w) bool, or None for unlabeled data (all counted as negatives:
        use :meth:`totals`). ignore: (h, w) bool, True where a pixel is not scored.
        """
        proba = np.asarray(proba)
        if proba.ndim != 3 or proba.shape[0] != self.nclasses:
            raise ValueError(f"proba must be ({self.nclasses}, h, w), got {proba.shape}")
        keep = None
        if ignore is not None:
            ignore = np.asarray(ignore, dtype=bool)
            if ignore.shape != proba.shape[1:]:
                raise ValueError(f"ignore must be {proba.shape[1:]}, got {ignore.shape}")
            keep = ~ignore
            self.excluded += int(np.count_nonzero(ignore))
        if truth is not None:
            truth = np.asarray(truth, dtype=bool)
            if truth.shape != proba.shape:
                raise ValueError(f"truth must be {proba.shape}, got {truth.shape}")
        for k in range(self.nclasses):  # one plane at a time: the work space is one int64 plane
            index = self.bin_index(proba[k])
            if truth is not None:
                index += truth[k] * self.bins
            index = index[keep] if keep is not None else index.ravel()
            self.counts[k] += np.bincount(index, minlength=2 * self.bins).reshape(2, self.bins)
        self.images += 1

    def merge(self, other):
        """Add the counts of another ScoreHistograms of the same layout; return self."""
        if (other.nclasses, other.bins, other.logit_range) != (self.nclasses, self.bins, self.logit_range):
            raise ValueError("histograms of different layouts cannot be merged")
        self.counts += other.counts
        self.excluded += other.excluded
        self.images += other.images
        return self

    def totals(self):
        """(nclasses, bins) counts of all scored pixels, positives and negatives together."""
        return self.counts.sum(axis=1)

    def cut_index(self, raw_logit):
        """First bin counted above the raw-logit cut(s): bins >= index are 'positive'."""
        lo, _ = self.logit_range
        index = np.ceil((np.asarray(raw_logit, dtype=np.float64) - lo) / self.width)
        return np.clip(np.nan_to_num(index, posinf=self.bins, neginf=0), 0, self.bins).astype(np.int64)


# ------------------------------------------------------------------------------ metrics


def above(counts):
    """Counts at or above each bin edge: (..., bins + 1), [..., j] = sum of bins >= j."""
    c = np.asarray(counts, dtype=np.float64)
    tail = np.cumsum(c[..., ::-1], axis=-1)[..., ::-1]
    return np.concatenate([tail, np.zeros(c.shape[:-1] + (1,))], axis=-1)


def roc_curve(negatives, positives):
    """(fpr, tpr) at every bin edge, from the lowest cut (1, 1) to the highest (0, 0)."""
    n, p = np.sum(negatives), np.sum(positives)
    return above(negatives) / max(n, 1), above(positives) / max(p, 1)


def auc(negatives, positives):
    """Area under the ROC curve from the per-bin counts; pairs sharing a bin count 1/2."""
    neg = np.asarray(negatives, dtype=np.float64)
    pos = np.asarray(positives, dtype=np.float64)
    n, p = neg.sum(), pos.sum()
    if n == 0 or p == 0:
        return float("nan")
    pos_above = above(pos)[1:]  # positives strictly above each bin
    return float(np.sum(neg * (pos_above + 0.5 * pos)) / (n * p))


def tpr_at_fpr(negatives, positives, level):
    """TPR where the ROC reaches FPR = level (linear between points); NaN if N < 1/level."""
    n = np.sum(negatives)
    if n * level < 1 or np.sum(positives) == 0:
        return float("nan")
    fpr, tpr = roc_curve(negatives, positives)
    return float(np.interp(level, fpr[::-1], tpr[::-1]))


def mcc(tp, fp, tn, fn):
    """Matthews correlation coefficient (eq. 22); 0 where a margin is empty."""
    tp, fp, tn, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, tn, fn))
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (tp * tn - fp * fn) / np.where(den > 0, den, 1), 0.0)


def confusion(negatives, positives, first_bin):
    """(TP, FP, TN, FN) when bins >= first_bin are called positive (first_bin may be an array)."""
    tp = above(positives)[first_bin]
    fp = above(negatives)[first_bin]
    return tp, fp, np.sum(negatives) - fp, np.sum(positives) - tp


@dataclasses.dataclass
class ClassMetrics:
    """Metrics of one class; rates in [0, 1], thresholds on the prior-corrected probability."""

    abbr: str
    positives: int
    negatives: int
    auc: float
    tpr_at_fpr: dict  # FPR level -> TPR
    threshold: float  # threshold in use
    tpr: float  # at the threshold in use
    fpr: float
    purity: float
    mcc: float
    best_threshold: float  # threshold of the best MCC (with the same priors)
    best_mcc: float

    def as_dict(self):
        d = dataclasses.asdict(self)
        d["tpr_at_fpr"] = {format(k, "g"): v for k, v in self.tpr_at_fpr.items()}
        return d


def operating_point(hist, k, threshold, shift):
    """(tpr, fpr, purity, mcc) of class k flagged where p' > threshold, log F = shift."""
    neg, pos = hist.counts[k, 0], hist.counts[k, 1]
    first = hist.cut_index(logit(threshold) + shift)
    tp, fp, tn, fn = confusion(neg, pos, first)
    p, n = tp + fn, fp + tn
    tpr = tp / p if p else float("nan")
    fpr = fp / n if n else float("nan")
    purity = tp / (tp + fp) if tp + fp else float("nan")
    return float(tpr), float(fpr), float(purity), float(mcc(tp, fp, tn, fn))


def mcc_curve(hist, k, shift):
    """(thresholds, mcc) of class k at every bin edge; thresholds on p' (log F = shift)."""
    neg, pos = hist.counts[k, 0], hist.counts[k, 1]
    first = np.arange(hist.bins + 1)
    return sigmoid(hist.edges - shift), mcc(*confusion(neg, pos, first))


def mcc_curve_at_fraction(hist, k, shift, fraction):
    """(thresholds, mcc) of class k at every bin edge, thresholds on p' (log F = shift), the
    MCC of a population where the class covers `fraction` of the pixels: the samples' TPR
    and FPR at each threshold, TP, FN in proportion `fraction` and FP, TN in 1 - fraction.
    Samples are contaminant-dense (a class on a few percent of their pixels, against its
    prior of 1e-6 to 1e-3 on a sky), and the best MCC on them sits at a threshold that
    flags noise on real frames; at the prior's fraction it sits near the published
    thresholds (TRL 0.30 against 0.28, CR 0.21 against 0.43 on issue 21's held-out fields).
    """
    neg, pos = hist.counts[k, 0], hist.counts[k, 1]
    thresholds = sigmoid(hist.edges - shift)
    npos, nneg = pos.sum(), neg.sum()
    if not npos or not nneg:
        return thresholds, np.zeros(thresholds.shape)
    tp, fp, _, _ = confusion(neg, pos, np.arange(hist.bins + 1))
    tpr, fpr = tp / npos, fp / nneg
    return thresholds, mcc(fraction * tpr, (1 - fraction) * fpr, (1 - fraction) * (1 - fpr), fraction * (1 - tpr))


def class_metrics(hist, k, prior, threshold, training_prior=None):
    """ClassMetrics of class k with the user's prior and threshold for it."""
    t = TRAINING_PRIORS[k] if training_prior is None else training_prior
    shift = float(prior_shift(prior, t))
    neg, pos = hist.counts[k, 0], hist.counts[k, 1]
    tpr, fpr, purity, m = operating_point(hist, k, threshold, shift)
    thresholds, curve = mcc_curve(hist, k, shift)
    best = int(np.argmax(curve))
    return ClassMetrics(
        abbr=ABBREVIATIONS[k] if hist.nclasses == NCLASSES else str(k),
        positives=int(pos.sum()), negatives=int(neg.sum()), auc=auc(neg, pos),
        tpr_at_fpr={level: tpr_at_fpr(neg, pos, level) for level in FPR_LEVELS},
        threshold=float(threshold), tpr=tpr, fpr=fpr, purity=purity, mcc=m,
        best_threshold=float(thresholds[best]) if pos.sum() else float("nan"),
        best_mcc=float(curve[best]) if pos.sum() else float("nan"))


def evaluate(hist, priors, thresholds, training_priors=TRAINING_PRIORS):
    """One :class:`ClassMetrics` per class of `hist`, with the priors and thresholds in use."""
    return [class_metrics(hist, k, priors[k], thresholds[k], training_priors[k])
            for k in range(hist.nclasses)]
