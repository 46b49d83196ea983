"""The maxieval pipeline: clean exposures -> simulated samples -> MaxiMask -> per-class histograms.

For each input image (an image HDU, or one plane of a cube):

1. the clean image goes once through MaxiMask (raw probabilities of the 14 classes): its
   pixels feed the unlabeled histograms from which the EM priors of the user's data are
   estimated, and, with IGNORE_FLAGGED, the pixels it flags (any local class, with the PRIORS
   and THRESHOLDS in use) are left out of the scoring of every sample cut there;
2. NSAMPLES windows of SAMPLE_SIZE (or the whole image) are cut at seeded positions;
   ``maximask.simulation.inject`` adds contaminants with their truth: each class of
   INJECT_CLASSES with probability INJECT_PROB (at least one; 1: all in every sample), the
   trails of TRAIL_STYLE and the cosmic rays of CR_SOURCE; MaxiMask's raw probabilities and
   the truth go into the labeled histograms.

Seeds: a sample's window, classes and contaminants are a function of SEED, the input's name
(file name without its folder, HDU and plane: ``input_key``) and the sample's number, not of
the input's place in the run: the same field gets the same samples in any run that holds it.

Memory follows one image, never the number of samples. Each step is timed
(``Evaluation.timer.seconds``; VERBOSE_TYPE FULL prints them with the peak RSS).
"""
import contextlib
import os
import time
import zlib

import numpy as np
from astropy.io import fits

from .. import __version__, errors, fitsio, inputs, outputs
from ..classes import ABBREVIATIONS, LOCAL_INDICES, NCLASSES, TRAINING_PRIORS
from ..keywords import MASK_KEYWORDS, MIN_SAMPLE_SIDE
from ..engine import with_model_thresholds
from .metrics import ScoreHistograms, logit, prior_shift



def flagged(proba, priors, thresholds, classes=LOCAL_INDICES, training_priors=TRAINING_PRIORS):
    """(h, w) bool: pixels where a class of `classes` has p' > threshold (raw proba (14, h, w))."""
    cuts = logit(np.asarray(thresholds, dtype=np.float64)) + prior_shift(priors, training_priors)
    out = np.zeros(proba.shape[1:], bool)
    for k in classes:
        out |= logit(proba[k]) > cuts[k]
    return out


def input_key(name):
    """The seed key of an input: CRC-32 of its name without the folder (file[HDU][plane])."""
    return zlib.crc32(os.path.basename(str(name)).encode())


def sample_seed(seed, key, sample_index):
    """The injection seed of one sample: a function of SEED, the input's key and the sample's number."""
    return int(np.random.SeedSequence([seed, key, sample_index]).generate_state(1)[0])


def sample_classes(classes, probability, seed):
    """The classes injected in the sample of injection seed `seed`: each of `classes` with
    `probability` (at least one; probability 1: all), drawn from a stream of their own."""
    from ..simulation import draw_classes

    return draw_classes(list(classes), probability, np.random.default_rng([seed, 1]))


def sample_shape(shape, size):
    """(h, w) of the samples of side `size` (0: the whole image) cut from an image of `shape`:
    an image smaller than `size` gives samples as small as it is."""
    h, w = shape
    return (h, w) if size == 0 else (min(size, h), min(size, w))


class ImageTooSmall(errors.InputError):
    """An image with a side under MIN_SAMPLE_SIDE: no sample can be simulated from it."""


def sample_windows(shape, size, count, seed, key):
    """(count, 4) windows (y0, x0, y1, x1) of side `size` (0: the whole image) at seeded places."""
    h, w = shape
    sh, sw = sample_shape(shape, size)
    rng = np.random.default_rng([seed, key])
    y0 = rng.integers(0, h - sh + 1, size=count)
    x0 = rng.integers(0, w - sw + 1, size=count)
    return np.stack([y0, x0, y0 + sh, x0 + sw], axis=1)


