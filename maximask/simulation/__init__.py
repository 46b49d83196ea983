"""Contaminants with known ground truth injected into clean exposures (paper §2.1, §2.3.1).

    from maximask.simulation import inject
    image, truth = inject(clean, classes="CR,TRL", seed=1)
    # image: float32 (h, w), clean + contaminants; truth: bool (14, h, w), class-table order

One module per contaminant family: `cosmics` (CR), `defects` (HCL, DCL, HP, DP, OV),
`persistence` (P), `trails` (TRL), `fringes` (FR), `nebulosity` (NEB), `saturation` (SAT,
SP); `scene` measures the clean image's background with the project's own kernel and
`raster` holds the pixel operations they share.
"""
import dataclasses
import inspect

import numpy as np

from ..classes import ABBREVIATIONS, LOCAL_CLASSES, NCLASSES
from .cosmics import inject_cosmics
from .defects import (inject_dead_columns, inject_dead_pixels, inject_hot_columns,
                      inject_hot_pixels, inject_overscan)
from .fringes import inject_fringes
from .nebulosity import inject_nebulosity
from .persistence import inject_persistence
from .saturation import inject_saturated_stars
from .scene import Scene
from .trails import inject_trails

BBG, BG, SAT, SP = (ABBREVIATIONS.index(a) for a in ("BBG", "BG", "SAT", "SP"))
BBG_SIGMAS = 10.0  # BBG: clean pixels above the background by this many sigma_U (§2.1.12)

#: light added to the sky, in this order ("SAT" adds the bright stars, with their spikes
#: when SP is asked for: one recipe for both classes)
ADDITIVE = (("NEB", inject_nebulosity), ("FR", inject_fringes), ("P", inject_persistence),
            ("SAT", inject_saturated_stars), ("TRL", inject_trails), ("CR", inject_cosmics))
#: static defects, added last because they set a pixel's final value (§2.3.1)
STATIC = (("HCL", inject_hot_columns), ("DCL", inject_dead_columns), ("HP", inject_hot_pixels),
          ("DP", inject_dead_pixels), ("OV", inject_overscan))
SCENE_PARAMETERS = ("saturation", "fwhm")
#: patterns that `quarter_turns` rotates (the paper's augmentation, §2.3.4)
TURNED = ("CR", "FR", "NEB")


def parse_classes(classes):
    """Class abbreviations to inject, from a list or a comma-separated string (None: all 12)."""
    if classes is None:
        return list(LOCAL_CLASSES)
    if isinstance(classes, str):
        classes = [c for c in classes.replace(" ", "").split(",") if c]
    names = [str(c).upper() for c in classes]
    unknown = [c for c in names if c not in LOCAL_CLASSES]
    if unknown:
        raise ValueError(f"cannot inject {','.join(unknown)}: classes are {','.join(LOCAL_CLASSES)}")
    return names


def draw_classes(classes, probability, rng, focus=()):
    """The classes of one sample: each of `focus` always, each other of `classes` with
    `probability` (1: all of them), and one drawn uniformly when that leaves none."""
    if probability >= 1:
        return list(classes)
    chosen = [c for c in classes if c in focus or rng.random() < probability]
    return chosen or [classes[int(rng.integers(len(classes)))]]


def _keywords(function):
    """The tunable keyword parameters of a recipe (those after image, scene, rng)."""
    return list(inspect.signature(function).parameters)[3:]


def parameter_names():
    """Every keyword `inject` accepts in ``**parameters``, by the recipe that takes it."""
    names = {"scene": list(SCENE_PARAMETERS)}
    for abbr, function in ADDITIVE + STATIC:
        names[abbr] = [p for p in _keywords(function) if p != "spikes"]
    return names


def inject(clean, classes=None, seed=None, quarter_turns=0, **parameters):
    """Inject contaminants into a clean exposure: returns ``(image, truth)``.

    clean: 2-D array (ADU, background included), never modified. classes: abbreviations
    (list or comma string) of the local classes to inject, default all 12. seed: anything
    ``numpy.random.SeedSequence`` takes; each class draws from its own child stream, so a
    class's contaminants for a seed do not depend on which other classes are injected.
    parameters: the recipes' options (``parameter_names()``), e.g. ``darks=[...]``,
    ``saturation=65000``, ``fwhm=3.2``, ``pixel_scale=0.26``; an unknown one is an error.
    quarter_turns: the CR, fringe and nebulosity patterns are drawn turned by this many
    times 90 degrees (the training augmentation of §2.3.4); the other classes are not, so
    columns stay columns.

    image: float32 (h, w). truth: bool (14, h, w) in class-table order. Classes are not
    exclusive, except that a static defect (HCL, DCL, HP, DP, OV) owns its pixels: earlier
    labels there are cleared. SAT is every pixel at the saturation level once the light is
    added (the level: `saturation`, by default above every clean pixel); BBG is the clean
    pixels above 10 sigma_U of the clean background; BG the pixels of no other class.
    """
    clean = np.asarray(clean)
    if clean.ndim != 2 or clean.size == 0:
        raise ValueError(f"expected a non-empty 2-D clean image, got shape {clean.shape}")
    names = parse_classes(classes)
    accepted = {p for group in parameter_names().values() for p in group}
    unknown = sorted(set(parameters) - accepted)
    if unknown:
        raise TypeError(f"unknown simulation parameter(s) {', '.join(unknown)}; "
                        f"accepted: {', '.join(sorted(accepted))}")

    streams = np.random.SeedSequence(seed).spawn(NCLASSES + 1)
    rngs = [np.random.default_rng(s) for s in streams]
    scene_options = {k: parameters[k] for k in SCENE_PARAMETERS if k in parameters}
    scene = Scene.measure(np.ascontiguousarray(clean, dtype=np.float32), rng=rngs[-1], **scene_options)

    image = clean.astype(np.float64)
    truth = np.zeros((NCLASSES,) + clean.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        truth[BBG] = clean > scene.level + BBG_SIGMAS * scene.sigma

    turns = int(quarter_turns) % 4

    def run(abbr, function, **extra):
        options = {p: parameters[p] for p in _keywords(function) if p in parameters}
        rng = rngs[ABBREVIATIONS.index(abbr)]
        if abbr in TURNED and turns:  # draw on a turned view: the light lands in `image`
            view = np.rot90(image, turns)
            turned = dataclasses.replace(scene, shape=view.shape, level=np.rot90(scene.level, turns))
            return np.rot90(function(view, turned, rng, **options, **extra), -turns)
        return function(image, scene, rng, **options, **extra)

    for abbr, function in ADDITIVE:
        if abbr == "SAT" and ("SAT" in names or "SP" in names):
            truth[SP] = run("SAT" if "SAT" in names else "SP", function, spikes="SP" in names)
        elif abbr in names:
            truth[ABBREVIATIONS.index(abbr)] = run(abbr, function)

    with np.errstate(invalid="ignore"):
        np.minimum(image, scene.saturation, out=image)
        truth[SAT] = image >= scene.saturation
    for abbr, function in STATIC:
        if abbr in names:
            mask = run(abbr, function)
            truth[:BBG, mask] = False
            truth[ABBREVIATIONS.index(abbr)] = mask
    truth[BG] = ~truth[:BG].any(axis=0)
    return image.astype(np.float32), truth
