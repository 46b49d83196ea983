"""The keyword tables of the four commands (as SExtractor's preflist.h, apart from the
mechanism in :mod:`maximask.config`): one :class:`~maximask.config.Keyword` record per
keyword drives the parser, ``-h``, ``-d``/``-dd``, error messages, Python keyword arguments,
the man pages and the manual's keyword reference.

:data:`MASK_KEYWORDS` (``maximask``), :data:`TRACK_KEYWORDS` (``maxitrack``),
:data:`EVAL_KEYWORDS` (``maxieval``), :data:`TRAIN_KEYWORDS` (``maxitrain``); check-image
types and suffixes (:data:`CHECKIMAGE_SUFFIXES`).
"""
import dataclasses
import os
import re

from .classes import ABBREVIATIONS, DEFAULT_PRIORS, DEFAULT_THRESHOLDS, LOCAL_CLASSES, NCLASSES
from .config import ConfigSpec
from .errors import ConfigError
from .keyword_types import (boolean, enumeration, enumeration_list, integer, number, number_list, string,
                            string_list)

__all__ = ["MASK_KEYWORDS", "TRACK_KEYWORDS", "EVAL_KEYWORDS", "TRAIN_KEYWORDS", "COMMON_KEYWORDS",
           "ALL_KEYWORDS", "CHECKIMAGE_SUFFIXES", "checkimage_is_suffix"]

# ---- keywords shared by maximask and maxitrack

BACK_SIZE = integer("BACK_SIZE", 200, "background mesh size in pixels (>= 16)",
                    "Background and tiling", minimum=16)
BATCH_SIZE = integer("BATCH_SIZE", 8, "number of tiles per network call (>= 1)", "Engine",
                     minimum=1)
DEVICE = enumeration("DEVICE", "AUTO", ("AUTO", "CPU", "CUDA"),
                     "AUTO (CUDA if available, else CPU), CPU or CUDA", "Engine")
NTHREADS = integer("NTHREADS", 0, "number of CPU threads (0 = all cores)", "Engine", minimum=0)
NETWORK = string("NETWORK", "", 'model directory of a fine-tuned network ("" = the packaged one)',
                 "Engine")
VERBOSE_TYPE = enumeration("VERBOSE_TYPE", "NORMAL", ("QUIET", "NORMAL", "FULL"),
                           "QUIET, NORMAL (progress per file and HDU) or FULL", "Miscellaneous")

CLUSTER = string("CLUSTER", "NONE", "NONE (in-process), LOCAL (Dask workers here) or tcp://host:port",
                 "Cluster (Dask)")
NWORKERS = integer("NWORKERS", 0, "Dask workers of CLUSTER LOCAL (0 = one per core)", "Cluster (Dask)",
                   minimum=0)

#: The keyword definitions both commands share (reuse them, or dataclasses.replace them).
COMMON_KEYWORDS = {kw.name: kw for kw in (BACK_SIZE, BATCH_SIZE, DEVICE, NTHREADS, NETWORK, VERBOSE_TYPE,
                                          CLUSTER, NWORKERS)}

_CLUSTER_ADDRESS = re.compile(r"^([a-z][a-z0-9+.-]*://)?[^\s:/]+:[0-9]+$", re.IGNORECASE)


def _check_cluster(values):
    cluster = values["CLUSTER"]
    if cluster.upper() in ("NONE", "LOCAL"):
        return
    if not _CLUSTER_ADDRESS.match(cluster):
        raise ConfigError(f'CLUSTER: NONE, LOCAL or a scheduler address such as tcp://host:8786 '
                          f'expected, got "{cluster}"', keyword="CLUSTER")


def _check_tiles(values):
    size, margin = values["TILE_SIZE"], values["TILE_MARGIN"]
    if 2 * margin >= size:
        raise ConfigError(
            f"TILE_MARGIN: integer >= 0 and < TILE_SIZE/2 = {size / 2:g} expected, got {margin} "
            f"(TILE_SIZE {size})", keyword="TILE_MARGIN")



#: Check-image types (NONE alone: none) and the default suffix of each one's file.
CHECKIMAGE_SUFFIXES = {
    "CLEANED": ".cleaned.fits",
    "PREVIEW": ".preview.png",
    "BACKGROUND": ".back.fits",
    "BACKGROUND_RMS": ".backrms.fits",
}
_CHECKIMAGE_TYPES = ("NONE",) + tuple(CHECKIMAGE_SUFFIXES)
#: Classes CLEAN_CLASSES may name: BBG (sources) and BG are the image itself.