def read_frame(path):
    """The first 2-D image HDU of a FITS file as float32 (InputError naming the file if none)."""
    with fitsio.open_image(path) as image:
        for info in image.maskable:
            if len(info.shape) == 2:
                return image.read(info).data
    raise errors.InputError(path, "no 2-D image HDU")


class Timer:
    """Seconds spent per step: ``with timer("network"): ...``; ``seconds`` keeps the order."""

    def __init__(self):
        self.seconds = {}

    @contextlib.contextmanager
    def __call__(self, step):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - started


class Evaluation:
    """One maxieval run over many inputs; configured by the keywords of ``maxieval -d``.

    labeled: ScoreHistograms of the samples (truth known). unlabeled: ScoreHistograms of
    the clean inputs. images: [(name, shape, samples, pixels excluded)]. example: (image,
    truth, raw proba) of the first sample, for the figure.
    """

    def __init__(self, config, log=None, protect=frozenset()):
        from ..masker import Masker

        self.config = c = with_model_thresholds(config)
        self.log = log or (lambda line: None)
        self.protect = protect  # files never written over (the run's inputs)
        self.masker = Masker(MASK_KEYWORDS.defaults().replace(
            OUTPUT_TYPE="PROBA", PRIOR_CORRECTION=False, CLASSES=ABBREVIATIONS,
            BACK_SIZE=c.BACK_SIZE, TILE_SIZE=c.TILE_SIZE, TILE_MARGIN=c.TILE_MARGIN,
            BATCH_SIZE=c.BATCH_SIZE, DEVICE=c.DEVICE, NTHREADS=c.NTHREADS, NETWORK=c.NETWORK,
            VERBOSE_TYPE="QUIET"))
        self.training_priors = self.masker.model["training_priors"]
        self.darks = [read_frame(path) for path in c.DARK_FRAMES] if cr_source(c) == "DARKS" else []
        self.labeled = ScoreHistograms(bins=c.LOGIT_BINS)
        self.unlabeled = ScoreHistograms(bins=c.LOGIT_BINS)
        self.timer = Timer()
        self.images = []
        self.example = None
        self.sample_files = {}  # {real path: (st_dev, st_ino)} of the samples this run wrote
        self.writing = None  # (real path, identity before, seed) of the sample being written

    @property
    def parameters(self):
        """The simulator's options set by SATUR_LEVEL, SEEING_FWHM (0: its own), CR_SOURCE,
        DARK_FRAMES and TRAIL_STYLE."""
        c = self.config
        chosen = {name: value for name, value in (("saturation", c.SATUR_LEVEL), ("fwhm", c.SEEING_FWHM))
                  if value > 0}
        chosen.update(simulation_options(c, self.darks))
        return chosen

    @property
    def quiet(self):
        return self.config.VERBOSE_TYPE == "QUIET"

    def run_file(self, source):
        """Evaluate every image HDU of `source` (cube planes one by one); InputError if none.

        An image too small to cut samples from is skipped with a line, or is the file's
        error when no image of the file could be evaluated."""
        planes = fitsio.image_planes(source, self.log, accept=inputs.CLEAN_FIELDS)
        small, evaluated = [], 0
        while True:
            with self.timer("reading"):
                plane = next(planes, None)
            if plane is None:
                break
            name, data, header = plane
            try:
                self.run_image(data, name, fitsio.output_header(header), header)
                evaluated += 1
            except ImageTooSmall as exc:
                small.append(exc)
        if small and not evaluated:
            raise small[0]
        for exc in small:
            self.log(f"{exc}: skipped")

    def run_image(self, clean, name, header=None, raw_header=None):
        """Evaluate NSAMPLES samples of one clean 2-D image (ADU); return the pixels ignored.
        header: the output header's base; raw_header: the input's, for its GAIN and RDNOISE.

        ImageTooSmall (before any work) when a sample would have a side under
        MIN_SAMPLE_SIDE; an image smaller than SAMPLE_SIZE gives smaller samples, with a line."""
        from .._progress import progress_bar
        from ..simulation import inject

        c = self.config
        clean = np.ascontiguousarray(clean, dtype=np.float32)
        (h, w), (sh, sw) = clean.shape, sample_shape(clean.shape, c.SAMPLE_SIZE)
        if min(sh, sw) < MIN_SAMPLE_SIDE:
            raise ImageTooSmall(name, f"{w}x{h} pixels: too small to evaluate (samples need at least "
                                      f"{MIN_SAMPLE_SIDE} pixels a side)")
        if c.SAMPLE_SIZE and min(h, w) < c.SAMPLE_SIZE:
            self.log(f"{name}: {w}x{h} pixels, smaller than SAMPLE_SIZE {c.SAMPLE_SIZE}: "
                     f"its samples are {sw}x{sh}")
        key = input_key(name)
        with self.timer("MaxiMask on the clean inputs"):
            proba = self.masker.run(clean)
        # this image's counts join the run's only once all its samples are done
        unlabeled, labeled = ScoreHistograms(bins=c.LOGIT_BINS), ScoreHistograms(bins=c.LOGIT_BINS)
        with self.timer("histograms"):
            unlabeled.add(proba)
            ignore = (flagged(proba, c.PRIORS, c.THRESHOLDS, training_priors=self.training_priors)
                      if c.IGNORE_FLAGGED else None)
        del proba
        windows = sample_windows(clean.shape, c.SAMPLE_SIZE, c.NSAMPLES, c.SEED, key)
        for s, (y0, x0, y1, x1) in enumerate(progress_bar(windows, desc=name, unit="sample", leave=False,
                                                          quiet=self.quiet or c.NSAMPLES < 2)):
            seed = sample_seed(c.SEED, key, s)
            classes = sample_classes(c.INJECT_CLASSES, c.INJECT_PROB, seed)
            with self.timer("injection"):
                try:
                    image, truth = inject(clean[y0:y1, x0:x1], classes=classes, seed=seed, **self.parameters)
                except ValueError as exc:
                    raise errors.InputError(name, f"cannot simulate samples: {exc}") from None
            with self.timer("MaxiMask on the samples"):
                proba = self.masker.run(image)
            with self.timer("histograms"):
                skip = None if ignore is None else ignore[y0:y1, x0:x1]
                labeled.add(proba, truth, skip)
            if self.example is None:
                self.example = (image, truth, proba, skip)
            if c.SAMPLES_DIR:
                with self.timer("writing samples"):
                    self.write_sample(image, truth, name, s, (y0, x0), seed, header, classes,
                                      noise_cards(clean[y0:y1, x0:x1], raw_header, c.BACK_SIZE))
            del image, truth, proba
        self.unlabeled.merge(unlabeled)
        self.labeled.merge(labeled)
        self.images.append((name, clean.shape, len(windows), labeled.excluded))
        return labeled.excluded

    def write_sample(self, image, truth, name, s, origin, seed, header=None, classes=None, extra=()):
        """Write one sample as FITS: the image (primary) and its truth (extension TRUTH).
        classes: those injected (default INJECT_CLASSES); extra: more header cards."""
        c = self.config
        classes = list(c.INJECT_CLASSES) if classes is None else classes
        suffix = "".join(f"_{i}" for i in _indices(name)) + f"_s{s:04d}.fits"
        path = fitsio.output_path(name.split("[")[0], self.config.SAMPLES_DIR, suffix)
        if os.path.realpath(path) in self.sample_files:  # never replace a sample of this run
            raise errors.InputError(name, f"its sample {path} is also a sample of an earlier input "
                                          "(inputs of one name in two folders?); not processed")
        cards = [("MV_VERS", __version__, "maxieval version"),
                 ("MV_INPUT", name[-68:], "clean input" if len(name) <= 52 else ""),  # one card
                 ("MV_Y0", int(origin[0]), "[pixel] sample origin in the input (0-based)"),
                 ("MV_X0", int(origin[1]), "[pixel] sample origin in the input (0-based)"),
                 ("MV_SEED", seed, "injection seed"),
                 ("MV_CLASS", ",".join(classes), "classes injected here"),
                 ("MV_TRAIL", c.TRAIL_STYLE, "trail recipe (TRAIL_STYLE)"),
                 ("MV_CRSRC", cr_source(c), "cosmic-ray source (CR_SOURCE)")] + list(extra)
        truth_cards = [("EXTNAME", "TRUTH", "ground truth, one 0/1 plane per class")]
        truth_cards += [(f"{a}_DIM", k, f"plane of {a} (0-based)") for k, a in enumerate(ABBREVIATIONS)]
        key = os.path.realpath(path)
        # a signal may land between the file's rename into place and its listing below
        self.writing = (key, _identity(key), seed)
        fitsio.write_hdus(path, [("primary", image, fitsio.output_header(header, cards)),
                                 ("image", truth.astype(np.uint8), fitsio.output_header(None, truth_cards))],
                          overwrite=self.config.OVERWRITE, protect=self.protect)
        self.sample_files[key] = _identity(key)
        self.writing = None

    def remove_samples(self):
        """Remove the sample files this run wrote, each only while it is still the file
        written (same device and inode): an interrupted run leaves none. The one being
        written goes only if it is a new file carrying that sample's seed."""
        if self.writing is not None:
            path, before, seed = self.writing
            now = _identity(path)
            if now is not None and now != before:
                try:
                    if fits.getval(path, "MV_SEED") == seed:
                        self.sample_files[path] = now
                except (OSError, KeyError, ValueError):
                    pass
        for path, identity in self.sample_files.items():
            if _identity(path) == identity:
                os.remove(path)
        self.sample_files, self.writing = {}, None

    def summary(self):
        """What the report says about the run: inputs, samples, pixels, software."""
        c = self.config
        return {
            "software": f"maxieval {__version__}", "networks": self.masker.model["label"],
            "weights_sha256": self.masker.model["weights_sha256"],
            "images": [{"name": n, "shape": list(s), "samples": k, "excluded": e}
                       for n, s, k, e in self.images],
            "samples": int(sum(k for _, _, k, _ in self.images)),
            "sample_size": c.SAMPLE_SIZE, "seed": c.SEED, "inject_classes": list(c.INJECT_CLASSES),
            "inject_prob": c.INJECT_PROB, "trail_style": c.TRAIL_STYLE, "cr_source": cr_source(c),
            "ignore_flagged": bool(c.IGNORE_FLAGGED),
            "scored_pixels": int(self.labeled.counts[0].sum()),
            "excluded_pixels": int(self.labeled.excluded),
            "training_priors": [float(t) for t in self.training_priors],
        }


