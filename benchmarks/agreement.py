"""Agreement of boolean masks, shared by the benchmark scripts."""
import numpy as np


def confusion(a, b):
    """(tp, fp, fn, tn) of boolean masks a (candidate) against b (reference)."""
    tp = np.count_nonzero(a & b)
    fp = np.count_nonzero(a & ~b)
    fn = np.count_nonzero(~a & b)
    return np.array([tp, fp, fn, a.size - tp - fp - fn], dtype=np.int64)


def mcc(counts):
    """Matthews correlation from (tp, fp, fn, tn); 1 when both masks are empty or full."""
    tp, fp, fn, tn = (float(c) for c in counts)
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    if den == 0:
        return 1.0 if fp == 0 and fn == 0 else 0.0
    return (tp * tn - fp * fn) / den


def mask_mcc(a, b):
    """MCC of boolean mask a against b."""
    return mcc(confusion(a, b))