def checkimage_is_suffix(name):
    """True when a CHECKIMAGE_NAME is a suffix (starts with "." or "_"), not a file name."""
    return name.startswith((".", "_"))


def _check_checkimages(values):
    types, names = values["CHECKIMAGE_TYPE"], values["CHECKIMAGE_NAME"]
    if "NONE" in types and len(types) > 1:
        raise ConfigError(f"CHECKIMAGE_TYPE: NONE cannot be combined with other types, got "
                          f"{','.join(types)}", keyword="CHECKIMAGE_TYPE")
    if not names or types == ("NONE",):
        return
    if len(names) != len(types):
        got = f"{len(names)} name{'' if len(names) == 1 else 's'}"
        raise ConfigError(f"CHECKIMAGE_NAME: one name per CHECKIMAGE_TYPE expected, got {got} "
                          f"for {len(types)} types ({','.join(types)})",
                          keyword="CHECKIMAGE_NAME")
    for kind, name in zip(types, names):
        ending = (".png",) if kind == "PREVIEW" else (".fits", ".fit", ".fts")
        problem = None
        if not name.lower().endswith(ending):
            problem = f"a {kind} name must end with {' or '.join(ending)}"
        elif name == values["OUTPUT_SUFFIX"]:
            problem = "it is the OUTPUT_SUFFIX of the main output"
        elif checkimage_is_suffix(name) and os.sep in name:
            problem = "a suffix cannot contain a directory"
        elif not checkimage_is_suffix(name):
            folder = os.path.dirname(name) or "."
            if os.path.isdir(name):
                problem = "it is a directory"
            elif not os.path.isdir(folder):
                problem = f"directory {folder} does not exist"
            elif not os.access(folder, os.W_OK | os.X_OK):
                problem = f"directory {folder} is not writable"
        if problem:
            raise ConfigError(f"CHECKIMAGE_NAME: cannot write {kind} to {name}: {problem}",
                              keyword="CHECKIMAGE_NAME")


MASK_KEYWORDS = ConfigSpec("maximask", "default.mask", [
    # Output
    enumeration("OUTPUT_TYPE", "FLAGS", ("FLAGS", "MASKS", "PROBA", "WEIGHT"),
                "FLAGS (bit k = class k), MASKS (0/1 plane per class), PROBA or WEIGHT",
                "Output"),
    string("OUTPUT_DIR", "", 'output directory ("" = beside each input image)', "Output"),
    string("OUTPUT_SUFFIX", ".mask.fits",
           "output name = input name without .fits/.fz/.gz + this suffix", "Output"),
    boolean("OVERWRITE", False, "replace existing output files (Y/N)", "Output"),
    # Classes
    enumeration_list("CLASSES", LOCAL_CLASSES, ABBREVIATIONS,
                     "classes to output: " + ",".join(ABBREVIATIONS), "Classes",
                     min_length=1, max_length=NCLASSES, unique=True),
    boolean("PRIOR_CORRECTION", True, "correct the probabilities for the PRIORS (Y/N)",
            "Classes"),
    number_list("PRIORS", tuple(float(p) for p in DEFAULT_PRIORS),
                f"expected fraction of each of the {NCLASSES} classes, in (0,1)", "Classes",
                length=NCLASSES, minimum=0.0, maximum=1.0, min_open=True, max_open=True),
    number_list("THRESHOLDS", tuple(float(t) for t in DEFAULT_THRESHOLDS),
                f"probability thresholds of the {NCLASSES} classes (FLAGS, MASKS, WEIGHT)",
                "Classes", length=NCLASSES, minimum=0.0, maximum=1.0),
    boolean("TRAIL_SEARCH", True, "also flag TRL on straight segments found in the image (Y/N)",
            "Classes"),
    # Background and tiling
    BACK_SIZE,
    integer("TILE_SIZE", 400, "network tile size in pixels (>= 64)", "Background and tiling",
            minimum=64, expert=True),
    integer("TILE_MARGIN", 100, "tile margin dropped when stitching (< TILE_SIZE/2)",
            "Background and tiling", minimum=0, expert=True),
    # Engine
    BATCH_SIZE,
    DEVICE,
    NTHREADS,
    NETWORK,
    # Miscellaneous
    VERBOSE_TYPE,
    # Check-images
    enumeration_list("CHECKIMAGE_TYPE", ("NONE",), _CHECKIMAGE_TYPES,
                     "NONE or a list of " + ",".join(CHECKIMAGE_SUFFIXES), "Check-images",
                     max_length=len(CHECKIMAGE_SUFFIXES), unique=True),
    string_list("CHECKIMAGE_NAME", (), "one file name or suffix (.x or _x) per type; "
                '"" = ' + ",".join(CHECKIMAGE_SUFFIXES.values()), "Check-images",
                min_length=0, unique=True),
    enumeration_list("CLEAN_CLASSES", ("CR", "HCL", "DCL", "HP", "DP"), LOCAL_CLASSES,
                     "classes inpainted in CLEANED: " + ",".join(LOCAL_CLASSES),
                     "Check-images", max_length=len(LOCAL_CLASSES), unique=True),
    integer("CLEAN_RADIUS", 8, "[pixel] farthest valid pixel used to inpaint (CLEANED)",
            "Check-images", minimum=1, maximum=64, expert=True),
    integer("PREVIEW_SIZE", 2048, "[pixel] largest side of the PREVIEW's image grid",
            "Check-images", minimum=64, expert=True),
    # Cluster (Dask)
    CLUSTER,
    NWORKERS,
], checks=[_check_tiles, _check_checkimages, _check_cluster])

