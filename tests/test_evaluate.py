"""Metrics of maximask.evaluation.metrics against direct NumPy computations on small cases."""
import numpy as np
import pytest

from maximask.classes import NCLASSES, TRAINING_PRIORS
from maximask.evaluation.metrics import (FPR_LEVELS, ScoreHistograms, auc, class_metrics, evaluate, logit,
                               mcc, mcc_curve, mcc_curve_at_fraction, operating_point, prior_shift, roc_curve,
                               sigmoid, tpr_at_fpr)


def scores(rng, npos, nneg, separation=2.5):
    """Raw probabilities of positives and negatives drawn from two logistic-like populations,
    with exact 0 and 1 values (as float32 network outputs have) and ties."""
    pos = sigmoid(rng.normal(separation, 2.0, npos)).astype(np.float32)
    neg = sigmoid(rng.normal(-separation, 2.0, nneg)).astype(np.float32)
    pos[:npos // 50] = 1.0
    neg[:nneg // 20] = 0.0
    pos[npos // 50: npos // 25] = neg[nneg // 20: nneg // 20 + npos // 50]  # ties across classes
    return pos, neg


def exact_auc(pos, neg):
    """Mann-Whitney AUC by sorting: average ranks for ties."""
    values = np.concatenate([pos, neg]).astype(np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(values.size)
    _, start, count = np.unique(sorted_values, return_index=True, return_counts=True)
    average = start + (count + 1) / 2.0  # 1-based average rank of each run of ties
    ranks[order] = np.repeat(average, count)
    rank_sum = ranks[:pos.size].sum()
    return (rank_sum - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size)


def one_class_hist(pos, neg, ignore_fraction=0.0, rng=None):
    """A 1-class histogram of pos and neg laid out as one (1, 1, n) image."""
    hist = ScoreHistograms(nclasses=1)
    proba = np.concatenate([pos, neg])[None, None, :]
    truth = np.concatenate([np.ones(pos.size, bool), np.zeros(neg.size, bool)])[None, None, :]
    hist.add(proba, truth)
    return hist


def test_auc_matches_exact_sorted_computation():
    rng = np.random.default_rng(1)
    pos, neg = scores(rng, 20_000, 300_000)
    hist = one_class_hist(pos, neg)
    exact = exact_auc(pos, neg)
    assert 0.8 < exact < 0.99
    assert abs(auc(hist.counts[0, 0], hist.counts[0, 1]) - exact) < 1e-4


def test_auc_of_perfect_and_inverted_scores():
    pos = np.full(100, 0.9, np.float32)
    neg = np.full(1000, 0.1, np.float32)
    h = one_class_hist(pos, neg)
    assert auc(h.counts[0, 0], h.counts[0, 1]) == 1.0
    h = one_class_hist(neg[:100], np.full(1000, 0.9, np.float32))
    assert auc(h.counts[0, 0], h.counts[0, 1]) == 0.0
    assert np.isnan(auc(np.zeros(5), np.ones(5)))


def test_roc_curve_ends_and_monotonic():
    rng = np.random.default_rng(2)
    pos, neg = scores(rng, 2000, 20_000)
    h = one_class_hist(pos, neg)
    fpr, tpr = roc_curve(h.counts[0, 0], h.counts[0, 1])
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (1.0, 1.0, 0.0, 0.0)
    assert np.all(np.diff(fpr) <= 0) and np.all(np.diff(tpr) <= 0)


def test_tpr_at_fpr_matches_direct_count():
    rng = np.random.default_rng(3)
    pos, neg = scores(rng, 50_000, 400_000, separation=3.0)
    h = one_class_hist(pos, neg)
    for level in FPR_LEVELS:
        # direct: the cut that leaves level * N negatives above it
        cut = np.sort(logit(neg))[::-1][int(level * neg.size)]
        direct = np.mean(logit(pos) > cut)
        got = tpr_at_fpr(h.counts[0, 0], h.counts[0, 1], level)
        assert abs(got - direct) < 2e-3, (level, got, direct)
    # too few negatives for FPR = 1e-4: not reported
    small = one_class_hist(pos[:100], neg[:5000])
    assert np.isnan(tpr_at_fpr(small.counts[0, 0], small.counts[0, 1], 1e-4))
    assert not np.isnan(tpr_at_fpr(small.counts[0, 0], small.counts[0, 1], 1e-3))


def test_mcc_and_purity_of_the_papers_example():
    # §4.1.1: P = 1000, N = 159000, TPR 99 %, FPR 1 % -> purity 38 %, MCC 61 %
    tp, fn, fp = 990, 10, 1590
    tn = 159_000 - fp
    assert round(tp / (tp + fp), 2) == 0.38
    assert round(float(mcc(tp, fp, tn, fn)), 2) == 0.61
    assert float(mcc(0, 0, 10, 5)) == 0.0  # an empty margin gives 0, not NaN


def direct_operating_point(pos, neg, prior, threshold, training_prior):
    """TPR, FPR, purity, MCC with the masker's float64 prior correction, by counting."""
    f = (training_prior / (1 - training_prior)) * ((1 - prior) / prior)

    def corrected(p):
        p = p.astype(np.float64)
        return p / (p + f * (1 - p))

    tp = np.count_nonzero(corrected(pos) > threshold)
    fp = np.count_nonzero(corrected(neg) > threshold)
    fn, tn = pos.size - tp, neg.size - fp
    return tp / pos.size, fp / neg.size, tp / (tp + fp), float(mcc(tp, fp, tn, fn))


@pytest.mark.parametrize("prior,threshold", [(0.0005, 0.43), (0.01, 0.43), (0.3, 0.8)])
def test_operating_point_after_prior_correction_matches_direct_count(prior, threshold):
    rng = np.random.default_rng(4)
    pos, neg = scores(rng, 5000, 100_000)
    t = TRAINING_PRIORS[0]
    cut = logit(threshold) + prior_shift(prior, t)
    width = ScoreHistograms(nclasses=1).width
    # leave out values within two bins of the cut: the histogram resolves the cut to one bin
    pos = pos[np.abs(logit(pos) - cut) > 2 * width]
    neg = neg[np.abs(logit(neg) - cut) > 2 * width]
    h = one_class_hist(pos, neg)
    got = operating_point(h, 0, threshold, float(prior_shift(prior, t)))
    want = direct_operating_point(pos, neg, prior, threshold, t)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_best_mcc_threshold_is_the_best_direct_threshold():
    rng = np.random.default_rng(5)
    pos, neg = scores(rng, 3000, 60_000)
    prior = 0.001
    h = one_class_hist(pos, neg)
    m = class_metrics(h, 0, prior, 0.5, training_prior=TRAINING_PRIORS[0])
    t = TRAINING_PRIORS[0]
    at_best = direct_operating_point(pos, neg, prior, m.best_threshold * (1 - 1e-9), t)[3]
    assert abs(at_best - m.best_mcc) < 2e-3
    for threshold in np.linspace(0.01, 0.99, 99):
        assert direct_operating_point(pos, neg, prior, threshold, t)[3] <= m.best_mcc + 1e-3



def test_mcc_at_a_fraction_is_the_samples_mcc_at_their_own_fraction_and_moves_the_best_threshold_up():
    """At the samples' own class fraction the reweighted MCC is the plain one; at a rarer
    fraction (a sky: 1e-3 against the samples' 5%) the best threshold is higher, and the
    MCC at it is the one counted directly on a population of that fraction."""
    rng = np.random.default_rng(8)
    pos, neg = scores(rng, 5000, 95_000)
    h = one_class_hist(pos, neg)
    shift = 0.0
    thresholds, plain = mcc_curve(h, 0, shift)
    same, reweighted = mcc_curve_at_fraction(h, 0, shift, 5000 / 100_000)
    np.testing.assert_allclose(reweighted, plain, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(same, thresholds)
    _, rare = mcc_curve_at_fraction(h, 0, shift, 1e-3)
    assert thresholds[np.argmax(rare)] > thresholds[np.argmax(plain)]
    # direct: keep 95 positives among the 95,000 negatives (fraction 1e-3): same best MCC
    # within the noise of 95 positives
    few = rng.choice(pos, 95, replace=False)
    t = thresholds[np.argmax(rare)]
    tp, fp = np.count_nonzero(few > t), np.count_nonzero(neg > t)
    direct = mcc(tp, fp, neg.size - fp, few.size - tp)
    assert abs(float(direct) - rare.max()) < 0.1


def test_mcc_at_a_fraction_without_positives_or_negatives_is_zero():
    h = one_class_hist(np.array([]), np.array([0.1, 0.2]))
    _, curve = mcc_curve_at_fraction(h, 0, 0.0, 0.01)
    assert not curve.any()

def test_ignore_mask_excludes_pixels_and_counts_them():
    rng = np.random.default_rng(6)
    proba = rng.random((NCLASSES, 30, 40)).astype(np.float32)
    truth = rng.random((NCLASSES, 30, 40)) < 0.1
    ignore = np.zeros((30, 40), bool)
    ignore[5:10, 7:20] = True
    h = ScoreHistograms()
    h.add(proba, truth, ignore)
    assert h.excluded == 65
    assert h.counts.sum() == NCLASSES * (1200 - 65)
    positives = h.counts[:, 1].sum(axis=1)
    np.testing.assert_array_equal(positives, (truth & ~ignore).sum(axis=(1, 2)))


def test_merge_equals_accumulating_all_images_and_memory_is_fixed():
    rng = np.random.default_rng(7)
    whole, parts = ScoreHistograms(), [ScoreHistograms(), ScoreHistograms()]
    size = whole.counts.nbytes
    for i in range(6):
        proba = rng.random((NCLASSES, 20, 20)).astype(np.float32)
        truth = rng.random((NCLASSES, 20, 20)) < 0.2
        whole.add(proba, truth)
        parts[i % 2].add(proba, truth)
    merged = parts[0].merge(parts[1])
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert merged.images == whole.images == 6
    assert whole.counts.nbytes == size


def test_evaluate_gives_every_class_and_nan_without_positives():
    rng = np.random.default_rng(8)
    proba = rng.random((NCLASSES, 50, 50)).astype(np.float32)
    truth = np.zeros((NCLASSES, 50, 50), bool)
    truth[0] = proba[0] > 0.7  # a perfect classifier for class 0, nothing else
    h = ScoreHistograms()
    h.add(proba, truth)
    table = evaluate(h, TRAINING_PRIORS, np.full(NCLASSES, 0.7))
    assert [m.abbr for m in table][:3] == ["CR", "HCL", "DCL"]
    assert table[0].auc == 1.0 and table[0].best_mcc == 1.0
    assert (table[0].tpr, table[0].fpr, table[0].mcc) == (1.0, 0.0, 1.0)  # priors = training
    assert np.isnan(table[1].auc) and np.isnan(table[1].best_threshold)


def test_shapes_are_checked():
    h = ScoreHistograms()
    with pytest.raises(ValueError, match="proba must be"):
        h.add(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="truth must be"):
        h.add(np.zeros((NCLASSES, 4, 4)), np.zeros((NCLASSES, 4, 5), bool))
    with pytest.raises(ValueError, match="ignore must be"):
        h.add(np.zeros((NCLASSES, 4, 4)), None, np.zeros((4, 5), bool))
