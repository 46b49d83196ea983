"""The MaxiTrack pipeline: tracking-error scores of exposures.

    tracker = Tracker(PRIOR=0.05)
    tracker.score(image)              # float in [0, 1]; a cube gives one score per plane
    tracker.score_file("night.fits")  # [TrackScore(name, score), ...]

As the reference: same preprocessing as MaxiMask, non-overlapping 400x400 tiles anchored at
(h % 400, w % 400), prior correction per tile, score = mean over the tiles; the 2-D HDUs of
a file are averaged into one score, cube planes are scored apart. Unlike the reference,
every batch is scored once (its last partial batch overwrote earlier slots) and images
smaller than a tile are padded and scored instead of skipped.
"""
import dataclasses
import time
import zlib

import numpy as np

from . import fitsio, kernels, workunits
from .config import TRACK_KEYWORDS
from .engine import open_network

TILE = 400


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
        prior = self.config.PRIOR
        self.factor = (1.0 - prior) / prior  # the network was trained on balanced classes
        self._network = None

    @property
    def network(self):
        if self._network is None:
            c = self.config
            self._network = open_network("maxitrack", device=c.DEVICE, nthreads=c.NTHREADS)
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
        """Score of a 2-D image (float), or of each plane of a 3-D cube (array)."""
        image = np.asarray(image)
        if image.ndim == 3:
            return np.array([self.score(plane) for plane in image])
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

        Raises :class:`maximask.fitsio.InputError` (one-line message) on bad input.
        """
        plan = self.plan_file(source, log)
        return self.finish_file(plan, {unit: self.run_unit(unit) for unit in plan.units}, log)

    def plan_file(self, source, log=None):
        """Split a file into units of work: each HDU chosen under FRAC, or each cube plane."""
        if isinstance(source, str):
            source = fitsio.find_inputs([source])[0]
        with fitsio.open_image(source) as image:
            chosen = self.chosen_hdus(source.name, image.maskable)
        return workunits.FilePlan(source, None, [(info.kind, workunits.units_of(source.path, info), None)
                                                 for info in chosen])

    def run_unit(self, unit):
        """Score one unit (a 2-D HDU or cube plane), reading its pixels: a UnitResult."""
        started = time.perf_counter()
        data = workunits.read_unit(unit)
        nbad = fitsio.check_data(data, unit.name)
        lines = [f"{unit.name}: {nbad} NaN or infinite pixels (estimated as 0)"] if nbad else []
        score = float(self.tile_scores(data).mean())
        return workunits.UnitResult(score, lines, seconds=time.perf_counter() - started,
                                    provider=self.network.provider)

    def finish_file(self, plan, results, log=None):
        """The file's TrackScores from its units' results ({unit: UnitResult}); logs their lines."""
        log = log or (lambda line: None)
        flat, planes = [], []
        for unit in plan.units:
            for line in results[unit].lines:
                log(line)
            if unit.plane is None:
                flat.append((unit.name, results[unit].value))
            else:
                planes.append(TrackScore(unit.name, results[unit].value))
        if flat:
            planes.insert(0, TrackScore(plan.source.name, float(np.mean([s for _, s in flat])), tuple(flat)))
        return planes