TRACK_KEYWORDS = ConfigSpec("maxitrack", "default.track", [
    number("PRIOR", 0.05, "expected fraction of images with tracking errors, in (0,1)",
           "Tracking", minimum=0.0, maximum=1.0, min_open=True, max_open=True),
    number("FRAC", 1.0, "fraction of each file's image HDUs scored, in (0,1]", "Tracking",
           minimum=0.0, maximum=1.0, min_open=True),
    integer("SEED", 0, "random seed of the HDU selection when FRAC < 1", "Tracking",
            minimum=0),
    string("OUTPUT_NAME", "maxitrack.out", "output file (one line per file and cube plane)",
           "Output"),
    enumeration("OUTPUT_TYPE", "ASCII_HEAD", ("ASCII_HEAD", "JSON"),
                "ASCII_HEAD (FILE SCORE lines after # headers) or JSON", "Output"),
    boolean("OVERWRITE", False, "replace an existing OUTPUT_NAME (Y/N)", "Output"),
    dataclasses.replace(BACK_SIZE, section="Background"),
    BATCH_SIZE,
    DEVICE,
    NTHREADS,
    NETWORK,
    VERBOSE_TYPE,
    CLUSTER,
    NWORKERS,
], checks=[_check_cluster])



def _check_checkplots(values):
    types = values["CHECKPLOT_TYPE"]
    if "NONE" in types and len(types) > 1:
        raise ConfigError(f"CHECKPLOT_TYPE: NONE cannot be combined with other plots, got "
                          f"{','.join(types)}", keyword="CHECKPLOT_TYPE")


#: The smallest side of a maxieval sample: below 20 px the simulator's fringe and nebulosity
#: fields degenerate (NaN pixels or numpy warnings for 1 seed in 8 at 18x18 px, most at
#: <= 10 px; none at 20 to 40 px), and a 1-px side cannot be simulated at all.
MIN_SAMPLE_SIDE = 32


def _check_sample_size(values):
    size = values["SAMPLE_SIZE"]
    if 0 < size < MIN_SAMPLE_SIDE:
        raise ConfigError(f"SAMPLE_SIZE: 0 (the whole image) or an integer >= {MIN_SAMPLE_SIDE} expected, "
                          f"got {size}", keyword="SAMPLE_SIZE")


def _mask_keyword(name, section):
    """A maximask keyword reused by maxieval, in maxieval's section."""
    return dataclasses.replace(MASK_KEYWORDS.keyword(name), section=section)


_SATUR_LEVEL = number("SATUR_LEVEL", 0.0, "saturation level of the inputs in ADU (0 = above every clean pixel)",
                      "Samples", minimum=0.0)
_DARK_FRAMES = string_list("DARK_FRAMES", (), "dark frames (FITS) to cut cosmic rays from (none: generated)",
                           "Samples", min_length=0)
_CR_SOURCE = enumeration("CR_SOURCE", "AUTO", ("AUTO", "BUILTIN", "IMSIM", "DARKS"),
                         "cosmic rays: BUILTIN, IMSIM (real hits), DARKS; AUTO = DARKS if DARK_FRAMES",
                         "Samples")
_TRAIL_STYLE_EVAL = enumeration("TRAIL_STYLE", "REAL", ("PAPER", "REAL"),
                                "trails: PAPER (even, crossing) or REAL (knots, ends, widths, aircraft)",
                                "Samples")


def _check_cr_source(values):
    source, darks = values["CR_SOURCE"], values["DARK_FRAMES"]
    if source == "DARKS" and not darks:
        raise ConfigError("CR_SOURCE: DARKS needs DARK_FRAMES", keyword="CR_SOURCE")
    if source in ("BUILTIN", "IMSIM") and darks:
        raise ConfigError(f"CR_SOURCE: {source} with DARK_FRAMES given; set CR_SOURCE DARKS or AUTO",
                          keyword="CR_SOURCE")


