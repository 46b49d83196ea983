"""The MaxiMask contaminant classes: order (= output plane = flag bit), names and priors.

Values are those of MaxiMask 1.4.1 (``config/classes.{priors,thresh}`` and the training
priors of its inference driver).
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ContaminantClass:
    """One output class of the MaxiMask network."""

    index: int  # plane index in the network output, and flag bit
    abbr: str
    name: str
    training_prior: float  # class fraction in the training set
    default_prior: float  # expected fraction in typical science data
    default_threshold: float


CLASSES = (
    ContaminantClass(0, "CR", "cosmic rays", 0.010, 0.0005, 0.43),
    ContaminantClass(1, "HCL", "hot columns/lines", 0.009, 0.00001, 0.60),
    ContaminantClass(2, "DCL", "dead columns/lines/clusters", 0.036, 0.0001, 0.74),
    ContaminantClass(3, "HP", "hot pixels", 0.001, 0.000001, 0.43),
    ContaminantClass(4, "DP", "dead pixels", 0.001, 0.000001, 0.99),
    ContaminantClass(5, "P", "persistence", 0.010, 0.001, 0.65),
    ContaminantClass(6, "TRL", "trails", 0.103, 0.001, 0.28),
    ContaminantClass(7, "FR", "residual fringes", 0.126, 0.001, 0.76),
    ContaminantClass(8, "NEB", "nebulosities", 0.171, 0.001, 0.56),
    ContaminantClass(9, "SAT", "saturated pixels", 0.002, 0.001, 0.81),
    ContaminantClass(10, "SP", "diffraction spikes", 0.044, 0.005, 0.54),
    ContaminantClass(11, "OV", "overscan", 0.118, 0.005, 0.55),
    ContaminantClass(12, "BBG", "bright background (sources)", 0.126, 0.1, 0.44),
    ContaminantClass(13, "BG", "background", 0.395, 0.9, 0.27),
)

NCLASSES = len(CLASSES)
ABBREVIATIONS = tuple(c.abbr for c in CLASSES)
TRAINING_PRIORS = np.array([c.training_prior for c in CLASSES], dtype=np.float64)
DEFAULT_PRIORS = np.array([c.default_prior for c in CLASSES], dtype=np.float64)
DEFAULT_THRESHOLDS = np.array([c.default_threshold for c in CLASSES], dtype=np.float64)
#: The 12 local contaminant classes (all but BBG and BG): what can be injected, cleaned and
#: flagged in a clean exposure. Abbreviations in class-table order; LOCAL_INDICES their planes.
LOCAL_CLASSES = tuple(c.abbr for c in CLASSES if c.abbr not in ("BBG", "BG"))
LOCAL_INDICES = tuple(ABBREVIATIONS.index(a) for a in LOCAL_CLASSES)
