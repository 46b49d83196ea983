"""Training samples from clean exposures: the simulator, the paper's augmentations (§2.3.4)
and its dynamic compression (§2.3.3).

    fields = [CleanField.from_array(name, data) for ...]      # 2-D clean images, ADU
    train, valid = split_fields(fields, 0.2, seed=0)           # validation images kept apart
    samples = SampleSet(train, size=256, classes="CR,TRL", seed=0)
    x, labels = samples.batch([0, 1, 2, 3])   # float32 (4, 1, 256, 256), uint8 (4, 14, 256, 256)

Sample i is a function of (seed, i) only, so a training run can be resumed, and repeated,
without storing its samples. Drawing sample i:

1. a field, in proportion to its area, and whether to rebin it 2x2 (probability 1/2 when
   its FWHM stays > 2 px and it holds a 2*size window): a window of `size` (or 2*size summed
   over 2x2 blocks) is cut at a random place;
2. ``maximask.simulation.inject`` adds contaminants with their truth: every class of
   `focus` and each other class of `classes` with probability 1/2 (at least one), the CR, fringe and
   nebulosity patterns turned by a random multiple of 90 degrees; stars and trails take
   the field's FWHM;
3. the dynamic compression, with the project's background kernel on the contaminated
   window as at inference: asinh((C - B + o) / sigma_U), o a random offset drawn from
   N(0, sigma_U^2) once per sample (the paper's robustness to background residuals).
"""
import dataclasses

import numpy as np

from .. import kernels
from ..classes import NCLASSES
from ..simulation import draw_classes, inject, parse_classes

#: Rebinning 2x2 is allowed when the FWHM after it stays above this, in pixels (§2.3.4).
MIN_REBINNED_FWHM = 2.0


def estimate_fwhm(image, mesh_size=200, snr=30.0, radius=7):
    """Median FWHM of the isolated, unsaturated stars of a clean image, in pixels (None
    when fewer than 3 are found). Per star, as SExtractor's FWHM_IMAGE: the diameter of the
    disk of the area above half its peak. image: 2-D, ADU."""
    data = np.ascontiguousarray(image, dtype=np.float32)
    level, sigma = kernels.estimate_background(data, mesh_size)
    sub = np.nan_to_num(data - level)
    noise = float(np.median(sigma)) or 1.0
    h, w = sub.shape
    if h <= 2 * radius or w <= 2 * radius:
        return None
    windows = np.lib.stride_tricks.sliding_window_view(sub, (5, 5))
    peaks = np.zeros_like(sub, dtype=bool)
    peaks[2:-2, 2:-2] = (sub[2:-2, 2:-2] == windows.max(axis=(2, 3))) & (sub[2:-2, 2:-2] > snr * noise)
    top = np.nanmax(data)
    fwhms = []
    for y, x in zip(*np.nonzero(peaks)):
        if not (radius <= y < h - radius and radius <= x < w - radius) or data[y, x] >= 0.95 * top:
            continue
        stamp = sub[y - radius:y + radius + 1, x - radius:x + radius + 1]
        above = stamp > 0.5 * sub[y, x]
        edge = np.concatenate([above[0], above[-1], above[:, 0], above[:, -1]])
        if edge.any() or (stamp > sub[y, x]).any():  # too wide, blended or not the brightest
            continue
        fwhms.append(2.0 * np.sqrt(above.sum() / np.pi))
    return float(np.median(fwhms)) if len(fwhms) >= 3 else None


@dataclasses.dataclass(frozen=True)
class CleanField:
    """One clean image to draw samples from: name, data (2-D float32, ADU) and FWHM (pixels;
    None when unknown: stars and trails then take the simulator's own draw, 2-6 px, and the
    field is never rebinned)."""

    name: str
    data: np.ndarray
    fwhm: object = None

    @classmethod
    def from_array(cls, name, data, fwhm=None):
        """A field from a 2-D array; fwhm None measures it (estimate_fwhm)."""
        data = np.ascontiguousarray(data, dtype=np.float32)
        if data.ndim != 2:
            raise ValueError(f"{name}: a clean field must be 2-D, got shape {data.shape}")
        return cls(name, data, estimate_fwhm(data) if fwhm is None else float(fwhm))


def split_fields(fields, fraction, seed=0):
    """(training, validation) lists of fields: round(fraction * n) of them, at least one,
    drawn with `seed`, are kept for validation and never cut into training samples."""
    if len(fields) < 2:
        raise ValueError(f"{len(fields)} clean image(s): at least 2 are needed, one kept apart for validation")
    count = min(len(fields) - 1, max(1, int(round(fraction * len(fields)))))
    chosen = set(np.random.default_rng(seed).permutation(len(fields))[:count].tolist())
    return ([f for i, f in enumerate(fields) if i not in chosen], [f for i, f in enumerate(fields) if i in chosen])


def area_weights(fields, size, problem):
    """Probabilities of drawing each field, in proportion to its area; ValueError
    "`problem`: names" if there are no fields or one is smaller than size x size."""
    small = [f.name for f in fields if min(f.data.shape) < size]
    if not fields or small:
        raise ValueError(f"{problem}: {', '.join(small)}" if small else "no images")
    areas = np.array([f.data.size for f in fields], dtype=np.float64)
    return areas / areas.sum()


def compress(image, rng, mesh_size=200, offset_sigma=1.0):
    """The dynamic compression of §2.3.3 with its random offset, drawn from N(0, (offset_sigma
    sigma_U)^2) once per sample: float32 (h, w)."""
    level, sigma = kernels.estimate_background(image, mesh_size)
    offset = rng.normal() * offset_sigma * float(np.median(sigma))
    return kernels.asinh_compress(image, level - np.float32(offset), sigma)