def cr_source(config):
    """CR_SOURCE with AUTO resolved: DARKS when DARK_FRAMES are given, else BUILTIN."""
    if config.CR_SOURCE == "AUTO":
        return "DARKS" if config.DARK_FRAMES else "BUILTIN"
    return config.CR_SOURCE


def simulation_options(config, darks=()):
    """``inject`` options of TRAIL_STYLE and CR_SOURCE (with the DARK_FRAMES read: `darks`)."""
    options = {"trail_style": config.TRAIL_STYLE.lower()}
    source = cr_source(config)
    if source == "DARKS":
        options["darks"] = list(darks)
    else:
        options["cosmic_source"] = source.lower()
    return options


def noise_cards(clean, header=None, mesh_size=200):
    """GAIN (e-/ADU) and RDNOISE (e-) header cards of a sample cut from `clean` (2-D, ADU):
    the input header's when it has them, else the simulator's noise model (scene.noise_model)."""
    from ..simulation.scene import noise_model

    gain, read_noise, origin = noise_model(clean, header, mesh_size)
    return [("GAIN", round(gain, 6), f"[e-/ADU] {origin}"), ("RDNOISE", round(read_noise, 4), f"[e-] {origin}")]


def _identity(path):
    """(st_dev, st_ino) of the file at `path`, None if there is none."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _indices(name):
    """The [N] indices in a name such as file.fits[1][0]."""
    return [part.split("]")[0] for part in name.split("[")[1:]]


def output_paths(config):
    """{what: path} of the files a run writes (figures only those CHECKPLOT_TYPE asks for)."""
    name = config.OUTPUT_NAME
    paths = {"text": name + ".txt", "json": name + ".json"}
    for kind in config.CHECKPLOT_TYPE:
        if kind != "NONE":
            paths[kind.lower()] = f"{name}_{kind.lower()}.png"
    return paths


def check_outputs(config, protect=frozenset()):
    """Raise before any work if an output exists without OVERWRITE, is one of the inputs
    (`protect`, see outputs.file_identities), or its directory is missing or unwritable."""
    for path in output_paths(config).values():
        outputs.check_not_input(path, protect)
        if os.path.lexists(path) and not config.OVERWRITE:
            raise errors.OutputExistsError(path)
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            raise errors.OutputError(path, f"output directory {folder} does not exist")
        outputs.check_writable(folder)
    if config.SAMPLES_DIR and not os.path.isdir(config.SAMPLES_DIR):
        raise errors.InputError(config.SAMPLES_DIR, "SAMPLES_DIR is not a directory")


def finish(evaluation):
    """Write the report and the figures of a run; log where the time went (FULL). Returns the report."""
    from .report import build_report, paste_lines, write_report

    c, log, timer = evaluation.config, evaluation.log, evaluation.timer
    paths = output_paths(c)
    with timer("metrics and EM priors"):
        report = build_report(evaluation)
    with timer("writing the report"):
        write_report(report, paths["text"], paths["json"], overwrite=c.OVERWRITE)
    log(f"report in {paths['text']} and {paths['json']}")
    figures = [kind for kind in ("roc", "mcc", "sample") if kind in paths]
    if figures:
        from . import plots

        try:
            import matplotlib  # noqa: F401
        except ImportError:
            log("figures skipped: matplotlib is not installed (pip install 'maximask[plot]')")
            figures = []
        with timer("figures"):
            for kind in figures:
                if kind == "roc":
                    draw = lambda tmp: plots.roc_figure(report, tmp)  # noqa: E731
                elif kind == "mcc":
                    draw = lambda tmp: plots.mcc_figure(report, tmp)  # noqa: E731
                elif evaluation.example is not None:
                    image, truth, proba, _ = evaluation.example
                    predicted = np.stack([flagged(proba, c.PRIORS, c.THRESHOLDS, [k], evaluation.training_priors)
                                          for k in range(NCLASSES)])
                    draw = lambda tmp: plots.sample_figure(image, truth, predicted, tmp)  # noqa: E731
                else:
                    continue
                # complete or absent, and never over a file that appeared during the run
                outputs.write_atomically(paths[kind], draw, before_replace=outputs.refuse_existing(
                    paths[kind], c.OVERWRITE))
                log(f"figure in {paths[kind]}")
    for line in paste_lines(report):
        log(line)
    if c.VERBOSE_TYPE == "FULL":
        total = sum(timer.seconds.values())
        for step, seconds in timer.seconds.items():
            log(f"time: {step:<30} {seconds:9.2f} s {100 * seconds / max(total, 1e-9):5.1f} %")
        log(f"time: {'total':<30} {total:9.2f} s; peak RSS {peak_rss_mb():.0f} MB")
    return report


def peak_rss_mb():
    """Peak resident memory of this process so far, MB (Linux: ru_maxrss is in kB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