EVAL_KEYWORDS = ConfigSpec("maxieval", "default.eval", [
    # Samples
    integer("NSAMPLES", 20, "samples injected per input image (HDU or cube plane)", "Samples",
            minimum=1),
    integer("SAMPLE_SIZE", 400, f"side of the samples cut from each input (0 = whole image, else >= {MIN_SAMPLE_SIDE})",
            "Samples", minimum=0),
    enumeration_list("INJECT_CLASSES", LOCAL_CLASSES, LOCAL_CLASSES,
                     "contaminants injected: " + ",".join(LOCAL_CLASSES), "Samples",
                     min_length=1, max_length=len(LOCAL_CLASSES), unique=True),
    integer("SEED", 0, "random seed of the sample positions and injections", "Samples",
            minimum=0),
    _SATUR_LEVEL,
    _DARK_FRAMES,
    _CR_SOURCE,
    _TRAIL_STYLE_EVAL,
    number("INJECT_PROB", 0.5, "probability of each class of INJECT_CLASSES per sample (1 = all)",
           "Samples", minimum=0.0, maximum=1.0, min_open=True),
    number("SEEING_FWHM", 0.0, "FWHM of injected stars/trails in pixels (0 = drawn in [2,6])",
           "Samples", minimum=0.0),
    # Evaluation
    dataclasses.replace(_mask_keyword("PRIORS", "Evaluation"),
                        comment=f"priors in use (maximask PRIORS) for the {NCLASSES} classes"),
    dataclasses.replace(_mask_keyword("THRESHOLDS", "Evaluation"),
                        comment=f"thresholds in use (maximask THRESHOLDS) for the {NCLASSES} classes"),
    boolean("IGNORE_FLAGGED", True,
            "leave out of scoring the pixels flagged in the clean input (Y/N)", "Evaluation"),
    integer("LOGIT_BINS", 100000, "histogram bins per class over logit(p) in [-30,20]",
            "Evaluation", minimum=100, expert=True),
    # Output
    string("OUTPUT_NAME", "maxieval",
           "outputs: <name>.txt, <name>.json, <name>_roc/_mcc/_sample.png", "Output"),
    enumeration_list("CHECKPLOT_TYPE", ("ROC", "MCC", "SAMPLE"), ("ROC", "MCC", "SAMPLE", "NONE"),
                     "figures: ROC, MCC, SAMPLE or NONE (needs matplotlib)", "Output",
                     min_length=1, max_length=3, unique=True),
    string("SAMPLES_DIR", "", 'directory for the samples as image + truth FITS ("" = none)',
           "Output"),
    boolean("OVERWRITE", False, "replace existing output files (Y/N)", "Output"),
    # Background and tiling
    BACK_SIZE,
    _mask_keyword("TILE_SIZE", "Background and tiling"),
    _mask_keyword("TILE_MARGIN", "Background and tiling"),
    # Engine
    BATCH_SIZE,
    DEVICE,
    NTHREADS,
    NETWORK,
    # Miscellaneous
    VERBOSE_TYPE,
], checks=[_check_tiles, _check_checkplots, _check_cr_source, _check_sample_size])


def _check_training(values):
    overlap = set(values["FOCUS_CLASSES"]) - set(values["INJECT_CLASSES"]) - {"NONE"}
    if "NONE" in values["FOCUS_CLASSES"] and len(values["FOCUS_CLASSES"]) > 1:
        raise ConfigError("FOCUS_CLASSES: NONE cannot be combined with classes", keyword="FOCUS_CLASSES")
    if overlap:
        raise ConfigError(f"FOCUS_CLASSES: {','.join(sorted(overlap))} not in INJECT_CLASSES",
                          keyword="FOCUS_CLASSES")
    if values["DISTILL_STRENGTH"] > 0 and values["FOCUS_CLASSES"] == ("NONE",):
        raise ConfigError("DISTILL_STRENGTH: distillation holds the classes outside FOCUS_CLASSES, "
                          "which is NONE", keyword="DISTILL_STRENGTH")
    if not values["OUTPUT_NETWORK"]:
        raise ConfigError('OUTPUT_NETWORK: a model directory name is needed, got ""', keyword="OUTPUT_NETWORK")