def rebin2(image):
    """Sum over 2x2 blocks: (2h, 2w) -> (h, w), float32 (a binned read-out: the sky adds up)."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    return image[:2 * h, :2 * w].reshape(h, 2, w, 2).sum(axis=(1, 3), dtype=np.float64).astype(np.float32)


class SampleSet:
    """Samples of side `size` drawn from clean fields (see the module's docstring).

    classes: the local classes that may be injected (each with probability 1/2, and one of
    them when the draw leaves none); focus: those injected in every sample; seed: the set's seed; mesh_size: BACK_SIZE;
    parameters: further options of ``inject`` (e.g. saturation, trail_style="real",
    cosmic_source="imsim", darks).
    """

    def __init__(self, fields, size, classes=None, focus=(), seed=0, mesh_size=200, rebin=True, offset_sigma=1.0,
                 **parameters):
        self.fields, self.offset_sigma = list(fields), offset_sigma
        self.size, self.seed, self.mesh_size, self.parameters = int(size), seed, int(mesh_size), parameters
        self.classes = parse_classes(classes)
        self.focus = parse_classes(list(focus)) if focus else []
        self.rebin = rebin
        self.weights = area_weights(self.fields, self.size, f"no clean image holds a {self.size}x{self.size} sample")

    def can_rebin(self, field):
        return (self.rebin and field.fwhm is not None and field.fwhm / 2 > MIN_REBINNED_FWHM
                and min(field.data.shape) >= 2 * self.size)

    def sample(self, index):
        """Sample `index`: (compressed float32 (size, size), truth bool (14, size, size), info
        dict: field, window origin, rebinned, classes, quarter turns, FWHM)."""
        rng = np.random.default_rng([int(self.seed), int(index)])
        field = self.fields[rng.choice(len(self.fields), p=self.weights)]
        rebinned = self.can_rebin(field) and rng.random() < 0.5
        side = 2 * self.size if rebinned else self.size
        h, w = field.data.shape
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        clean = field.data[y0:y0 + side, x0:x0 + side]
        clean = rebin2(clean) if rebinned else np.ascontiguousarray(clean)
        chosen = draw_classes(self.classes, 0.5, rng, self.focus)  # never an empty sample
        turns = int(rng.integers(4))
        options = dict(self.parameters)
        if field.fwhm is not None:
            options.setdefault("fwhm", field.fwhm / 2 if rebinned else field.fwhm)
        if rebinned and "saturation" in options:
            options["saturation"] = 4 * options["saturation"]  # four pixels summed
        seed = int(rng.integers(2 ** 63))
        image, truth = inject(clean, classes=chosen, seed=seed, quarter_turns=turns, **options)
        x = compress(image, rng, self.mesh_size, self.offset_sigma)
        info = {"field": field.name, "origin": (y0, x0), "rebinned": rebinned, "classes": chosen,
                "quarter_turns": turns, "fwhm": options.get("fwhm")}
        return x, truth, info

    def batch(self, indices):
        """Samples `indices` stacked: float32 (n, 1, size, size), uint8 (n, 14, size, size)."""
        xs, ts = zip(*(self.sample(i)[:2] for i in indices))
        return np.stack(xs)[:, None], np.stack(ts).astype(np.uint8)

    def class_fractions(self, count):
        """(14,) fraction of the pixels of samples 0..count-1 in each class (eq. 15's P)."""
        total = np.zeros(NCLASSES, dtype=np.float64)
        for i in range(count):
            total += self.sample(i)[1].sum(axis=(1, 2))
        return total / (count * self.size * self.size)


class TileSet:
    """MaxiTrack samples: windows of `size` (the network's 400 px) cut from labelled images.

    fields: CleanField-like images (any exposure, contaminated or not); labels: one 0/1 per
    field (1: tracking error). Sample i (a function of (seed, i) only) is a window of a
    field drawn in proportion to its area, compressed as in SampleSet (random offset),
    labelled with its field's label.
    """

    def __init__(self, fields, labels, size=400, seed=0, mesh_size=200):
        self.fields, self.labels = list(fields), [int(v) for v in labels]
        self.size, self.seed, self.mesh_size = int(size), seed, int(mesh_size)
        self.weights = area_weights(self.fields, self.size, f"images smaller than MaxiTrack's {self.size} px tile")

    def sample(self, index):
        """(compressed float32 (size, size), label 0/1)."""
        rng = np.random.default_rng([int(self.seed), int(index)])
        k = int(rng.choice(len(self.fields), p=self.weights))
        h, w = self.fields[k].data.shape
        y0, x0 = int(rng.integers(0, h - self.size + 1)), int(rng.integers(0, w - self.size + 1))
        window = np.ascontiguousarray(self.fields[k].data[y0:y0 + self.size, x0:x0 + self.size])
        return compress(window, rng, self.mesh_size), self.labels[k]

    def batch(self, indices):
        """float32 (n, 1, size, size), int64 (n,) labels."""
        xs, ys = zip(*(self.sample(i) for i in indices))
        return np.stack(xs)[:, None], np.array(ys, dtype=np.int64)

    def label_fractions(self):
        """(2,) area-weighted fractions of the labels 0 and 1 (the expected sample mix)."""
        ones = float(sum(w for w, v in zip(self.weights, self.labels) if v))
        return np.array([1.0 - ones, ones])
