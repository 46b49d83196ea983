"""The MaxiTrack pipeline: tracking-error scores of exposures.

    tracker = Tracker(PRIOR=0.05)
    tracker.score(image)              # float in [0, 1]; a cube gives one score per plane
    tracker.score_file("night.fits")  # [TrackScore(name, score), ...]

As the reference: same preprocessing as MaxiMask, non-overlapping 400x400 tiles anchored at
(h % 400, w % 400), prior correction per tile, score = mean over the tiles; the 2-D HDUs of
a file are averaged into one score, cube planes are scored apart. Unlike the reference,
every batch is scored once (its last partial batch overwrote earlier slots).

Images with a side shorter than MIN_SIDE (300 px, 3/4 of a tile) get no score (NaN): a
tile padded further shows the network mostly padding, and guided fields then score up to
0.6 (benchmarks/track_small_images.py: strips 5-250 px high of fields scoring 0.0000 whole
score 0.08-0.61; from 300 px on, 0.0000). A side between 300 and 400 px is padded.
"""
import dataclasses
import datetime
import json
import math
import time
import zlib

import numpy as np

from . import __version__, errors, fitsio, inputs, kernels, _workunits
from .outputs import refuse_existing, write_atomically
from .keywords import TRACK_KEYWORDS
from .engine import model_info, open_network
from ._images import pixel_array

TILE = 400
#: Shortest side (pixels) of an image MaxiTrack scores; smaller ones get NaN (see above).
MIN_SIDE = 300


@dataclasses.dataclass(frozen=True)
class TrackScore:
    """One output line: ``name`` (file, or ``file[hdu][plane]`` for a cube plane) and score."""

    name: str
    score: float
    hdus: tuple = ()  # (name, score) of each 2-D HDU averaged into this score


def track_origins(height, width, tile=TILE):
    """(N, 2) int64 (y, x) origins of the non-overlapping tiles anchored at (h % T, w % T).

    An axis shorter than the tile has the single origin 0 (the tile is padded)."""
    ys = np.arange(height % tile, height - tile + 1, tile) if height >= tile else np.array([0])
    xs = np.arange(width % tile, width - tile + 1, tile) if width >= tile else np.array([0])
    return np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2).astype(np.int64)


