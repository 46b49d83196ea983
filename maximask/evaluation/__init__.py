"""How well MaxiMask flags contaminants in one's own images (the ``maxieval`` command).

``pipeline`` (clean exposures -> simulated samples -> MaxiMask -> histograms), ``metrics``
(ROC, AUC, purity, MCC and thresholds from score histograms, paper §4.1.1), ``em_priors``
(class priors of unlabeled data by EM, paper §5), ``report`` (text and JSON reports) and
``plots`` (figures; needs matplotlib).
"""
from .em_priors import em_priors, estimate_priors
from .metrics import ClassMetrics, ScoreHistograms, evaluate

__all__ = ["ScoreHistograms", "ClassMetrics", "evaluate", "em_priors", "estimate_priors"]
