"""Check-images, as SExtractor's CHECKIMAGE_TYPE: extra files written beside the mask.

    CLEANED         the input with the pixels of CLEAN_CLASSES inpainted (float32, ADU)
    PREVIEW         one PNG per file: image, flagged classes in colour, legend (preview.py)
    BACKGROUND      the background level map the network's normalisation used (float32, ADU)
    BACKGROUND_RMS  the background noise (sigma) map of that normalisation (float32, ADU)

The masker hands each plane's :class:`PlaneProducts` (the level and sigma maps it
normalised with, the flags of every class) to a :class:`FileCheckImages`, which builds the
check-images HDU by HDU with the input's structure and writes each file with
``fitsio.write_hdus`` (complete or absent).
"""
import dataclasses
import os

import numpy as np

from . import __version__, errors, fitsio, kernels, outputs
from .classes import ABBREVIATIONS
from .config import ConfigError
from .keywords import CHECKIMAGE_SUFFIXES, checkimage_is_suffix

#: Inpainting estimator and the number of valid pixels it looks for, chosen by
#: benchmarks/bench_inpaint.py (see docs/benchmarks/inpainting.md).
INPAINT_METHOD = "clipped_plane"
INPAINT_MIN_VALID = 8
#: The mask's processing cards that also describe a check-image (not its bits or planes).
RUN_CARDS = ("MM_VERS", "MM_MODEL", "MM_WSHA", "MM_DATE", "MM_PRIOR", "MM_BACKS")


@dataclasses.dataclass
class PlaneProducts:
    """What the masker computed for one 2-D plane, kept for the check-images."""

    level: np.ndarray | None = None   # (h, w) float32 background level, ADU
    sigma: np.ndarray | None = None   # (h, w) float32 background sigma, ADU
    flags: np.ndarray | None = None   # (h, w) int16, bit k set where class k is flagged
    trails: list = dataclasses.field(default_factory=list)  # the trail stage's maximask.trails.Segment


class CheckImages:
    """The check-images of a run, from the CHECKIMAGE_* and CLEAN_* keywords."""

    def __init__(self, config):
        self.types = tuple(t for t in config.CHECKIMAGE_TYPE if t != "NONE")
        names = config.CHECKIMAGE_NAME or tuple(CHECKIMAGE_SUFFIXES[t] for t in self.types)
        self.names = dict(zip(self.types, names))
        self.clean_bits = sum(1 << ABBREVIATIONS.index(a) for a in config.CLEAN_CLASSES)
        self.clean_classes = ",".join(a for a in ABBREVIATIONS if a in config.CLEAN_CLASSES)
        background = ABBREVIATIONS.index("BG")
        self.shown = [k for k, a in enumerate(ABBREVIATIONS) if a in config.CLASSES and k != background]
        self.radius = config.CLEAN_RADIUS
        self.preview_size = config.PREVIEW_SIZE
        self.clean_cards = [(f"{a}_TH", float(config.THRESHOLDS[ABBREVIATIONS.index(a)]),
                             f"{a} threshold") for a in self.clean_classes.split(",")]
        self.output_dir = config.OUTPUT_DIR or None
        self.overwrite = config.OVERWRITE
        if "PREVIEW" in self.types:
            from .preview import require_pillow

            try:
                require_pillow()
            except ImportError as exc:
                raise ConfigError(str(exc), keyword="CHECKIMAGE_TYPE") from None

    def __bool__(self):
        return bool(self.types)

    @property
    def needs_background(self):
        return "BACKGROUND" in self.types or "BACKGROUND_RMS" in self.types

    @property
    def needs_flags(self):
        return "CLEANED" in self.types or "PREVIEW" in self.types

    def check_inputs(self, sources):
        """ConfigError when a fixed file name (not a suffix) would serve several inputs."""
        fixed = [n for n in self.names.values() if not checkimage_is_suffix(n)]
        if fixed and len(sources) > 1:
            raise ConfigError(f"CHECKIMAGE_NAME: {fixed[0]} is one file for {len(sources)} "
                              "inputs; give a suffix (.x or _x) instead", keyword="CHECKIMAGE_NAME")

    def path(self, source, kind):
        name = self.names[kind]
        if checkimage_is_suffix(name):
            return fitsio.output_path(source, self.output_dir, name)
        return name

    def for_file(self, source, main_path, cards, protect=frozenset()):
        """The check-images of one input file: their paths checked before any work.

        Raises OutputError when one would be written over a file of `protect` (identities,
        see outputs.file_identities: the inputs of the run) or the main output,
        OutputExistsError when one exists and OVERWRITE is N.
        """
        paths = {kind: self.path(source, kind) for kind in self.types}
        for kind, path in paths.items():
            try:
                outputs.check_not_input(path, protect)
            except errors.OutputError:
                what = (f"its {kind} check-image {path}" if checkimage_is_suffix(self.names[kind])
                        else f"CHECKIMAGE_NAME {path} (the {kind} check-image)")
                raise errors.OutputError(source.name, f"{what} is an input of this run: an output never "
                                                      "replaces an input, whatever OVERWRITE says (change "
                                                      "CHECKIMAGE_NAME)") from None
            if os.path.realpath(path) == os.path.realpath(main_path):
                raise errors.OutputError(path, f"the {kind} check-image would overwrite the mask")
            if not self.overwrite and os.path.lexists(path):
                raise errors.OutputExistsError(path)
        return FileCheckImages(self, source, paths, cards, protect)