class Tracker:
    """MaxiTrack configured by the keywords of ``maxitrack -d`` (any case)."""

    def __init__(self, config=None, **keywords):
        config = config if config is not None else TRACK_KEYWORDS.defaults()
        self.config = config.replace(**keywords) if keywords else config
        self.model = model_info("maxitrack", self.config.NETWORK)  # checks a NETWORK directory early
        trained, prior = self.model["training_priors"], self.config.PRIOR
        self.factor = (trained / (1.0 - trained)) * ((1.0 - prior) / prior)
        self._network = None

    @property
    def network(self):
        if self._network is None:
            c = self.config
            self._network = open_network("maxitrack", device=c.DEVICE, nthreads=c.NTHREADS, model_dir=c.NETWORK)
        return self._network

    def tile_scores(self, image):
        """Prior-corrected tracking-error probability of each tile of a 2-D image (float64)."""
        image = np.ascontiguousarray(image, dtype=np.float32)
        if image.ndim != 2 or min(image.shape) < 1:
            raise ValueError(f"expected a 2-D image, got shape {image.shape}")
        plane = kernels.compress_image(image, self.config.BACK_SIZE)
        origins = track_origins(*image.shape)
        scores = np.empty(len(origins))
        size = self.config.BATCH_SIZE
        for start in range(0, len(origins), size):
            part = origins[start:start + size]
            tiles = kernels.extract_tiles(plane, part, TILE)
            p = self.network(tiles)[:, 1].astype(np.float64)
            scores[start:start + len(part)] = p / (p + self.factor * (1.0 - p))
        return scores

    def score(self, image):
        """Score of a 2-D image (float), or of each plane of a 3-D cube (array).

        NaN for an image with a side shorter than MIN_SIDE (no score). Raises TypeError for
        a path (use :meth:`score_file`) or complex data, ValueError for another shape or
        pixels all zero or all NaN.
        """
        return self._score_checked(pixel_array(image))

    def _score_checked(self, image):
        if image.ndim == 3:
            return np.array([self._score_checked(plane) for plane in image])
        if min(image.shape) < MIN_SIDE:
            return float("nan")
        return float(self.tile_scores(image).mean())

    def chosen_hdus(self, name, hdus):
        """The HDUs scored under FRAC: all, or a reproducible random subset (SEED, file name)."""
        frac = self.config.FRAC
        if frac >= 1 or len(hdus) < 2:
            return list(hdus)
        count = max(1, int(frac * len(hdus)))
        rng = np.random.default_rng([self.config.SEED, zlib.crc32(name.encode())])
        keep = sorted(rng.choice(len(hdus), size=count, replace=False))
        return [hdus[k] for k in keep]

    def score_file(self, source, log=None):
        """Scores of a FITS file: one TrackScore for its 2-D HDUs together, one per cube plane.

        An all-zero or all-NaN HDU (or cube plane) beside valid ones is left out with a
        warning (log); an image smaller than MIN_SIDE gets no score (NaN), said in one line;
        the file's score is the mean over the HDUs that have one (NaN if none). Raises
        :class:`maximask.errors.InputError` (one-line message) on bad input.
        """
        plan = self.plan_file(source, log)
        return self.finish_file(plan, {unit: self.run_unit(unit) for unit in plan.units}, log)

    def plan_file(self, source, log=None):
        """Split a file into units of work: each HDU chosen under FRAC, or each cube plane."""
        if isinstance(source, str):
            source = inputs.find_inputs([source])[0]
        with fitsio.open_image(source) as image:
            chosen = self.chosen_hdus(source.name, image.maskable)
        return _workunits.FilePlan(source, None, [(info.kind, _workunits.units_of(source.path, info), None)
                                                 for info in chosen])

    def run_unit(self, unit):
        """Score one unit (a 2-D HDU or cube plane), reading its pixels: a UnitResult."""
        started = time.perf_counter()
        data, lines, failure = _workunits.read_checked(unit)
        if failure:
            return _workunits.UnitResult(float("nan"), lines, failure)
        if min(data.shape) < MIN_SIDE:
            h, w = data.shape
            lines.append(f"{unit.name}: {h}x{w} pixels, too small to score (both sides >= "
                         f"{MIN_SIDE} px needed): no score")
        score = self._score_checked(data)
        return _workunits.UnitResult(score, lines, seconds=time.perf_counter() - started,
                                    provider=self.network.provider)

    def finish_file(self, plan, results, log=None):
        """The file's TrackScores from its units' results ({unit: UnitResult}); logs their lines."""
        log = log or (lambda line: None)
        flat, planes, invalid = [], [], []
        for unit in plan.units:
            done = results[unit]
            for line in done.lines:
                log(line)
            if done.failure:
                invalid.append(errors.InputError(*done.failure))
            elif unit.plane is None:
                flat.append((unit.name, done.value))
            else:
                planes.append(TrackScore(unit.name, done.value))
        if len(invalid) == len(plan.units):
            raise errors.InputError(invalid[0].name, f"{invalid[0].problem}: nothing to score")
        for exc in invalid:
            log(f"{exc}: not scored")
        if flat:
            scored = [s for _, s in flat if np.isfinite(s)]
            mean = float(np.mean(scored)) if scored else float("nan")
            planes.insert(0, TrackScore(plan.source.name, mean, tuple(flat)))
        return planes


def write_track_output(config, results, protect=frozenset()):
    """Write maxitrack's file OUTPUT_NAME (text, or JSON with OUTPUT_TYPE JSON), complete or absent;
    OutputExistsError if it appeared during the run and OVERWRITE is N.

    config: a maxitrack Config (OUTPUT_NAME, OUTPUT_TYPE, NETWORK, PRIOR, FRAC, SEED);
    results: the TrackResult of each input, in order; protect: file identities never
    written over (the run's inputs, :func:`maximask.outputs.file_identities`).
    """
    path = config.OUTPUT_NAME
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    info = model_info("maxitrack", config.NETWORK)
    model, digest = info["label"], info["weights_sha256"]

    def value(score):  # no score (image too small): null in JSON, nan in text
        return score if math.isfinite(score) else None

    if config.OUTPUT_TYPE == "JSON":
        text = json.dumps({
            "software": f"maxitrack {__version__}", "networks": model, "weights_sha256": digest,
            "date": created,
            "prior": config.PRIOR, "frac": config.FRAC, "seed": config.SEED,
            "min_side": MIN_SIDE,
            "scores": [{"file": r.name, "score": value(r.score),
                        "hdus": [{"hdu": n, "score": value(s)} for n, s in r.hdus]} for r in results],
        }, indent=1, allow_nan=False) + "\n"
    else:
        lines = [f"# maxitrack {__version__} ({model} networks, weights SHA-256 {digest[:16]}), {created} UTC",
                 f"# PRIOR {config.PRIOR:g}  FRAC {config.FRAC:g}  SEED {config.SEED}",
                 "#   1 FILE     Input file; file[hdu][plane] for a plane of a cube",
                 "#   2 SCORE    Probability of a tracking error (prior-corrected, mean over tiles);",
                 f"#              nan: no image with both sides >= {MIN_SIDE} px, no score"]
        lines += [f"{r.name} {r.score:.6f}" for r in results]
        text = "\n".join(lines) + "\n"

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    write_atomically(path, write, before_replace=refuse_existing(path, config.OVERWRITE), protect=protect)
