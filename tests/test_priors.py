"""EM priors (Saerens et al. 2002) recover known class fractions from calibrated posteriors."""
import numpy as np
import pytest

from maximask.classes import NCLASSES, TRAINING_PRIORS
from maximask.evaluation.metrics import ScoreHistograms, logit, sigmoid
from maximask.evaluation.em_priors import em_priors, estimate_priors


def posteriors(rng, n, true_prior, training_prior, separation=1.5):
    """Posteriors of a classifier calibrated under training_prior, on data whose positives
    make up true_prior: x ~ N(+-separation, 1), so log LR = 2 separation x."""
    positive = rng.random(n) < true_prior
    x = rng.normal(np.where(positive, separation, -separation), 1.0)
    return sigmoid(2 * separation * x + logit(training_prior)), positive


def test_em_recovers_known_priors_from_probabilities():
    rng = np.random.default_rng(11)
    n = 200_000
    t = np.array([0.2, 0.01, 0.5])
    true = np.array([0.02, 0.05, 0.5])
    rows = [posteriors(rng, n, true[k], t[k]) for k in range(3)]
    proba = np.stack([p for p, _ in rows])
    drawn = np.array([pos.mean() for _, pos in rows])  # the fractions actually drawn
    estimate, iterations = estimate_priors(proba, t)
    # sampling error of the ML estimate is ~ sqrt(pi (1 - pi) / n) <= 1.1e-3
    np.testing.assert_allclose(estimate, drawn, atol=2e-3)
    assert abs(estimate[0] - t[0]) > 0.15  # it moved far from where it started
    assert iterations > 1
    # the naive mean posterior (no EM) is biased towards the training prior
    assert abs(proba[0].mean() - drawn[0]) > 5 * abs(estimate[0] - drawn[0])


def test_em_on_histograms_agrees_with_em_on_pixels():
    rng = np.random.default_rng(12)
    t = TRAINING_PRIORS
    true = np.linspace(0.001, 0.3, NCLASSES)
    proba = np.stack([posteriors(rng, 40_000, true[k], t[k])[0] for k in range(NCLASSES)])
    hist = ScoreHistograms()
    for part in np.array_split(proba.reshape(NCLASSES, 200, 200), 4, axis=1):  # 4 images
        hist.add(part.astype(np.float32))
    from_hist, _ = estimate_priors(hist)
    from_pixels, _ = estimate_priors(proba.astype(np.float32))
    np.testing.assert_allclose(from_hist, from_pixels, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(from_hist, true, atol=0.01)


def test_em_fixed_point_is_self_consistent():
    rng = np.random.default_rng(13)
    p, _ = posteriors(rng, 50_000, 0.1, 0.3)
    (pi,), _ = estimate_priors(p[None], np.array([0.3]))
    corrected = sigmoid(logit(p) + logit(pi) - logit(0.3))
    assert abs(corrected.mean() - pi) < 1e-6


def test_weights_act_as_counts():
    x = np.array([[-3.0, 0.5, 2.0]])
    w = np.array([[5.0, 2.0, 1.0]])
    repeated = np.repeat(x, [5, 2, 1], axis=1)
    a, _ = em_priors(x, w, np.array([0.2]))
    b, _ = em_priors(repeated, np.ones_like(repeated), np.array([0.2]))
    np.testing.assert_allclose(a, b, rtol=1e-9)


def test_bad_inputs():
    with pytest.raises(ValueError, match="positive weight"):
        em_priors(np.zeros((1, 3)), np.zeros((1, 3)), np.array([0.1]))
    with pytest.raises(ValueError, match="classes on the first axis"):
        estimate_priors(np.zeros((3, 10)))