class FileCheckImages:
    """The check-images of one file, built HDU by HDU then written."""

    def __init__(self, checks, source, paths, cards, protect=frozenset()):
        self.checks = checks
        self.protect = protect
        self.source = source
        self.paths = paths
        self.cards = [card for card in cards if card[0] in RUN_CARDS]
        self.hdus = {kind: [] for kind in paths if kind != "PREVIEW"}
        self.panels = []

    def add_empty(self, info):
        """An HDU with no output (an empty primary, a table): an empty HDU keeps its place,
        as in the mask (fitsio.empty_output)."""
        kind, header = fitsio.empty_output(info)
        for name, entries in self.hdus.items():
            cleaned = name == "CLEANED" and fitsio.PLACEHOLDER_CARD not in header
            entries.append((kind, None, info.header if cleaned else header))

    def add(self, info, data, products):
        """An image HDU: data (h, w) or (n, h, w) float32 as read, products one
        PlaneProducts per 2-D plane, or None when the HDU could not be masked."""
        planes = data.reshape((-1,) + data.shape[-2:])
        products = products or [PlaneProducts() for _ in planes]
        if "CLEANED" in self.hdus:
            self.hdus["CLEANED"].append(self._cleaned(info, data, planes, products))
        for kind, attr, what in (("BACKGROUND", "level", "background level"),
                                 ("BACKGROUND_RMS", "sigma", "background sigma")):
            if kind in self.hdus:
                maps = [getattr(p, attr) if getattr(p, attr) is not None
                        else np.zeros(plane.shape, np.float32) for p, plane in zip(products, planes)]
                header = fitsio.output_header(info.header, self.cards + [
                    ("MM_CHECK", kind, f"check-image: {what} (ADU)")])
                self.hdus[kind].append((info.kind, np.stack(maps).reshape(data.shape), header))
        if "PREVIEW" in self.paths:
            for n, (plane, p) in enumerate(zip(planes, products)):
                label = info.name if len(planes) == 1 else f"{info.name} plane {n}"
                flags = p.flags if p.flags is not None else np.zeros(plane.shape, np.int16)
                self.panels.append((label, plane, flags))

    def _cleaned(self, info, data, planes, products):
        cleaned = np.empty_like(planes)
        replaced = left = 0
        for n, (plane, p) in enumerate(zip(planes, products)):
            if p.flags is None:
                cleaned[n] = plane
                continue
            mask = (p.flags & np.asarray(self.checks.clean_bits, p.flags.dtype)) != 0
            _, nleft = kernels.inpaint(plane, mask, INPAINT_METHOD, self.checks.radius,
                                       INPAINT_MIN_VALID, out=cleaned[n])
            replaced += int(np.count_nonzero(mask)) - nleft
            left += nleft
        header = info.header.copy()
        for key, value, comment in self.cards + self.checks.clean_cards + [
                ("MM_CHECK", "CLEANED", "check-image: flagged pixels inpainted"),
                ("MM_CLEAN", self.checks.clean_classes, "classes inpainted"),
                ("MM_CMETH", INPAINT_METHOD, "inpainting estimator"),
                ("MM_CRAD", self.checks.radius, "[pixel] farthest valid pixel used"),
                ("MM_NCLN", replaced, "flagged pixels inpainted"),
                ("MM_NLEFT", left, "flagged pixels left as input: none valid near")]:
            header[key] = (value, comment)
        return info.kind, cleaned.reshape(data.shape), header

    def write(self):
        """Write every check-image of the file (each complete or absent); return the paths."""
        for kind, entries in self.hdus.items():
            if any(data is not None for _, data, _ in entries):
                fitsio.write_hdus(self.paths[kind], entries, overwrite=self.checks.overwrite,
                                  protect=self.protect)
        if "PREVIEW" in self.paths and self.panels:
            from . import preview

            canvas, lines = preview.render(self.panels, self.checks.shown,
                                           f"{self.source.name}: maximask {__version__}",
                                           self.checks.preview_size)
            preview.save(canvas, lines, self.paths["PREVIEW"], f"maximask {__version__}",
                         self.protect)
        return [self.paths[k] for k in self.paths]