TRAIN_KEYWORDS = ConfigSpec("maxitrain", "default.train", [
    # Network
    enumeration("TRAIN_NETWORK", "MAXIMASK", ("MAXIMASK", "MAXITRACK"),
                "MAXIMASK (inputs: clean images) or MAXITRACK (inputs: lists of 'file label' lines)",
                "Network"),
    dataclasses.replace(NETWORK, comment='model directory to start from ("" = the published weights)',
                        section="Network"),
    string("OUTPUT_NETWORK", "maximask.model", "model directory written (never replaced)", "Network"),
    string_list("TRAIN_LAYERS", ("ALL",), "ALL, or layer groups (ENCODER, DECODER, UCP, FINAL; "
                "CONV, DENSE) and layer names to train", "Network", unique=True),
    # Samples
    integer("SAMPLE_SIZE", 256, "[pixel] side of the MaxiMask training samples (MaxiTrack: 400)",
            "Samples", minimum=64),
    integer("NSAMPLES", 2000, "samples in the training set", "Samples", minimum=1),
    integer("NVALID", 64, "samples in the validation set", "Samples", minimum=1),
    number("VALID_FRAC", 0.2, "fraction of the input images kept apart for validation", "Samples",
           minimum=0.0, maximum=1.0, min_open=True, max_open=True),
    enumeration_list("INJECT_CLASSES", LOCAL_CLASSES, LOCAL_CLASSES,
                     "contaminants injected, each with probability 1/2 per sample", "Samples",
                     min_length=1, max_length=len(LOCAL_CLASSES), unique=True),
    enumeration_list("FOCUS_CLASSES", ("NONE",), ("NONE",) + LOCAL_CLASSES,
                     "NONE or classes injected in every sample (among INJECT_CLASSES)", "Samples",
                     max_length=len(LOCAL_CLASSES), unique=True),
    boolean("REBIN", True, "rebin 2x2 half of the samples of images whose FWHM stays > 2 px (Y/N)",
            "Samples"),
    number("SEEING_FWHM", 0.0, "[pixel] FWHM of the inputs (0 = measured on each image)", "Samples",
           minimum=0.0),
    _SATUR_LEVEL,
    _DARK_FRAMES,
    _CR_SOURCE,
    dataclasses.replace(_TRAIL_STYLE_EVAL, default="PAPER"),
    number("OFFSET_SIGMA", 1.0, "[sigma] std of the random background offset of the compression",
           "Samples", minimum=0.0, expert=True),
    integer("SEED", 0, "random seed of the samples, the validation split and the optimiser", "Samples",
            minimum=0),
    # Optimisation
    integer("STEPS", 1000, "optimisation steps", "Optimisation", minimum=1),
    integer("BATCH_SIZE", 4, "samples per step", "Optimisation", minimum=1),
    number("LEARNING_RATE", 1e-4, "Adam step size", "Optimisation", minimum=0.0, min_open=True),
    enumeration("REGULARISATION", "PUBLISHED", ("PUBLISHED", "ZERO", "NONE"),
                "kernels pulled towards the PUBLISHED (starting) weights, to ZERO (L2), or NONE",
                "Optimisation"),
    number("REG_STRENGTH", 1.0, "lambda of the regularisation (eq. 17)", "Optimisation", minimum=0.0),
    enumeration("CLASS_WEIGHTS", "NETWORK", ("NETWORK", "SAMPLES"),
                "class weights (eq. 15) from the starting NETWORK's training priors or the SAMPLES' fractions",
                "Optimisation"),
    number("DISTILL_STRENGTH", 0.0, "> 0: classes outside FOCUS_CLASSES keep the starting network's "
           "logits, with this weight", "Optimisation", minimum=0.0),
    enumeration("AUX_LOSSES", "THREE_SMALLEST", ("THREE_SMALLEST", "TWO_SMALLEST", "NONE"),
                "auxiliary losses of the pre-predictions at the smallest resolutions",
                "Optimisation", expert=True),
    integer("VALID_STEP", 100, "steps between validation losses", "Optimisation", minimum=1),
    integer("CHECKPOINT_STEP", 100, "steps between checkpoints", "Optimisation", minimum=1),
    string("CHECKPOINT_NAME", "", 'checkpoint file, resumed when present ("" = OUTPUT_NETWORK.ckpt)',
           "Optimisation"),
    # Engine
    dataclasses.replace(BACK_SIZE, section="Engine"),
    dataclasses.replace(DEVICE, comment="AUTO (CUDA if PyTorch sees one, else CPU), CPU or CUDA"),
    NTHREADS,
    VERBOSE_TYPE,
], checks=[_check_training, _check_cr_source])

#: Every command's table, by command name.
ALL_KEYWORDS = {spec.program: spec for spec in (MASK_KEYWORDS, TRACK_KEYWORDS, EVAL_KEYWORDS, TRAIN_KEYWORDS)}
